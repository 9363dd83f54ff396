#!/usr/bin/env bash
# Full-size correctness run of the lock service: `brlock check lock` for every pattern and
# mode at 2, 4 and 8 ranks under Open MPI's `sm` and `pt2pt` one-sided components, for both
# algorithms (handoff, tr2005) and 1, 2 and 4 home ranks (sharded; no more homes than ranks),
# with at least 10^4 acquisitions per configuration (override with BRLOCK_CHECK_ACQUISITIONS),
# then the negative control and the busy-home-rank measurement.
#
# Environment: BRLOCK_CHECK_ALGORITHMS (default "handoff tr2005"), BRLOCK_CHECK_HOMES (default
# "1 2 4"), BRLOCK_CHECK_RANKS (default "2 4 8"), BRLOCK_CHECK_OSC (default "sm pt2pt").
#
# Writes one JSON object per run to results/check-lock-<timestamp>.jsonl and prints a table.
# Exits non-zero if any run of the real lock reports a violation, a leftover message or a
# bypass, or if the negative control sees no violation.
#
# Usage: scripts/check-lock.sh [--quick]   (--quick: 10^3 acquisitions per configuration)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

total=${BRLOCK_CHECK_ACQUISITIONS:-10000}
[[ "${1:-}" == "--quick" ]] && total=1000
scripts/setup.sh
cargo build --release --bin brlock
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p results
out="results/check-lock-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
: >"$out"
failed=0

# run OSC RANKS ARGS...: one `check lock --json` run appended to $out; 300 s limit.
run() {
    local osc=$1 ranks=$2
    shift 2
    local json
    if ! json=$(timeout 300 mpirun --oversubscribe --mca osc "$osc" -n "$ranks" \
        target/release/brlock check lock --json "$@"); then
        echo "FAILED (exit or timeout): osc $osc, $ranks ranks, $*" >&2
        failed=1
        return
    fi
    printf '%s\n' "$json" >>"$out"
}

read -r -a algorithms <<<"${BRLOCK_CHECK_ALGORITHMS:-handoff tr2005}"
read -r -a homes_list <<<"${BRLOCK_CHECK_HOMES:-1 2 4}"
read -r -a ranks_list <<<"${BRLOCK_CHECK_RANKS:-2 4 8}"
read -r -a osc_list <<<"${BRLOCK_CHECK_OSC:-sm pt2pt}"
for osc in "${osc_list[@]}"; do
    for ranks in "${ranks_list[@]}"; do
        iters=$(((total + ranks - 1) / ranks))
        for algorithm in "${algorithms[@]}"; do
            for homes in "${homes_list[@]}"; do
                ((homes <= ranks)) || continue
                for pattern in disjoint same random; do
                    for mode in exclusive shared mixed; do
                        echo "osc $osc, $ranks ranks, $algorithm, $homes homes, $pattern/$mode," \
                            "$iters acquisitions per rank" >&2
                        run "$osc" "$ranks" --pattern "$pattern" --mode "$mode" --iters "$iters" \
                            --try-percent 10 --algorithm "$algorithm" --homes "$homes"
                    done
                done
            done
        done
        echo "osc $osc, $ranks ranks: negative control (no lock)" >&2
        run "$osc" "$ranks" --backend none --pattern same --iters "$iters"
    done
    # A busy home rank: 4 ranks, same range, the home rank outside MPI for 1 s halfway,
    # against the same run without it.
    for busy in 0 1000; do
        echo "osc $osc, 4 ranks, busy home rank ${busy} ms" >&2
        run "$osc" 4 --pattern same --iters 2500 --busy-home-ms "$busy"
    done
done

python3 - "$out" <<'PY' || failed=1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
bad = 0
print(f"{'osc':6} {'ranks':>5} {'backend':8} {'algo':8} {'homes':>5} {'pattern':9} {'mode':10} "
      f"{'acq':>7} {'viol':>5} "
      f"{'bypass':>6} {'left':>4} {'busy':>5} {'p50 us':>9} {'p99 us':>9} {'max us':>10} {'ops/s':>8}")
for r in rows:
    lat = r["lock_us"]
    print(f"{r['osc'] or '-':6} {r['ranks']:>5} {r['backend']:8} {r.get('algorithm') or '-':8} "
          f"{len(r.get('homes') or [0]):>5} {r['pattern']:9} {r['mode']:10} "
          f"{r['acquisitions']:>7} {r['violations']:>5} {r['max_bypass']:>6} "
          f"{r['leftover_messages']:>4} {r['busy_home_ms']:>5} {lat['p50']:>9.1f} {lat['p99']:>9.1f} "
          f"{lat['max']:>10.1f} {r['ops_per_s']:>8.0f}")
    if r["backend"] == "rma" and not r["ok"]:
        bad += 1
    if r["backend"] == "none" and r["violations"] == 0:
        print("  ^ negative control saw no violation", file=sys.stderr)
        bad += 1
print(f"{len(rows)} runs, {bad} failed; machine: {rows[0]['mpi_library'] if rows else '?'}, "
      f"{__import__('os').cpu_count()} cores")
sys.exit(1 if bad else 0)
PY
echo "results: $out" >&2
exit "$failed"
