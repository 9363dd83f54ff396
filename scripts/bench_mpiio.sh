#!/usr/bin/env bash
# MPI-IO through libbrlock-mpiio.so against the MPI library's own, on the GlusterFS test
# volume with the ranks split over its two clients (odd ranks see the second mount over the
# first in a private mount namespace, so the unmodified program opens one path).
#
# Per rank count (default "4 8") and Open MPI MPI-IO component (romio321, ompio), with the
# library off and on, the program benches/mpiio/mpiio_bench.c times:
#   shared   MPI_File_write_shared of 4 KiB records (ROMIO: its hidden pointer file under
#            fcntl locks; brlock: the one-sided counter)
#   atomic   4 KiB MPI_File_write_at in atomic mode at random blocks of one 64 KiB region all
#            ranks share (ROMIO: an fcntl lock per write; ompio: atomic mode ignored, not a
#            baseline; brlock: its lock service and coherence)
#   plain    4 KiB MPI_File_write_at outside atomic mode into each rank's own region: the
#            library forwards them, so this is its overhead. BENCH_PLAIN_N records per rank
#            (default 2000), BENCH_ROUNDS times (default 5) alternating off/on; the median of
#            the rounds' ratios is reported. The same on local disk (BENCH_LOCAL_DIR, default
#            /dev/shm; BENCH_LOCAL_N records, default 100000; BENCH_LOCAL_RANKS, default "1 2",
#            no more than the cores), where a write costs microseconds and the library's own
#            cost per call shows.
# Nothing is asserted: the numbers are reported (results/bench-mpiio-<timestamp>/:
# bench.jsonl, machine.json, summary.md, mpiio.svg via scripts/plot_mpiio.py).
#
# Environment: BENCH_RANKS ("4 8"), BENCH_IO ("romio321 ompio"), BENCH_N (records per rank
# of shared and atomic, default 200), BENCH_PLAIN_N (2000), BENCH_ROUNDS (5).
# A run that loses data (ROMIO's shared pointer) is reported with its time and "ok": false.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

read -r -a rank_list <<<"${BENCH_RANKS:-4 8}"
read -r -a io_list <<<"${BENCH_IO:-romio321 ompio}"
n=${BENCH_N:-200}
plain_n=${BENCH_PLAIN_N:-2000}
rounds=${BENCH_ROUNDS:-5}

scripts/setup.sh
mapfile -t mounts < <(scripts/gluster.sh up | tail -2)
[[ ${#mounts[@]} -eq 2 && -d "${mounts[0]}" && -d "${mounts[1]}" ]] ||
    { echo "bench_mpiio.sh: scripts/gluster.sh up gave no two mount paths" >&2; exit 1; }
cargo build --release -p brlock-mpiio
lib="$PWD/target/release/libbrlock_mpiio.so"
[[ -f "$lib" ]] || { echo "bench_mpiio.sh: $lib was not built" >&2; exit 1; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="results/bench-mpiio-$stamp"
mkdir -p "$out"
bin="$out/mpiio_bench"
mpicc -O2 -o "$bin" benches/mpiio/mpiio_bench.c
dir="bench-mpiio-$stamp"
mkdir -p "${mounts[0]}/$dir"
export SPLIT_A="${mounts[0]}" SPLIT_B="${mounts[1]}"

# The rank wrapper: odd ranks get the second client's mount over the first; LD_PRELOAD is set
# only for the program itself (not for mpirun or this shell).
cat >"$out/split.sh" <<'SH'
#!/bin/sh
rank=${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}
if [ $((rank % 2)) -eq 1 ]; then
    exec unshare -m sh -c 'mount --bind "$SPLIT_B" "$SPLIT_A" && exec env ${PRELOAD:+LD_PRELOAD="$PRELOAD"} "$@"' sh "$@"
fi
exec env ${PRELOAD:+LD_PRELOAD="$PRELOAD"} "$@"
SH
chmod +x "$out/split.sh"
cores=$(nproc)

# local_dir: where the plain loop also runs on local disk, where a 4 KiB write costs
# microseconds instead of GlusterFS's fraction of a millisecond, so the library's own cost
# per call is not lost in the file system's noise.
local_dir=$(mktemp -d "${BENCH_LOCAL_DIR:-/dev/shm}/brlock-bench-mpiio.XXXXXX")
trap 'rm -rf "$bin" "$out/split.sh" "$local_dir"' EXIT
local_n=${BENCH_LOCAL_N:-100000}

# run OP RANKS IO LIB(on|off) N [DIR]: one timed run of N records per rank, its JSON line tagged
# with the exit status and appended. A run that loses data still reports its time (and
# "ok": false); one that hangs is killed after 120 s and reported without a time.
run() {
    local op=$1 ranks=$2 io=$3 with=$4 records=$5 where=${6:-${mounts[0]}/$dir} preload=""
    local yield=0 json rc=0 fs=fuse.glusterfs clients=2
    [[ $with == on ]] && preload=$lib
    [[ $where == "$local_dir" ]] && { fs=local; clients=1; }
    ((ranks > cores)) && yield=1
    local file="$where/$op-$ranks-$io-$with.dat"
    json=$(PRELOAD=$preload timeout 120 mpirun -q --oversubscribe --mca io "$io" \
        --mca mpi_yield_when_idle "$yield" -x SPLIT_A -x SPLIT_B -x PRELOAD -n "$ranks" \
        "$out/split.sh" "$PWD/$bin" "$op" "$file" "$records" 4096) || rc=$?
    ((rc == 0)) || echo "bench_mpiio.sh: $op, $ranks ranks, io $io, library $with: exit $rc" >&2
    python3 - "$json" "$io" "$with" "$rc" "$op" "$ranks" "$fs" "$clients" >>"$out/bench.jsonl" <<'PY'
import json, sys
lines = [l for l in sys.argv[1].splitlines() if l.startswith("{")]
row = json.loads(lines[-1]) if lines else {"op": sys.argv[5], "ranks": int(sys.argv[6]), "ok": False}
row.update(io=sys.argv[2], library=sys.argv[3] == "on", exit=int(sys.argv[4]),
           fs=sys.argv[7], clients=int(sys.argv[8]))
print(json.dumps(row))
PY
    rm -f "$file"
    echo "$op ranks=$ranks io=$io library=$with: $(tail -1 "$out/bench.jsonl")" >&2
}

start=$(date +%s)
for ranks in "${rank_list[@]}"; do
    for io in "${io_list[@]}"; do
        for op in shared atomic; do
            for with in off on; do run "$op" "$ranks" "$io" "$with" "$n"; done
        done
        for ((i = 0; i < rounds; i++)); do
            for with in off on; do run plain "$ranks" "$io" "$with" "$plain_n"; done
        done
    done
done
# The overhead on local disk at no more ranks than cores (oversubscribed ranks measure the
# scheduler), alternating off and on.
read -r -a local_ranks <<<"${BENCH_LOCAL_RANKS:-1 2}"
for ranks in "${local_ranks[@]}"; do
    for io in "${io_list[@]}"; do
        for ((i = 0; i < rounds; i++)); do
            for with in off on; do run plain "$ranks" "$io" "$with" "$local_n" "$local_dir"; done
        done
    done
done
rmdir "${mounts[0]}/$dir" 2>/dev/null || true

python3 - "$out/machine.json" "$(($(date +%s) - start))" <<'PY'
import json, os, platform, subprocess, sys
def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return ""
json.dump({
    "host": platform.node(), "cores": os.cpu_count(), "kernel": platform.release(),
    "mpi": sh("mpirun", "--version").splitlines()[0] if sh("mpirun", "--version") else "",
    "glusterfs": (sh("glusterfs", "--version").splitlines() or [""])[0],
    "loadavg": open("/proc/loadavg").read().split()[:3],
    "date": sh("date", "-u", "+%Y-%m-%dT%H:%M:%SZ"), "seconds": int(sys.argv[2]),
    "records_per_rank": int(os.environ.get("BENCH_N", "200")),
    "plain_records_per_rank": int(os.environ.get("BENCH_PLAIN_N", "2000")), "record_bytes": 4096,
}, open(sys.argv[1], "w"), indent=1)
PY
python3 scripts/plot_mpiio.py "$out"
echo "bench_mpiio.sh: results in $out" >&2
