#!/usr/bin/env bash
# Runs awith's side-by-side benchmarks and prints, per group, how each variant
# compares with the group's baseline (the first variant):
#
#   1. time: the variants interleaved in one process (median of per-round ratios);
#   2. instructions: each variant under callgrind for 0 and N iterations;
#      instructions per iteration = (I(N) - I(0)) / N.
#
# When the groups `runtime-spawn` and `runtime-scope` both ran, it also writes
# their figures, with the date and the machine, to docs/runtime-costs.tsv (the
# runtime guide's source): `ci/bench.sh runtime-spawn runtime-scope` renews it.
#
# Usage: ci/bench.sh [GROUP...]            (default: every group the bench lists)
# Environment:
#   BENCH_ROUNDS         rounds of the time comparison (default: the bench's, 401)
#   BENCH_CALLGRIND_N    iterations per callgrind run (default: 20000; 0: no
#                        callgrind runs, instruction counts are left out)
#   BENCH_CALLGRIND_DIR  keep the callgrind output files there, for
#                        callgrind_annotate (default: a temporary directory, removed)
#   BENCH_TIMEOUT        seconds one run of the bench may take before it is
#                        stopped and this script fails (default: 1800)
#   ASYNC_STD_THREAD_COUNT  async-std's worker threads (default here: 2, as
#                        the tokio and smol groups have two workers)
#
# Numbers are for people to read; nothing here fails on a slow result.
set -euo pipefail

cd "$(dirname "$0")/.."

callgrind_n=${BENCH_CALLGRIND_N:-20000}
if [[ ! $callgrind_n =~ ^[0-9]+$ ]]; then
    echo "error: BENCH_CALLGRIND_N must be a whole number, not \`$callgrind_n\`" >&2
    exit 2
fi
bound=${BENCH_TIMEOUT:-1800}
# Without it, async-std runs a worker per core: the runtime groups compare
# two-worker runtimes on any machine.
export ASYNC_STD_THREAD_COUNT=${ASYNC_STD_THREAD_COUNT:-2}

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
    timeout "$bound" valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$bench" --callgrind "$1" "$2" "$3" >/dev/null 2>"$file.log" || {
        echo "error: callgrind run of $1/$2 ($3 iterations) failed:" >&2
        cat "$file.log" >&2
        return 1
    }
    # "summary:" in older callgrind files, "totals:" in all; the first counter is Ir.
    awk '/^(summary|totals):/ { print $2; exit }' "$file"
}

summary=()
# Per GROUP/VARIANT: the median ns/iter of the time comparison, the median
# of its per-round ratios to the group's baseline, and the instructions per
# iteration; per GROUP: its rounds and batch size.
declare -A median=() ratio=() instr=() batches=()
for line in "${groups[@]}"; do
    read -r -a words <<<"$line"
    group=${words[0]}
    variants=("${words[@]:1}")
    baseline=${variants[0]}

    echo
    echo "== $group: time"
    time_args=(--bench "$group")
    [[ -n ${BENCH_ROUNDS:-} ]] && time_args+=(--rounds "$BENCH_ROUNDS")
    timeout "$bound" "$bench" "${time_args[@]}" | tee "$out/time.$group.txt"
    summary+=("$(grep -E '^[^ ].* overhead \(time\):' "$out/time.$group.txt" || true)")
    # The bench's lines for scripts:
    # `GROUP: VARIANT median (time): NS ns/iter, RATIOx BASELINE`.
    while read -r variant ns times; do
        median[$group/$variant]=$ns
        ratio[$group/$variant]=$times
    done < <(sed -nE \
        "s|^$group: ([^ ]+) median \(time\): ([0-9.]+) ns/iter, ([0-9.]+)x [^ ]+\$|\1 \2 \3|p" \
        "$out/time.$group.txt")
    batches[$group]=$(sed -nE 's/^ +([0-9]+ rounds x [0-9]+ iterations) per variant.*/\1/p' \
        "$out/time.$group.txt")

    if [[ $callgrind_n -eq 0 ]]; then
        echo "== $group: instructions: not counted (BENCH_CALLGRIND_N=0)"
        continue
    fi
    echo "== $group: instructions (callgrind, (I($callgrind_n) - I(0)) / $callgrind_n)"
    declare -A per_iteration=()
    for variant in "${variants[@]}"; do
        zero=$(instructions "$group" "$variant" 0)
        many=$(instructions "$group" "$variant" "$callgrind_n")
        per_iteration[$variant]=$(awk -v a="$many" -v b="$zero" -v n="$callgrind_n" \
            'BEGIN { printf "%.1f", (a - b) / n }')
        printf '  %-14s %10s instr/iter   (I(0) = %s, I(%s) = %s)\n' \
            "$variant" "${per_iteration[$variant]}" "$zero" "$callgrind_n" "$many"
        instr[$group/$variant]=${per_iteration[$variant]}
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

# The runtime guide's figures: one row per runtime, the variants of the
# groups `runtime-spawn` and `runtime-scope` that ran on it.
runtime_costs() {
    local file=docs/runtime-costs.tsv date cores cpu rustc key label
    date=$(date -u +%F)
    cores=$(nproc)
    cpu=$(sed -nE '/^model name/{s/^[^:]*:[[:space:]]*//p;q}' /proc/cpuinfo 2>/dev/null || true)
    rustc=$(rustc --version)
    mkdir -p docs
    {
        echo "# awith runtime costs, per runtime: (a) spawn + join of one trivial task, from a task"
        echo "# on the runtime; (b) one awith scope (acquire and release each yield once, the body"
        echo "# adds 1), and the same three steps by hand, in a task on the runtime."
        echo "# Written by ci/bench.sh from the groups runtime-spawn and runtime-scope of"
        echo "# benches/benches/scope.rs; renew with: ci/bench.sh runtime-spawn runtime-scope"
        echo "# date: $date"
        echo "# machine: $cores cores, ${cpu:-unknown CPU}; $rustc"
        echo "# *_ns: median wall time per iteration, ns, over rounds in which the variants of a"
        echo "#   group ran interleaved in one process (runtime-spawn: ${batches[runtime-spawn]};"
        echo "#   runtime-scope: ${batches[runtime-scope]})."
        echo "# *_ratio: median over those rounds of the round's ratio to the group's baseline:"
        echo "#   spawn_join to tokio-ct's spawn_join, scope and hand_scope to tokio-ct's hand_scope."
        echo "#   Load on the machine slows the variants of a round alike: the ratios move least."
        echo "#   awith's own overhead on a runtime: scope_ratio / hand_scope_ratio."
        if [[ $callgrind_n -eq 0 ]]; then
            echo "# *_instr: not counted (BENCH_CALLGRIND_N=0): -"
        else
            echo "# *_instr: instructions per iteration under callgrind, (I(N) - I(0)) / N, N = $callgrind_n;"
            echo "#   every thread of the process counts (a multi-thread runtime's workers too); no"
            echo "#   kernel work (a futex wake of another thread) counts."
        fi
        printf '%s\t' runtime label \
            spawn_join_ns spawn_join_ratio scope_ns scope_ratio hand_scope_ns hand_scope_ratio \
            spawn_join_instr scope_instr
        printf 'hand_scope_instr\n'
        for key in tokio-ct tokio-mt async-std smol; do
            case $key in
                tokio-ct) label="tokio current-thread" ;;
                tokio-mt) label="tokio multi-thread, 2 workers" ;;
                async-std) label="async-std, $ASYNC_STD_THREAD_COUNT threads" ;;
                smol) label="smol Executor, 2 threads" ;;
            esac
            printf '%s\t' "$key" "$label" \
                "${median[runtime-spawn/$key]:--}" "${ratio[runtime-spawn/$key]:--}" \
                "${median[runtime-scope/$key]:--}" "${ratio[runtime-scope/$key]:--}" \
                "${median[runtime-scope/hand-$key]:--}" "${ratio[runtime-scope/hand-$key]:--}" \
                "${instr[runtime-spawn/$key]:--}" "${instr[runtime-scope/$key]:--}"
            printf '%s\n' "${instr[runtime-scope/hand-$key]:--}"
        done
    } >"$file.tmp"
    mv "$file.tmp" "$file"
    echo
    echo "== $file"
    cat "$file"
}
if [[ -n ${batches[runtime-spawn]:-} && -n ${batches[runtime-scope]:-} ]]; then
    runtime_costs
fi
