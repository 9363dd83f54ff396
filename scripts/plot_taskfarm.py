#!/usr/bin/env python3
"""Tables and a chart of scripts/bench_taskfarm.sh results.

Usage: scripts/plot_taskfarm.py RESULTS_DIR

Reads RESULTS_DIR/taskfarm.jsonl and RESULTS_DIR/machine.json and writes:
  taskfarm.md   per file system and method: runs, median seconds and tasks/s, files created,
                all runs verified; and collect's speedup over each GNU parallel method
  taskfarm.svg  bars of the median tasks/s (higher is better), one group per file system
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot import Svg, LogAxis, log_range, draw_axis, legend  # noqa: E402

METHODS = ["collect", "collect-jobs", "parallel-files", "parallel-one"]
COLORS = {"collect": "#1f77b4", "collect-jobs": "#17becf", "parallel-files": "#d62728",
          "parallel-one": "#ff7f0e"}


def medians(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["fs"], r["method"]), []).append(r)
    out = {}
    for key, runs in groups.items():
        out[key] = {
            "runs": len(runs),
            "seconds": statistics.median(r["seconds"] for r in runs),
            "tasks_per_s": statistics.median(r["tasks_per_s"] for r in runs),
            "files_created": max(r["files_created"] for r in runs),
            "verified": all(r["verified"] for r in runs),
            "spread": (min(r["seconds"] for r in runs), max(r["seconds"] for r in runs)),
        }
    return out


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    folder = argv[1]
    with open(os.path.join(folder, "taskfarm.jsonl"), encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    machine = {}
    try:
        with open(os.path.join(folder, "machine.json"), encoding="utf-8") as fh:
            machine = json.load(fh)
    except (OSError, ValueError):
        pass
    med = medians(rows)
    fss = sorted({fs for fs, _ in med})
    out = ["# Task farm: brlock collect against GNU parallel", "",
           f"{machine.get('tasks', '?')} tasks (`/bin/echo task N`), concurrency 8; "
           f"{machine.get('cores', '?')} cores, {machine.get('mpi', '?')}, "
           f"{machine.get('parallel', '?')}, commit {machine.get('commit', '?')}; "
           "medians of the runs (min-max in brackets).", "",
           "| fs | method | runs | seconds | tasks/s | files created | verified |",
           "|---|---|---|---|---|---|---|"]
    for fs in fss:
        for m in METHODS:
            r = med.get((fs, m))
            if r is None:
                continue
            lo, hi = r["spread"]
            out.append(f"| {fs} | {m} | {r['runs']} | {r['seconds']:.2f} [{lo:.2f}-{hi:.2f}] | "
                       f"{r['tasks_per_s']:.0f} | {r['files_created']} | "
                       f"{'yes' if r['verified'] else '**NO**'} |")
    out += ["", "## collect's task rate over GNU parallel", "",
            "| fs | collect method | over parallel-files | over parallel-one |", "|---|---|---|---|"]
    for fs in fss:
        for fast in ("collect", "collect-jobs"):
            if (fs, fast) not in med:
                continue
            cells = []
            for slow in ("parallel-files", "parallel-one"):
                s = med.get((fs, slow))
                cells.append(f"{med[(fs, fast)]['tasks_per_s'] / s['tasks_per_s']:.2f}x" if s else "-")
            out.append(f"| {fs} | {fast} | {cells[0]} | {cells[1]} |")
    with open(os.path.join(folder, "taskfarm.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(out) + "\n")

    bar_w, gap, x0, top, plot_h = 50, 40, 80, 60, 300
    width = x0 + len(fss) * (len(METHODS) * bar_w + gap) + 40
    svg = Svg(max(width, 520), top + plot_h + 90)
    svg.text(x0, 24, "Task farm: median tasks per second (higher is better)", size=14,
             weight="bold")
    values = [r["tasks_per_s"] for r in med.values()]
    lo, hi = log_range(values, plot_h, 30, 10)
    axis = LogAxis(lo, hi, top, top + plot_h)
    draw_axis(svg, axis, x0, max(width, 520) - 20, lambda v: f"{v:.3g}", "tasks/s")
    x = x0 + gap / 2
    for fs in fss:
        for i, m in enumerate(METHODS):
            r = med.get((fs, m))
            if r is None:
                continue
            bx = x + i * bar_w
            y = axis.y(r["tasks_per_s"])
            fill = COLORS[m] if r["verified"] else "white"
            svg.rect(bx + 4, y, bar_w - 8, axis.y1 - y, fill, stroke=COLORS[m],
                     title=f"{m}: {r['tasks_per_s']:.0f} tasks/s, {r['files_created']} files")
            svg.text(bx + bar_w / 2, y - 16, f"{r['tasks_per_s']:.0f}", size=10, anchor="middle")
            svg.text(bx + bar_w / 2, y - 4, f"{r['files_created']} f", size=9, anchor="middle",
                     color="#555")
        svg.text(x + len(METHODS) * bar_w / 2, axis.y1 + 18, fs, size=11, anchor="middle")
        x += len(METHODS) * bar_w + gap
    entries = [("bar", COLORS[m], m) for m in METHODS]
    entries.append(("text", "#555", "label: tasks/s / files created; hollow bar: check failed"))
    legend(svg, x0, axis.y1 + 50, entries, max(width, 520) - 20)
    svg.save(os.path.join(folder, "taskfarm.svg"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
