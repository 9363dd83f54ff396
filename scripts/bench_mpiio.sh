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
#            library forwards them, so this is its overhead. Run BENCH_ROUNDS times (default
#            3) alternating off/on; the median ratio is reported.
# Nothing is asserted: the numbers are reported (results/bench-mpiio-<timestamp>/:
# bench.jsonl, machine.json, summary.md, mpiio.svg via scripts/plot_mpiio.py).
#
# Environment: BENCH_RANKS ("4 8"), BENCH_IO ("romio321 ompio"), BENCH_N (records per rank,
# default 200), BENCH_ROUNDS (3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

read -r -a rank_list <<<"${BENCH_RANKS:-4 8}"
read -r -a io_list <<<"${BENCH_IO:-romio321 ompio}"
n=${BENCH_N:-200}
rounds=${BENCH_ROUNDS:-3}

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
trap 'rm -f "$bin" "$out/split.sh"' EXIT
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

# run OP RANKS IO LIB(on|off): one timed run, its JSON line tagged and appended.
run() {
    local op=$1 ranks=$2 io=$3 with=$4 preload="" yield=0 json
    [[ $with == on ]] && preload=$lib
    ((ranks > cores)) && yield=1
    local file="${mounts[0]}/$dir/$op-$ranks-$io-$with.dat"
    if ! json=$(PRELOAD=$preload timeout 600 mpirun -q --oversubscribe --mca io "$io" \
        --mca mpi_yield_when_idle "$yield" -x SPLIT_A -x SPLIT_B -x PRELOAD -n "$ranks" \
        "$out/split.sh" "$PWD/$bin" "$op" "$file" "$n" 4096); then
        echo "bench_mpiio.sh: FAILED: $op, $ranks ranks, io $io, library $with" >&2
        json='{"ok": false}'
    fi
    python3 - "$json" "$io" "$with" >>"$out/bench.jsonl" <<'PY'
import json, sys
row = json.loads(sys.argv[1].strip().splitlines()[-1])
row.update(io=sys.argv[2], library=sys.argv[3] == "on", fs="fuse.glusterfs", clients=2)
print(json.dumps(row))
PY
    rm -f "$file"
    echo "$op ranks=$ranks io=$io library=$with: $(tail -1 "$out/bench.jsonl")" >&2
}

start=$(date +%s)
for ranks in "${rank_list[@]}"; do
    for io in "${io_list[@]}"; do
        for op in shared atomic; do
            for with in off on; do run "$op" "$ranks" "$io" "$with"; done
        done
        for ((i = 0; i < rounds; i++)); do
            for with in off on; do run plain "$ranks" "$io" "$with"; done
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
    "records_per_rank": int(os.environ.get("BENCH_N", "200")), "record_bytes": 4096,
}, open(sys.argv[1], "w"), indent=1)
PY
python3 scripts/plot_mpiio.py "$out"
echo "bench_mpiio.sh: results in $out" >&2
