#!/usr/bin/env python3
"""fcntl or OFD lock+unlock latency without MPI, one process per rank (scripts/bench_cluster.sh).

Usage: fcntl_probe.py run fcntl|ofd disjoint|same FILE ITERS WARMUP START_EPOCH_S
       fcntl_probe.py merge HOSTS RANKS_PER_HOST LOCK PATTERN < per-rank lines

`run` is started on every rank by scripts/cluster-mpirun (the rank and the job size come from
Open MPI's OMPI_COMM_WORLD_RANK and OMPI_COMM_WORLD_SIZE): it waits until the wall clock
reaches START_EPOCH_S (the same machine clock for every host), takes WARMUP untimed and then
ITERS timed lock+unlock pairs of its range of FILE (F_SETLKW, then F_SETLK unlock; OFD: the
F_OFD_* commands), and prints one JSON line with its durations. Ranges: disjoint, 32 bytes at
32 x rank; same, bytes 0..128 for every rank. `merge` reads those lines and prints one object
shaped like `brlock bench lock --json` (lock_unlock_us mean/p50/p90/p99/max, ops_per_s).

Why it exists: `brlock bench lock --backend fcntl|ofd` keeps its exclusion checker's window on
rank 0 and stamps it with one-sided operations while holding; under osc pt2pt or ucx over TCP
those need rank 0 inside MPI, and a rank 0 blocked in F_SETLKW behind the holder is not, so
with the same range both wait for each other forever (reproduced on one host under osc pt2pt;
osc sm, which needs no target progress, runs). This probe measures the file system's locks
alone, no checker.
"""

import fcntl
import json
import os
import struct
import sys
import time

F_OFD_SETLK, F_OFD_SETLKW = 37, 38


def flock_struct(kind, start, length):
    # struct flock on x86_64 Linux: short l_type, short l_whence, off_t l_start, off_t l_len,
    # pid_t l_pid (0: required for OFD locks), padding.
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, start, length, 0)


def run(lock, pattern, path, iters, warmup, start_at):
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    start, length = (32 * rank, 32) if pattern == "disjoint" else (0, 128)
    setlkw, setlk = (F_OFD_SETLKW, F_OFD_SETLK) if lock == "ofd" else (fcntl.F_SETLKW, fcntl.F_SETLK)
    take = flock_struct(fcntl.F_WRLCK, start, length)
    drop = flock_struct(fcntl.F_UNLCK, start, length)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    while time.time() < start_at:
        time.sleep(min(0.01, max(start_at - time.time(), 0)))
    ns = []
    t_begin = None
    for i in range(warmup + iters):
        if i == warmup:
            t_begin = time.perf_counter_ns()
        t0 = time.perf_counter_ns()
        fcntl.fcntl(fd, setlkw, take)
        fcntl.fcntl(fd, setlk, drop)
        if i >= warmup:
            ns.append(time.perf_counter_ns() - t0)
    seconds = (time.perf_counter_ns() - t_begin) / 1e9 if t_begin else 0.0
    os.close(fd)
    print(json.dumps({"probe": lock, "rank": rank, "size": size, "host": os.uname().nodename,
                      "seconds": seconds, "ns": ns}), flush=True)


def pct(sorted_us, q):
    if not sorted_us:
        return None
    return sorted_us[min(len(sorted_us) - 1, int(q * len(sorted_us)))]


def merge(hosts, per_host, lock, pattern):
    # A rank's line may be glued to another's by the launcher: decode every object in turn.
    ranks = []
    decoder = json.JSONDecoder()
    text = sys.stdin.read()
    i = text.find('{"probe"')
    while i >= 0:
        obj, end = decoder.raw_decode(text, i)
        ranks.append(obj)
        i = text.find('{"probe"', end)
    if not ranks:
        print("fcntl_probe.py merge: no rank printed a result", file=sys.stderr)
        return 1
    us = sorted(v / 1000 for r in ranks for v in r["ns"])
    seconds = max(r["seconds"] for r in ranks)
    print(json.dumps({
        "bench": "lock-probe", "backend": lock.split("-")[0], "lock": lock, "pattern": pattern,
        "mode": "exclusive", "hosts": hosts, "ranks_per_host": per_host, "ranks": len(ranks),
        "iters": len(ranks[0]["ns"]), "operations": len(us), "seconds": seconds,
        "ops_per_s": len(us) / seconds if seconds else None,
        "lock_unlock_us": {"mean": sum(us) / len(us), "p50": pct(us, 0.5), "p90": pct(us, 0.9),
                           "p99": pct(us, 0.99), "max": us[-1]},
        "violations": None, "hosts_seen": sorted({r["host"] for r in ranks}),
    }))
    return 0


def main(argv):
    if len(argv) == 8 and argv[1] == "run" and argv[2] in ("fcntl", "ofd") and argv[3] in ("disjoint", "same"):
        run(argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]), float(argv[7]))
        return 0
    if len(argv) == 6 and argv[1] == "merge":
        return merge(int(argv[2]), int(argv[3]), argv[4], argv[5])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
