#!/usr/bin/env bash
# A real GlusterFS volume on this machine, for comparing brlock with fcntl locks on a
# distributed file system: one brick on this host, mounted at TWO mount points (two
# independent FUSE clients, like two compute nodes).
#
# Usage: scripts/gluster.sh up|down|status
#   up       installs glusterfs-server and glusterfs-client if missing (apt-get; `apt-get
#            update` only then), starts glusterd if it is not running (directly; no systemd
#            needed), creates and starts the volume, mounts it twice. Idempotent: with
#            everything up it only looks, in well under a second. The LAST TWO lines of its
#            stdout are the two mount paths; progress goes to stderr.
#   down     unmounts both mounts (lazily if busy), stops and deletes the volume, removes the
#            brick, stops glusterd if this script started it and no other volume is left.
#            Leaves the packages installed. Idempotent.
#   status   one line per component; exit 0 if everything is up, 1 otherwise.
# Every wait is bounded (gluster CLI calls, glusterd start, mounts, unmounts); a failure
# prints one line "gluster.sh: <reason>" on stderr and exits non-zero.
#
# Environment:
#   BRLOCK_GLUSTER_VOLUME  volume name (default brlock)
#   BRLOCK_GLUSTER_ROOT    directory this script owns for brick, mounts and state. Default:
#                          brick and state under /var/lib/brlock-gluster, mounts
#                          /mnt/brlock-gluster/a and /b. When set: ROOT/brick, ROOT/state,
#                          ROOT/mnt/a, ROOT/mnt/b.
#   BRLOCK_GLUSTER_HOST    host name of the brick (default: `uname -n`; it must resolve to an
#                          address of this machine; gluster refuses "localhost")
#
# Caching is left at GlusterFS 10's defaults on purpose: the benchmarks must see the file
# system as users get it. On the client side that means performance.write-behind,
# quick-read, open-behind, stat-prefetch (md-cache, 1 s) and client-io-threads on;
# io-cache, read-ahead, readdir-ahead and nl-cache off; FUSE attribute/entry timeouts 1 s
# and the kernel page cache kept across opens. Consequences measured on this volume (bytes
# written and fsync'ed through mount a, then read through mount b):
#   - a plain read through b returns the old bytes (20 of 20 tries);
#   - POSIX_FADV_DONTNEED on the range, or an O_DIRECT read, returns the new bytes, except
#     for a small file (4 KiB) opened through b less than ~1 s earlier: quick-read serves it
#     from its own cache (qr-cache-timeout 1 s) whatever the flags;
#   - taking and dropping an fcntl lock through b before reading did NOT refresh it
#     (16-20 of 20 stale), unlike the measurement in the shared environment notes.
# Locks are coherent: an fcntl lock taken through a is refused through b.
# The volume root is made world-writable with the sticky bit (like /tmp) so non-root ranks
# can create files. Nothing needs rpcbind (GlusterFS's own NFS server is off by default).
set -euo pipefail

PROG=gluster.sh
PACKAGES=(glusterfs-server glusterfs-client)
VOLUME=${BRLOCK_GLUSTER_VOLUME:-brlock}
if [[ -n "${BRLOCK_GLUSTER_ROOT:-}" ]]; then
    ROOT=$BRLOCK_GLUSTER_ROOT
    MOUNT_ROOT=$ROOT/mnt
else
    ROOT=/var/lib/brlock-gluster
    MOUNT_ROOT=/mnt/brlock-gluster
fi
BRICK=$ROOT/brick
STATE=$ROOT/state
MOUNTS=("$MOUNT_ROOT/a" "$MOUNT_ROOT/b")
HOST=${BRLOCK_GLUSTER_HOST:-$(uname -n)}
# Shared by every volume this script manages (glusterd is one per machine); /run is emptied
# at boot, exactly when a glusterd we started stops existing.
RUN_DIR=/run/brlock-gluster
STARTED_MARK=$RUN_DIR/glusterd-started-by-script
GLUSTERD_PIDFILE=$RUN_DIR/glusterd.pid

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

# What this run changed, for the one-line summary.
DID=()

summary() {
    if ((${#DID[@]} == 0)); then
        echo "$1"
        return
    fi
    local joined
    joined=$(
        IFS=';'
        echo "${DID[*]}"
    )
    echo "${joined//;/; }"
}

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

# --- checks of the configuration ----------------------------------------------------------
[[ "$VOLUME" =~ ^[A-Za-z0-9_-]{1,64}$ ]] ||
    die "BRLOCK_GLUSTER_VOLUME='$VOLUME' is not a valid volume name (letters, digits, _ and -)"
[[ "$ROOT" == /* && "$ROOT" =~ ^[A-Za-z0-9_./-]+$ && "$ROOT" != / ]] ||
    die "BRLOCK_GLUSTER_ROOT='$ROOT' must be an absolute path of letters, digits, '_', '.', '-' and '/'"

# --- small helpers --------------------------------------------------------------------------

# gl SECONDS ARGS...: one gluster CLI call, never prompting, killed after SECONDS.
gl() {
    local secs=$1
    shift
    timeout -k 5 "$secs" gluster --mode=script "$@" </dev/null
}

packages_missing() {
    local pkg st probe
    local -A status=()
    while read -r pkg st; do
        status[$pkg]=$st
    done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)
    for pkg in "${PACKAGES[@]}"; do
        case "$pkg" in
            glusterfs-server) probe=/usr/sbin/glusterd ;;
            glusterfs-client) probe=/sbin/mount.glusterfs ;;
            *) probe=/nonexistent ;;
        esac
        if [[ "${status[$pkg]:-}" != "ii" || ! -x "$probe" ]]; then
            echo "$pkg"
        fi
    done
}

# PIDs of live glusterd processes (scans /proc without forking per process). Zombies do not
# count: PID 1 of a container may be slow to reap a daemon that exited.
glusterd_pids() {
    local d comm state
    for d in /proc/[0-9]*; do
        { read -r comm <"$d/comm"; } 2>/dev/null || continue
        [[ "$comm" == glusterd ]] || continue
        { read -r _ _ state _ <"$d/stat"; } 2>/dev/null || continue
        if [[ "$state" != Z && "$state" != X ]]; then
            echo "${d#/proc/}"
        fi
    done
}

glusterd_answers() {
    gl 10 volume list >/dev/null 2>&1
}

# "Started", "Created", "Stopped", or empty when the volume does not exist.
volume_state() {
    local info
    info=$(gl 15 volume info "$VOLUME" 2>/dev/null) || return 0
    sed -n 's/^Status: *//p' <<<"$info"
}

volume_brick() {
    local info
    info=$(gl 15 volume info "$VOLUME" 2>/dev/null) || return 0
    sed -n 's/^Brick1: *//p' <<<"$info"
}

# True when the brick process of our volume is online.
brick_online() {
    local xml
    xml=$(gl 15 volume status "$VOLUME" --xml 2>/dev/null) || return 1
    awk -v path="<path>$BRICK</path>" 'BEGIN { RS = "</node>"; found = 0 }
        index($0, path) && index($0, "<status>1</status>") { found = 1 }
        END { exit !found }' <<<"$xml"
}

# The /proc/mounts file system type at PATH, or empty if nothing is mounted there.
mount_type() {
    awk -v p="$1" '$2 == p { t = $3 } END { print t }' /proc/mounts
}

mount_source() {
    awk -v p="$1" '$2 == p { s = $1 } END { print s }' /proc/mounts
}

# A mount that is listed but whose client died answers "Transport endpoint is not connected";
# a hung one does not answer at all.
mount_answers() {
    timeout -k 2 10 stat -f "$1" >/dev/null 2>&1
}

# wait_for SECONDS COMMAND...: retry COMMAND every 0.5 s until it succeeds or time is up.
# True when a GlusterFS FUSE client process serves mount point $1.
mount_client_alive() {
    local d comm args
    for d in /proc/[0-9]*; do
        { read -r comm <"$d/comm"; } 2>/dev/null || continue
        [[ "$comm" == glusterfs ]] || continue
        mapfile -d '' args <"$d/cmdline" 2>/dev/null || continue
        if ((${#args[@]} > 0)) && [[ "${args[-1]}" == "$1" ]]; then
            return 0
        fi
    done
    return 1
}

wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# Root is needed for everything but `status`. With passwordless sudo, re-run under it.
need_root() {
    [[ $(id -u) -eq 0 ]] && return 0
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        exec sudo -n env BRLOCK_GLUSTER_VOLUME="$VOLUME" BRLOCK_GLUSTER_ROOT="${BRLOCK_GLUSTER_ROOT:-}" \
            BRLOCK_GLUSTER_HOST="$HOST" "$0" "$@"
    fi
    local missing
    missing=$(packages_missing | tr '\n' ' ')
    echo "$PROG: not root and no passwordless sudo; please run:" >&2
    if [[ -n "$missing" && "$1" == up ]]; then
        echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing% }" >&2
    fi
    echo "    sudo $0 $*" >&2
    exit 1
}

# One `up` or `down` at a time on this machine (they share glusterd).
take_lock() {
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/lock"
    flock -w 300 9 || die "another 'gluster.sh up/down' has held $RUN_DIR/lock for 300 s"
}

# --- up -------------------------------------------------------------------------------------

install_packages() {
    local missing=("$@")
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available"
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/brlock-gluster-apt.XXXXXX")
    local apt_opts=(-y -qq -o DPkg::Lock::Timeout=300)
    say "installing ${missing[*]} (apt log: $log) ..."
    local attempt
    # fd 9 (our lock) is closed for apt: a postinst may start a daemon that would keep it.
    for attempt in 1 2 3; do
        if timeout 900 env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update >>"$log" 2>&1 9>&- &&
            timeout 900 env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" \
                install --no-install-recommends "${missing[@]}" </dev/null >>"$log" 2>&1 9>&-; then
            return 0
        fi
        say "apt-get failed (attempt $attempt of 3)"
        sleep $((attempt * 5))
    done
    tail -n 30 "$log" >&2
    die "could not install ${missing[*]} (full log: $log)"
}

check_fuse() {
    if [[ ! -c /dev/fuse ]] || ! grep -qw fuse /proc/filesystems; then
        if command -v modprobe >/dev/null 2>&1; then
            timeout 10 modprobe fuse >/dev/null 2>&1 || true
        fi
    fi
    [[ -c /dev/fuse ]] || die "no FUSE: /dev/fuse is missing (a container needs --device /dev/fuse), cannot mount GlusterFS"
    grep -qw fuse /proc/filesystems || die "no FUSE: the kernel does not list 'fuse' in /proc/filesystems (modprobe fuse failed)"
}

check_host() {
    local addr
    [[ "$HOST" != localhost && "$HOST" != localhost.* ]] ||
        die "host name is '$HOST'; gluster refuses localhost bricks, set BRLOCK_GLUSTER_HOST to this machine's name"
    addr=$(getent hosts "$HOST" | awk 'NR == 1 { print $1 }') ||
        true
    [[ -n "$addr" ]] ||
        die "host name '$HOST' does not resolve; add '127.0.1.1 $HOST' to /etc/hosts or set BRLOCK_GLUSTER_HOST"
}

start_glusterd() {
    local pids
    pids=$(glusterd_pids)
    if [[ -z "$pids" ]]; then
        mkdir -p /var/log/glusterfs "$STATE"
        say "starting glusterd ..."
        # glusterd daemonizes itself; it must not inherit our stdout (a caller reading it
        # would wait forever) nor the lock on fd 9.
        if ! timeout -k 5 30 setsid glusterd -p "$GLUSTERD_PIDFILE" </dev/null >>"$STATE/glusterd.out" 2>&1 9>&-; then
            die "glusterd did not start (see /var/log/glusterfs/glusterd.log and $STATE/glusterd.out)"
        fi
        pids=$(glusterd_pids)
        [[ -n "$pids" ]] || die "glusterd exited right after starting (see /var/log/glusterfs/glusterd.log)"
        echo "$pids" >"$STARTED_MARK"
        DID+=("started glusterd")
    fi
    wait_for 30 glusterd_answers ||
        die "glusterd (pid $(echo "$pids" | tr '\n' ' ')) does not answer 'gluster volume list' after 30 s (see /var/log/glusterfs/glusterd.log)"
}

ensure_volume() {
    local state brick out
    state=$(volume_state)
    if [[ -n "$state" ]]; then
        brick=$(volume_brick)
        [[ "$brick" == "$HOST:$BRICK" ]] ||
            die "volume '$VOLUME' already exists with brick '$brick', not '$HOST:$BRICK'; run 'down' with its settings or choose another BRLOCK_GLUSTER_VOLUME"
    else
        # A brick directory left by a volume that no longer exists carries that volume's id
        # and gluster refuses to reuse it; it is ours (under ROOT), so start afresh.
        if [[ -d "$BRICK" ]]; then
            if [[ -d "$BRICK/.glusterfs" || -z "$(ls -A "$BRICK")" ]]; then
                rm -rf "$BRICK"
            else
                die "$BRICK exists and is not a brick; move it away or choose another BRLOCK_GLUSTER_ROOT"
            fi
        fi
        mkdir -p "$BRICK"
        say "creating volume $VOLUME on $HOST:$BRICK ..."
        # `force`: gluster otherwise refuses a brick on the root file system.
        out=$(gl 60 volume create "$VOLUME" "$HOST:$BRICK" force 2>&1) ||
            die "volume create $VOLUME $HOST:$BRICK failed: $(echo "$out" | tr '\n' ' ')"
        DID+=("created volume $VOLUME")
        state=Created
    fi
    if [[ "$state" != Started ]]; then
        say "starting volume $VOLUME ..."
        out=$(gl 60 volume start "$VOLUME" 2>&1) || die "volume start $VOLUME failed: $(echo "$out" | tr '\n' ' ')"
        DID+=("started volume $VOLUME")
    fi
    if ! brick_online; then
        # Started but the brick process is gone (killed, or glusterd restarted): restart it.
        if [[ "$state" == Started ]]; then
            say "brick of $VOLUME is offline, restarting it ..."
            out=$(gl 60 volume start "$VOLUME" force 2>&1) ||
                die "volume start $VOLUME force failed: $(echo "$out" | tr '\n' ' ')"
            DID+=("restarted the brick")
        fi
        wait_for 30 brick_online ||
            die "the brick process of $VOLUME ($HOST:$BRICK) is not online after 30 s (see /var/log/glusterfs/bricks/)"
    fi
}

ensure_mount() {
    local mnt=$1 name=$2 type source
    type=$(mount_type "$mnt")
    source=$(mount_source "$mnt")
    if [[ "$type" == fuse.glusterfs && "$source" == "$HOST:/$VOLUME" ]]; then
        if mount_answers "$mnt"; then
            return 0
        fi
        # A live client reconnects by itself (every 3 s) once the brick is back.
        if mount_client_alive "$mnt"; then
            say "mount $mnt does not answer yet, waiting up to 15 s for its client to reconnect ..."
            if wait_for 15 mount_answers "$mnt"; then
                return 0
            fi
        fi
        say "mount $mnt does not answer (its client died or hangs), remounting ..."
        timeout -k 2 10 umount -l "$mnt" || die "cannot unmount the dead mount $mnt"
        DID+=("detached dead mount $mnt")
    elif [[ -n "$type" ]]; then
        die "$mnt already has a '$type' mount of '$source'; unmount it or choose another BRLOCK_GLUSTER_ROOT"
    fi
    mkdir -p "$mnt"
    say "mounting $HOST:/$VOLUME at $mnt ..."
    if ! timeout -k 5 60 mount -t glusterfs -o "log-file=$STATE/mount-$name.log" \
        "$HOST:/$VOLUME" "$mnt" </dev/null >>"$STATE/mount-$name.out" 2>&1 9>&-; then
        tail -n 5 "$STATE/mount-$name.log" >&2 2>/dev/null || true
        die "mount -t glusterfs $HOST:/$VOLUME $mnt failed (see $STATE/mount-$name.log)"
    fi
    [[ "$(mount_type "$mnt")" == fuse.glusterfs ]] ||
        die "mount of $mnt returned success but /proc/mounts shows no fuse.glusterfs there"
    mount_answers "$mnt" || die "the new mount $mnt does not answer (see $STATE/mount-$name.log)"
    DID+=("mounted $mnt")
}

# Everything up and answering, checked with one gluster CLI call (the idempotent fast path).
already_up() {
    local mnt
    [[ -z "$(packages_missing)" && -n "$(glusterd_pids)" ]] || return 1
    for mnt in "${MOUNTS[@]}"; do
        [[ "$(mount_type "$mnt")" == fuse.glusterfs && "$(mount_source "$mnt")" == "$HOST:/$VOLUME" ]] || return 1
        mount_answers "$mnt" || return 1
    done
    brick_online
}

cmd_up() {
    need_root up
    take_lock
    if already_up; then
        echo "gluster: already up: volume $VOLUME ($HOST:$BRICK) in $(elapsed)"
        printf '%s\n' "${MOUNTS[@]}"
        return 0
    fi
    local missing=()
    mapfile -t missing < <(packages_missing)
    if ((${#missing[@]} > 0)); then
        install_packages "${missing[@]}"
        DID+=("installed ${missing[*]}")
        # A package's postinst may have started glusterd (when no policy-rc.d forbids it);
        # it was not running before, so it is ours to stop.
        local pids
        pids=$(glusterd_pids)
        if [[ -n "$pids" ]]; then
            mkdir -p "$RUN_DIR"
            echo "$pids" >"$STARTED_MARK"
        fi
    fi
    check_fuse
    check_host
    mkdir -p "$STATE"
    start_glusterd
    ensure_volume
    ensure_mount "${MOUNTS[0]}" a
    ensure_mount "${MOUNTS[1]}" b
    # Let non-root processes (MPI ranks) create files, like /tmp.
    if [[ "$(timeout -k 2 10 stat -c %a "${MOUNTS[0]}")" != 1777 ]]; then
        timeout -k 2 10 chmod 1777 "${MOUNTS[0]}" || die "cannot chmod the volume root through ${MOUNTS[0]}"
    fi
    echo "gluster: $(summary "already up"): volume $VOLUME ($HOST:$BRICK, $(dpkg-query -W -f='${Version}' glusterfs-server)) in $(elapsed)"
    printf '%s\n' "${MOUNTS[@]}"
}

# --- down -----------------------------------------------------------------------------------

unmount_one() {
    local mnt=$1 type
    type=$(mount_type "$mnt")
    [[ -n "$type" ]] || return 0
    if [[ "$type" != fuse.glusterfs ]]; then
        say "leaving $mnt alone: it is a '$type' mount, not GlusterFS"
        return 0
    fi
    if ! timeout -k 2 20 umount "$mnt" 2>/dev/null; then
        say "umount $mnt failed (busy or hung), detaching it lazily"
        timeout -k 2 10 umount -l "$mnt" || die "cannot unmount $mnt even lazily"
    fi
}

stop_glusterd_if_ours() {
    [[ -f "$STARTED_MARK" ]] || return 0
    local ours pids pid left
    ours=$(tr '\n' ' ' <"$STARTED_MARK")
    pids=$(glusterd_pids)
    if [[ -z "$pids" ]]; then
        rm -f "$STARTED_MARK"
        return 0
    fi
    for pid in $pids; do
        [[ " $ours " == *" $pid "* ]] || {
            say "glusterd (pid $pid) was not started by this script; leaving it running"
            rm -f "$STARTED_MARK"
            return 0
        }
    done
    left=$(gl 10 volume list 2>/dev/null | grep -v '^No volumes present' || true)
    if [[ -n "$left" ]]; then
        say "leaving glusterd running: other volumes remain ($(echo "$left" | paste -sd " " -))"
        return 0
    fi
    say "stopping glusterd (pid $pids) ..."
    # shellcheck disable=SC2086 # one or more pids, split on purpose
    kill -TERM $pids 2>/dev/null || true
    wait_for 15 glusterd_gone || {
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        wait_for 5 glusterd_gone || die "glusterd (pid $pids) does not stop"
    }
    rm -f "$STARTED_MARK" "$GLUSTERD_PIDFILE"
    DID+=("stopped glusterd")
}

glusterd_gone() {
    [[ -z "$(glusterd_pids)" ]]
}

cmd_down() {
    need_root down
    take_lock
    local mnt
    for mnt in "${MOUNTS[@]}"; do
        if [[ "$(mount_type "$mnt")" == fuse.glusterfs ]]; then
            unmount_one "$mnt"
            DID+=("unmounted $mnt")
        fi
        rmdir "$mnt" 2>/dev/null || true
    done
    rmdir "$MOUNT_ROOT" 2>/dev/null || true
    if command -v gluster >/dev/null 2>&1; then
        # A volume known to glusterd's store while glusterd is down (after a crash or a
        # reboot) can only be deleted through glusterd: start it for that.
        if [[ -z "$(glusterd_pids)" && -d "/var/lib/glusterd/vols/$VOLUME" ]]; then
            mkdir -p "$RUN_DIR"
            start_glusterd
        fi
        if [[ -n "$(glusterd_pids)" ]]; then
            glusterd_answers || die "glusterd is running but does not answer 'gluster volume list'"
            local state out
            state=$(volume_state)
            if [[ "$state" == Started ]]; then
                say "stopping volume $VOLUME ..."
                out=$(gl 60 volume stop "$VOLUME" 2>&1) ||
                    out=$(gl 60 volume stop "$VOLUME" force 2>&1) ||
                    die "volume stop $VOLUME failed: $(echo "$out" | tr '\n' ' ')"
            fi
            if [[ -n "$state" ]]; then
                out=$(gl 60 volume delete "$VOLUME" 2>&1) ||
                    die "volume delete $VOLUME failed: $(echo "$out" | tr '\n' ' ')"
                DID+=("deleted volume $VOLUME")
            fi
        fi
        stop_glusterd_if_ours
    fi
    if [[ -d "$BRICK" ]]; then
        rm -rf "$BRICK"
        DID+=("removed $BRICK")
    fi
    echo "gluster: $(summary "already down") (packages left installed) in $(elapsed)"
}

# --- status ---------------------------------------------------------------------------------

cmd_status() {
    local ok=1 missing pids state mnt type source
    missing=$(packages_missing | tr '\n' ' ')
    if [[ -z "$missing" ]]; then
        echo "packages: installed (glusterfs $(dpkg-query -W -f='${Version}' glusterfs-server))"
    else
        echo "packages: missing ${missing% }"
        ok=0
    fi
    pids=$(glusterd_pids | tr '\n' ' ')
    if [[ -z "$pids" ]]; then
        echo "glusterd: not running"
        ok=0
    elif [[ $(id -u) -ne 0 ]]; then
        echo "glusterd: running (pid ${pids% }); volume state needs root to query"
        ok=0
    elif ! glusterd_answers; then
        echo "glusterd: running (pid ${pids% }) but does not answer the gluster CLI"
        ok=0
    else
        local by=""
        [[ -f "$STARTED_MARK" ]] && by=", started by this script"
        echo "glusterd: running (pid ${pids% }${by})"
        state=$(volume_state)
        if [[ -z "$state" ]]; then
            echo "volume $VOLUME: does not exist"
            ok=0
        elif [[ "$state" != Started ]]; then
            echo "volume $VOLUME: $state ($(volume_brick))"
            ok=0
        elif ! brick_online; then
            echo "volume $VOLUME: Started but its brick $(volume_brick) is offline"
            ok=0
        else
            echo "volume $VOLUME: Started, brick $(volume_brick) online"
        fi
    fi
    for mnt in "${MOUNTS[@]}"; do
        type=$(mount_type "$mnt")
        source=$(mount_source "$mnt")
        if [[ -z "$type" ]]; then
            echo "mount $mnt: not mounted"
            ok=0
        elif [[ "$type" != fuse.glusterfs || "$source" != "$HOST:/$VOLUME" ]]; then
            echo "mount $mnt: wrong: '$type' of '$source' (want fuse.glusterfs of $HOST:/$VOLUME)"
            ok=0
        elif ! mount_answers "$mnt"; then
            echo "mount $mnt: fuse.glusterfs of $source but does not answer (client dead or hung)"
            ok=0
        else
            echo "mount $mnt: fuse.glusterfs of $source"
        fi
    done
    if ((ok)); then
        echo "status: up"
        return 0
    fi
    echo "status: not (fully) up"
    return 1
}

# --- main -----------------------------------------------------------------------------------
case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    -h | --help) usage ;;
    "")
        usage >&2
        exit 2
        ;;
    *)
        echo "$PROG: unknown command '$1' (try --help)" >&2
        exit 2
        ;;
esac
