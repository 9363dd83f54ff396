#!/usr/bin/env bash
# The loss cases of `brlock collect` (issue 16), run against any brlock binary in the
# command mode every version has (each rank runs one command), so that one build can be
# compared with another: before the fix each case loses or corrupts data, or leaves processes
# behind; after it, none does.
#
# Usage: scripts/collect_losses.sh BRLOCK_BINARY [--out FILE]
#   --out FILE   also write one JSON object per case to FILE (JSON lines)
#
# Cases (Open MPI's mpirun, 2 ranks each):
#   two-jobs     two jobs with the same --out at once, through the two GlusterFS clients
#                (scripts/gluster.sh up): lines lost or torn, each job's exit status
#   index-is-out --index equal to --out: a job that exits 0 must leave a valid file
#   interrupt    SIGINT to mpirun after 4 s while the batches are young: printed lines kept?
#   kill-9       SIGKILL to mpirun: do the ranks' commands outlive the job?
# Each case prints one line "case: ok|LOSS ..." with its numbers; the script exits 1 if any
# case shows a loss, so that it is its own check (and the old binary its negative control).
set -euo pipefail
PROG=collect_losses.sh
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[[ $# -ge 1 ]] || { sed -n '2,18p' "$0"; exit 2; }
bin=$(realpath "$1")
shift
json=""
while (($#)); do
    case "$1" in
        --out) json=$2; shift 2 ;;
        *) echo "$PROG: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -x "$bin" ]] || { echo "$PROG: $bin is not an executable" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun=(mpirun -q --oversubscribe --mca osc sm -n 2)
mounts=$(scripts/gluster.sh up 2>/dev/null | grep '^/') || true
gl_a=$(sed -n 1p <<<"$mounts")
gl_b=$(sed -n 2p <<<"$mounts")
[[ -d "$gl_a" && -d "$gl_b" ]] || { echo "$PROG: GlusterFS did not start (scripts/gluster.sh up)" >&2; exit 1; }
work=$(mktemp -d /tmp/brlock-losses.XXXXXX)
gwork=$gl_a/brlock-losses.$$
mkdir -p "$gwork"
trap 'rm -rf "$work" "$gwork"' EXIT
losses=0

report() { # case verdict details-json text
    echo "$1: $2 $4"
    [[ "$2" == ok ]] || losses=$((losses + 1))
    if [[ -n "$json" ]]; then
        echo "{\"case\": \"$1\", \"verdict\": \"$2\", \"binary\": \"$bin\", $3}" >>"$json"
    fi
}

# Lines "JOB-RANK-I" of a file: how many distinct intact ones, how many torn.
count() { # file pattern
    local intact torn
    intact=$({ grep -aE "^$2-[01]-[0-9]+$" "$1" || true; } | sort -u | wc -l)
    torn=$(grep -avcE "^[AB]-[01]-[0-9]+$" "$1" || true)
    echo "$intact $torn"
}

# two-jobs: 2 jobs x 2 ranks x 50,000 lines into one file, one job per GlusterFS client.
n=50000
rm -f "$gwork/out"
"${mpirun[@]}" "$bin" collect --out "$gwork/out" -- seq -f "A-{rank}-%g" 1 $n >/dev/null 2>"$work/a.err" &
pa=$!
"${mpirun[@]}" "$bin" collect --out "$gl_b/brlock-losses.$$/out" -- seq -f "B-{rank}-%g" 1 $n >/dev/null 2>"$work/b.err" &
pb=$!
sa=0; wait $pa || sa=$?
sb=0; wait $pb || sb=$?
read -r a_intact torn_a < <(count "$gwork/out" A)
read -r b_intact _ < <(count "$gwork/out" B)
torn=$torn_a
verdict=ok
# A job that says it succeeded must have every line once; a refused one must say why.
if { ((sa == 0)) && ((a_intact != 2 * n)); } || { ((sb == 0)) && ((b_intact != 2 * n)); } || ((torn > 0)); then
    verdict=LOSS
fi
if ((sa != 0 && sb != 0)); then verdict=LOSS; fi
report two-jobs "$verdict" "\"status\": [$sa, $sb], \"intact\": [$a_intact, $b_intact], \"expected_per_job\": $((2 * n)), \"torn\": $torn" \
    "(exit $sa and $sb; intact lines A $a_intact, B $b_intact of $((2 * n)) each; $torn torn)"

# index-is-out: a job that exits 0 must leave the file's old content and its lines.
printf 'keep me\n' >"$work/same"
st=0
"${mpirun[@]}" "$bin" collect --out "$work/same" --index "$work/same" -- seq -f "A-{rank}-%g" 1 1000 >/dev/null 2>"$work/same.err" || st=$?
kept=$(grep -ac '^keep me$' "$work/same" || true)
read -r intact _ < <(count "$work/same" A)
verdict=ok
if ((st == 0)) && { ((kept != 1)) || ((intact != 2000)) || (($(wc -l <"$work/same") != 2001)); }; then verdict=LOSS; fi
if ((st != 0 && kept != 1)); then verdict=LOSS; fi
report index-is-out "$verdict" "\"status\": $st, \"kept\": $kept, \"intact\": $intact, \"lines\": $(wc -l <"$work/same")" \
    "(exit $st; old content kept: $kept; intact lines $intact of 2000; $(wc -l <"$work/same") lines in the file)"

# interrupt: each rank prints 1,000 lines then waits; SIGINT to mpirun after 4 s.
rm -f "$work/int"
"${mpirun[@]}" "$bin" collect --out "$work/int" --batch-ms 600000 -- sh -c 'seq -f "A-{rank}-%g" 1 1000; sleep 67' >/dev/null 2>"$work/int.err" &
pi=$!
sleep 4
kill -INT $pi 2>/dev/null || true
si=0
timeout 60 tail --pid=$pi -f /dev/null || true
wait $pi || si=$?
read -r intact _ < <(count "$work/int" A 2>/dev/null || echo "0 0")
verdict=ok
((intact == 2000)) || verdict=LOSS
report interrupt "$verdict" "\"status\": $si, \"intact\": $intact, \"printed\": 2000" \
    "(exit $si; $intact of the 2000 printed lines in the file)"
pkill -f "^sleep 67$" 2>/dev/null || true

# kill-9: every rank's command sleeps; SIGKILL to mpirun; count the sleepers left after 3 s.
marker=3017
"${mpirun[@]}" "$bin" collect --out "$work/k9" -- sleep $marker >/dev/null 2>&1 &
pk=$!
sleep 4
kill -KILL $pk 2>/dev/null || true
wait $pk 2>/dev/null || true
sleep 3
left=$(pgrep -fc "^sleep $marker$" || true)
verdict=ok
((left == 0)) || verdict=LOSS
report kill-9 "$verdict" "\"commands_left\": $left" "($left of 2 commands still running after mpirun was killed)"
pkill -KILL -f "^sleep $marker$" 2>/dev/null || true
pkill -KILL -f "$bin collect --out $work/k9" 2>/dev/null || true

((losses == 0)) || { echo "$PROG: $losses case(s) lost data or left processes behind ($bin)" >&2; exit 1; }
echo "$PROG: no losses ($bin)"
