#!/usr/bin/env bash
# Tests examples/audit-log — a user's runtime-agnostic library, outside the
# workspace, with its own lock file — and checks that #[awith::test] gave it
# exactly the runtimes its dev-dependency enables: the reference runtime,
# tokio's two flavours and smol; no async-std.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# As ci/test.sh, so that a build directory shared with it is reused.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"

# The example is a workspace of its own, whose build directory would be
# examples/audit-log/target: share the root's (or $CARGO_TARGET_DIR) instead.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
example=(--locked --manifest-path examples/audit-log/Cargo.toml --target-dir "$target_dir")

echo "+ cargo test ${example[*]}"
cargo test "${example[@]}"

# The runtime of a matrix test is the last part of its name: `name::smol`.
expected=(reference tokio_current_thread tokio_multi_thread smol)
known=(reference tokio_current_thread tokio_multi_thread async_std smol)
list=$(cargo test -q "${example[@]}" --tests -- --list)
declare -A count=()
while IFS= read -r line; do
    [[ $line == *": test" ]] || continue
    name=${line%: test}
    suffix=${name##*::}
    for runtime in "${known[@]}"; do
        if [[ $suffix == "$runtime" ]]; then
            count[$runtime]=$((${count[$runtime]:-0} + 1))
        fi
    done
done <<<"$list"

echo
echo "tests per runtime:"
for runtime in "${known[@]}"; do
    printf '  %-22s %s\n' "$runtime" "${count[$runtime]:-0}"
done

problems=()
for runtime in "${expected[@]}"; do
    if [[ -z ${count[$runtime]:-} ]]; then
        problems+=("no test runs on $runtime: the dev-dependency on awith enables it")
    fi
done
for runtime in "${!count[@]}"; do
    if [[ " ${expected[*]} " != *" $runtime "* ]]; then
        problems+=("${count[$runtime]} test(s) run on $runtime, which the dev-dependency on awith does not enable")
    fi
done
if ((${#problems[@]} > 0)); then
    echo >&2
    for problem in "${problems[@]}"; do
        echo "ci/example.sh: $problem" >&2
    done
    echo "ci/example.sh: expected the runtimes ${expected[*]}, exactly" >&2
    exit 1
fi
echo "ci/example.sh: examples/audit-log passes on exactly ${expected[*]}"
