#!/usr/bin/env bash
# The benchmark targets of the I/O layers, repeated: the configurations the issues name, each
# run --reps times (default 5) back to back with its competitors, reported as medians.
#
# Usage: scripts/bench_targets.sh [--reps N] [--parts LIST] [--clients LIST] [--out DIR]
#   --reps N        runs of every configuration (default 5)
#   --parts LIST    comma-separated subset of atomic,sieve,append (default all three)
#   --clients LIST  comma-separated subset of 1,2 (default both)
#   --out DIR       results folder (default results/targets-<UTC timestamp>)
#
# On GlusterFS (`scripts/gluster.sh up`; through one client, mount a, and through two, odd
# ranks on mount b), Open MPI with osc $BRLOCK_BENCH_OSC (default sm):
#   atomic   `bench atomic --mix writes --ops 500`: rma, nonatomic, mpiio (ROMIO atomic mode,
#            --mca io romio321) at 4 and 8 ranks
#   sieve    `bench sieve --block 64 --stride 256 --count 4096 --reps 30`: sieve, mpiio
#            (ROMIO sieving) at 2 and 4 ranks; pieces once per configuration with --reps 3
#   append   `bench append --records 1000` at 8 ranks: rma and flock (flock through two
#            clients overwrites records, so it is also run through one)
# Within a repetition the competitors run back to back, so each comparison is between runs
# seconds apart. Writes targets.jsonl (every run's JSON with "part", "clients" and "rep"
# added), targets.md (medians and ratios, by scripts/plot_targets.py) and machine.json.
# Exit status: 0 when every run succeeded (flock through two clients may fail its check: that
# is reported, not failed), 1 otherwise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

reps=5
parts=atomic,sieve,append
client_list=1,2
out=""
while [ $# -gt 0 ]; do
    case "$1" in
    --reps) reps=$2; shift 2 ;;
    --parts) parts=$2; shift 2 ;;
    --clients) client_list=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "bench_targets.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
out=${out:-results/targets-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out/logs"
jsonl="$out/targets.jsonl"
: >"$jsonl"

bash scripts/setup.sh >"$out/logs/setup.log" 2>&1 || { echo "setup failed: see $out/logs/setup.log" >&2; exit 1; }
cargo build --release --quiet
bin=target/release/brlock
bash scripts/gluster.sh up >"$out/logs/gluster.log" 2>&1 || {
    echo "bench_targets.sh: GlusterFS did not start: $(tail -1 "$out/logs/gluster.log")" >&2
    exit 1
}
a=${BRLOCK_GLUSTER_MOUNT_A:-/mnt/brlock-gluster/a}
b=${BRLOCK_GLUSTER_MOUNT_B:-/mnt/brlock-gluster/b}
osc=${BRLOCK_BENCH_OSC:-sm}
cores=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
failed=0

# run PART CLIENTS REP RANKS EXTRA_MPI -- brlock args...
run() {
    local part=$1 clients=$2 rep=$3 ranks=$4 extra=$5
    shift 6
    local yield=0
    [ "$ranks" -gt "$cores" ] && yield=1
    local log="$out/logs/$part-$clients-$rep-$ranks-$(echo "$*" | tr -c 'a-z0-9' '_' | cut -c1-80).log"
    # shellcheck disable=SC2086
    if ! timeout 600 mpirun -n "$ranks" --oversubscribe --mca osc "$osc" \
        --mca mpi_yield_when_idle "$yield" $extra "$bin" "$@" --json >"$log.out" 2>"$log"; then
        echo "  (exit status non-zero: $log)" >&2
        [ "${MAY_FAIL:-0}" = 1 ] || failed=1
    fi
    python3 -c '
import json, sys
part, clients, rep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line)
        d.update(part=part, clients=clients, rep=rep)
        print(json.dumps(d))
        break
else:
    sys.exit("no JSON in " + sys.argv[4])
' "$part" "$clients" "$rep" "$log.out" <"$log.out" >>"$jsonl" || failed=1
}

want() { # PART -> whether --parts names it
    case ",$parts," in *",$1,"*) return 0 ;; *) return 1 ;; esac
}

files() { # CLIENTS NAME -> --file/--alt-file arguments
    if [ "$1" = 1 ]; then echo "--file $a/$2"; else echo "--file $a/$2 --alt-file $b/$2"; fi
}

for rep in $(seq 1 "$reps"); do
    echo "repetition $rep of $reps"
    for clients in ${client_list//,/ }; do
        want atomic && for ranks in 4 8; do
            for backend in rma nonatomic mpiio; do
                extra=""
                [ $backend = mpiio ] && extra="--mca io romio321"
                # shellcheck disable=SC2046
                run atomic $clients "$rep" "$ranks" "$extra" -- bench atomic --backend $backend \
                    --mix writes --ops 500 $(files $clients targets-atomic.dat)
            done
        done
        want sieve && for ranks in 2 4; do
            for method in sieve mpiio; do
                # shellcheck disable=SC2046
                run sieve $clients "$rep" "$ranks" "--mca io romio321" -- bench sieve \
                    --method $method --block 64 --stride 256 --count 4096 --reps 30 \
                    $(files $clients targets-sieve.dat)
            done
            if [ "$rep" = 1 ]; then
                # shellcheck disable=SC2046
                run sieve $clients "$rep" "$ranks" "" -- bench sieve --method pieces --block 64 \
                    --stride 256 --count 4096 --reps 3 $(files $clients targets-sieve.dat)
            fi
        done
        want append && for method in rma flock; do
            dirs="--dir $a"
            [ $clients = 2 ] && dirs="--dir $a --alt-dir $b"
            may_fail=0
            [ $method = flock ] && [ $clients = 2 ] && may_fail=1
            # shellcheck disable=SC2086
            MAY_FAIL=$may_fail run append $clients "$rep" 8 "" -- bench append --method $method \
                --records 1000 $dirs
        done
    done
done

python3 scripts/plot_targets.py "$out" || failed=1
python3 - "$out/machine.json" "$reps" "$osc" <<'EOF'
import json, os, platform, subprocess, sys, datetime
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""
json.dump({
    "host": platform.node(), "cores": os.cpu_count(), "kernel": platform.release(),
    "mpi": sh("mpirun --version | head -1"), "osc": sys.argv[3],
    "glusterfs": sh("glusterfs --version | head -1"), "reps": int(sys.argv[2]),
    "commit": sh("git rev-parse HEAD"), "finished": datetime.datetime.utcnow().isoformat() + "Z",
}, open(sys.argv[1], "w"), indent=2)
EOF
echo "results in $out (targets.md)"
exit $failed
