#!/usr/bin/env bash
# A small cluster on this one machine: N "hosts" (network namespaces, each with its own host
# name) joined by a bridge, a GlusterFS file server in a namespace of its own, and one
# GlusterFS client per host whose traffic crosses the emulated network. MPI jobs run across it
# with scripts/cluster-mpirun.
#
# Usage: scripts/cluster.sh up N | down | status | exec HOST CMD [ARGS...]
#   up N     (N = 2..8) makes what is missing and checks what is there, so running it twice is
#            harmless (a second `up` with another N is refused: run `down` first). The LAST
#            line of its stdout is the shared path: the volume as every host sees it (each
#            host through its own client). Progress goes to stderr.
#   down     removes everything `up` made: the clients' mounts, the brick and client processes
#            (by their recorded pids), any process still inside the cluster's namespaces, the
#            namespaces (with them the bridge and the veth links) and the root directory
#            (brick, mounts, state). Idempotent; works from a half-made cluster too.
#   status   one line per component; exit 0 if everything is up, 1 otherwise.
#   exec HOST CMD...   runs CMD as on HOST (h1..hN, head or fs): in its network namespace,
#            with its host name (its own UTS namespace) and, on h1..hN, that host's client
#            mounted at the shared path (in a private mount namespace).
#   rsh HOST CMD...    the same with CMD joined into one shell command line: Open MPI's
#            plm_rsh_agent (used by cluster-mpirun; an ssh stand-in).
# Every wait is bounded; a failure prints one line "cluster.sh: <reason>" on stderr and exits
# non-zero. Needs root (network namespaces, FUSE mounts).
#
# What it makes (NAME = $BRLOCK_CLUSTER_NAME, default brc; SUBNET = $BRLOCK_CLUSTER_SUBNET,
# default 10.213.77, a private /24):
#   NAME-br     a namespace holding the bridge br0 and the bridge ends of every veth link;
#   NAME-h1..N  the hosts, eth0 = SUBNET.1..N, host names h1..hN (where the ranks run);
#   NAME-fs     the file server, eth0 = SUBNET.250: one standalone glusterfsd brick (no
#               glusterd, its own volfile), listening on SUBNET.250:24100;
#   NAME-head   the launcher's host, eth0 = SUBNET.254: mpirun runs here and starts every rank
#               on h1..hN through the rsh agent.
# The root network namespace is not touched (no address, link or route is added there); the
# only trace outside ROOT is /run/netns, where `ip netns` keeps its namespaces (removed by
# `down` when this script made it and it is empty).
# Under ROOT ($BRLOCK_CLUSTER_ROOT, default /var/lib/brlock-cluster):
#   brick/      the brick's directory (the volume's data)
#   mnt/hK      host K's GlusterFS client (FUSE), mounted in the root mount namespace, so it
#               is visible to every process, while its glusterfs process runs in NAME-hK's
#               network namespace (started with `nsenter --net`): its traffic crosses the bridge
#   vol/        the shared path. Under `exec hK` (and so in every rank started by
#               cluster-mpirun) host K's client is bind-mounted on it; outside the cluster it
#               is an empty read-only tmpfs (writes fail with EROFS instead of landing on the
#               local disk): reach the volume there through mnt/hK
#   state/      volfiles, logs, pid files, host files, cluster.env (what cluster-mpirun reads)
# The clients keep GlusterFS 10's default client-side caches (write-behind, open-behind,
# quick-read, md-cache, io-threads), like scripts/gluster.sh's volume.
#
# Environment:
#   BRLOCK_CLUSTER_NAME    prefix of the namespaces (default brc; 1-8 lower-case letters/digits)
#   BRLOCK_CLUSTER_ROOT    directory this script owns (default /var/lib/brlock-cluster)
#   BRLOCK_CLUSTER_SUBNET  first three octets of the private /24 (default 10.213.77)
#   BRLOCK_CLUSTER_DELAY   one-way delay added with tc netem on every host's and the server's
#                          link (e.g. 50us, 1ms); default none: the bridge has no latency
#                          beyond the kernel's own
set -euo pipefail

PROG=cluster.sh
SELF=$(readlink -f "${BASH_SOURCE[0]}")
NAME=${BRLOCK_CLUSTER_NAME:-brc}
ROOT=${BRLOCK_CLUSTER_ROOT:-/var/lib/brlock-cluster}
SUBNET=${BRLOCK_CLUSTER_SUBNET:-10.213.77}
DELAY=${BRLOCK_CLUSTER_DELAY:-}
BRICK=$ROOT/brick
MNT=$ROOT/mnt
VOL=$ROOT/vol
STATE=$ROOT/state
ENV_FILE=$STATE/cluster.env
NS_BRIDGE=$NAME-br
NS_HEAD=$NAME-head
NS_FS=$NAME-fs
FS_ADDR=$SUBNET.250
HEAD_ADDR=$SUBNET.254
BRICK_PORT=24100
BRICK_NAME=brick
MAX_HOSTS=8
SLOTS=8

start_ns=$(date +%s%N)

elapsed() {
    local now_ns
    now_ns=$(date +%s%N)
    printf '%d.%02d s' $(((now_ns - start_ns) / 1000000000)) $(((now_ns - start_ns) / 10000000 % 100))
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

say() {
    echo "$PROG: $*" >&2
}

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

# --- checks of the configuration ------------------------------------------------------------
[[ "$NAME" =~ ^[a-z][a-z0-9]{0,7}$ ]] ||
    die "BRLOCK_CLUSTER_NAME='$NAME' must be 1-8 lower-case letters and digits, starting with a letter"
[[ "$ROOT" == /* && "$ROOT" =~ ^[A-Za-z0-9_./-]+$ && "$ROOT" != / ]] ||
    die "BRLOCK_CLUSTER_ROOT='$ROOT' must be an absolute path of letters, digits, '_', '.', '-' and '/'"
private_subnet() {
    local a b c
    IFS=. read -r a b c <<<"$1"
    [[ "$1" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || return 1
    ((b <= 255 && c <= 255)) || return 1
    ((a == 10)) || ((a == 172 && b >= 16 && b <= 31)) || ((a == 192 && b == 168))
}
private_subnet "$SUBNET" ||
    die "BRLOCK_CLUSTER_SUBNET='$SUBNET' must be the first three octets of a private /24 (10.x.y, 172.16-31.x, 192.168.x)"
if [[ -n "$DELAY" && ! "$DELAY" =~ ^[0-9]+(\.[0-9]+)?(us|ms)$ ]]; then
    die "BRLOCK_CLUSTER_DELAY='$DELAY' must be a number with unit us or ms (e.g. 50us)"
fi

# --- small helpers --------------------------------------------------------------------------

need_root() {
    [[ $(id -u) -eq 0 ]] || die "needs root (network namespaces and FUSE mounts); run it as root"
}

need_commands() {
    local cmd missing=()
    for cmd in ip tc nsenter unshare mountpoint flock timeout findmnt glusterfsd glusterfs; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) ||
        die "missing commands: ${missing[*]} (packages iproute2, util-linux, glusterfs-server, glusterfs-client: run scripts/setup.sh and scripts/gluster.sh up, or apt-get install them)"
}

# t SECONDS CMD...: CMD killed after SECONDS (and SIGKILLed 2 s later).
t() {
    local secs=$1
    shift
    timeout -k 2 "$secs" "$@"
}

host_ns() { echo "$NAME-h$1"; }

ns_exists() { [[ -e /run/netns/$1 ]]; }

# The namespaces of this cluster that exist now (hosts first, the bridge last).
our_namespaces() {
    local ns
    for ns in $(t 10 ip netns list 2>/dev/null | awk '{ print $1 }'); do
        [[ "$ns" =~ ^$NAME-h[1-9]$ ]] && echo "$ns"
    done
    for ns in "$NS_HEAD" "$NS_FS" "$NS_BRIDGE"; do
        ns_exists "$ns" && echo "$ns"
    done
    return 0
}

# A live (not zombie) process with this pid and this command name.
alive() {
    local pid=$1 comm=$2 c state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    { read -r c <"/proc/$pid/comm"; } 2>/dev/null || return 1
    [[ "$c" == "$comm" ]] || return 1
    { read -r _ _ state _ <"/proc/$pid/stat"; } 2>/dev/null || return 1
    [[ "$state" != Z && "$state" != X ]]
}

pid_of() {
    local f=$1
    [[ -r "$f" ]] || return 1
    tr -dc '0-9' <"$f"
}

# stop_pids: TERM, then KILL after 5 s, each pid given.
stop_pids() {
    local pid left i
    (($# > 0)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        left=0
        for pid in "$@"; do
            if kill -0 "$pid" 2>/dev/null && [[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) != Z ]]; then
                left=1
            fi
        done
        ((left)) || return 0
        sleep 0.1
    done
    kill -KILL "$@" 2>/dev/null || true
}

# A mount that is listed but whose client died answers "Transport endpoint is not connected".
mount_answers() {
    t 10 stat -f "$1" >/dev/null 2>&1
}

is_glusterfs_mount() {
    # The topmost of the mounts stacked there.
    [[ $(findmnt -n -o FSTYPE --mountpoint "$1" 2>/dev/null | tail -n 1) == fuse.glusterfs ]]
}

# key=value lines of cluster.env, into the associative array CFG.
declare -A CFG=()
read_env() {
    local k v
    CFG=()
    [[ -r "$ENV_FILE" ]] || return 1
    while IFS='=' read -r k v; do
        [[ -n "$k" ]] && CFG[$k]=$v
    done <"$ENV_FILE"
    [[ -n "${CFG[hosts]:-}" ]]
}

# --- exec / rsh: running a command "on" a host ----------------------------------------------

# inside HOST CMD...: the second half of `exec`, already in HOST's network, UTS and (private)
# mount namespaces.
inside() {
    local host=$1
    shift
    hostname "$host"
    if [[ "$host" =~ ^h[1-9]$ ]]; then
        mount --bind "$MNT/$host" "$VOL" ||
            die "$host: cannot bind its client $MNT/$host on $VOL"
        is_glusterfs_mount "$VOL" ||
            die "$host: $VOL is not its GlusterFS client after the bind (is the cluster up?)"
    fi
    exec "$@"
}

run_on() {
    local host=$1 ns
    shift
    (($# > 0)) || die "exec $host: no command given"
    case "$host" in
        head) ns=$NS_HEAD ;;
        fs) ns=$NS_FS ;;
        h[1-9]) ns=$(host_ns "${host#h}") ;;
        *) die "unknown host '$host' (h1..h$MAX_HOSTS, head or fs)" ;;
    esac
    ns_exists "$ns" || die "host $host ($ns) does not exist: run 'cluster.sh up N' first"
    exec ip netns exec "$ns" unshare --uts --mount --propagation private -- \
        bash "$SELF" __inside "$host" "$@"
}

# --- up --------------------------------------------------------------------------------------

DID=()

make_ns() {
    local ns=$1
    if ! ns_exists "$ns"; then
        t 10 ip netns add "$ns" || die "ip netns add $ns failed"
        DID+=("$ns")
    fi
    t 10 ip -n "$ns" link set lo up || die "cannot bring up lo in $ns"
}

# attach NS PORT ADDR: a veth link from NS (eth0, ADDR/24) to the bridge (port PORT).
attach() {
    local ns=$1 port=$2 addr=$3
    if ! t 10 ip -n "$NS_BRIDGE" link show "$port" >/dev/null 2>&1; then
        # A half-made link (eth0 in NS without its bridge end) cannot exist: a veth pair lives
        # and dies as one. An eth0 left from something else would make the add fail below.
        t 10 ip -n "$NS_BRIDGE" link add "$port" type veth peer name eth0 netns "$ns" ||
            die "cannot create the veth link $NS_BRIDGE:$port <-> $ns:eth0"
    fi
    t 10 ip -n "$NS_BRIDGE" link set "$port" master br0 up || die "cannot attach $port to br0"
    t 10 ip -n "$ns" addr replace "$addr/24" dev eth0 || die "cannot set $addr/24 on $ns:eth0"
    t 10 ip -n "$ns" link set eth0 up || die "cannot bring up $ns:eth0"
    if [[ -n "$DELAY" ]]; then
        t 10 tc -n "$ns" qdisc replace dev eth0 root netem delay "$DELAY" ||
            die "tc netem delay $DELAY on $ns:eth0 failed (is the sch_netem module available?)"
    elif t 10 tc -n "$ns" qdisc show dev eth0 2>/dev/null | grep -q netem; then
        t 10 tc -n "$ns" qdisc del dev eth0 root || die "cannot remove the netem delay of $ns:eth0"
    fi
}

# tcp_open NS ADDR PORT: a TCP connection from NS to ADDR:PORT succeeds.
tcp_open() {
    t 3 ip netns exec "$1" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$2" "$3" 2>/dev/null
}

write_brick_volfile() {
    cat >"$STATE/brick.vol.new" <<EOF
# The brick of the cluster's volume, for a standalone glusterfsd (written by $PROG).
volume $NAME-posix
    type storage/posix
    option directory $BRICK
end-volume

volume $NAME-locks
    type features/locks
    subvolumes $NAME-posix
end-volume

volume $NAME-io-threads
    type performance/io-threads
    subvolumes $NAME-locks
end-volume

volume $BRICK_NAME
    type debug/io-stats
    subvolumes $NAME-io-threads
end-volume

volume $NAME-server
    type protocol/server
    option transport-type tcp
    option transport.address-family inet
    option transport.socket.bind-address $FS_ADDR
    option transport.socket.listen-port $BRICK_PORT
    option auth.addr.$BRICK_NAME.allow $SUBNET.*
    subvolumes $BRICK_NAME
end-volume
EOF
    mv "$STATE/brick.vol.new" "$STATE/brick.vol"
}

write_client_volfile() {
    cat >"$STATE/client.vol.new" <<EOF
# A FUSE client of the cluster's volume (written by $PROG): the brick is reached directly at
# its port (no glusterd, no portmapper), then GlusterFS 10's default client-side translators.
volume $NAME-client-0
    type protocol/client
    option transport-type tcp
    option transport.address-family inet
    option remote-host $FS_ADDR
    option remote-port $BRICK_PORT
    option remote-subvolume $BRICK_NAME
    option ping-timeout 42
end-volume

volume $NAME-write-behind
    type performance/write-behind
    subvolumes $NAME-client-0
end-volume

volume $NAME-open-behind
    type performance/open-behind
    subvolumes $NAME-write-behind
end-volume

volume $NAME-quick-read
    type performance/quick-read
    subvolumes $NAME-open-behind
end-volume

volume $NAME-md-cache
    type performance/md-cache
    subvolumes $NAME-quick-read
end-volume

volume $NAME-io-threads
    type performance/io-threads
    subvolumes $NAME-md-cache
end-volume

volume $NAME
    type debug/io-stats
    subvolumes $NAME-io-threads
end-volume
EOF
    mv "$STATE/client.vol.new" "$STATE/client.vol"
}

start_brick() {
    local pid i
    pid=$(pid_of "$STATE/brick.pid" || true)
    if [[ -n "$pid" ]] && alive "$pid" glusterfsd && tcp_open "$NS_HEAD" "$FS_ADDR" "$BRICK_PORT"; then
        return 0
    fi
    if [[ -n "$pid" ]] && alive "$pid" glusterfsd; then
        say "brick (pid $pid) does not answer on $FS_ADDR:$BRICK_PORT, restarting it ..."
        stop_pids "$pid"
    fi
    mkdir -p "$BRICK"
    write_brick_volfile
    rm -f "$STATE/brick.pid"
    t 30 ip netns exec "$NS_FS" glusterfsd -f "$STATE/brick.vol" -p "$STATE/brick.pid" \
        -l "$STATE/brick.log" --process-name brick </dev/null >>"$STATE/brick.out" 2>&1 9<&- ||
        die "glusterfsd did not start in $NS_FS (see $STATE/brick.log)"
    for ((i = 0; i < 150; i++)); do
        pid=$(pid_of "$STATE/brick.pid" || true)
        if [[ -n "$pid" ]] && alive "$pid" glusterfsd && tcp_open "$NS_HEAD" "$FS_ADDR" "$BRICK_PORT"; then
            DID+=("brick pid $pid")
            return 0
        fi
        sleep 0.1
    done
    die "the brick does not answer on $FS_ADDR:$BRICK_PORT from $NS_HEAD after 15 s (see $STATE/brick.log)"
}

start_client() {
    local k=$1 ns mnt pidf pid i
    ns=$(host_ns "$k")
    mnt=$MNT/h$k
    pidf=$STATE/client-h$k.pid
    pid=$(pid_of "$pidf" || true)
    mkdir -p "$mnt"
    if mountpoint -q "$mnt"; then
        if is_glusterfs_mount "$mnt" && [[ -n "$pid" ]] && alive "$pid" glusterfs && mount_answers "$mnt"; then
            return 0
        fi
        say "client of h$k at $mnt is dead or foreign, remounting ..."
        t 10 umount "$mnt" 2>/dev/null || t 10 umount -l "$mnt" || die "cannot unmount $mnt"
    fi
    if [[ -n "$pid" ]] && alive "$pid" glusterfs; then
        stop_pids "$pid"
    fi
    rm -f "$pidf"
    t 60 nsenter --net="/run/netns/$ns" glusterfs -f "$STATE/client.vol" -p "$pidf" \
        -l "$STATE/client-h$k.log" --process-name fuse "$mnt" </dev/null >>"$STATE/client-h$k.out" 2>&1 9<&- ||
        die "the GlusterFS client of h$k did not start (see $STATE/client-h$k.log)"
    for ((i = 0; i < 200; i++)); do
        pid=$(pid_of "$pidf" || true)
        if [[ -n "$pid" ]] && alive "$pid" glusterfs && is_glusterfs_mount "$mnt" && mount_answers "$mnt"; then
            DID+=("client h$k pid $pid")
            return 0
        fi
        sleep 0.1
    done
    die "the GlusterFS client of h$k is not mounted at $mnt after 20 s (see $STATE/client-h$k.log)"
}

write_hostfiles() {
    local k j
    for ((k = 1; k <= $1; k++)); do
        for ((j = 1; j <= k; j++)); do
            echo "h$j slots=$SLOTS"
        done >"$STATE/hostfile-$k"
    done
}

up() {
    local n=$1 k netns_made=0
    [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 2 && n <= MAX_HOSTS)) || die "up N: N must be 2..$MAX_HOSTS, not '$n'"
    need_root
    need_commands
    [[ -c /dev/fuse ]] || die "no FUSE: /dev/fuse is missing (a container needs --device /dev/fuse)"
    if read_env && [[ "${CFG[hosts]}" != "$n" ]]; then
        die "a cluster of ${CFG[hosts]} hosts is up in $ROOT; run 'cluster.sh down' first"
    fi
    for ns in $(our_namespaces); do
        if [[ "$ns" =~ ^$NAME-h([1-9])$ ]] && ((BASH_REMATCH[1] > n)); then
            die "namespace $ns exists (a larger cluster, half removed?); run 'cluster.sh down' first"
        fi
    done
    [[ -d /run/netns ]] || netns_made=1
    mkdir -p "$STATE" "$MNT" "$VOL"
    # Whether /run/netns is ours to remove at `down` (recorded once, by the first `up`).
    if ((netns_made)) && [[ ! -e "$STATE/run-netns-made" ]]; then
        touch "$STATE/run-netns-made"
    fi

    make_ns "$NS_BRIDGE"
    if ! t 10 ip -n "$NS_BRIDGE" link show br0 >/dev/null 2>&1; then
        t 10 ip -n "$NS_BRIDGE" link add br0 type bridge forward_delay 0 stp_state 0 ||
            die "cannot create the bridge br0 in $NS_BRIDGE"
    fi
    t 10 ip -n "$NS_BRIDGE" link set br0 up || die "cannot bring up br0 in $NS_BRIDGE"
    make_ns "$NS_HEAD"
    attach "$NS_HEAD" v-head "$HEAD_ADDR"
    make_ns "$NS_FS"
    attach "$NS_FS" v-fs "$FS_ADDR"
    for ((k = 1; k <= n; k++)); do
        make_ns "$(host_ns "$k")"
        attach "$(host_ns "$k")" "v-h$k" "$SUBNET.$k"
    done

    write_client_volfile
    start_brick
    for ((k = 1; k <= n; k++)); do
        start_client "$k"
    done
    # Like /tmp: every user may create files, only the owner removes them.
    chmod 1777 "$MNT/h1" || die "cannot chmod the volume root through $MNT/h1"
    # Every host reaches the server (its own client proves it) and the launcher reaches every
    # host (mpirun's daemons connect back to it): one TCP probe per host against the brick.
    for ((k = 1; k <= n; k++)); do
        tcp_open "$(host_ns "$k")" "$FS_ADDR" "$BRICK_PORT" ||
            die "h$k ($SUBNET.$k) cannot reach the server $FS_ADDR:$BRICK_PORT"
    done
    # Outside the cluster the shared path is an empty read-only file system, so that a job
    # started without cluster-mpirun fails (EROFS) instead of writing to the local disk.
    if ! mountpoint -q "$VOL"; then
        t 10 mount -t tmpfs -o ro,size=4k,mode=0555 "$NAME-outside-the-cluster" "$VOL" ||
            die "cannot mount the read-only placeholder on $VOL"
    fi
    write_hostfiles "$n"
    {
        echo "hosts=$n"
        echo "name=$NAME"
        echo "subnet=$SUBNET.0/24"
        echo "head=$HEAD_ADDR"
        echo "server=$FS_ADDR:$BRICK_PORT"
        echo "vol=$VOL"
        echo "mnt=$MNT"
        echo "delay=$DELAY"
        echo "agent=$SELF"
    } >"$ENV_FILE.new"
    mv "$ENV_FILE.new" "$ENV_FILE"

    local what="all present"
    if ((${#DID[@]} > 0)); then
        what="made ${DID[*]}"
    fi
    say "up: $n hosts on $SUBNET.0/24${DELAY:+ (netem delay $DELAY each way)}, server $FS_ADDR:$BRICK_PORT, shared path $VOL ($what) in $(elapsed)"
    echo "$VOL"
}

# --- status ----------------------------------------------------------------------------------

status() {
    local ok=1 n k pid ns
    if ! read_env; then
        say "down: no cluster state in $ROOT"
        local left
        left=$(our_namespaces | tr '\n' ' ')
        [[ -z "$left" ]] || say "left over: namespaces $left(run 'cluster.sh down')"
        exit 1
    fi
    n=${CFG[hosts]}
    echo "cluster: $n hosts, subnet ${CFG[subnet]}, shared path ${CFG[vol]}${CFG[delay]:+, netem delay ${CFG[delay]}}"
    for ns in "$NS_BRIDGE" "$NS_HEAD" "$NS_FS"; do
        if ns_exists "$ns"; then echo "namespace $ns: present"; else
            echo "namespace $ns: MISSING"
            ok=0
        fi
    done
    pid=$(pid_of "$STATE/brick.pid" || true)
    if [[ -n "$pid" ]] && alive "$pid" glusterfsd && tcp_open "$NS_HEAD" "$FS_ADDR" "$BRICK_PORT"; then
        echo "brick: pid $pid, answering on $FS_ADDR:$BRICK_PORT"
    else
        echo "brick: NOT answering on $FS_ADDR:$BRICK_PORT"
        ok=0
    fi
    if mountpoint -q "$VOL"; then
        echo "shared path $VOL: read-only placeholder outside the cluster, a host's client inside"
    else
        echo "shared path $VOL: placeholder NOT mounted"
        ok=0
    fi
    for ((k = 1; k <= n; k++)); do
        ns=$(host_ns "$k")
        pid=$(pid_of "$STATE/client-h$k.pid" || true)
        if ns_exists "$ns" && [[ -n "$pid" ]] && alive "$pid" glusterfs &&
            is_glusterfs_mount "$MNT/h$k" && mount_answers "$MNT/h$k"; then
            echo "host h$k: namespace $ns, $SUBNET.$k, client pid $pid mounted at $MNT/h$k"
        else
            echo "host h$k: NOT up (namespace $ns, client ${pid:-none}, mount $MNT/h$k)"
            ok=0
        fi
    done
    ((ok)) || exit 1
}

# --- down ------------------------------------------------------------------------------------

down() {
    need_root
    local mounts=() pids=() m f pid ns inner removed=() run_netns_ours=0
    [[ -e "$STATE/run-netns-made" ]] && run_netns_ours=1
    # 1. the mounts under ROOT (deepest first)
    mapfile -t mounts < <(findmnt -rn -o TARGET 2>/dev/null | awk -v r="$ROOT/" 'index($0, r) == 1' | sort -r)
    for m in "${mounts[@]}"; do
        t 10 umount "$m" 2>/dev/null || t 10 umount -l "$m" || die "cannot unmount $m"
        removed+=("mount $m")
    done
    # 2. the processes we started, by their recorded pids
    for f in "$STATE"/brick.pid "$STATE"/client-h*.pid; do
        [[ -e "$f" ]] || continue
        pid=$(pid_of "$f" || true)
        if [[ -n "$pid" ]] && { alive "$pid" glusterfs || alive "$pid" glusterfsd; }; then
            pids+=("$pid")
        fi
    done
    stop_pids "${pids[@]}"
    ((${#pids[@]} == 0)) || removed+=("processes ${pids[*]}")
    # 3. anything still running inside the cluster's namespaces (an orphaned rank, say)
    for ns in $(our_namespaces); do
        mapfile -t inner < <(t 10 ip netns pids "$ns" 2>/dev/null || true)
        if ((${#inner[@]} > 0)); then
            stop_pids "${inner[@]}"
            removed+=("${#inner[@]} process(es) left in $ns")
        fi
    done
    # 4. the namespaces: with them go the bridge and every veth link
    for ns in $(our_namespaces); do
        t 10 ip netns delete "$ns" || die "ip netns delete $ns failed"
        removed+=("$ns")
    done
    # 5. the directory
    if [[ -e "$ROOT" ]]; then
        [[ -z $(findmnt -rn -o TARGET | awk -v r="$ROOT" 'index($0, r) == 1') ]] ||
            die "something is still mounted under $ROOT; not removing it"
        rm -rf --one-file-system "$ROOT"
        removed+=("$ROOT")
    fi
    # 6. /run/netns, if we made it and nothing else lives there
    if ((run_netns_ours)) && [[ -d /run/netns ]] && [[ -z $(ls -A /run/netns) ]]; then
        while mountpoint -q /run/netns; do
            t 10 umount /run/netns || break
        done
        rmdir /run/netns 2>/dev/null && removed+=("/run/netns")
    fi
    if ((${#removed[@]} == 0)); then
        say "down: nothing to remove in $(elapsed)"
    else
        say "down: removed ${removed[*]} in $(elapsed)"
    fi
}

# --- main ------------------------------------------------------------------------------------

cmd=${1:-}
case "$cmd" in
    up | down)
        want=1
        [[ "$cmd" == up ]] && want=2
        (($# == want)) || die "usage: cluster.sh up N | down | status (try --help)"
        need_root
        # One up/down at a time (locking this script's own file leaves nothing behind).
        exec 9<"$SELF"
        flock -w 120 9 || die "another 'cluster.sh up/down' has run for 120 s"
        if [[ "$cmd" == up ]]; then up "$2"; else down; fi
        ;;
    status) status ;;
    exec)
        (($# >= 3)) || die "usage: cluster.sh exec HOST CMD [ARGS...]"
        shift
        run_on "$@"
        ;;
    rsh)
        # Open MPI calls its agent as `AGENT [options] HOST COMMAND...`, the command meant for a
        # remote shell.
        shift
        while [[ "${1:-}" == -* ]]; do shift; done
        (($# >= 2)) || die "rsh: usage: cluster.sh rsh HOST COMMAND..."
        host=$1
        shift
        run_on "$host" /bin/sh -c "$*"
        ;;
    __inside)
        shift
        inside "$@"
        ;;
    -h | --help) usage ;;
    *) die "usage: cluster.sh up N | down | status | exec HOST CMD... (try --help)" ;;
esac
