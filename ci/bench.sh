#!/usr/bin/env bash
# Runs awith's side-by-side benchmarks and prints, per group, how each variant
# compares with the group's baseline (the first variant):
#
#   1. time: the variants interleaved in one process (median of per-round ratios);
#   2. instructions: each variant under callgrind for 0 and N iterations;
#      instructions per iteration = (I(N) - I(0)) / N.
#
# Latency groups (the lock hand-off) report percentiles of their samples
# instead, and no instruction counts.
#
# Three benches: `scope` (benches/benches/scope.rs: the scopes, task groups,
# pools, runtimes), `lock` (benches/benches/lock.rs: the Redis lock against
# a redis-server of its own, which ci/install.sh installs if missing) and `tx`
# (benches/benches/tx.rs: awith-sqlx's transaction scope against sqlx's
# begin/commit by hand, on a SQLite file and on a PostgreSQL server of its
# own, whose programs ci/install.sh installs if missing). The default run is
# the scope bench's groups; `lock` stands for the lock bench's groups (about
# 2 minutes, most of it the polling loop's 100 ms sleeps in the hand-off
# group), `tx` for the transaction bench's (about a minute and a half).
#
# When the groups `runtime-spawn` and `runtime-scope` both ran, it also writes
# their figures, with the date and the machine, to docs/runtime-costs.tsv (the
# runtime guide's source): `ci/bench.sh runtime-spawn runtime-scope` renews it.
#
# Usage: ci/bench.sh [GROUP|lock|tx...]    (default: every group of the scope bench)
# Environment:
#   BENCH_ROUNDS         rounds of the time comparison (default: the bench's, 401)
#   BENCH_CALLGRIND_N    iterations per callgrind run (default: 20000; 0: no
#                        callgrind runs, instruction counts are left out)
#   BENCH_LOCK_CALLGRIND_N  the same for the lock bench's groups, whose
#                        iterations are round trips to a server (default: 2000;
#                        0: none)
#   BENCH_TX_CALLGRIND_N the same for the transaction bench's groups, whose
#                        iterations are four round trips to a database each
#                        (default: 1000, about 5 s a run; 0: none)
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
lock_callgrind_n=${BENCH_LOCK_CALLGRIND_N:-2000}
tx_callgrind_n=${BENCH_TX_CALLGRIND_N:-1000}
for n in "$callgrind_n" "$lock_callgrind_n" "$tx_callgrind_n"; do
    if [[ ! $n =~ ^[0-9]+$ ]]; then
        echo "error: BENCH_CALLGRIND_N, BENCH_LOCK_CALLGRIND_N and BENCH_TX_CALLGRIND_N" \
            "must be whole numbers, not \`$n\`" >&2
        exit 2
    fi
done
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

# Build, and find the bench binaries in cargo's own report of what it built.
echo "== building the benches (release)"
cargo bench -p awith-benches --bench scope --bench lock --bench tx --no-run \
    --message-format=json-render-diagnostics >"$out/build.json"
declare -A binary=()
for name in scope lock tx; do
    binary[$name]=$(
        grep '"reason":"compiler-artifact"' "$out/build.json" |
            grep '"kind":\["bench"\]' |
            grep "\"name\":\"$name\"" |
            sed -E 's/.*"executable":"([^"]+)".*/\1/' |
            tail -n 1
    ) || true
    if [[ -z ${binary[$name]} || ! -x ${binary[$name]} ]]; then
        echo "error: cargo built no executable for the bench \`$name\`" >&2
        exit 1
    fi
    echo "   ${binary[$name]}"
done

# The groups and their variants, one line each: GROUP BASELINE VARIANT...;
# per group, the bench that runs it and whether it measures latency.
declare -A wanted=() bench_of=() latency=()
for group in "$@"; do wanted[$group]=1; done
groups=()
all_names=()
for name in scope lock tx; do
    while read -r group; do latency[$group]=1; done < <("${binary[$name]}" --list-latency)
    while read -r line; do
        read -r -a words <<<"$line"
        group=${words[0]}
        all_names+=("$group")
        bench_of[$group]=$name
        if [[ ($# -eq 0 && $name == scope) || -n ${wanted[$group]:-} ||
            ($name != scope && -n ${wanted[$name]:-}) ]]; then
            groups+=("$line")
            unset "wanted[$group]"
        fi
    done < <("${binary[$name]}" --list)
done
unset "wanted[lock]" "wanted[tx]"
if [[ ${#wanted[@]} -gt 0 ]]; then
    echo "error: no such group: ${!wanted[*]} (the groups are: ${all_names[*]};" \
        "\`lock\` is every lock-* group, \`tx\` every tx-* group)" >&2
    exit 2
fi

# The lock groups start redis-servers of their own, the tx groups PostgreSQL
# servers of their own (never the system's).
for line in "${groups[@]}"; do
    if [[ ${bench_of[${line%% *}]} == lock ]]; then
        ci/install.sh redis-server:redis-server
        break
    fi
done
for line in "${groups[@]}"; do
    if [[ ${bench_of[${line%% *}]} == tx ]]; then
        ci/install.sh postgresql
        break
    fi
done

# The instructions callgrind counted in the whole run of
# `bench --callgrind GROUP VARIANT N`.
instructions() {
    local file="$out/callgrind.$1.$2.$3"
    timeout "$bound" valgrind --tool=callgrind --callgrind-out-file="$file" \
        "${binary[${bench_of[$1]}]}" --callgrind "$1" "$2" "$3" >/dev/null 2>"$file.log" || {
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
    bench=${binary[${bench_of[$group]}]}

    echo
    if [[ -n ${latency[$group]:-} ]]; then
        echo "== $group: latency"
        timeout "$bound" "$bench" --bench "$group" | tee "$out/latency.$group.txt"
        summary+=("$(grep -E '^[^ ].* \(latency\):' "$out/latency.$group.txt" || true)")
        echo "== $group: instructions: not counted (a latency group)"
        continue
    fi
    echo "== $group: time"
    time_args=(--bench "$group")
    [[ -n ${BENCH_ROUNDS:-} ]] && time_args+=(--rounds "$BENCH_ROUNDS")
    timeout "$bound" "$bench" "${time_args[@]}" | tee "$out/time.$group.txt"
    summary+=("$(grep -E '^[^ ].* (overhead|vs [^ ]+) \(time\):' "$out/time.$group.txt" || true)")
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

    case ${bench_of[$group]} in
        lock) n=$lock_callgrind_n ;;
        tx) n=$tx_callgrind_n ;;
        *) n=$callgrind_n ;;
    esac
    if [[ $n -eq 0 ]]; then
        echo "== $group: instructions: not counted (N=0)"
        continue
    fi
    echo "== $group: instructions (callgrind, (I($n) - I(0)) / $n)"
    declare -A per_iteration=()
    for variant in "${variants[@]}"; do
        zero=$(instructions "$group" "$variant" 0)
        many=$(instructions "$group" "$variant" "$n")
        per_iteration[$variant]=$(awk -v a="$many" -v b="$zero" -v n="$n" \
            'BEGIN { printf "%.1f", (a - b) / n }')
        printf '  %-14s %10s instr/iter   (I(0) = %s, I(%s) = %s)\n' \
            "$variant" "${per_iteration[$variant]}" "$zero" "$n" "$many"
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
