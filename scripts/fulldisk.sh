#!/usr/bin/env bash
# A full disk for the failure tests: a 2 MiB tmpfs, filled to the last block.
#
#   scripts/fulldisk.sh up [DIR [FREE]]   mount (if needed) and fill, leaving FREE bytes
#                                        (default 0) free; prints DIR
#   scripts/fulldisk.sh down [DIR]        unmount
#
# DIR defaults to /tmp/brlock-full. The tmpfs is 2 MiB plus FREE. Idempotent: `up` on a
# mounted DIR removes what tests left there and fills it again. Needs root (mount); on failure it exits non-zero with one
# line saying why, so that a test needing the full disk fails instead of being skipped.
set -euo pipefail

die() {
    echo "fulldisk.sh: $*" >&2
    exit 1
}

cmd=${1:-}
dir=${2:-/tmp/brlock-full}
free=${3:-0}
[[ "$free" =~ ^[0-9]+$ ]] || die "FREE must be a number of bytes, not $free"

case "$cmd" in
    up)
        mkdir -p "$dir" || die "cannot create $dir"
        size=$(((2 << 20) + free))
        if ! mountpoint -q "$dir"; then
            mount -t tmpfs -o "size=$size,mode=1777" brlock-full "$dir" 2>/dev/null ||
                die "cannot mount a tmpfs on $dir (mount needs root: run the tests as root, or mount one there by hand: mount -t tmpfs -o size=2m tmpfs $dir)"
        fi
        [[ "$(stat -f -c %T "$dir")" == tmpfs ]] || die "$dir is not a tmpfs"
        find "$dir" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
        # Fill: dd stops at ENOSPC, which is the point; then give FREE bytes back.
        dd if=/dev/zero of="$dir/filler" bs=4k oflag=append conv=notrunc status=none 2>/dev/null || true
        if ((free > 0)); then
            total=$(stat -c %s "$dir/filler")
            truncate -s $((total > free ? total - free : 0)) "$dir/filler"
        fi
        left=$(df --output=avail -B1 "$dir" | tail -n 1 | tr -d ' ')
        ((left >= free && left <= free + 65536)) || die "$dir has $left bytes free after filling, not $free"
        echo "$dir"
        ;;
    down)
        if mountpoint -q "$dir"; then
            umount "$dir" || die "cannot unmount $dir"
        fi
        ;;
    *)
        echo "usage: scripts/fulldisk.sh up|down [DIR]" >&2
        exit 2
        ;;
esac
