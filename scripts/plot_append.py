#!/usr/bin/env python3
"""Tables and a chart of `brlock bench append` results.

Usage: scripts/plot_append.py RESULTS_DIR

Reads RESULTS_DIR/append.jsonl (one JSON object per run, as `brlock bench append --json`
prints it, with the key "fs" added by scripts/bench.sh) and writes into RESULTS_DIR:
  append.md     one row per run: file system, clients, method, ranks, records, seconds,
                records/s, files created, verified; and rma's speedup over the other methods
  append.svg    grouped bars: seconds (log scale) per (file system, clients, ranks), one bar
                per method, labelled with the files created; a run whose check failed is
                hatched and marked "NOT VERIFIED"
The drawing helpers come from scripts/plot.py.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot import Svg, LogAxis, log_range, draw_axis, legend  # noqa: E402

METHODS = ["rma-node", "rma", "flock", "files"]
COLORS = {"rma-node": "#17becf", "rma": "#1f77b4", "flock": "#d62728", "files": "#7f7f7f"}


def read(folder):
    rows = []
    path = os.path.join(folder, "append.jsonl")
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"plot_append.py: {path}:{n}: {e}", file=sys.stderr)
                continue
            if r.get("bench") == "append" and isinstance(r.get("seconds"), (int, float)):
                rows.append(r)
    return rows


def group_key(r):
    return (r.get("fs", "?"), r.get("clients", 1), r["ranks"])


def fmt_s(v):
    return f"{v:.3g}"


def write_md(rows, path):
    out = ["# bench append", "",
           "| fs | clients | method | ranks | records | seconds | records/s | write calls | files created | verified |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.get('fs', '?')} | {r.get('clients', 1)} | {r['method']} | {r['ranks']} | "
                   f"{r['records']} | {fmt_s(r['seconds'])} | {r['records_per_s']:.0f} | "
                   f"{r.get('write_calls', '-')} | "
                   f"{r['files_created']} | {'yes' if r['verified'] else '**NO**'} |")
    out += ["", "## Speedups of rma and rma-node (the node writers)", "",
            "| fs | clients | ranks | method | over flock | over files |", "|---|---|---|---|---|---|"]
    groups = {}
    for r in rows:
        groups.setdefault(group_key(r), {})[r["method"]] = r
    for (fs, clients, ranks), by in groups.items():
        for fast in ("rma", "rma-node"):
            if fast not in by:
                continue
            cell = [f"{by[m]['seconds'] / by[fast]['seconds']:.1f}x" if m in by else "-"
                    for m in ("flock", "files")]
            out.append(f"| {fs} | {clients} | {ranks} | {fast} | {cell[0]} | {cell[1]} |")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out) + "\n")


def chart(rows, path):
    groups = {}
    for r in rows:
        groups.setdefault(group_key(r), {})[r["method"]] = r
    keys = list(groups)
    bar_w, gap = 44, 36
    x0, top, plot_h = 80, 60, 320
    width = max(x0 + len(keys) * (len(METHODS) * bar_w + gap) + 40, 480)
    svg = Svg(width, top + plot_h + 90)
    svg.text(x0, 24, "brlock bench append: wall time of the timed phase (lower is better)",
             size=14, weight="bold")
    lo, hi = log_range([r["seconds"] for r in rows], plot_h, 30, 10)
    axis = LogAxis(lo, hi, top, top + plot_h)
    x1 = width - 20
    draw_axis(svg, axis, x0, x1, fmt_s, "seconds")
    x = x0 + gap / 2
    for key in keys:
        fs, clients, ranks = key
        for i, m in enumerate(METHODS):
            r = groups[key].get(m)
            if r is None:
                continue
            bx = x + i * bar_w
            y = axis.y(r["seconds"])
            fill = COLORS[m] if r["verified"] else "white"
            svg.rect(bx + 4, y, bar_w - 8, axis.y1 - y, fill, stroke=COLORS[m],
                     title=f"{m}: {r['seconds']:.3f} s, {r['files_created']} files")
            svg.text(bx + bar_w / 2, y - 16, fmt_s(r["seconds"]), size=10, anchor="middle")
            svg.text(bx + bar_w / 2, y - 4, f"{r['files_created']} f", size=9, anchor="middle",
                     color="#555")
            if not r["verified"]:
                svg.text(bx + bar_w / 2, axis.y1 - 8, "NOT VERIFIED", size=8, anchor="middle",
                         color="#d62728", rotate=-90)
        label = f"{fs}, {ranks} ranks" + (f", {clients} clients" if clients != 1 else "")
        svg.text(x + len(METHODS) * bar_w / 2, axis.y1 + 18, label, size=11, anchor="middle")
        x += len(METHODS) * bar_w + gap
    entries = [("bar", COLORS[m], m) for m in METHODS]
    entries.append(("text", "#555", "label: seconds / files created; hollow bar: check failed"))
    legend(svg, x0, axis.y1 + 50, entries, x1)
    svg.save(path)


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr if len(argv) != 2 else sys.stdout)
        return 0 if len(argv) == 2 else 2
    folder = argv[1]
    if not os.path.isfile(os.path.join(folder, "append.jsonl")):
        print(f"plot_append.py: no {folder}/append.jsonl", file=sys.stderr)
        return 2
    rows = read(folder)
    if not rows:
        print(f"plot_append.py: {folder}/append.jsonl has no runs", file=sys.stderr)
        return 1
    write_md(rows, os.path.join(folder, "append.md"))
    chart(rows, os.path.join(folder, "append.svg"))
    print(f"plot_append.py: wrote append.md, append.svg in {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
