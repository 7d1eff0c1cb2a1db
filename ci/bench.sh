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
# every group of the three (about 7 minutes on 2 cores, once built); a
# group's name selects that group, `lock` every group of the lock bench
# (about 2 minutes, most of it the polling loop's 100 ms sleeps in the
# hand-off group), `tx` every group of the transaction bench.
#
# The report: every run writes, in ${CARGO_TARGET_DIR:-target}/bench-report/,
#   results.tsv  every figure, one line per group and per variant (the
#                format: benches/src/report.rs), with the date, the machine,
#                rustc, the commit and the peers' versions from Cargo.lock;
#   report.md    the tables: per group its peer, each variant's time ratio
#                and p10..p90 spread, ns/iter, instructions and their ratio,
#                latencies, and the groups' goals, met or not;
#   ratios.svg   the time ratios as bars, with their spread and the goals.
# (the last two rendered by benches/src/bin/bench-report.rs). The goals are
# declared with the groups, in the benches (`goals:`).
#
# When the groups `runtime-spawn` and `runtime-scope` both ran, it also writes
# their figures, with the date and the machine, to docs/runtime-costs.tsv (the
# runtime guide's source): `ci/bench.sh runtime-spawn runtime-scope` renews it.
#
# Usage: ci/bench.sh [GROUP|lock|tx...]    (default: every group of every bench)
# Environment:
#   BENCH_ROUNDS         rounds of the time comparison (default: the bench's, 401)
#   BENCH_CALLGRIND_N    iterations per callgrind run, for every group (default:
#                        each group's own, chosen so that a run takes seconds:
#                        `BENCH --list-callgrind` lists them; 0: no callgrind
#                        runs, instruction counts are left out)
#   BENCH_LOCK_CALLGRIND_N, BENCH_TX_CALLGRIND_N  the same for the lock bench's
#                        groups (iterations: round trips to a server) and the
#                        transaction bench's (four round trips to a database
#                        each); when set, they win over BENCH_CALLGRIND_N
#   BENCH_CALLGRIND_DIR  keep the callgrind output files there, for
#                        callgrind_annotate (default: a temporary directory, removed)
#   BENCH_TIMEOUT        seconds one run of the bench may take before it is
#                        stopped and this script fails (default: 1800)
#   ASYNC_STD_THREAD_COUNT  async-std's worker threads (default here: 2, as
#                        the tokio and smol groups have two workers)
#
# Numbers are for people to read; nothing here fails on a slow result (a
# goal missed is a `no` in the report).
set -euo pipefail

cd "$(dirname "$0")/.."

# Callgrind iterations: per bench, the override that applies, if any ("":
# each group's own).
declare -A callgrind_override=(
    [scope]=${BENCH_CALLGRIND_N:-}
    [lock]=${BENCH_LOCK_CALLGRIND_N:-${BENCH_CALLGRIND_N:-}}
    [tx]=${BENCH_TX_CALLGRIND_N:-${BENCH_CALLGRIND_N:-}}
)
for n in "${callgrind_override[@]}"; do
    if [[ -n $n && ! $n =~ ^[0-9]+$ ]]; then
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

report_dir=${CARGO_TARGET_DIR:-target}/bench-report
mkdir -p "$report_dir"
results=$report_dir/results.tsv

# Build, and find the bench binaries in cargo's own report of what it built;
# and the report's renderer.
echo "== building the benches (release)"
cargo bench -p awith-benches --bench scope --bench lock --bench tx --no-run \
    --message-format=json-render-diagnostics >"$out/build.json"
cargo build --release -p awith-benches --bin bench-report \
    --message-format=json-render-diagnostics >"$out/build-report.json"
report_binary=$(
    grep '"reason":"compiler-artifact"' "$out/build-report.json" |
        grep '"kind":\["bin"\]' |
        grep '"name":"bench-report"' |
        sed -E 's/.*"executable":"([^"]+)".*/\1/' |
        tail -n 1
) || true
if [[ -z $report_binary || ! -x $report_binary ]]; then
    echo "error: cargo built no executable bench-report" >&2
    exit 1
fi
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

started=$SECONDS

# The groups and their variants, one line each: GROUP BASELINE VARIANT...;
# per group, the bench that runs it, whether it measures latency and its
# callgrind iterations.
declare -A wanted=() bench_of=() latency=() callgrind_of=()
for group in "$@"; do wanted[$group]=1; done
groups=()
all_names=()
for name in scope lock tx; do
    while read -r group; do latency[$group]=1; done < <("${binary[$name]}" --list-latency)
    while read -r group n; do
        callgrind_of[$group]=${callgrind_override[$name]:-$n}
    done < <("${binary[$name]}" --list-callgrind)
    while read -r line; do
        read -r -a words <<<"$line"
        group=${words[0]}
        all_names+=("$group")
        bench_of[$group]=$name
        if [[ $# -eq 0 || -n ${wanted[$group]:-} || ($name != scope && -n ${wanted[$name]:-}) ]]; then
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

# results.tsv: what the machine and the build are, then the figures as they
# come (the format: benches/src/report.rs).
tsv() {
    local IFS=$'\t'
    echo "$*" >>"$results"
}
{
    echo "# awith benchmark results, written by ci/bench.sh; rendered by bench-report"
    echo "# (benches/src/report.rs, which documents the format)"
} >"$results"
tsv meta date "$(date -u '+%F %H:%M UTC')"
tsv meta machine "$(nproc) cores, $(sed -nE '/^model name/{s/^[^:]*:[[:space:]]*//p;q}' /proc/cpuinfo 2>/dev/null || echo unknown CPU)"
tsv meta rustc "$(rustc --version)"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown && -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (with uncommitted changes)"
fi
tsv meta commit "$commit"
# The versions Cargo.lock pins (a crate locked twice: both).
for crate in awith tokio smol async-std deadpool bb8 sqlx redis rslock; do
    version=$(awk -v want="$crate" '
        /^\[\[package\]\]/ { name = "" }
        /^name = / { name = $3; gsub(/"/, "", name) }
        /^version = / && name == want { v = $3; gsub(/"/, "", v); out = out (out ? ", " : "") v }
        END { print out }' Cargo.lock)
    tsv meta "version:$crate" "${version:-not locked}"
done
# Per group, its goals (`--list-goals`).
goals_of() {
    "${binary[${bench_of[$1]}]}" --list-goals | awk -F '\t' -v g="$1" '$1 == g { print "goal\t" $0 }' >>"$results"
}

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
    t0=$SECONDS

    echo
    if [[ -n ${latency[$group]:-} ]]; then
        echo "== $group: latency"
        timeout "$bound" "$bench" --bench "$group" | tee "$out/latency.$group.txt"
        summary+=("$(grep -E '^[^ ].* \(latency\):' "$out/latency.$group.txt" || true)")
        echo "== $group: instructions: not counted (a latency group)"
        about=$(sed -nE "s/^group \`$group\`: //p" "$out/latency.$group.txt")
        samples=$(sed -nE 's/^ +([0-9]+ samples) per variant.*/\1/p' "$out/latency.$group.txt")
        tsv group "$group" "${bench_of[$group]}" latency "$baseline" "${samples:--}" 0 \
            $((SECONDS - t0)) - "$about"
        # `GROUP: VARIANT latency: p50 US us, p90 US us, p99 US us, max US us`.
        sed -nE "s/^$group: ([^ ]+) latency: p50 ([0-9.]+) us, p90 ([0-9.]+) us, p99 ([0-9.]+) us, max ([0-9.]+) us\$/latency\t$group\t\1\t\2\t\3\t\4\t\5/p" \
            "$out/latency.$group.txt" >>"$results"
        goals_of "$group"
        continue
    fi
    echo "== $group: time"
    time_args=(--bench "$group")
    [[ -n ${BENCH_ROUNDS:-} ]] && time_args+=(--rounds "$BENCH_ROUNDS")
    timeout "$bound" "$bench" "${time_args[@]}" | tee "$out/time.$group.txt"
    time_seconds=$((SECONDS - t0))
    summary+=("$(grep -E '^[^ ].* (overhead|vs [^ ]+) \(time\):' "$out/time.$group.txt" || true)")
    # The bench's lines for scripts:
    # `GROUP: VARIANT median (time): NS ns/iter, RATIOx BASELINE (p10..p90 P10..P90)`.
    declare -A spread=()
    while read -r variant ns times p10 p90; do
        median[$group/$variant]=$ns
        ratio[$group/$variant]=$times
        spread[$variant]="$p10 $p90"
    done < <(sed -nE \
        "s|^$group: ([^ ]+) median \(time\): ([0-9.]+) ns/iter, ([0-9.]+)x [^ ]+ \(p10..p90 ([0-9.]+)\.\.([0-9.]+)\)\$|\1 \2 \3 \4 \5|p" \
        "$out/time.$group.txt")
    batches[$group]=$(sed -nE 's/^ +([0-9]+ rounds x [0-9]+ iterations) per variant.*/\1/p' \
        "$out/time.$group.txt")

    n=${callgrind_of[$group]}
    declare -A per_iteration=()
    if [[ $n -eq 0 ]]; then
        echo "== $group: instructions: not counted (N=0)"
    else
        echo "== $group: instructions (callgrind, (I($n) - I(0)) / $n)"
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
    fi
    echo "== $group: $time_seconds s in time, $((SECONDS - t0 - time_seconds)) s under callgrind"

    about=$(sed -nE "s/^group \`$group\`: //p" "$out/time.$group.txt")
    callgrind_seconds=$((SECONDS - t0 - time_seconds))
    [[ $n -eq 0 ]] && callgrind_seconds=-
    tsv group "$group" "${bench_of[$group]}" time "$baseline" "${batches[$group]:--}" "$n" \
        "$time_seconds" "$callgrind_seconds" "$about"
    for variant in "${variants[@]}"; do
        read -r p10 p90 <<<"${spread[$variant]:-- -}"
        tsv time "$group" "$variant" "${median[$group/$variant]:--}" "${ratio[$group/$variant]:--}" \
            "$p10" "$p90" "${per_iteration[$variant]:--}"
    done
    # `GROUP: A vs B (time): RATIOx (p10..p90 P10..P90)`.
    sed -nE "s/^$group: ([^ ]+) vs ([^ ]+) \(time\): ([0-9.]+)x \(p10..p90 ([0-9.]+)\.\.([0-9.]+)\)\$/versus\t$group\t\1\t\2\t\3\t\4\t\5/p" \
        "$out/time.$group.txt" >>"$results"
    goals_of "$group"
    unset per_iteration spread
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
        if [[ ${callgrind_of[runtime-spawn]} -eq 0 || ${callgrind_of[runtime-scope]} -eq 0 ]]; then
            echo "# *_instr: not counted (BENCH_CALLGRIND_N=0): -"
        else
            echo "# *_instr: instructions per iteration under callgrind, (I(N) - I(0)) / N, N ="
            echo "#   ${callgrind_of[runtime-spawn]} (runtime-spawn), ${callgrind_of[runtime-scope]} (runtime-scope);"
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

# The report.
tsv meta seconds $((SECONDS - started))
"$report_binary" "$results" "$report_dir" >/dev/null
echo
echo "== report: $report_dir/report.md, $report_dir/ratios.svg (from $results)"
