#!/usr/bin/env bash
# The soak run: the conformance suite's random programs (nested scopes,
# and_then, zip and exit stacks with random faults, hangs and cancellations),
# 100,000 of them on tokio multi-thread and on smol, in release mode; then
# the pool's random workloads (several tasks checking out at once, with random
# cancellations, failures, panics and wait timeouts, min_idle maintenance,
# retain and close racing the checkouts, and creates, recycles, resets,
# destroys, predicates and object drops that panic or hang), 100,000 on each.
#
# Usage: ci/soak.sh [runtime...]   (default: tokio_multi_thread smol)
# Environment: AWITH_SOAK_CASES (default 100000),
#              AWITH_SOAK_POOL_CASES (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."

ci/install.sh
cases="${AWITH_SOAK_CASES:-100000}"
pool_cases="${AWITH_SOAK_POOL_CASES:-100000}"
runtimes=("$@")
[ ${#runtimes[@]} -gt 0 ] || runtimes=(tokio_multi_thread smol)

cargo test --release --locked -p awith-conformance --no-run
# soak VARIABLE CASES TEST WHAT: the conformance test TEST on every runtime,
# with VARIABLE=CASES; prints its result and how long it took.
soak() {
    local variable=$1 cases=$2 test=$3 what=$4 rt t0
    for rt in "${runtimes[@]}"; do
        t0=$SECONDS
        env "$variable=$cases" cargo test --release --locked -p awith-conformance \
            --test conformance "$test::$rt" -- --exact --nocapture 2>&1 |
            grep -E "^property:|test result|panicked|Test failed|minimal failing" -A40
        echo "soak: $cases $what on $rt in $((SECONDS - t0)) s"
    done
}

soak AWITH_PROPTEST_CASES "$cases" property_random_programs "random programs"
soak AWITH_POOL_CASES "$pool_cases" pool_random_checkouts "random pool workloads"
