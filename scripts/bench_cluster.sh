#!/usr/bin/env bash
# The lock benchmark across the emulated cluster (scripts/cluster.sh): the one-sided lock
# service (rma, under Open MPI's osc pt2pt and osc ucx, both over TCP between the hosts)
# against fcntl and OFD byte-range locks through the per-host GlusterFS clients.
#
# Usage: scripts/bench_cluster.sh [--quick] [--out DIR]
#   --quick     a fifth of the iterations (a smoke run)
#   --out DIR   results folder (default results/cluster/<UTC timestamp>); it must not already
#               hold a lock.jsonl
#
# The matrix: hosts 2 and 4 x 1 and 2 ranks per host (rank r on host r mod hosts) x patterns
# disjoint and same (mode exclusive, hold 0 us) x four locks, run back to back within each
# configuration so that their ratio is taken minutes apart at most:
#   rma/pt2pt   brlock's lock service, --mca osc pt2pt
#   rma/ucx     the same, --mca osc ucx (UCX kept on TCP by cluster-mpirun)
#   fcntl, ofd  `brlock bench lock --backend fcntl|ofd`: F_SETLKW / F_OFD_SETLKW on one lock
#               file on the volume, every rank through its own host's client (the shared path).
#               Both patterns (rank 0, the checker's home, waits with lock_progressing so the
#               holder's stamps progress under osc pt2pt/ucx; before that, same-range runs hung)
#   fcntl-probe, ofd-probe   the same locks taken by scripts/fcntl_probe.py on every rank (no
#               MPI, no checker; a common start time): both patterns, a cross-check of the
#               checker's cost
# Iterations per rank: rma 1000, fcntl/ofd and probes 200 (a GlusterFS lock+unlock costs ~0.1-5 ms);
# warm-up 50 (--quick: 200, 40, 10).
# A cluster of 4 hosts is brought up if none is (and down again at the end, also after a
# failure or Ctrl-C); one already up with at least 4 hosts is used and left up.
#
# Writes into the results folder:
#   lock.jsonl     one `brlock bench lock --json` object per run, with the added fields
#                  hosts, ranks_per_host, lock (the label above), load1 (load average before)
#   summary.json   per configuration: mean and p50 lock+unlock of every lock and the ratios
#                  fcntl/rma and ofd/rma (> 1: rma is faster), made by scripts/plot_cluster.py
#   summary.md, lock-cluster.svg   table and chart (scripts/plot_cluster.py; re-run it at will)
#   machine.json   host, cores, kernel, MPI, GlusterFS, commit, dates, settings, netem delay
#   failures.jsonl configurations that failed, with the reason
#   logs/          stdout and stderr of every run
# Exit status: 0 when every run finished without a violation; 1 otherwise (results are still
# written); 2 on a usage error.
#
# Environment:
#   BRLOCK_BENCH_BIN            brlock binary (default target/release/brlock, built if missing)
#   BRLOCK_BENCH_TIMEOUT        seconds one run may take (default 300)
#   BRLOCK_BENCH_HOSTS          host counts (default "2 4")
#   BRLOCK_BENCH_PER_HOST       ranks per host (default "1 2")
#   BRLOCK_BENCH_PATTERNS       (default "disjoint same")
#   BRLOCK_BENCH_LOCKS          (default "rma/pt2pt rma/ucx fcntl ofd fcntl-probe ofd-probe")
#   BRLOCK_BENCH_ITERS_RMA, BRLOCK_BENCH_ITERS_FS, BRLOCK_BENCH_WARMUP
#   BRLOCK_CLUSTER_ROOT, BRLOCK_CLUSTER_DELAY   as for cluster.sh
set -euo pipefail

PROG=bench_cluster.sh
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
TOP=$(dirname "$HERE")
CLUSTER=$HERE/cluster.sh
MPIRUN=$HERE/cluster-mpirun
ROOT=${BRLOCK_CLUSTER_ROOT:-/var/lib/brlock-cluster}
export BRLOCK_CLUSTER_ROOT=$ROOT

die() {
    echo "$PROG: $*" >&2
    exit 1
}

quick=0
out=""
while (($# > 0)); do
    case "$1" in
        --quick) quick=1 ;;
        --out)
            (($# >= 2)) || {
                echo "$PROG: --out needs a directory" >&2
                exit 2
            }
            out=$2
            shift
            ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        *)
            echo "$PROG: unknown argument '$1' (try --help)" >&2
            exit 2
            ;;
    esac
    shift
done

read -r -a HOSTS <<<"${BRLOCK_BENCH_HOSTS:-2 4}"
read -r -a PER_HOST <<<"${BRLOCK_BENCH_PER_HOST:-1 2}"
read -r -a PATTERNS <<<"${BRLOCK_BENCH_PATTERNS:-disjoint same}"
read -r -a LOCKS <<<"${BRLOCK_BENCH_LOCKS:-rma/pt2pt rma/ucx fcntl ofd fcntl-probe ofd-probe}"
TIMEOUT=${BRLOCK_BENCH_TIMEOUT:-300}
if ((quick)); then
    iters_rma=${BRLOCK_BENCH_ITERS_RMA:-200}
    iters_fs=${BRLOCK_BENCH_ITERS_FS:-40}
    warmup=${BRLOCK_BENCH_WARMUP:-10}
else
    iters_rma=${BRLOCK_BENCH_ITERS_RMA:-1000}
    iters_fs=${BRLOCK_BENCH_ITERS_FS:-200}
    warmup=${BRLOCK_BENCH_WARMUP:-50}
fi
max_hosts=0
for h in "${HOSTS[@]}"; do
    [[ "$h" =~ ^[2-8]$ ]] || die "BRLOCK_BENCH_HOSTS: '$h' is not 2..8"
    ((h > max_hosts)) && max_hosts=$h
done
for l in "${LOCKS[@]}"; do
    [[ "$l" =~ ^(rma/(pt2pt|ucx|sm)|fcntl|ofd|fcntl-probe|ofd-probe)$ ]] || die "BRLOCK_BENCH_LOCKS: unknown lock '$l'"
done

# --- the binary ----------------------------------------------------------------------------
bin=${BRLOCK_BENCH_BIN:-$TOP/target/release/brlock}
if [[ -z "${BRLOCK_BENCH_BIN:-}" ]]; then
    echo "$PROG: building target/release/brlock ..." >&2
    (cd "$TOP" && cargo build --quiet --release -p brlock-cli) || die "cargo build --release failed"
fi
[[ -x "$bin" ]] || die "no brlock binary at $bin"

# --- results folder -------------------------------------------------------------------------
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${out:-$TOP/results/cluster/$stamp}
mkdir -p "$out/logs"
[[ ! -e "$out/lock.jsonl" ]] || die "$out already holds a lock.jsonl; choose another --out"
: >"$out/lock.jsonl"
: >"$out/failures.jsonl"

# --- the cluster ----------------------------------------------------------------------------
started_cluster=0
cleanup() {
    if ((started_cluster)); then
        "$CLUSTER" down >>"$out/logs/cluster.log" 2>&1 || echo "$PROG: cluster.sh down failed (see $out/logs/cluster.log)" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
up_hosts=0
if [[ -r "$ROOT/state/cluster.env" ]]; then
    up_hosts=$(sed -n 's/^hosts=//p' "$ROOT/state/cluster.env")
fi
if ((up_hosts == 0)); then
    started_cluster=1
    "$CLUSTER" up "$max_hosts" >"$out/logs/cluster.log" 2>&1 ||
        die "cluster.sh up $max_hosts failed: $(tail -n 1 "$out/logs/cluster.log")"
elif ((up_hosts < max_hosts)); then
    die "a cluster of $up_hosts hosts is up; this run needs $max_hosts (cluster.sh down, then re-run)"
else
    "$CLUSTER" status >"$out/logs/cluster.log" 2>&1 || die "the cluster that is up is not healthy: $(grep -m1 -E 'NOT|MISSING' "$out/logs/cluster.log")"
fi
vol=$(sed -n 's/^vol=//p' "$ROOT/state/cluster.env")
mnt=$(sed -n 's/^mnt=//p' "$ROOT/state/cluster.env")
delay=$(sed -n 's/^delay=//p' "$ROOT/state/cluster.env")
# The lock file: made through host 1's client, named through the shared path.
dir=bench-$stamp-$$
mkdir "$mnt/h1/$dir"
: >"$mnt/h1/$dir/lock.bin"
lock_file=$vol/$dir/lock.bin

commit=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$TOP" status --porcelain 2>/dev/null | grep -qv '^??' && echo true || echo false)
jq -n --arg host "$(uname -n)" --arg kernel "$(uname -r)" --argjson cores "$(nproc)" \
    --arg cpu "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)" \
    --arg mpi "$("$MPIRUN" --version | head -n 1)" --arg gluster "$(glusterfs --version | head -n 1)" \
    --arg commit "$commit" --argjson dirty "$dirty" --arg started "$(date -u +%FT%TZ)" \
    --arg delay "$delay" --argjson hosts_up "$(sed -n 's/^hosts=//p' "$ROOT/state/cluster.env")" \
    --argjson iters_rma "$iters_rma" --argjson iters_fs "$iters_fs" --argjson warmup "$warmup" \
    --arg lock_file "$lock_file" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '{host: $host, kernel: $kernel, cores: $cores, cpu: $cpu, mpi: $mpi, glusterfs: $gluster,
      commit: $commit, dirty: $dirty, started: $started, netem_delay: $delay,
      cluster_hosts: $hosts_up, iters_rma: $iters_rma, iters_fs: $iters_fs, warmup: $warmup,
      lock_file: $lock_file, loadavg_start: $load,
      launcher: "scripts/cluster-mpirun (btl tcp,self, pml ob1, --bind-to none, --map-by node, UCX_TLS=self,tcp)"}' \
    >"$out/machine.json"

# --- the matrix -----------------------------------------------------------------------------
total=$((${#HOSTS[@]} * ${#PER_HOST[@]} * ${#PATTERNS[@]} * ${#LOCKS[@]}))
n=0
bad=0
t0=$(date +%s)
for hosts in "${HOSTS[@]}"; do
    for per in "${PER_HOST[@]}"; do
        ranks=$((hosts * per))
        for pattern in "${PATTERNS[@]}"; do
            for lock in "${LOCKS[@]}"; do
                n=$((n + 1))
                osc=pt2pt
                backend=$lock
                iters=$iters_fs
                if [[ "$lock" == rma/* ]]; then
                    backend=rma
                    osc=${lock#rma/}
                    iters=$iters_rma
                fi
                name=h$hosts-r$per-$pattern-${lock//\//-}
                load1=$(cut -d' ' -f1 /proc/loadavg)
                echo "$PROG: [$n/$total] $hosts hosts x $per ranks, $pattern, $lock ($(($(date +%s) - t0)) s so far) ..." >&2
                rc=0
                if [[ "$lock" == *-probe ]]; then
                    start_at=$(python3 -c 'import time; print(time.time() + 2)')
                    timeout -k 10 "$TIMEOUT" "$MPIRUN" --hosts "$hosts" -n "$ranks" -q \
                        python3 "$HERE/fcntl_probe.py" run "${lock%-probe}" "$pattern" "$lock_file" \
                        "$iters_fs" "$warmup" "$start_at" \
                        >"$out/logs/$name.raw" 2>"$out/logs/$name.err" </dev/null || rc=$?
                    if ((rc == 0)); then
                        python3 "$HERE/fcntl_probe.py" merge "$hosts" "$per" "$lock" "$pattern" \
                            <"$out/logs/$name.raw" >"$out/logs/$name.out" 2>>"$out/logs/$name.err" || rc=$?
                    fi
                    line=$(grep -m1 '^{"bench": "lock-probe"' "$out/logs/$name.out" 2>/dev/null || true)
                else
                    timeout -k 10 "$TIMEOUT" "$MPIRUN" --hosts "$hosts" -n "$ranks" -q --mca osc "$osc" \
                        "$bin" bench lock --json --backend "$backend" --pattern "$pattern" \
                        --iters "$iters" --warmup "$warmup" --file "$lock_file" \
                        >"$out/logs/$name.out" 2>"$out/logs/$name.err" </dev/null || rc=$?
                    line=$(grep -m1 '^{"bench":"lock"' "$out/logs/$name.out" || true)
                fi
                if ((rc != 0)) || [[ -z "$line" ]]; then
                    reason=$(grep -v '^\s*$' "$out/logs/$name.err" | grep -m1 -E 'error|Error|ERROR' || true)
                    ((rc == 124)) && reason="timed out after $TIMEOUT s"
                    jq -cn --argjson hosts "$hosts" --argjson per "$per" --arg pattern "$pattern" \
                        --arg lock "$lock" --argjson rc "$rc" --arg reason "${reason:-exit status $rc}" \
                        '{hosts: $hosts, ranks_per_host: $per, pattern: $pattern, lock: $lock, status: $rc, reason: $reason}' \
                        >>"$out/failures.jsonl"
                    echo "$PROG:   FAILED: ${reason:-exit status $rc}" >&2
                    bad=1
                    continue
                fi
                echo "$line" | jq -c --argjson hosts "$hosts" --argjson per "$per" --arg lock "$lock" \
                    --argjson load1 "$load1" \
                    '{hosts: $hosts, ranks_per_host: $per, lock: $lock, load1: $load1} + .' >>"$out/lock.jsonl"
                if [[ $(echo "$line" | jq '.violations // 0') != 0 ]]; then
                    echo "$PROG:   VIOLATIONS: $(echo "$line" | jq '.violations')" >&2
                    bad=1
                fi
            done
        done
    done
done
rm -rf --one-file-system "${mnt:?}/h1/$dir"
jq --arg ended "$(date -u +%FT%TZ)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '. + {ended: $ended, loadavg_end: $load}' "$out/machine.json" >"$out/machine.json.new"
mv "$out/machine.json.new" "$out/machine.json"
python3 "$HERE/plot_cluster.py" "$out" || bad=1
echo "$PROG: $n runs in $(($(date +%s) - t0)) s; results in $out" >&2
exit "$bad"
