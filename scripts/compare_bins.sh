#!/usr/bin/env bash
# Two builds of brlock on the same benchmarks, interleaved: is a change free of regressions?
#
# Usage: scripts/compare_bins.sh --old BIN --new BIN [--reps N] [--gluster] [--only RE] [--out DIR]
#   --old BIN, --new BIN  the two `brlock` binaries (e.g. a worktree of the previous commit's
#                         target/release/brlock, and this one's)
#   --reps N              repetitions of every configuration (default 5)
#   --gluster             also run the I/O configurations on the GlusterFS test volume
#                         (through two clients; `scripts/gluster.sh up`)
#   --only RE             only the configurations whose name matches the extended regular
#                         expression RE (e.g. '^lock-')
#   --out DIR             results folder (default results/compare-<UTC timestamp>)
#
# Every configuration runs, in every repetition, once with each binary, back to back (the
# order alternates between repetitions), under Open MPI with osc $BRLOCK_BENCH_OSC (default
# sm), on local disk in a fresh temporary directory. Writes compare.jsonl (each run's JSON
# report with "config", "which" and "rep" added), compare.md (medians of each binary and
# the ratio new/old per configuration, by scripts/plot_compare.py) and machine.json.
# Measures only: nothing here fails on a slower figure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

old="" new="" reps=5 gluster=0 only="" out=""
while [ $# -gt 0 ]; do
    case "$1" in
    --old) old=$2; shift 2 ;;
    --new) new=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --gluster) gluster=1; shift ;;
    --only) only=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "compare_bins.sh: unknown argument $1 (see the header of this script)" >&2; exit 2 ;;
    esac
done
[ -x "$old" ] && [ -x "$new" ] || { echo "compare_bins.sh: --old and --new must name executables" >&2; exit 2; }
out=${out:-results/compare-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out/logs"
jsonl="$out/compare.jsonl"
: >"$jsonl"
osc=${BRLOCK_BENCH_OSC:-sm}
cores=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scratch=$(mktemp -d "${TMPDIR:-/tmp}/brlock-compare.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

configs=(
    "lock-rma-same-2|2|bench lock --backend rma --pattern same --iters 5000"
    "lock-rma-disjoint-2|2|bench lock --backend rma --pattern disjoint --iters 5000"
    "lock-rma-same-4|4|bench lock --backend rma --pattern same --iters 2000"
    "lock-ofd-same-2|2|bench lock --backend ofd --pattern same --iters 5000"
    "atomic-rma-4|4|bench atomic --backend rma --mix writes --ops 2000 --file $scratch/atomic.dat"
    "atomic-nonatomic-4|4|bench atomic --backend nonatomic --mix writes --ops 2000 --file $scratch/atomic.dat"
    "sieve-sieve-2|2|bench sieve --method sieve --reps 20 --file $scratch/sieve.dat"
    "append-rma-4|4|bench append --method rma --records 2000 --dir $scratch"
)
if [ "$gluster" = 1 ]; then
    bash scripts/gluster.sh up >"$out/logs/gluster.log" 2>&1 || {
        echo "compare_bins.sh: GlusterFS did not start: $(tail -1 "$out/logs/gluster.log")" >&2
        exit 1
    }
    a=${BRLOCK_GLUSTER_MOUNT_A:-/mnt/brlock-gluster/a}
    b=${BRLOCK_GLUSTER_MOUNT_B:-/mnt/brlock-gluster/b}
    d=brlock-compare-$$
    mkdir -p "$a/$d"
    configs+=(
        "gluster2-atomic-rma-4|4|bench atomic --backend rma --mix writes --ops 300 --file $a/$d/atomic.dat --alt-file $b/$d/atomic.dat"
        "gluster2-sieve-sieve-2|2|bench sieve --method sieve --reps 10 --file $a/$d/sieve.dat --alt-file $b/$d/sieve.dat"
        "gluster2-lock-ofd-same-4|4|bench lock --backend ofd --pattern same --iters 300 --file $a/$d/lock --alt-file $b/$d/lock"
    )
fi

# run CONFIG WHICH REP RANKS BIN ARGS...
run() {
    local config=$1 which=$2 rep=$3 ranks=$4 bin=$5
    shift 5
    local yield=0
    [ "$ranks" -gt "$cores" ] && yield=1
    local log="$out/logs/$config-$which-$rep.log"
    # shellcheck disable=SC2068
    timeout 600 mpirun -n "$ranks" --oversubscribe --mca osc "$osc" \
        --mca mpi_yield_when_idle "$yield" "$bin" $@ --json >"$log.out" 2>"$log" ||
        echo "  ($config with $which: exit status non-zero, see $log)" >&2
    python3 -c '
import json, sys
config, which, rep = sys.argv[1], sys.argv[2], int(sys.argv[3])
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line)
        d.update(config=config, which=which, rep=rep)
        print(json.dumps(d))
' "$config" "$which" "$rep" <"$log.out" >>"$jsonl"
}

for rep in $(seq 1 "$reps"); do
    echo "repetition $rep of $reps" >&2
    for entry in "${configs[@]}"; do
        IFS='|' read -r config ranks cmd <<<"$entry"
        if [ -n "$only" ] && ! [[ "$config" =~ $only ]]; then continue; fi
        if [ $((rep % 2)) = 1 ]; then order="old new"; else order="new old"; fi
        for which in $order; do
            bin=$old
            [ "$which" = new ] && bin=$new
            # shellcheck disable=SC2086
            run "$config" "$which" "$rep" "$ranks" "$bin" $cmd
        done
    done
done
python3 -c '
import json, os, platform, subprocess, sys
out = sys.argv[1]
mpi = subprocess.run(["mpirun", "--version"], capture_output=True, text=True).stdout.splitlines()
json.dump({"host": platform.node(), "cpus": os.cpu_count(), "kernel": platform.release(),
           "mpi": mpi[0] if mpi else "", "osc": sys.argv[2], "reps": int(sys.argv[3])},
          open(os.path.join(out, "machine.json"), "w"), indent=1)
' "$out" "$osc" "$reps"
python3 scripts/plot_compare.py "$jsonl" >"$out/compare.md"
cat "$out/compare.md"
