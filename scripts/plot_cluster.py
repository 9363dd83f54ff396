#!/usr/bin/env python3
"""Summary, table and chart of a scripts/bench_cluster.sh results folder (standard library).

Usage: scripts/plot_cluster.py RESULTS_DIR

Reads RESULTS_DIR/lock.jsonl (required), machine.json and failures.jsonl (optional) and writes
  summary.json      per configuration (hosts, ranks per host, pattern): mean, p50 and p99
                    lock+unlock of every lock, and the ratios fcntl/rma and ofd/rma of the
                    means and of the medians (> 1: rma is faster), for each osc of rma
  summary.md        the same as a table, with the failures
  lock-cluster.svg  grouped bars: mean lock+unlock (log scale) with a whisker to p99, one group
                    per configuration, one bar per lock; under each group fcntl's mean over
                    the faster rma's
The drawing helpers come from scripts/plot.py.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot import Svg, LogAxis, log_range, draw_axis, legend, title_block, fmt_us, fmt_tick_us  # noqa: E402

LOCK_ORDER = ["rma/pt2pt", "rma/ucx", "rma/sm", "fcntl", "ofd", "fcntl-probe", "ofd-probe"]
LOCK_COLOR = {"rma/pt2pt": "#0072B2", "rma/ucx": "#56B4E9", "rma/sm": "#CC79A7",
              "fcntl": "#E69F00", "ofd": "#009E73", "fcntl-probe": "#F0E442", "ofd-probe": "#999999"}
FS_LOCKS = ["fcntl", "ofd", "fcntl-probe", "ofd-probe"]
PATTERN_ORDER = ["disjoint", "same", "random"]
GOAL = 20.0


def read_jsonl(path):
    rows = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    rows.append(json.loads(line))
    return rows


def order(value, seq):
    return seq.index(value) if value in seq else len(seq)


def stats(row):
    lu = row.get("lock_unlock_us") or {}
    return {
        "mean_us": lu.get("mean"),
        "p50_us": lu.get("p50"),
        "p99_us": lu.get("p99"),
        "ops_per_s": row.get("ops_per_s"),
        "raw_epoch_pair_us": row.get("raw_epoch_pair_us"),
        "violations": row.get("violations"),
        "iters": row.get("iters"),
        "load1": row.get("load1"),
    }


def ratio(a, b):
    return a / b if a and b else None


def summarise(rows):
    configs = {}
    for r in rows:
        key = (r["hosts"], r["ranks_per_host"], r["pattern"])
        configs.setdefault(key, {})[r["lock"]] = stats(r)
    out = []
    for key in sorted(configs, key=lambda k: (k[0], k[1], order(k[2], PATTERN_ORDER))):
        locks = configs[key]
        ratios, ratios_p50 = {}, {}
        for fs_lock in FS_LOCKS:
            for rma in [lk for lk in locks if lk.startswith("rma/")]:
                if fs_lock in locks:
                    name = f"{fs_lock}/{rma}"
                    ratios[name] = ratio(locks[fs_lock]["mean_us"], locks[rma]["mean_us"])
                    ratios_p50[name] = ratio(locks[fs_lock]["p50_us"], locks[rma]["p50_us"])
        hosts, per, pattern = key
        out.append({"hosts": hosts, "ranks_per_host": per, "ranks": hosts * per,
                    "pattern": pattern, "locks": locks,
                    "ratio_mean": ratios, "ratio_p50": ratios_p50})
    return out


def best_rma(locks):
    """The rma lock with the lower mean, or None."""
    rmas = [(v["mean_us"], k) for k, v in locks.items() if k.startswith("rma/") and v["mean_us"]]
    return min(rmas)[1] if rmas else None


def fcntl_ratio(c):
    """fcntl's mean over the faster rma's: the bench's fcntl run, else the probe's."""
    rma = best_rma(c["locks"])
    for fs_lock in ("fcntl", "fcntl-probe"):
        r = c["ratio_mean"].get(f"{fs_lock}/{rma}")
        if r is not None:
            return r
    return None


def fmt_ratio(v):
    if v is None:
        return "—"
    return f"{v:.3g}×" if v < 100 else f"{v:.0f}×"


def write_md(summary, machine, failures, path):
    lines = ["# Lock benchmark across the emulated cluster", ""]
    if machine:
        lines.append(
            f"{machine.get('host')}, {machine.get('cores')} cores, {machine.get('mpi')}, "
            f"{machine.get('glusterfs')}, commit {machine.get('commit')}"
            f"{' (dirty)' if machine.get('dirty') else ''}, started {machine.get('started')}, "
            f"netem delay {machine.get('netem_delay') or 'none'}, load average "
            f"{machine.get('loadavg_start')} at start, {machine.get('loadavg_end')} at end. "
            f"Iterations per rank: rma {machine.get('iters_rma')}, fcntl/ofd "
            f"{machine.get('iters_fs')}.")
        lines.append("")
    lines.append("Mean lock+unlock per rank (p50 in parentheses); ratio = fcntl or OFD mean over "
                 "rma mean in the same configuration of the same run (> 1: rma is faster). "
                 "fcntl/ofd: `brlock bench lock`, with its exclusion checker; fcntl-probe/ofd-probe: "
                 "scripts/fcntl_probe.py, the same locks with no MPI and no checker.")
    lines.append("")
    locks = sorted({lk for c in summary for lk in c["locks"]}, key=lambda x: order(x, LOCK_ORDER))
    ratio_names = sorted({n for c in summary for n in c["ratio_mean"]})
    head = ["hosts", "ranks/host", "pattern"] + locks + ratio_names
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for c in summary:
        cells = [str(c["hosts"]), str(c["ranks_per_host"]), c["pattern"]]
        for lk in locks:
            s = c["locks"].get(lk)
            if s is None:
                cells.append("failed")
                continue
            v = f"{fmt_us(s['mean_us'])} ({fmt_us(s['p50_us'])})"
            if s.get("violations"):
                v += f" **{s['violations']} violations**"
            cells.append(v)
        cells += [fmt_ratio(c["ratio_mean"].get(n)) for n in ratio_names]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    met = [c for c in summary if (fcntl_ratio(c) or 0) >= GOAL]
    lines.append(f"Goal (rma at least {GOAL:g}× faster than fcntl, mean, faster osc): met in "
                 f"{len(met)} of {len(summary)} configurations.")
    if failures:
        lines += ["", "## Failures", ""]
        for f in failures:
            lines.append(f"- {f.get('hosts')} hosts x {f.get('ranks_per_host')}, {f.get('pattern')}, "
                         f"{f.get('lock')}: {f.get('reason')}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def chart(summary, machine, path):
    locks = sorted({lk for c in summary for lk in c["locks"]}, key=lambda x: order(x, LOCK_ORDER))
    bar_w, bar_gap, group_gap = 16, 2, 26
    group_w = len(locks) * (bar_w + bar_gap) - bar_gap + group_gap
    left, right = 86, 24
    width = max(760, int(left + len(summary) * group_w + right))
    top, plot_h = 70, 360
    y0, y1 = top, top + plot_h
    values = []
    for c in summary:
        for s in c["locks"].values():
            values += [s["mean_us"], s["p99_us"]]
    lo, hi = log_range(values, plot_h, head_px=52, foot_px=14)
    axis = LogAxis(lo, hi, y0, y1)
    x0, x1 = left, width - right
    svg = Svg(width, y1 + 120)
    subtitle = ""
    if machine:
        subtitle = (f"{machine.get('mpi')} over TCP between network-namespace hosts, "
                    f"{machine.get('glusterfs')}, {machine.get('cores')} cores shared by all hosts, "
                    f"netem delay {machine.get('netem_delay') or 'none'}")
    title_block(svg, "brlock bench lock across an emulated cluster: mean lock+unlock per rank",
                subtitle, width)
    draw_axis(svg, axis, x0, x1, fmt_tick_us, "microseconds per lock+unlock (log scale)")
    gx0 = x0 + (x1 - x0 - len(summary) * group_w) / 2
    labels = []
    spans = []
    for i, c in enumerate(summary):
        xa = gx0 + i * group_w + group_gap / 2
        for j, lk in enumerate(locks):
            s = c["locks"].get(lk)
            x = xa + j * (bar_w + bar_gap)
            if s is None or not s["mean_us"]:
                svg.text(x + bar_w / 2 + 4, y1 - 6, "failed", size=10, color="#b00020", rotate=-90)
                continue
            m, p = s["mean_us"], s["p99_us"]
            ym = axis.y(m)
            tip = (f"{c['hosts']} hosts x {c['ranks_per_host']}, {c['pattern']}, {lk}: mean "
                   f"{fmt_us(m)}, p50 {fmt_us(s['p50_us'])}, p99 {fmt_us(p)}")
            svg.rect(x, ym, bar_w, y1 - ym, LOCK_COLOR.get(lk, "#999999"), title=tip)
            ytop = ym
            if p and p > m:
                yp = axis.y(p)
                svg.line(x + bar_w / 2, ym, x + bar_w / 2, yp, color="#333")
                svg.line(x + 3, yp, x + bar_w - 3, yp, color="#333")
                ytop = yp
            labels.append((x + bar_w / 2 + 4, ytop - 3, fmt_us(m)))
        cx = xa + (group_w - group_gap) / 2
        svg.text(cx, y1 + 16, f"{c['hosts']}h × {c['ranks_per_host']}", size=11, anchor="middle")
        r = fcntl_ratio(c)
        svg.text(cx, y1 + 31, f"{fmt_ratio(r)}", size=11, anchor="middle", weight="bold",
                 color="#b00020" if (r or 0) < GOAL else "#006400")
        key = c["pattern"]
        if spans and spans[-1][0] == key and spans[-1][2] == i - 1:
            spans[-1] = (key, spans[-1][1], i)
        else:
            spans.append((key, i, i))
    for x, y, s in labels:
        svg.text(x, y, s, size=9, color="#222", rotate=-90, halo=True)
    for key, a, b in spans:
        xa, xb = gx0 + a * group_w, gx0 + (b + 1) * group_w
        svg.line(xa + 6, y1 + 40, xb - 6, y1 + 40, color="#999")
        svg.text((xa + xb) / 2, y1 + 55, key, size=12, anchor="middle", weight="bold")
    entries = [("bar", LOCK_COLOR.get(lk, "#999999"), f"{lk} (mean)") for lk in locks]
    entries += [("whisker", "#333", "p99"),
                ("text", "#444", f"under each group: fcntl (bench, else probe) mean ÷ faster rma mean (goal {GOAL:g}×)")]
    legend(svg, x0, y1 + 84, entries, x1)
    svg.save(path)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = argv[1]
    rows = read_jsonl(os.path.join(d, "lock.jsonl"))
    failures = read_jsonl(os.path.join(d, "failures.jsonl"))
    machine = {}
    if os.path.exists(os.path.join(d, "machine.json")):
        with open(os.path.join(d, "machine.json"), encoding="utf-8") as fh:
            machine = json.load(fh)
    if not rows:
        print(f"plot_cluster.py: no runs in {d}/lock.jsonl", file=sys.stderr)
        return 1
    summary = summarise(rows)
    with open(os.path.join(d, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump({"machine": machine, "goal_ratio": GOAL, "configurations": summary,
                   "failures": failures}, fh, indent=1)
        fh.write("\n")
    write_md(summary, machine, failures, os.path.join(d, "summary.md"))
    chart(summary, machine, os.path.join(d, "lock-cluster.svg"))
    print(f"plot_cluster.py: {len(rows)} runs, {len(summary)} configurations -> "
          f"{d}/summary.json, summary.md, lock-cluster.svg", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
