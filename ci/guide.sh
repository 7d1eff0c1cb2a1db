#!/usr/bin/env bash
# Regenerates the runtime guide, docs/runtimes.md, from data: runs the
# conformance tests that observe how the runtimes differ (every runtime,
# AWITH_GUIDE_OUT set) and renders their observations, the cost figures of
# docs/runtime-costs.tsv (written by ci/bench.sh) and the integrations'
# manifests. ci/test.sh checks that the committed page is current.
#
# Usage: ci/guide.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/.."

mode=(--out docs/runtimes.md)
[[ ${1:-} == --check ]] && mode=(--check docs/runtimes.md)

observations=$(mktemp)
trap 'rm -f "$observations"' EXIT
AWITH_GUIDE_OUT="$observations" cargo test -q --locked -p awith-conformance --all-features \
    --test conformance -- guide_runtime_differences spawn_parallelism spawn_after_shutdown \
    cleanup_dropped_at_shutdown >/dev/null
cargo run -q --locked -p awith-conformance --bin runtime-guide -- \
    --observations "$observations" --costs docs/runtime-costs.tsv "${mode[@]}"
