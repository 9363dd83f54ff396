#!/usr/bin/env python3
"""Table and chart of scripts/bench_mpiio.sh: MPI-IO with and without libbrlock-mpiio.so.

Usage: scripts/plot_mpiio.py RESULTS_DIR   (reads bench.jsonl and machine.json; writes
summary.md and mpiio.svg)
"""
import json
import math
import statistics
import sys
from pathlib import Path

W, H, L, R, T, B = 760, 420, 80, 20, 60, 90
COLORS = {False: "#E69F00", True: "#0072B2"}


def main() -> None:
    out = Path(sys.argv[1])
    rows = [json.loads(line) for line in (out / "bench.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "op" in r]
    machine = json.loads((out / "machine.json").read_text())

    def pick(op, ranks, io, library, fs="fuse.glusterfs"):
        return [r for r in rows if r["op"] == op and r["ranks"] == ranks and r["io"] == io
                and r["library"] == library and r.get("fs", "fuse.glusterfs") == fs]

    def us(op, ranks, io, library):
        found = [r["us_per_op"] for r in pick(op, ranks, io, library) if "us_per_op" in r]
        return statistics.median(found) if found else None

    def lost(op, ranks, io, library):
        return any("us_per_op" in r and not r["ok"] for r in pick(op, ranks, io, library))

    ranks_list = sorted({r["ranks"] for r in rows if r.get("fs", "fuse.glusterfs") != "local"})
    io_list = sorted({r["io"] for r in rows}, key=lambda io: io != "romio321")
    lines = ["# MPI-IO with and without libbrlock-mpiio.so", "",
             f"Run of {machine.get('date', '?')}: {machine.get('host', '?')}, {machine.get('cores', '?')} cores, "
             f"load {' '.join(machine.get('loadavg', []))} · {machine.get('mpi', '?')} · {machine.get('glusterfs', '?')} · "
             f"GlusterFS, ranks split over two clients · {machine.get('records_per_rank', '?')} records of "
             f"{machine.get('record_bytes', '?')} bytes per rank · whole run {machine.get('seconds', '?')} s.", "",
             "Microseconds per operation (the slowest rank's time over its records); speedup = without / with.", "",
             "| ranks | MPI-IO | shared without | shared with | shared speedup | atomic without | atomic with | atomic speedup | plain without | plain with | plain with / without (median of rounds) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(v, lost_data=False):
        if v is None:
            return "—"
        return f"{v:,.1f}" + (" (data lost)" if lost_data else "")

    def ratio(a, b):
        return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"

    bars = []
    for ranks in ranks_list:
        for io in io_list:
            s0, s1 = us("shared", ranks, io, False), us("shared", ranks, io, True)
            a0, a1 = us("atomic", ranks, io, False), us("atomic", ranks, io, True)
            p0, p1 = us("plain", ranks, io, False), us("plain", ranks, io, True)
            offs = [r["us_per_op"] for r in pick("plain", ranks, io, False) if r["ok"]]
            ons = [r["us_per_op"] for r in pick("plain", ranks, io, True) if r["ok"]]
            ratios = [b / a for a, b in zip(offs, ons)]
            plain_ratio = statistics.median(ratios) if ratios else None
            atomic_note = " (ompio ignores atomic mode)" if io == "ompio" else ""
            lines.append(f"| {ranks} | {io} | {cell(s0, lost('shared', ranks, io, False))} | "
                         f"{cell(s1, lost('shared', ranks, io, True))} | {ratio(s0, s1)} | {cell(a0)} | "
                         f"{cell(a1)} | {ratio(a0, a1)}{atomic_note} | {cell(p0)} | {cell(p1)} | "
                         f"{'—' if plain_ratio is None else f'{plain_ratio:.3f}'} |")
            for op, v0, v1 in (("shared", s0, s1), ("atomic", a0, a1)):
                bars.append((f"{op} {ranks}r {io}", v0, v1))
    failed = [r for r in rows if not r["ok"]]  # on any file system
    lines += ["", f"Runs whose file did not hold what was written, or that failed: {len(failed)}."]
    for r in failed:
        why = (f"file size {r['size']}, expected more (records lost)" if "us_per_op" in r
               else f"no result (exit {r.get('exit')}{', killed after 120 s' if r.get('exit') == 124 else ''})")
        lines.append(f"- {r['op']}, {r['ranks']} ranks, {r['io']}, library {'on' if r['library'] else 'off'}: {why}")
    lines += ["", "The plain loop on local disk (a write costs microseconds, so the library's own "
              "cost per call shows), with / without per round, and the median:", ""]
    for ranks in sorted({r["ranks"] for r in rows if r.get("fs") == "local"}):
        for io in io_list:
            offs = [r for r in pick("plain", ranks, io, False, "local") if r["ok"]]
            ons = [r for r in pick("plain", ranks, io, True, "local") if r["ok"]]
            ratios = [b["us_per_op"] / a["us_per_op"] for a, b in zip(offs, ons)]
            if ratios:
                lines.append(f"- {ranks} ranks, {io}: " + ", ".join(f"{x:.3f}" for x in ratios)
                             + f"; median **{statistics.median(ratios):.3f}** "
                             f"({statistics.median(a['us_per_op'] for a in offs):.2f} µs per write without)")
    lines += ["", "Plain rounds on GlusterFS (with / without, per round): " + "; ".join(
        f"{ranks} ranks {io}: " + ", ".join(
            f"{b['us_per_op'] / a['us_per_op']:.3f}"
            for a, b in zip([r for r in pick('plain', ranks, io, False) if r['ok']],
                            [r for r in pick('plain', ranks, io, True) if r['ok']]))
        for ranks in ranks_list for io in io_list)]

    values = [v for _, a, b in bars for v in (a, b) if v]
    if values:
        lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
        hi = max(hi, lo + 1)

        def y(v):
            return H - B - (math.log10(v) - lo) / (hi - lo) * (H - T - B)

        slot = (W - L - R) / len(bars)
        svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
               f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">MPI-IO on GlusterFS (two clients): µs per 4 KiB operation, log scale</text>',
               f'<rect x="{L}" y="32" width="10" height="10" fill="{COLORS[False]}"/><text x="{L + 14}" y="41">MPI library alone</text>',
               f'<rect x="{L + 140}" y="32" width="10" height="10" fill="{COLORS[True]}"/><text x="{L + 154}" y="41">with libbrlock-mpiio.so</text>',
               f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
               f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>']
        for e in range(lo, hi + 1):
            svg.append(f'<line x1="{L}" y1="{y(10 ** e):.1f}" x2="{W - R}" y2="{y(10 ** e):.1f}" stroke="#ddd"/>')
            svg.append(f'<text x="{L - 6}" y="{y(10 ** e) + 4:.1f}" text-anchor="end">{10 ** e:g}</text>')
        for i, (label, v0, v1) in enumerate(bars):
            x0 = L + i * slot + slot * 0.15
            bw = slot * 0.35
            for j, v in enumerate((v0, v1)):
                if v:
                    svg.append(f'<rect x="{x0 + j * bw:.1f}" y="{y(v):.1f}" width="{bw:.1f}" '
                               f'height="{H - B - y(v):.1f}" fill="{COLORS[bool(j)]}"/>')
            cx = L + (i + 0.5) * slot
            svg.append(f'<text x="{cx:.1f}" y="{H - B + 12}" text-anchor="end" '
                       f'transform="rotate(-40 {cx:.1f} {H - B + 12})">{label}</text>')
        svg.append("</svg>")
        (out / "mpiio.svg").write_text("\n".join(svg) + "\n")
        lines += ["", "![µs per operation](mpiio.svg)"]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
