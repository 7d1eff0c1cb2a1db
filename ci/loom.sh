#!/usr/bin/env bash
# Model-checks awith-core's concurrent state machines with loom: the cleanup
# registry and drains, a task group's child accounting, a pool's waiter
# hand-off. `--cfg loom` swaps the core's synchronisation types (one place:
# crates/awith-core/src/sync.rs) for loom's, and the `loom_tests` modules
# explore every interleaving of their threads, up to three preemptions each
# (set LOOM_MAX_PREEMPTIONS to search deeper). Prints each model's time.
#
# Usage: ci/loom.sh [test-name-filter]
set -euo pipefail
cd "$(dirname "$0")/.."

# A build directory of its own: `--cfg loom` rebuilds everything.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom"
export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
filter="${1:-loom_tests}"
cargo test --locked --release -p awith-core --lib --no-run
models=$(cargo test --locked --release -q -p awith-core --lib -- "$filter" --list 2>/dev/null |
    sed -n 's/: test$//p')
[ -n "$models" ] || { echo "ci/loom.sh: no model matches '$filter'" >&2; exit 1; }
started=$SECONDS
for model in $models; do
    t0=$(date +%s.%N)
    cargo test --locked --release -q -p awith-core --lib -- "$model" --exact >/dev/null 2>"$CARGO_TARGET_DIR/loom-model.log" || {
        cat "$CARGO_TARGET_DIR/loom-model.log" >&2
        echo "loom: $model FAILED" >&2
        exit 1
    }
    printf 'loom: %-70s ok %6.1f s\n' "$model" "$(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { print t1 - t0 }')"
done
echo "loom: $(echo "$models" | wc -l) models passed in $((SECONDS - started)) s"
