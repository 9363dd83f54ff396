#!/usr/bin/env python3
"""Chart and table of `brlock bench layout --json`: bytes per uncontended acquire against the
number of ranks, one line per algorithm, log-log.

Usage: scripts/plot_layout.py RESULTS_DIR   (reads layout.json, writes layout.svg, layout.md)
"""
import json
import math
import sys
from pathlib import Path

COLORS = {"tr2005": "#56B4E9", "handoff": "#0072B2"}
W, H, L, R, T, B = 640, 400, 80, 130, 50, 60


def main() -> None:
    out = Path(sys.argv[1])
    report = json.loads((out / "layout.json").read_text())
    rows = report["rows"]
    ranks = sorted({r["ranks"] for r in rows})
    values = [r["bytes_per_acquire"] for r in rows]
    lx = (math.log10(min(ranks)), math.log10(max(ranks)))
    ly = (math.floor(math.log10(min(values))), math.ceil(math.log10(max(values))))

    def x(p):
        span = (lx[1] - lx[0]) or 1
        return L + (math.log10(p) - lx[0]) / span * (W - L - R)

    def y(v):
        return H - B - (math.log10(v) - ly[0]) / (ly[1] - ly[0] or 1) * (H - T - B)

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">brlock bench layout: bytes moved per uncontended acquire (simulation)</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
           f'<text x="{(L + W - R) / 2}" y="{H - 15}" text-anchor="middle">ranks P (log scale)</text>',
           f'<text x="18" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 18 {(T + H - B) / 2})">bytes (log scale)</text>']
    for p in ranks:
        svg.append(f'<text x="{x(p):.1f}" y="{H - B + 18}" text-anchor="middle">{p}</text>')
    for e in range(ly[0], ly[1] + 1):
        svg.append(f'<line x1="{L}" y1="{y(10 ** e):.1f}" x2="{W - R}" y2="{y(10 ** e):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{L - 6}" y="{y(10 ** e) + 4:.1f}" text-anchor="end">1e{e}</text>')
    lines = ["# brlock bench layout", "",
             f"Simulation, {report['iters']} uncontended lock+unlock per row.", "",
             "| algorithm | P | bytes per acquire | bytes per lock+unlock | epochs per lock+unlock |",
             "|---|---:|---:|---:|---:|"]
    for i, algorithm in enumerate(sorted({r["algorithm"] for r in rows})):
        pts = sorted((r["ranks"], r["bytes_per_acquire"]) for r in rows if r["algorithm"] == algorithm)
        color = COLORS.get(algorithm, "#999")
        path = " ".join(f"{x(p):.1f},{y(v):.1f}" for p, v in pts)
        svg.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for p, v in pts:
            svg.append(f'<circle cx="{x(p):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"/>')
        svg.append(f'<text x="{W - R + 8}" y="{y(pts[-1][1]) + 4:.1f}" fill="{color}">{algorithm}</text>')
        for r in sorted((r for r in rows if r["algorithm"] == algorithm), key=lambda r: r["ranks"]):
            lines.append(f"| {algorithm} | {r['ranks']} | {r['bytes_per_acquire']:.0f} | "
                         f"{r['bytes_per_lock_unlock']:.0f} | {r['epochs_per_lock_unlock']:.2f} |")
    svg.append("</svg>")
    growth = ", ".join(f"{a} {g:.1f}x" for a, g in report["growth"])
    lines += ["", f"Bytes per acquire, largest P over smallest: {growth}."]
    (out / "layout.svg").write_text("\n".join(svg) + "\n")
    (out / "layout.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
