#!/usr/bin/env bash
# Task farm: many tiny tasks, `brlock collect` against GNU parallel, on local disk and
# GlusterFS.
#
# Usage: scripts/bench_taskfarm.sh [--tasks N] [--reps R] [--out DIR]
#   --tasks N   tasks per run (default 10000); each prints one line, `task <number>`
#   --reps R    runs of each method (default 3), interleaved; the median is reported
#   --out DIR   results folder (default results/taskfarm-<UTC timestamp>)
#
# Methods (concurrency 8 for all, every task /bin/echo):
#   collect        mpirun -n 8 brlock collect --tasks 1-N: one output file and its index
#   collect-jobs   mpirun -n 2 brlock collect --tasks 1-N --jobs 4: 2 ranks, 4 tasks each at
#                  a time (fewer MPI processes on a 2-core machine)
#   parallel-files GNU parallel -j 8 --joblog: one output file per task (the job-array habit)
#   parallel-one   GNU parallel -j 8 --joblog: all output on parallel's stdout, one file
# Each run's output is checked: N lines, every `task <i>` once (order aside). GNU parallel is
# installed (apt-get install parallel) if missing.
#
# Writes taskfarm.jsonl (one object per run: method, fs, tasks, seconds, tasks_per_s,
# files_created, verified), taskfarm.md (medians and speedups), taskfarm.svg and machine.json.
set -euo pipefail
PROG=bench_taskfarm.sh
cd "$(dirname "$0")/.."

tasks=10000
reps=3
out=""
while (($#)); do
    case "$1" in
        --tasks) tasks=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "$PROG: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ "$tasks" =~ ^[0-9]+$ && "$reps" =~ ^[0-9]+$ ]] || { echo "$PROG: --tasks and --reps take numbers" >&2; exit 2; }
out=${out:-results/taskfarm-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
: >"$out/taskfarm.jsonl"

if ! command -v parallel >/dev/null; then
    echo "$PROG: installing GNU parallel" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q parallel >/dev/null
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cargo build --release -q -p brlock-cli
bin=$PWD/target/release/brlock
# gluster.sh up prints its summary line, then the two mount directories.
gluster=$(scripts/gluster.sh up 2>"$out/gluster.log" | grep '^/' | head -n 1) || true
if [[ -z "$gluster" || ! -d "$gluster" ]]; then
    echo "$PROG: GlusterFS did not start: $(tail -n 1 "$out/gluster.log")" >&2
    exit 1
fi

cat >"$out/machine.json" <<JSON
{"host": "$(hostname)", "cores": $(nproc), "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')",
 "kernel": "$(uname -r)", "mpi": "$(mpirun --version | head -1)", "parallel": "$(parallel --version | head -1)",
 "commit": "$(git rev-parse --short HEAD)", "tasks": $tasks, "reps": $reps, "date": "$(date -u +%FT%TZ)"}
JSON

# check FILE: N lines, each task once.
check() {
    local n
    n=$(sort -u "$1" | grep -c '^task [0-9]*$' || true)
    [[ "$n" == "$tasks" && "$(wc -l <"$1")" == "$tasks" ]]
}

# run METHOD FS DIR: one run, one JSON line.
run() {
    local method=$1 fs=$2 dir=$3 start end files ok=false
    rm -rf "$dir" && mkdir -p "$dir"
    start=$(date +%s.%N)
    case "$method" in
        collect)
            mpirun -q --oversubscribe --mca mpi_yield_when_idle 1 -n 8 "$bin" collect \
                --out "$dir/out" --tasks "1-$tasks" -- /bin/echo task '{task}' >/dev/null ;;
        collect-jobs)
            mpirun -q --oversubscribe -n 2 "$bin" collect --out "$dir/out" --tasks "1-$tasks" \
                --jobs 4 -- /bin/echo task '{task}' >/dev/null ;;
        parallel-files)
            mkdir -p "$dir/files"
            seq 1 "$tasks" | parallel -j 8 --joblog "$dir/joblog" "/bin/echo task {} > $dir/files/{}.out" ;;
        parallel-one)
            seq 1 "$tasks" | parallel -j 8 --joblog "$dir/joblog" /bin/echo task {} >"$dir/out" ;;
    esac
    end=$(date +%s.%N)
    case "$method" in
        collect*) "$bin" collect-cat "$dir/out" >"$dir/cat" && check "$dir/cat" && ok=true ;;
        parallel-files) cat "$dir"/files/*.out >"$dir/cat" 2>/dev/null && check "$dir/cat" && ok=true ;;
        parallel-one) check "$dir/out" && ok=true ;;
    esac
    files=$(find "$dir" -type f ! -name cat ! -name joblog | wc -l)
    python3 - "$method" "$fs" "$tasks" "$start" "$end" "$files" "$ok" >>"$out/taskfarm.jsonl" <<'PY'
import json, sys
m, fs, n, a, b, files, ok = sys.argv[1:]
s = float(b) - float(a)
print(json.dumps({"method": m, "fs": fs, "tasks": int(n), "seconds": s, "tasks_per_s": int(n) / s,
                  "files_created": int(files), "verified": ok == "true"}))
PY
    tail -n 1 "$out/taskfarm.jsonl" >&2
    rm -rf "$dir"
}

for rep in $(seq 1 "$reps"); do
    for fs in local gluster; do
        case "$fs" in
            local) base=/var/tmp/brlock-taskfarm.$$ ;;
            gluster) base=$gluster/brlock-taskfarm.$$ ;;
        esac
        for method in collect collect-jobs parallel-files parallel-one; do
            echo "$PROG: rep $rep/$reps $fs $method" >&2
            run "$method" "$fs" "$base/$method"
        done
        rm -rf "$base"
    done
done
python3 scripts/plot_taskfarm.py "$out"
cat "$out/taskfarm.md"
