#!/usr/bin/env bash
# Runs awith's side-by-side benchmarks and prints, per group, how each variant
# compares with the group's baseline (the first variant):
#
#   1. time: the variants interleaved in one process (median of per-round ratios);
#   2. instructions: each variant under callgrind for 0 and N iterations;
#      instructions per iteration = (I(N) - I(0)) / N.
#
# Usage: ci/bench.sh [GROUP...]            (default: every group the bench lists)
# Environment:
#   BENCH_ROUNDS         rounds of the time comparison (default: the bench's, 401)
#   BENCH_CALLGRIND_N    iterations per callgrind run (default: 20000)
#   BENCH_CALLGRIND_DIR  keep the callgrind output files there, for
#                        callgrind_annotate (default: a temporary directory, removed)
#
# Numbers are for people to read; nothing here fails on a slow result.
set -euo pipefail

cd "$(dirname "$0")/.."

callgrind_n=${BENCH_CALLGRIND_N:-20000}

# valgrind, for the instruction counts.
ci/install.sh valgrind:valgrind

if [[ -n ${BENCH_CALLGRIND_DIR:-} ]]; then
    out=$BENCH_CALLGRIND_DIR
    mkdir -p "$out"
else
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi

# Build, and find the bench binary in cargo's own report of what it built.
echo "== building the benches (release)"
cargo bench -p awith-benches --bench scope --no-run --message-format=json-render-diagnostics \
    >"$out/build.json"
bench=$(
    grep '"reason":"compiler-artifact"' "$out/build.json" |
        grep '"kind":\["bench"\]' |
        grep '"name":"scope"' |
        sed -E 's/.*"executable":"([^"]+)".*/\1/' |
        tail -n 1
) || true
if [[ -z $bench || ! -x $bench ]]; then
    echo "error: cargo built no executable for the bench \`scope\`" >&2
    exit 1
fi
echo "   $bench"

# The groups and their variants, one line each: GROUP BASELINE VARIANT...
declare -A wanted=()
for group in "$@"; do wanted[$group]=1; done
groups=()
while read -r line; do
    read -r -a words <<<"$line"
    if [[ $# -eq 0 || -n ${wanted[${words[0]}]:-} ]]; then
        groups+=("$line")
        unset "wanted[${words[0]}]"
    fi
done < <("$bench" --list)
if [[ ${#wanted[@]} -gt 0 ]]; then
    echo "error: no such group: ${!wanted[*]} (the groups are: $("$bench" --list | cut -d' ' -f1 | paste -sd' '))" >&2
    exit 2
fi

# The instructions callgrind counted in the whole run of
# `bench --callgrind GROUP VARIANT N`.
instructions() {
    local file="$out/callgrind.$1.$2.$3"
    valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$bench" --callgrind "$1" "$2" "$3" >/dev/null 2>"$file.log" || {
        echo "error: callgrind run of $1/$2 ($3 iterations) failed:" >&2
        cat "$file.log" >&2
        return 1
    }
    # "summary:" in older callgrind files, "totals:" in all; the first counter is Ir.
    awk '/^(summary|totals):/ { print $2; exit }' "$file"
}

summary=()
for line in "${groups[@]}"; do
    read -r -a words <<<"$line"
    group=${words[0]}
    variants=("${words[@]:1}")
    baseline=${variants[0]}

    echo
    echo "== $group: time"
    time_args=(--bench "$group")
    [[ -n ${BENCH_ROUNDS:-} ]] && time_args+=(--rounds "$BENCH_ROUNDS")
    "$bench" "${time_args[@]}" | tee "$out/time.$group.txt"
    summary+=("$(grep -E '^[^ ].* overhead \(time\):' "$out/time.$group.txt" || true)")

    echo "== $group: instructions (callgrind, (I($callgrind_n) - I(0)) / $callgrind_n)"
    declare -A per_iteration=()
    for variant in "${variants[@]}"; do
        zero=$(instructions "$group" "$variant" 0)
        many=$(instructions "$group" "$variant" "$callgrind_n")
        per_iteration[$variant]=$(awk -v a="$many" -v b="$zero" -v n="$callgrind_n" \
            'BEGIN { printf "%.1f", (a - b) / n }')
        printf '  %-14s %10s instr/iter   (I(0) = %s, I(%s) = %s)\n' \
            "$variant" "${per_iteration[$variant]}" "$zero" "$callgrind_n" "$many"
    done
    for variant in "${variants[@]:1}"; do
        summary+=("$(awk -v g="$group" -v v="$variant" -v b="$baseline" \
            -v x="${per_iteration[$variant]}" -v y="${per_iteration[$baseline]}" \
            'BEGIN { printf "%s: %s overhead (instructions): %.2fx %s (%.0f vs %.0f instr/iter)", g, v, x / y, b, x, y }')")
    done
    unset per_iteration
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
