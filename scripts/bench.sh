#!/usr/bin/env bash
# The comparison matrix of `brlock bench lock`: the MPI one-sided lock service (rma) against
# POSIX fcntl and Linux OFD byte-range locks, on local disk and on a real GlusterFS volume.
#
# Usage: scripts/bench.sh [--quick] [--out DIR]
#   --quick     smoke run: 2 and 8 ranks, patterns disjoint and same, a twentieth of the
#               iterations (24 configurations, under a minute)
#   --out DIR   results folder (default results/bench-<UTC timestamp>); it must not already
#               hold a lock.jsonl
#
# The matrix: backends rma, fcntl, ofd x patterns disjoint, same, random x 2, 4, 8 ranks x
# file systems (54 configurations), mode exclusive, hold 0 us:
#   local    a new directory under /var/tmp (on the root file system; its type is recorded),
#            lock file DIR/brlock-bench.lock for every rank
#   gluster  `scripts/gluster.sh up` (started if needed), lock file MOUNT_A/brlock-bench.lock
#            with --alt-file MOUNT_B/brlock-bench.lock: odd ranks go through the second mount,
#            a second GlusterFS client. rma keeps its lock table in MPI memory; it runs here
#            too so that every configuration compares backends measured minutes apart at most.
# Within a configuration the three backends run back to back. Iterations per rank (timed
# lock+unlock operations; the bench also times as many bare epoch pairs, and runs untimed
# warm-up rounds before each phase):
#   rma 10000 (any fs), fcntl/ofd on local disk 10000, fcntl/ofd on GlusterFS 1000 (a
#   lock+unlock costs 1-5 ms there); warm-up 100.  --quick: 500, 500, 50; warm-up 20.
# With 8 ranks on 2 cores every configuration also pays ~0.1-0.5 ms per bare epoch pair, and
# rma under contention 0.3-3 ms per lock+unlock: the slowest configuration (local or gluster,
# 8 ranks, same, rma) takes 5-40 s. The whole matrix takes about 5 minutes on a quiet 2-core
# machine (extrapolated from --quick and from the slowest configurations at full size).
#
# Runs under Open MPI: `mpirun --oversubscribe --mca osc $BRLOCK_BENCH_OSC` with
# `--mca mpi_yield_when_idle 1` when ranks > cores, else 0; each configuration is killed after
# BRLOCK_BENCH_TIMEOUT seconds. One progress line per configuration, with an estimate of the
# time left (mean time of the configurations done so far of the same fs and backend).
#
# Writes into the results folder:
#   lock.jsonl          the bench's JSON lines, as printed
#   lock.csv, summary.md, lock-latency-local.svg, lock-latency-gluster.svg, lock-speedup.svg
#                       made by scripts/plot.py (re-run it on the folder at any time)
#   machine.json        host, cores, CPU, kernel, MPI library, osc, GlusterFS version, dates,
#                       commit and the settings of the run
#   failures.jsonl      configurations (or a whole file system) that failed, with the reason
#   logs/               stdout and stderr of every run, and of gluster.sh
# GlusterFS is left as found: if this script started it, it is brought down at the end
# (`scripts/gluster.sh down`), also after a failure or Ctrl-C. If it cannot be started, the
# GlusterFS part fails with gluster.sh's reason (in failures.jsonl, summary.md and the exit
# status); it is never skipped silently.
# Exit status: 0 when every configuration ran and no run reported a violation; 1 otherwise
# (the results are still written); 2 on a usage error.
#
# Environment:
#   BRLOCK_BENCH_OSC        Open MPI one-sided component (default sm; e.g. pt2pt, rdma)
#   BRLOCK_BENCH_TIMEOUT    seconds one configuration may take (default 300)
#   BRLOCK_BENCH_FS         file systems to run (default "local gluster")
#   BRLOCK_BENCH_RANKS, BRLOCK_BENCH_PATTERNS, BRLOCK_BENCH_BACKENDS   override the matrix
#                           (backends: rma, rma-tr2005 = the one-sided service running the
#                           2005 algorithm instead of the default handoff, rma-hK = handoff
#                           sharded over K home ranks, fcntl, ofd)
#   BRLOCK_BENCH_ITERS_RMA, BRLOCK_BENCH_ITERS_LOCAL, BRLOCK_BENCH_ITERS_GLUSTER
#                           override the iterations per rank (fcntl/ofd local and gluster)
#   BRLOCK_BENCH_WARMUP, BRLOCK_BENCH_MODE (exclusive|shared|mixed), BRLOCK_BENCH_HOLD_US
#   BRLOCK_BENCH_LOCAL_DIR  parent of the local lock directory (default /var/tmp)
#   BRLOCK_BENCH_BIN        brlock binary to run instead of building target/release/brlock
#   BRLOCK_BENCH_ONLY=append|atomic|sieve  run only that part below (no lock matrix)
#
# Append part (`brlock bench append`, after the lock matrix; BRLOCK_BENCH_APPEND=0 skips it):
# methods rma-node (node writers), rma, flock, files at BRLOCK_BENCH_APPEND_RANKS (default 8) ranks with
# BRLOCK_BENCH_APPEND_RECORDS records per rank (default 1000; --quick 200), batches of 1 KiB,
# on local disk and on GlusterFS. On GlusterFS every method runs through two clients (odd ranks
# through mount b), and flock also through one client: through two, its O_APPEND writes land
# where each client's cached file size says the end is, and its check fails. Writes
# append.jsonl (the JSON lines, with "fs" and "clients" added), append.md and append.svg
# (scripts/plot_append.py). A failed check of rma or files fails the script; flock's is
# reported, not failed.
#
# Atomic part (`brlock bench atomic`; BRLOCK_BENCH_ATOMIC=0 skips it): overlapping 4 KiB
# accesses, backends rma, nonatomic and mpiio (under --mca io romio321: ROMIO's atomic mode),
# mixes writes (writes only) and mixed, at BRLOCK_BENCH_ATOMIC_RANKS (default "4 8") ranks with
# BRLOCK_BENCH_ATOMIC_OPS accesses per rank (default 500; --quick 100), on local disk and on
# GlusterFS through one client and through two. Writes atomic.jsonl, atomic.md and atomic.svg
# (scripts/plot_io.py).
# Sieve part (`brlock bench sieve`; BRLOCK_BENCH_SIEVE=0 skips it): strided writes of 64 B
# blocks at stride 256 (4096 per rank, BRLOCK_BENCH_SIEVE_REPS repetitions, default 3), methods
# sieve, pieces and mpiio (ROMIO, romio_ds_write=enable) at BRLOCK_BENCH_SIEVE_RANKS (default
# "2 4") ranks, local disk and GlusterFS through one client and through two. Writes sieve.jsonl, sieve.md and
# sieve.svg. A failed read-back fails the script.
#   BRLOCK_GLUSTER_*        passed to scripts/gluster.sh
set -euo pipefail
caller_pwd=$PWD
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROG=bench.sh
start_s=$SECONDS
start_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)

die() {
    echo "$PROG: $*" >&2
    exit 1
}

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
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
        --out=*) out=${1#--out=} ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "$PROG: unknown argument '$1' (try --help)" >&2
            exit 2
            ;;
    esac
    shift
done

# --- settings -------------------------------------------------------------------------------
osc=${BRLOCK_BENCH_OSC:-sm}
timeout_s=${BRLOCK_BENCH_TIMEOUT:-300}
mode=${BRLOCK_BENCH_MODE:-exclusive}
hold_us=${BRLOCK_BENCH_HOLD_US:-0}
if ((quick)); then
    def_ranks="2 8" def_patterns="disjoint same"
    def_iters_rma=500 def_iters_local=500 def_iters_gluster=50 def_warmup=20
else
    def_ranks="2 4 8" def_patterns="disjoint same random"
    def_iters_rma=10000 def_iters_local=10000 def_iters_gluster=1000 def_warmup=100
fi
read -r -a fs_list <<<"${BRLOCK_BENCH_FS:-local gluster}"
read -r -a ranks_list <<<"${BRLOCK_BENCH_RANKS:-$def_ranks}"
read -r -a patterns <<<"${BRLOCK_BENCH_PATTERNS:-$def_patterns}"
read -r -a backends <<<"${BRLOCK_BENCH_BACKENDS:-rma fcntl ofd}"
iters_rma=${BRLOCK_BENCH_ITERS_RMA:-$def_iters_rma}
iters_local=${BRLOCK_BENCH_ITERS_LOCAL:-$def_iters_local}
iters_gluster=${BRLOCK_BENCH_ITERS_GLUSTER:-$def_iters_gluster}
warmup=${BRLOCK_BENCH_WARMUP:-$def_warmup}
local_parent=${BRLOCK_BENCH_LOCAL_DIR:-/var/tmp}
cores=$(nproc)

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
for v in "$timeout_s" "$hold_us" "$iters_rma" "$iters_local" "$iters_gluster" "$warmup" "${ranks_list[@]}"; do
    is_uint "$v" || die "'$v' is not a whole number (check the BRLOCK_BENCH_* variables)"
done
[[ "$osc" =~ ^[a-z0-9_]+$ ]] || die "BRLOCK_BENCH_OSC='$osc' is not a component name"
((${#fs_list[@]} > 0 && ${#ranks_list[@]} > 0 && ${#patterns[@]} > 0 && ${#backends[@]} > 0)) ||
    die "empty matrix (check BRLOCK_BENCH_FS, _RANKS, _PATTERNS, _BACKENDS)"
for fs in "${fs_list[@]}"; do
    [[ "$fs" == local || "$fs" == gluster ]] || die "BRLOCK_BENCH_FS: unknown file system '$fs' (local, gluster)"
done
[[ -d "$local_parent" ]] || die "BRLOCK_BENCH_LOCAL_DIR='$local_parent' is not a directory"

if [[ -z "$out" ]]; then
    out=results/bench-$(date -u +%Y%m%dT%H%M%SZ)
elif [[ "$out" != /* ]]; then
    out=$caller_pwd/$out
fi
[[ -e "$out/lock.jsonl" ]] && die "$out already holds a lock.jsonl; choose another --out"
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
logs=$out/logs
: >"$out/lock.jsonl"
rm -f "$out/failures.jsonl"

# --- cleanup: the run in progress, the local directory, GlusterFS if we started it ------------
run_pid=""
plotted=0
local_dir=""
gluster_started=0     # 1 while a volume this run started is up (cleanup takes it down)
gluster_was_started=0 # for machine.json
gluster_mounts=()
failed=0

gluster_down() {
    if scripts/gluster.sh down >>"$logs/gluster.log" 2>&1; then
        echo "$PROG: GlusterFS: $(tail -n 1 "$logs/gluster.log")" >&2
    else
        echo "$PROG: 'scripts/gluster.sh down' failed: $(tail -n 1 "$logs/gluster.log") (full log: $logs/gluster.log)" >&2
        return 1
    fi
}

# shellcheck disable=SC2317 # only called by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$run_pid" ]] && kill -0 "$run_pid" 2>/dev/null; then
        # timeout(1) passes the signal on to mpirun, which stops its ranks.
        kill -TERM "$run_pid" 2>/dev/null || true
        wait "$run_pid" 2>/dev/null || true
    fi
    [[ -n "$local_dir" ]] && rm -rf "$local_dir"
    if ((!plotted)) && [[ -s "$out/lock.jsonl" ]]; then
        echo "$PROG: interrupted; tables and charts of the runs so far:" >&2
        python3 scripts/plot.py "$out" || true
    fi
    if ((gluster_started)); then
        echo "$PROG: bringing down the GlusterFS volume this run started ..." >&2
        gluster_down || rc=1
    elif ((${#gluster_mounts[@]} > 0)); then
        timeout -k 2 20 rm -f "${gluster_mounts[0]}/brlock-bench.lock" || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build ----------------------------------------------------------------------------------
if [[ -n "${BRLOCK_BENCH_BIN:-}" ]]; then
    bin=$BRLOCK_BENCH_BIN
else
    scripts/setup.sh >&2
    cargo build --release --bin brlock >&2
    bin=target/release/brlock
fi
bin=$(realpath "$bin")
"$bin" bench lock --help >/dev/null 2>&1 ||
    die "$bin has no 'bench lock' subcommand (build a brlock that has it)"
command -v mpirun >/dev/null 2>&1 || die "no mpirun on PATH (run scripts/setup.sh)"
mpi_version=$(mpirun --version 2>/dev/null | head -n 1 || true)
[[ "$mpi_version" == *"Open MPI"* ]] || die "'mpirun' is not Open MPI (it says: '${mpi_version:-nothing}')"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# --- machine.json ---------------------------------------------------------------------------
# write_machine [DURATION_S]: rewritten at the end with the duration and the finish time.
write_machine() {
    BB_DURATION=${1:-} BB_START=$start_utc BB_OSC=$osc BB_MPI=$mpi_version BB_CORES=$cores \
        BB_QUICK=$quick BB_MODE=$mode BB_HOLD=$hold_us BB_WARMUP=$warmup BB_TIMEOUT=$timeout_s \
        BB_FS="${fs_list[*]}" BB_RANKS="${ranks_list[*]}" BB_PATTERNS="${patterns[*]}" \
        BB_BACKENDS="${backends[*]}" BB_IT_RMA=$iters_rma BB_IT_LOCAL=$iters_local \
        BB_IT_GLUSTER=$iters_gluster BB_LOCAL_DIR=$local_dir BB_LOCAL_FS=${local_fs_type:-} \
        BB_GLUSTER_MOUNTS="${gluster_mounts[*]}" BB_GLUSTER_FS=${gluster_fs_type:-} \
        BB_GLUSTER_STARTED=$gluster_was_started BB_BIN=$bin \
        python3 - "$out/machine.json" <<'PY'
import datetime, json, os, platform, subprocess, sys
e = os.environ

def cmd(*args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""

cpu = ""
try:
    with open("/proc/cpuinfo") as fh:
        cpu = next((l.split(":", 1)[1].strip() for l in fh if l.startswith("model name")), "")
except OSError:
    pass
os_name = ""
try:
    with open("/etc/os-release") as fh:
        os_name = next((l.split("=", 1)[1].strip().strip('"') for l in fh if l.startswith("PRETTY_NAME=")), "")
except OSError:
    pass
commit = cmd("git", "rev-parse", "--short", "HEAD")
if commit and cmd("git", "status", "--porcelain", "--untracked-files=no"):
    commit += "+dirty"
gluster_version = cmd("glusterfs", "--version").splitlines()[:1]
ints = lambda s: [int(x) for x in s.split()]
m = {
    "host": platform.node(),
    "cores": int(e["BB_CORES"]),
    "cpu": cpu or None,
    "os": os_name or None,
    "kernel": platform.release(),
    "mpi_library": e["BB_MPI"],
    "osc": e["BB_OSC"],
    "glusterfs_version": gluster_version[0] if gluster_version else None,
    "date_utc": e["BB_START"],
    "finished_utc": (datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                     if e["BB_DURATION"] else None),
    "duration_s": int(e["BB_DURATION"]) if e["BB_DURATION"] else None,
    "brlock_commit": commit or None,
    "brlock_binary": e["BB_BIN"],
    "quick": e["BB_QUICK"] == "1",
    "fs": e["BB_FS"].split(),
    "ranks": ints(e["BB_RANKS"]),
    "patterns": e["BB_PATTERNS"].split(),
    "backends": e["BB_BACKENDS"].split(),
    "mode": e["BB_MODE"],
    "hold_us": int(e["BB_HOLD"]),
    "warmup": int(e["BB_WARMUP"]),
    "iters_per_rank": {
        "rma": int(e["BB_IT_RMA"]),
        "fcntl/ofd local": int(e["BB_IT_LOCAL"]),
        "fcntl/ofd gluster": int(e["BB_IT_GLUSTER"]),
    },
    "timeout_per_config_s": int(e["BB_TIMEOUT"]),
    "mpirun": f"mpirun --oversubscribe --mca osc {e['BB_OSC']} "
              f"--mca mpi_yield_when_idle <1 when ranks > {e['BB_CORES']}, else 0>",
    "local_dir": e["BB_LOCAL_DIR"] or None,
    "local_fs_type": e["BB_LOCAL_FS"] or None,
    "gluster_mounts": e["BB_GLUSTER_MOUNTS"].split(),
    "gluster_fs_type": e["BB_GLUSTER_FS"] or None,
    "gluster_started_by_bench": e["BB_GLUSTER_STARTED"] == "1",
}
with open(sys.argv[1], "w") as fh:
    json.dump(m, fh, indent=2)
    fh.write("\n")
PY
}

# failure KEY=VALUE...: one line of failures.jsonl (whole numbers become numbers).
failure() {
    failed=1
    python3 - "$@" >>"$out/failures.jsonl" <<'PY'
import json, sys
obj = {}
for arg in sys.argv[1:]:
    k, v = arg.split("=", 1)
    obj[k] = int(v) if v.isdigit() else v
print(json.dumps(obj))
PY
}

# gluster_status: 0 when GlusterFS is fully up, 1 when not, 2 when this user cannot tell
# (the volume state needs root; with passwordless sudo it asks through sudo).
gluster_status() {
    if [[ $(id -u) -eq 0 ]]; then
        scripts/gluster.sh status >/dev/null 2>&1 && return 0
        return 1
    fi
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n env BRLOCK_GLUSTER_VOLUME="${BRLOCK_GLUSTER_VOLUME:-}" \
            BRLOCK_GLUSTER_ROOT="${BRLOCK_GLUSTER_ROOT:-}" BRLOCK_GLUSTER_HOST="${BRLOCK_GLUSTER_HOST:-}" \
            scripts/gluster.sh status >/dev/null 2>&1 && return 0
        return 1
    fi
    return 2
}

fs_type_of() {
    findmnt -n -o FSTYPE -T "$1" 2>/dev/null || stat -f -c %T "$1"
}

fmt_time() {
    local s=$1
    if ((s >= 3600)); then
        printf '%d:%02d:%02d' $((s / 3600)) $((s % 3600 / 60)) $((s % 60))
    else
        printf '%d:%02d' $((s / 60)) $((s % 60))
    fi
}

# --- the matrix -----------------------------------------------------------------------------
configs=() # "fs ranks pattern backend"
for fs in "${fs_list[@]}"; do
    for ranks in "${ranks_list[@]}"; do
        for pattern in "${patterns[@]}"; do
            for backend in "${backends[@]}"; do
                # rma-hK needs at least K ranks (one home each).
                [[ "$backend" == rma-h[0-9]* ]] && ((${backend#rma-h} > ranks)) && continue
                configs+=("$fs $ranks $pattern $backend")
            done
        done
    done
done
total=${#configs[@]}

iters_for() {
    local fs=$1 backend=$2
    if [[ "$backend" == rma* ]]; then
        echo "$iters_rma"
    elif [[ "$fs" == gluster ]]; then
        echo "$iters_gluster"
    else
        echo "$iters_local"
    fi
}

# Durations (ms) of finished configurations, by "fs backend" and overall, for the estimate.
declare -A class_ms=() class_n=()
done_ms=0
done_n=0

# estimate_left INDEX: seconds the configurations after INDEX will take, going by the mean of
# the finished ones of the same fs and backend (else of all finished ones).
estimate_left() {
    local i c fs backend key ms=0 mean_all
    ((done_n > 0)) || {
        echo 0
        return
    }
    mean_all=$((done_ms / done_n))
    for ((i = $1 + 1; i < total; i++)); do
        c=${configs[$i]}
        read -r fs _ _ backend <<<"$c"
        key="$fs $backend"
        if [[ -n "${class_n[$key]:-}" ]]; then
            ms=$((ms + class_ms[$key] / class_n[$key]))
        else
            ms=$((ms + mean_all))
        fi
    done
    echo $(((ms + 500) / 1000))
}

# run_config INDEX FILE [ALT_FILE]: one configuration; appends to lock.jsonl or failures.jsonl.
run_config() {
    local idx=$1 file=$2 alt=${3:-}
    local fs ranks pattern backend iters name t0 t1 ms rc json info left
    read -r fs ranks pattern backend <<<"${configs[$idx]}"
    iters=$(iters_for "$fs" "$backend")
    name="$fs-${ranks}r-$pattern-$backend"
    # Yielding is set explicitly both ways: left unset, brlock turns it on itself whenever a
    # rank is bound to fewer cores than there are ranks (which Open MPI's binding makes true
    # even for 2 ranks on 2 cores), and that slows the 2-rank epochs several times.
    local yield=0
    ((ranks > cores)) && yield=1
    local launch=(mpirun --oversubscribe --mca osc "$osc" --mca mpi_yield_when_idle "$yield" -n "$ranks")
    # rma-tr2005: the one-sided service running the 2005 algorithm (rma runs the default,
    # handoff); rma-hK: handoff sharded over K homes. The report's "algorithm" and "homes"
    # fields tell them apart.
    local as=("--backend" "$backend")
    case "$backend" in
        rma-tr2005) as=(--backend rma --algorithm tr2005) ;;
        rma-h[0-9]*) as=(--backend rma --homes "${backend#rma-h}") ;;
    esac
    local args=(bench lock "${as[@]}" --pattern "$pattern" --mode "$mode" --iters "$iters"
        --hold-us "$hold_us" --warmup "$warmup" --json --file "$file")
    [[ -n "$alt" ]] && args+=(--alt-file "$alt")
    printf '[%*d/%d] %-7s %d ranks  %-8s %-5s %5d iters ... ' "${#total}" $((idx + 1)) "$total" \
        "$fs" "$ranks" "$pattern" "$backend" "$iters" >&2
    echo "${launch[*]} $bin ${args[*]}" >"$logs/$name.cmd"
    t0=$(date +%s%N)
    timeout -k 10 "$timeout_s" "${launch[@]}" "$bin" "${args[@]}" </dev/null >"$logs/$name.out" 2>"$logs/$name.err" &
    run_pid=$!
    if wait "$run_pid"; then rc=0; else rc=$?; fi
    run_pid=""
    t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000))
    json=$(tr -d '\r' <"$logs/$name.out" | grep '^{' | tail -n 1 || true)
    # "mean p99 violations" of a valid bench line, or nothing.
    info=$(python3 -c '
import json, sys
try:
    r = json.loads(sys.argv[1])
    lat = r["lock_unlock_us"]
    print("%.1f %.1f %d" % (lat["mean"], lat["p99"], int(r.get("violations") or 0)))
except Exception:
    pass' "$json" 2>/dev/null || true)
    local status
    if [[ -n "$info" ]]; then
        printf '%s\n' "$json" >>"$out/lock.jsonl"
        local mean p99 viol
        read -r mean p99 viol <<<"$info"
        status="mean $mean us, p99 $p99 us"
        if ((viol > 0)); then
            status+=", $viol VIOLATIONS"
            failed=1
        fi
    fi
    if ((rc != 0)); then
        local reason
        if ((rc == 124 || rc == 137)); then
            reason="timed out after $timeout_s s"
        else
            reason="exit status $rc: $(grep -v '^[[:space:]]*$' "$logs/$name.err" | tail -n 1 | cut -c1-300)"
        fi
        [[ -z "$info" ]] || reason+=" (its JSON line is in lock.jsonl)"
        failure fs="$fs" ranks="$ranks" pattern="$pattern" mode="$mode" backend="$backend" \
            iters="$iters" reason="$reason" log="logs/$name.err"
        status="FAILED: $reason${status:+; $status}"
    elif [[ -z "$info" ]]; then
        failure fs="$fs" ranks="$ranks" pattern="$pattern" mode="$mode" backend="$backend" \
            iters="$iters" reason="no JSON line on stdout" log="logs/$name.out"
        status="FAILED: no JSON line on stdout"
    fi
    class_ms["$fs $backend"]=$((${class_ms["$fs $backend"]:-0} + ms))
    class_n["$fs $backend"]=$((${class_n["$fs $backend"]:-0} + 1))
    done_ms=$((done_ms + ms))
    done_n=$((done_n + 1))
    left=$(estimate_left "$idx")
    printf '%d.%d s: %s | %s elapsed, ~%s left\n' $((ms / 1000)) $((ms % 1000 / 100)) "$status" \
        "$(fmt_time $((SECONDS - start_s)))" "$(fmt_time "$left")" >&2
}

# run_fs FS FILE [ALT_FILE]: every configuration of one file system.
run_fs() {
    local fs=$1 i
    for ((i = 0; i < total; i++)); do
        [[ "${configs[$i]%% *}" == "$fs" ]] && run_config "$i" "${@:2}"
    done
    return 0
}

echo "$PROG: $total configurations (${fs_list[*]} x ${ranks_list[*]} ranks x ${patterns[*]} x ${backends[*]}), osc $osc, mode $mode, hold $hold_us us; iterations per rank: rma $iters_rma, fcntl/ofd local $iters_local, gluster $iters_gluster; results in $out" >&2
write_machine

lock_fs=("${fs_list[@]}")
case "${BRLOCK_BENCH_ONLY:-}" in
    "") ;;
    append | atomic | sieve) lock_fs=() ;;
    *) die "BRLOCK_BENCH_ONLY='${BRLOCK_BENCH_ONLY}': expected append, atomic or sieve" ;;
esac
# part_wanted NAME: whether the part NAME runs (BRLOCK_BENCH_ONLY unset or NAME).
part_wanted() { [[ -z "${BRLOCK_BENCH_ONLY:-}" || "${BRLOCK_BENCH_ONLY}" == "$1" ]]; }
for fs in "${lock_fs[@]}"; do
    case "$fs" in
        local)
            local_dir=$(mktemp -d "$local_parent/brlock-bench.XXXXXX")
            chmod 755 "$local_dir"
            local_fs_type=$(fs_type_of "$local_dir")
            echo "$PROG: local part: lock file $local_dir/brlock-bench.lock ($local_fs_type)" >&2
            write_machine
            run_fs local "$local_dir/brlock-bench.lock"
            rm -rf "$local_dir"
            ;;
        gluster)
            gstatus=0
            gluster_status || gstatus=$?
            if ((gstatus == 0)); then
                echo "$PROG: GlusterFS is already up; it will be left up" >&2
            elif ((gstatus == 2)); then
                echo "$PROG: cannot tell whether GlusterFS is up (not root, no passwordless sudo); trying 'up' without taking it down afterwards" >&2
            else
                # Set before `up`: a half-finished `up` is undone by `down` as well.
                gluster_started=1
                gluster_was_started=1
                echo "$PROG: starting GlusterFS (scripts/gluster.sh up; log: $logs/gluster.log) ..." >&2
            fi
            up_t0=$SECONDS
            if up_out=$(scripts/gluster.sh up 2>>"$logs/gluster.log"); then
                mapfile -t up_lines <<<"$up_out"
                n=${#up_lines[@]}
                if ((n >= 2)) && [[ -d "${up_lines[n - 2]}" && -d "${up_lines[n - 1]}" ]]; then
                    gluster_mounts=("${up_lines[n - 2]}" "${up_lines[n - 1]}")
                else
                    reason="scripts/gluster.sh up did not end with two mount directories (stdout: $(echo "$up_out" | tail -n 2 | tr '\n' ' '))"
                fi
            else
                reason="scripts/gluster.sh up failed: $(grep -v '^[[:space:]]*$' "$logs/gluster.log" | tail -n 1 | cut -c1-400)"
            fi
            if ((${#gluster_mounts[@]} == 2)); then
                gluster_fs_type=$(fs_type_of "${gluster_mounts[0]}")
                echo "$PROG: GlusterFS part: mounts ${gluster_mounts[*]} ($gluster_fs_type), up in $((SECONDS - up_t0)) s" >&2
                write_machine
                run_fs gluster "${gluster_mounts[0]}/brlock-bench.lock" "${gluster_mounts[1]}/brlock-bench.lock"
                timeout -k 2 20 rm -f "${gluster_mounts[0]}/brlock-bench.lock" || true
                if ((gluster_started)); then
                    gluster_down || failed=1
                    gluster_started=0
                fi
            else
                echo "$PROG: GlusterFS part FAILED: $reason (log: $logs/gluster.log)" >&2
                failure fs=gluster reason="$reason (log: logs/gluster.log)"
                if ((gluster_started)); then
                    gluster_down || true
                    gluster_started=0
                fi
            fi
            ;;
    esac
done

# with_gluster BENCH CALLBACK: brings GlusterFS up if needed, runs CALLBACK MOUNT_A MOUNT_B (two
# clients of one volume), and takes it down again if this run started it. Failures to bring it
# up are recorded under BENCH.
with_gluster() {
    local bench=$1 callback=$2 gstatus=0 up_out up_lines n ga gb
    gluster_status || gstatus=$?
    ((gstatus == 1)) && gluster_started=1 gluster_was_started=1
    if up_out=$(scripts/gluster.sh up 2>>"$logs/gluster.log"); then
        mapfile -t up_lines <<<"$up_out"
        n=${#up_lines[@]}
        ga=${up_lines[n - 2]:-} gb=${up_lines[n - 1]:-}
        if [[ -d "$ga" && -d "$gb" ]]; then
            "$callback" "$ga" "$gb"
        else
            failure bench="$bench" fs=gluster reason="scripts/gluster.sh up did not end with two mount directories"
        fi
    else
        failure bench="$bench" fs=gluster reason="scripts/gluster.sh up failed (log: logs/gluster.log)"
    fi
    if ((gluster_started)); then
        gluster_down || failed=1
        gluster_started=0
    fi
}

# --- append: brlock bench append (rma-node, rma vs flock vs files) -----------------------------------
if [[ "${BRLOCK_BENCH_APPEND:-1}" != 0 ]] && part_wanted append; then
    append_ranks=${BRLOCK_BENCH_APPEND_RANKS:-8}
    if ((quick)); then def_append_records=200; else def_append_records=1000; fi
    append_records=${BRLOCK_BENCH_APPEND_RECORDS:-$def_append_records}
    { is_uint "$append_ranks" && is_uint "$append_records"; } ||
        die "BRLOCK_BENCH_APPEND_RANKS/_RECORDS must be whole numbers"
    : >>"$out/append.jsonl"

    # run_append FS CLIENTS METHOD DIR [ALT_DIR]: one run; appends to append.jsonl.
    run_append() {
        local fs=$1 clients=$2 method=$3 dir=$4 alt=${5:-} name rc json yield=0
        name="append-$fs-${clients}c-$method"
        ((append_ranks > cores)) && yield=1
        local cmd=(mpirun --oversubscribe --mca osc "$osc" --mca mpi_yield_when_idle "$yield"
            -n "$append_ranks" "$bin" bench append --method "$method" --records "$append_records"
            --dir "$dir" --json)
        [[ -n "$alt" ]] && cmd+=(--alt-dir "$alt")
        printf 'append  %-7s %d client(s) %-5s %d ranks x %d records ... ' "$fs" "$clients" \
            "$method" "$append_ranks" "$append_records" >&2
        echo "${cmd[*]}" >"$logs/$name.cmd"
        timeout -k 10 "$timeout_s" "${cmd[@]}" </dev/null >"$logs/$name.out" 2>"$logs/$name.err" &
        run_pid=$!
        if wait "$run_pid"; then rc=0; else rc=$?; fi
        run_pid=""
        json=$(tr -d '\r' <"$logs/$name.out" | grep '^{' | tail -n 1 || true)
        if [[ -n "$json" ]] && python3 -c '
import json, sys
r = json.loads(sys.argv[1]); r["fs"] = sys.argv[2]; r["clients"] = int(sys.argv[3])
print(json.dumps(r))
print("%.3f s, %d files, verified %s" % (r["seconds"], r["files_created"], r["verified"]), file=sys.stderr)
' "$json" "$fs" "$clients" >>"$out/append.jsonl"; then
            if ((rc != 0)) && [[ "$method" != flock ]]; then
                failure bench=append fs="$fs" clients="$clients" method="$method" reason="check failed (exit status $rc)" log="logs/$name.out"
            fi
        else
            echo "FAILED (exit status $rc)" >&2
            failure bench=append fs="$fs" clients="$clients" method="$method" \
                reason="exit status $rc: $(grep -v '^[[:space:]]*$' "$logs/$name.err" | tail -n 1 | cut -c1-300)" \
                log="logs/$name.err"
        fi
    }

    # append_on_gluster MOUNT_A MOUNT_B: the GlusterFS runs (see the header).
    # shellcheck disable=SC2317 # called through with_gluster
    append_on_gluster() {
        local ga=$1 gb=$2 sub=brlock-bench-append.$$ method
        mkdir -p "$ga/$sub"
        for method in rma-node rma flock files; do
            run_append gluster 2 "$method" "$ga/$sub" "$gb/$sub"
        done
        run_append gluster 1 flock "$ga/$sub"
        timeout -k 2 60 rm -rf "${ga:?}/$sub" || true
    }

    for fs in "${fs_list[@]}"; do
        case "$fs" in
            local)
                local_dir=$(mktemp -d "$local_parent/brlock-bench-append.XXXXXX")
                for method in rma-node rma flock files; do
                    run_append local 1 "$method" "$local_dir"
                done
                rm -rf "$local_dir"
                local_dir=""
                ;;
            gluster)
                with_gluster append append_on_gluster
                ;;
        esac
    done
    python3 scripts/plot_append.py "$out" || {
        echo "$PROG: scripts/plot_append.py failed" >&2
        failed=1
    }
    [[ -f "$out/append.md" ]] && cat "$out/append.md"
fi

# --- atomic and sieve: brlock bench atomic / bench sieve ---------------------------------------
run_atomic_part=0 run_sieve_part=0
[[ "${BRLOCK_BENCH_ATOMIC:-1}" != 0 ]] && part_wanted atomic && run_atomic_part=1
[[ "${BRLOCK_BENCH_SIEVE:-1}" != 0 ]] && part_wanted sieve && run_sieve_part=1
if ((run_atomic_part || run_sieve_part)); then
    read -r -a atomic_ranks <<<"${BRLOCK_BENCH_ATOMIC_RANKS:-4 8}"
    read -r -a sieve_ranks <<<"${BRLOCK_BENCH_SIEVE_RANKS:-2 4}"
    if ((quick)); then def_atomic_ops=100; else def_atomic_ops=500; fi
    atomic_ops=${BRLOCK_BENCH_ATOMIC_OPS:-$def_atomic_ops}
    sieve_reps=${BRLOCK_BENCH_SIEVE_REPS:-3}
    for v in "${atomic_ranks[@]}" "${sieve_ranks[@]}" "$atomic_ops" "$sieve_reps"; do
        is_uint "$v" || die "BRLOCK_BENCH_ATOMIC_*/SIEVE_* must be whole numbers (got '$v')"
    done

    # run_io BENCH FS CLIENTS RANKS ROMIO NAME -- ARGS: one run of `brlock bench BENCH ARGS
    # --json`; appends to BENCH.jsonl. ROMIO=1 selects Open MPI's romio321 io component.
    run_io() {
        local bench=$1 fs=$2 clients=$3 ranks=$4 romio=$5 name=$6 rc json yield=0
        shift 7
        ((ranks > cores)) && yield=1
        local cmd=(mpirun --oversubscribe --mca osc "$osc" --mca mpi_yield_when_idle "$yield")
        ((romio)) && cmd+=(--mca io romio321)
        cmd+=(-n "$ranks" "$bin" bench "$bench" "$@" --json)
        printf '%-6s %-7s %d ranks %s ... ' "$bench" "$fs" "$ranks" "$*" >&2
        echo "${cmd[*]}" >"$logs/$name.cmd"
        timeout -k 10 "$timeout_s" "${cmd[@]}" </dev/null >"$logs/$name.out" 2>"$logs/$name.err" &
        run_pid=$!
        if wait "$run_pid"; then rc=0; else rc=$?; fi
        run_pid=""
        json=$(tr -d '\r' <"$logs/$name.out" | grep '^{' | tail -n 1 || true)
        if [[ -n "$json" ]] && python3 -c '
import json, sys
r = json.loads(sys.argv[1]); r["fs"] = sys.argv[2]; r["clients"] = int(sys.argv[3])
print(json.dumps(r))
if r["bench"] == "atomic":
    print("%.1f us/op per rank (%s)" % (r["us_per_op"], r.get("io_component") or r["backend"]), file=sys.stderr)
else:
    print("%.2f MB/s, verified %s" % (r["mb_per_s"], r["verified"]), file=sys.stderr)
' "$json" "$fs" "$clients" >>"$out/$bench.jsonl"; then
            ((rc == 0)) || failure bench="$bench" fs="$fs" ranks="$ranks" reason="exit status $rc" log="logs/$name.out"
        else
            echo "FAILED (exit status $rc)" >&2
            failure bench="$bench" fs="$fs" ranks="$ranks" \
                reason="exit status $rc: $(grep -v '^[[:space:]]*$' "$logs/$name.err" | tail -n 1 | cut -c1-300)" \
                log="logs/$name.err"
        fi
    }

    # io_runs FS CLIENTS FILE [ALT_FILE]: every atomic and sieve run on one file system.
    io_runs() {
        local fs=$1 clients=$2 file=$3 alt=${4:-} ranks mix backend method where=()
        where=(--file "$file")
        [[ -n "$alt" ]] && where+=(--alt-file "$alt")
        if ((run_atomic_part)); then
            for ranks in "${atomic_ranks[@]}"; do
                for mix in writes mixed; do
                    for backend in rma nonatomic mpiio; do
                        run_io atomic "$fs" "$clients" "$ranks" "$([[ $backend == mpiio ]] && echo 1 || echo 0)" \
                            "atomic-$fs-${clients}c-$ranks-$mix-$backend" -- --backend "$backend" --mix "$mix" \
                            --ops "$atomic_ops" "${where[@]}"
                    done
                done
            done
        fi
        if ((run_sieve_part)); then
            for ranks in "${sieve_ranks[@]}"; do
                for method in sieve pieces mpiio; do
                    run_io sieve "$fs" "$clients" "$ranks" "$([[ $method == mpiio ]] && echo 1 || echo 0)" \
                        "sieve-$fs-${clients}c-$ranks-$method" -- --method "$method" --block 64 --stride 256 \
                        --count 4096 --reps "$sieve_reps" "${where[@]}"
                done
            done
        fi
    }

    # io_on_gluster MOUNT_A MOUNT_B: the GlusterFS runs, all ranks through mount a (one client:
    # brlock does no coherence work), then odd ranks through mount b (two clients).
    # shellcheck disable=SC2317 # called through with_gluster
    io_on_gluster() {
        local ga=$1 gb=$2 sub=brlock-bench-io.$$
        mkdir -p "$ga/$sub"
        io_runs gluster 1 "$ga/$sub/io1.dat"
        io_runs gluster 2 "$ga/$sub/io.dat" "$gb/$sub/io.dat"
        timeout -k 2 60 rm -rf "${ga:?}/$sub" || true
    }

    ((run_atomic_part)) && : >>"$out/atomic.jsonl"
    ((run_sieve_part)) && : >>"$out/sieve.jsonl"
    for fs in "${fs_list[@]}"; do
        case "$fs" in
            local)
                local_dir=$(mktemp -d "$local_parent/brlock-bench-io.XXXXXX")
                io_runs local 1 "$local_dir/io.dat"
                rm -rf "$local_dir"
                local_dir=""
                ;;
            gluster)
                with_gluster atomic/sieve io_on_gluster
                ;;
        esac
    done
    python3 scripts/plot_io.py "$out" || {
        echo "$PROG: scripts/plot_io.py failed" >&2
        failed=1
    }
    for f in atomic.md sieve.md; do
        [[ -f "$out/$f" ]] && cat "$out/$f"
    done
fi

duration=$((SECONDS - start_s))
write_machine "$duration"
plotted=1
if [[ -s "$out/lock.jsonl" ]]; then
    python3 scripts/plot.py "$out" || {
        echo "$PROG: scripts/plot.py failed" >&2
        failed=1
    }
fi

# The one-line-per-configuration table of summary.md, on stdout.
if [[ -f "$out/summary.md" ]]; then
    awk '/^## At a glance/ { on = 1; next } on && /^## / { exit } on && NF' "$out/summary.md"
fi
runs=$(grep -c . "$out/lock.jsonl" || true)
nfail=0
[[ -f "$out/failures.jsonl" ]] && nfail=$(grep -c . "$out/failures.jsonl" || true)
if [[ -n "${BRLOCK_BENCH_ONLY:-}" ]]; then
    echo "$PROG: the ${BRLOCK_BENCH_ONLY} part, $nfail failures, in $(fmt_time "$duration"); results: $out (${BRLOCK_BENCH_ONLY}.md, ${BRLOCK_BENCH_ONLY}.jsonl, ${BRLOCK_BENCH_ONLY}.svg)" >&2
else
    echo "$PROG: $runs of $total configurations measured, $nfail failures, in $(fmt_time "$duration"); results: $out (summary.md, lock.csv, *.svg)" >&2
fi
exit "$failed"
