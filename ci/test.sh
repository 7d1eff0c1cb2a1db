#!/usr/bin/env bash
# The whole test matrix — what CI runs (.ci/run) and what to run before a push:
# formatting, clippy with warnings denied, every runtime's tests on its own
# feature set and all together, doctests, and the docs with warnings denied.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# Disk: a full run builds each runtime's feature set, loom's and the packaged
# crates' separately. Without incremental caches, and with line tables only
# for debug info (backtraces keep file and line), the build directory stays
# at 3.3 GB (measured on a clean clone) instead of 19 GB; a CI machine's disk
# once ran out at 19.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"

# awith-redis's tests start real redis-servers (from PATH) of their own;
# awith-sqlx's start PostgreSQL servers (initdb, postgres) of their own.
ci/install.sh redis-server:redis-server postgresql

log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT
started=$SECONDS

step() {
    local name="$1"
    shift
    local t0=$SECONDS
    echo
    echo "=== $name"
    echo "+ $*"
    "$@" 2>&1 | tee "$log_dir/$name.log"
    echo "--- $name: ok ($((SECONDS - t0)) s)"
}

step fmt cargo fmt --all --check
step clippy cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

# The core alone (unit tests, reference runtime, doctests): no runtime crate.
# Its `tracing` feature (tests/tracing.rs) is on in the all-features step
# below, with everything else built on the core with it.
step core cargo test --locked -p awith-core

# The core's concurrent state machines, model-checked with loom.
step loom ci/loom.sh

# Each runtime on its own feature set: its adapter, the facade with only it,
# the conformance suite (its instantiations plus the reference runtime) and
# the scenarios.
for rt in tokio async-std smol; do
    step "adapter-$rt" cargo test --locked -p "awith-$rt"
    step "facade-$rt" cargo test --locked -p awith --no-default-features --features "$rt"
    step "conformance-$rt" cargo test --locked -p awith-conformance --no-default-features --features "$rt" -- --nocapture
    step "scenarios-$rt" cargo test --locked -p awith-scenarios --no-default-features --features "$rt"
done

# The Redis lock backend on each runtime feature, against real servers.
for rt in tokio smol async-std; do
    step "redis-$rt" cargo test --locked -p awith-redis --no-default-features --features "$rt"
done

# The transaction scopes over sqlx on each runtime feature, against SQLite
# files and real PostgreSQL servers.
for rt in tokio smol async-std; do
    step "sqlx-$rt" cargo test --locked -p awith-sqlx --no-default-features --features "sqlite,postgres,$rt" -- --nocapture
done

# All runtimes together: features are additive. (awith-redis and awith-sqlx
# ran on each runtime above; ci/package.sh tests their packages with all
# their features at once, so they are not run a third time here.)
step all-features cargo test --locked --workspace --all-features --exclude awith-conformance \
    --exclude awith-redis --exclude awith-sqlx
# The conformance suite on every runtime at once; its tests that observe how
# the runtimes differ write what they saw, and the runtime guide rendered from
# that (and ci/bench.sh's figures) must be the committed docs/runtimes.md.
step conformance-all env AWITH_GUIDE_OUT="$log_dir/observations.tsv" \
    cargo test --locked -p awith-conformance --all-features -- --nocapture
step guide cargo run -q --locked -p awith-conformance --bin runtime-guide -- \
    --observations "$log_dir/observations.tsv" --costs docs/runtime-costs.tsv --check docs/runtimes.md

# A user's runtime-agnostic library, tested on the runtimes its features
# choose (tokio and smol) with #[awith::test]: exactly those and reference.
step example-library ci/example.sh

# The user programs the README shows (the facade's examples), on each runtime.
examples() {
    cargo build --locked -q -p awith --all-features --examples
    for example in pool_transaction lock_retry gather_profile; do
        for rt in tokio smol async-std; do
            echo "+ $example $rt"
            cargo run --locked -q -p awith --all-features --example "$example" -- "$rt"
        done
    done
}
step examples examples

step docs env RUSTDOCFLAGS="-D warnings" cargo doc --locked --workspace --no-deps --all-features
# The benches compile and link (clippy has checked them); in the test
# profile, whose dependencies the steps above built: ci/bench.sh builds them
# optimised when it runs them.
step benches-build cargo test --locked -p awith-benches --benches --no-run

# The published crates as crates.io would get them: packaged, unpacked outside
# the workspace, and tested there (the facade's doctests include its README).
step package ci/package.sh

echo
echo "=== conformance tests per runtime (all features, all passed; each test is name::runtime)"
cargo test -q --locked -p awith-conformance --all-features --test conformance -- --list 2>/dev/null |
    sed -nE 's/^.*::(reference|tokio_current_thread|tokio_multi_thread|async_std|smol): test$/\1/p' |
    sort | uniq -c | awk '{ print "  " $2 ": " $1 }'
echo
echo "=== property tests (random programs per runtime)"
cat "$log_dir"/conformance-all.log | grep -oE "property: .*" | sort -u | sed 's/^/  /'
echo
echo "=== transfer invariant (8 workers x 300 transfers per database and runtime)"
cat "$log_dir"/sqlx-*.log | grep -E "^invariant " | sed 's/^/  /'
echo
echo "=== loom models"
grep -E "^loom:" "$log_dir/loom.log" | sed 's/^/  /'
echo
echo "ci/test.sh: all green in $((SECONDS - started)) s"
