#!/usr/bin/env python3
"""Tables and charts of `brlock bench atomic` and `brlock bench sieve` results.

Usage: scripts/plot_io.py RESULTS_DIR

Reads RESULTS_DIR/atomic.jsonl and/or RESULTS_DIR/sieve.jsonl (one JSON object per run, as
`brlock bench atomic|sieve --json` prints it, with the keys "fs" and "clients" added by
scripts/bench.sh) and writes into RESULTS_DIR, for each file present:
  atomic.md   one row per run (fs, mix, ranks, backend, us/op per rank, write/read us, torn
              reads, io component) and, per group, rma's ratio to nonatomic and to mpiio
  atomic.svg  grouped bars: us per op per rank (log scale) per (fs, mix, ranks), one bar per
              backend
  sieve.md    one row per run (fs, ranks, method, MB/s, I/O calls, windows, verified) and,
              per group, sieve's speedup over pieces and mpiio
  sieve.svg   grouped bars: MB/s (log scale) per (fs, ranks, block/stride), one bar per
              method; a run whose read-back failed is hollow and marked "NOT VERIFIED"
The drawing helpers come from scripts/plot.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot import Svg, LogAxis, log_range, draw_axis, legend, read_jsonl  # noqa: E402

ATOMIC = {"series": ["rma", "nonatomic", "mpiio"], "field": "backend",
          "colors": {"rma": "#1f77b4", "nonatomic": "#7f7f7f", "mpiio": "#d62728"}}
SIEVE = {"series": ["sieve", "pieces", "mpiio"], "field": "method",
         "colors": {"sieve": "#1f77b4", "pieces": "#7f7f7f", "mpiio": "#d62728"}}


def read(path, bench):
    return [r for r in read_jsonl(path, True)
            if r.get("bench") == bench and isinstance(r.get("seconds"), (int, float))]


def fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}g}"


def groups_of(rows, key, field):
    groups = {}
    for r in rows:
        groups.setdefault(key(r), {})[r[field]] = r
    return groups


def ratio(by, a, b, value, invert=False):
    if a not in by or b not in by or not by[a][value] or not by[b][value]:
        return "-"
    x = by[b][value] / by[a][value] if invert else by[a][value] / by[b][value]
    return f"{x:.2f}x"


def atomic_key(r):
    return (r.get("fs", "?"), r.get("clients", 1), r["mix"], r["ranks"])


def sieve_key(r):
    return (r.get("fs", "?"), r.get("clients", 1), r["ranks"], f"{r['block']}/{r['stride']}")


def write_atomic_md(rows, path):
    out = ["# bench atomic", "",
           "| fs | clients | mix | ranks | backend | ops | seconds | us/op per rank | write us | read us | torn reads | io component |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.get('fs', '?')} | {r.get('clients', 1)} | {r['mix']} | {r['ranks']} | "
                   f"{r['backend']} | {r['ops']} | {fmt(r['seconds'])} | {fmt(r['us_per_op'])} | "
                   f"{fmt(r.get('write_us'))} | {fmt(r.get('read_us'))} | {r['torn_reads']} | "
                   f"{r.get('io_component') or '-'} |")
    out += ["", "## rma's time per op relative to the others (below 1: rma faster)", "",
            "| fs | clients | mix | ranks | rma / nonatomic | rma / mpiio |", "|---|---|---|---|---|---|"]
    for (fs, clients, mix, ranks), by in groups_of(rows, atomic_key, "backend").items():
        out.append(f"| {fs} | {clients} | {mix} | {ranks} | "
                   f"{ratio(by, 'rma', 'nonatomic', 'us_per_op')} | {ratio(by, 'rma', 'mpiio', 'us_per_op')} |")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out) + "\n")


def write_sieve_md(rows, path):
    out = ["# bench sieve", "",
           "| fs | clients | ranks | block/stride | method | MB | seconds | MB/s | I/O calls | windows | io component | verified |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.get('fs', '?')} | {r.get('clients', 1)} | {r['ranks']} | "
                   f"{r['block']}/{r['stride']} | {r['method']} | {r['bytes'] / 1e6:.2f} | "
                   f"{fmt(r['seconds'])} | {fmt(r['mb_per_s'])} | {r.get('io_calls') if r.get('io_calls') is not None else '-'} | "
                   f"{r.get('windows') if r.get('windows') is not None else '-'} | "
                   f"{r.get('io_component') or '-'} | {'yes' if r['verified'] else '**NO**'} |")
    out += ["", "## sieve's speedup (MB/s ratio)", "",
            "| fs | clients | ranks | block/stride | over pieces | over mpiio |", "|---|---|---|---|---|---|"]
    for (fs, clients, ranks, shape), by in groups_of(rows, sieve_key, "method").items():
        out.append(f"| {fs} | {clients} | {ranks} | {shape} | "
                   f"{ratio(by, 'sieve', 'pieces', 'mb_per_s')} | {ratio(by, 'sieve', 'mpiio', 'mb_per_s')} |")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out) + "\n")


def chart(rows, path, spec, key, label, value, unit, title):
    """Grouped bars of `value` (log scale), one group per key(r), one bar per series."""
    series, colors = spec["series"], spec["colors"]
    groups = groups_of(rows, key, spec["field"])
    keys = list(groups)
    n = len(series)
    bar_w, gap = 40, 36
    x0, top, plot_h = 80, 60, 320
    width = max(x0 + len(keys) * (n * bar_w + gap) + 40, 480)
    svg = Svg(width, top + plot_h + 100)
    svg.text(x0, 24, title, size=14, weight="bold")
    lo, hi = log_range([r[value] for r in rows], plot_h, 30, 10)
    axis = LogAxis(lo, hi, top, top + plot_h)
    x1 = width - 20
    draw_axis(svg, axis, x0, x1, fmt, unit)
    x = x0 + gap / 2
    for k in keys:
        for i, name in enumerate(series):
            r = groups[k].get(name)
            if r is None or not r[value]:
                continue
            bx = x + i * bar_w
            y = axis.y(r[value])
            ok = r.get("verified", True)
            svg.rect(bx + 4, y, bar_w - 8, axis.y1 - y, colors[name] if ok else "white",
                     stroke=colors[name], title=f"{name}: {r[value]:.4g} {unit}")
            svg.text(bx + bar_w / 2, y - 4, fmt(r[value]), size=10, anchor="middle")
            if not ok:
                svg.text(bx + bar_w / 2, axis.y1 - 8, "NOT VERIFIED", size=8, anchor="middle",
                         color="#d62728", rotate=-90)
        svg.text(x + n * bar_w / 2, axis.y1 + 18, label(k), size=10, anchor="middle")
        x += n * bar_w + gap
    entries = [("bar", colors[s], s) for s in series]
    legend(svg, x0, axis.y1 + 50, entries, x1)
    svg.save(path)


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr if len(argv) != 2 else sys.stdout)
        return 0 if len(argv) == 2 else 2
    folder = argv[1]
    wrote = []
    path = os.path.join(folder, "atomic.jsonl")
    if os.path.isfile(path) and (rows := read(path, "atomic")):
        write_atomic_md(rows, os.path.join(folder, "atomic.md"))
        chart(rows, os.path.join(folder, "atomic.svg"), ATOMIC, atomic_key,
              lambda k: f"{k[0]} {k[2]}, {k[3]} ranks" + (f", {k[1]} cl" if k[1] != 1 else ""),
              "us_per_op", "us/op per rank",
              "brlock bench atomic: overlapping 4 KiB accesses, time per op and rank (lower is better)")
        wrote += ["atomic.md", "atomic.svg"]
    path = os.path.join(folder, "sieve.jsonl")
    if os.path.isfile(path) and (rows := read(path, "sieve")):
        write_sieve_md(rows, os.path.join(folder, "sieve.md"))
        chart(rows, os.path.join(folder, "sieve.svg"), SIEVE, sieve_key,
              lambda k: f"{k[0]} {k[3]} B, {k[2]} ranks" + (f", {k[1]} cl" if k[1] != 1 else ""),
              "mb_per_s", "MB/s",
              "brlock bench sieve: strided writes, payload MB/s (higher is better)")
        wrote += ["sieve.md", "sieve.svg"]
    if not wrote:
        print(f"plot_io.py: no runs in {folder}/atomic.jsonl or sieve.jsonl", file=sys.stderr)
        return 1
    print(f"plot_io.py: wrote {', '.join(wrote)} in {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
