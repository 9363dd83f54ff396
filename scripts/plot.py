#!/usr/bin/env python3
"""Tables and charts of a `scripts/bench.sh` results folder (python3 standard library only).

Usage: scripts/plot.py RESULTS_DIR

Reads
  RESULTS_DIR/lock.jsonl      one `brlock bench lock --json` object per line (required)
  RESULTS_DIR/machine.json    the machine and the settings of the run (optional)
  RESULTS_DIR/failures.jsonl  configurations or parts that failed (optional; bench.sh)
and writes
  lock.csv                    every run flattened to one row, plus the derived columns
                              `fs` (local or gluster) and `rma_speedup`
  summary.md                  the comparison table and the failures
  lock-latency-local.svg      grouped bars: mean lock+unlock microseconds (log scale) per
  lock-latency-gluster.svg    (pattern, ranks), one bar per backend with a whisker to p99,
                              and the raw epoch pair (the limit of rma) as a dashed line
  lock-speedup.svg            rma's speedup over fcntl and OFD locks per configuration
A chart of a file system with no runs is written only when failures.jsonl says why (the
chart then shows the reason); otherwise it is left out.

Definitions: "rma speedup" of a run of backend B = mean lock+unlock of B / mean lock+unlock
of rma in the same file system, ranks, pattern and mode (> 1: rma is faster). "ratio to raw"
is the bench's own `ratio_to_raw` (rma mean / bare epoch pair, both measured in that run).
"""

import csv
import html
import json
import math
import os
import sys
import textwrap

BACKEND_ORDER = ["rma", "rma-tr2005", "rma-h2", "rma-h4", "fcntl", "ofd"]
PATTERN_ORDER = ["disjoint", "same", "random"]
FS_ORDER = ["local", "gluster"]
BACKEND_COLOR = {"rma": "#0072B2", "rma-tr2005": "#56B4E9", "fcntl": "#E69F00", "ofd": "#009E73"}
EXTRA_COLORS = ["#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"]
FS_COLOR = {"local": "#56B4E9", "gluster": "#D55E00"}
FS_TITLE = {"local": "local disk", "gluster": "GlusterFS (two FUSE clients)"}
FONT = "DejaVu Sans, Verdana, Arial, sans-serif"


def order_key(value, order):
    return (order.index(value), "") if value in order else (len(order), str(value))


# --- reading ---------------------------------------------------------------------------------


def read_jsonl(path, required):
    rows = []
    if not os.path.exists(path):
        if required:
            sys.exit(f"plot.py: {path} does not exist")
        return rows
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"plot.py: {path}:{n}: not JSON ({e})")
            if not isinstance(obj, dict):
                sys.exit(f"plot.py: {path}:{n}: not a JSON object")
            rows.append(obj)
    return rows


def fs_label(row, machine):
    """'gluster' for a run on the GlusterFS mounts, else 'local'."""
    if str(row.get("fs_type") or "").startswith("fuse.glusterfs"):
        return "gluster"
    mounts = machine.get("gluster_mounts") or []
    for key in ("file", "alt_file"):
        path = row.get(key) or ""
        if any(m and (path == m or path.startswith(m.rstrip("/") + "/")) for m in mounts):
            return "gluster"
    return "local"


def num(value):
    """A finite float, or None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def mean_us(row):
    return num((row.get("lock_unlock_us") or {}).get("mean"))


def p99_us(row):
    return num((row.get("lock_unlock_us") or {}).get("p99"))


class Data:
    def __init__(self, folder):
        self.folder = folder
        machine_path = os.path.join(folder, "machine.json")
        self.machine = {}
        if os.path.exists(machine_path):
            with open(machine_path, encoding="utf-8") as fh:
                self.machine = json.load(fh)
        self.rows = read_jsonl(os.path.join(folder, "lock.jsonl"), required=True)
        self.failures = read_jsonl(os.path.join(folder, "failures.jsonl"), required=False)
        for r in self.rows:
            r["_fs"] = fs_label(r, self.machine)
            # The one-sided service running the 2005 algorithm, or sharded, is its own backend
            # here (bench.sh's rma-tr2005 and rma-hK).
            if str(r.get("backend")).lower() == "rma":
                homes = len(r.get("homes") or [0])
                if r.get("algorithm") == "tr2005":
                    r["backend"] = "rma-tr2005" if homes <= 1 else f"rma-tr2005-h{homes}"
                elif homes > 1:
                    r["backend"] = f"rma-h{homes}"
        self.modes = sorted({str(r.get("mode")) for r in self.rows})
        self.rows.sort(key=self.row_key)
        # The run used for each (fs, mode, pattern, ranks, backend): the last one in the file.
        self.cell = {}
        for r in self.rows:
            self.cell[self.config(r) + (r.get("backend"),)] = r
        for r in self.rows:
            r["_speedup"] = self.speedup(r)

    @staticmethod
    def config(r):
        return (r["_fs"], str(r.get("mode")), str(r.get("pattern")), r.get("ranks"))

    @staticmethod
    def row_key(r):
        return (
            order_key(r["_fs"], FS_ORDER),
            str(r.get("mode")),
            r.get("ranks") if isinstance(r.get("ranks"), int) else 1 << 30,
            order_key(r.get("pattern"), PATTERN_ORDER),
            order_key(r.get("backend"), BACKEND_ORDER),
        )

    def speedup(self, r):
        """mean(this backend) / mean(rma) in the same configuration; None for rma itself."""
        if r.get("backend") == "rma":
            return None
        rma = self.cell.get(self.config(r) + ("rma",))
        mine, theirs = mean_us(r), mean_us(rma) if rma else None
        if mine is None or not theirs:
            return None
        return mine / theirs

    def backends(self, rows=None):
        present = {r.get("backend") for r in (self.rows if rows is None else rows)}
        return sorted(present, key=lambda b: order_key(b, BACKEND_ORDER))

    def fs_present(self):
        present = {r["_fs"] for r in self.rows}
        present |= {f.get("fs") for f in self.failures if f.get("fs")}
        return sorted(present, key=lambda f: order_key(f, FS_ORDER))

    def failures_of(self, fs):
        return [f for f in self.failures if f.get("fs") == fs]

    def fs_types(self, fs):
        return sorted({str(r.get("fs_type")) for r in self.rows if r["_fs"] == fs and r.get("fs_type")})

    def first(self, key):
        for r in self.rows:
            if r.get(key) not in (None, ""):
                return r[key]
        return self.machine.get(key)

    def machine_line(self, fs=None):
        m = self.machine
        host = m.get("host") or self.first("host") or "?"
        # A rank's own `cores` is its affinity (1 when Open MPI binds it): prefer the machine's.
        cores = m.get("cores") or self.first("cpus_online") or self.first("cores") or "?"
        mpi = self.first("mpi_library") or m.get("mpi_library") or "?"
        osc = self.first("osc") or m.get("osc") or "?"
        parts = [f"{host}, {cores} cores", str(mpi), f"osc {osc}"]
        if fs is not None:
            parts.append("fs " + (", ".join(self.fs_types(fs)) or "?"))
        else:
            for f in self.fs_present():
                types = ", ".join(self.fs_types(f)) or "no runs"
                parts.append(f"{f}: {types}")
        return " · ".join(parts)

    def settings_line(self, fs=None):
        modes = ", ".join(self.modes) or "?"
        holds = sorted({str(r.get("hold_us")) for r in self.rows})
        line = f"mode {modes} · hold {'/'.join(holds)} µs"
        if fs is not None:
            rows = [r for r in self.rows if r["_fs"] == fs]
            per = []
            for b in self.backends(rows):
                counts = sorted({r.get("iters") for r in rows if r.get("backend") == b}, key=str)
                per.append(f"{b} {'/'.join(str(c) for c in counts)}")
            line += " · iterations/rank: " + ", ".join(per)
        return line


# --- formatting ------------------------------------------------------------------------------


def sig3(v):
    s = f"{v:.3g}"
    if "e" in s:
        s = f"{v:.0f}"
    return s


def fmt_us(v):
    if v is None:
        return "—"
    if v >= 1e6:
        return f"{sig3(v / 1e6)} s"
    if v >= 999.5:
        return f"{sig3(v / 1e3)} ms"
    return f"{sig3(v)} µs"


def fmt_tick_us(v):
    if v >= 1e6:
        return f"{v / 1e6:g} s"
    if v >= 1e3:
        return f"{v / 1e3:g} ms"
    return f"{v:g} µs"


def fmt_num(v, digits=1):
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def fmt_ratio(v):
    return "—" if v is None else f"{sig3(v)}×"


# --- CSV -------------------------------------------------------------------------------------


def flatten(obj, prefix=""):
    out = {}
    for k, v in obj.items():
        if k.startswith("_"):
            continue
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "_"))
        elif isinstance(v, list):
            out[name] = json.dumps(v)
        else:
            out[name] = v
    return out


def write_csv(data, path):
    lead = ["fs", "ranks", "pattern", "mode", "backend", "iters", "hold_us"]
    flat = []
    columns = list(lead)
    for r in data.rows:
        f = {"fs": r["_fs"]}
        f.update(flatten(r))
        f["rma_speedup"] = r["_speedup"]
        for k in f:
            if k not in columns and k != "rma_speedup":
                columns.append(k)
        flat.append(f)
    columns.append("rma_speedup")

    def cell(v):
        if v is None:
            return ""
        if isinstance(v, bool):
            return "true" if v else "false"
        return v

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for f in flat:
            w.writerow([cell(f.get(c)) for c in columns])


# --- summary.md ------------------------------------------------------------------------------


def fmt_us_cell(v):
    """Microseconds for a table: 2 decimals below 10, 1 below 1000, then whole numbers."""
    if v is None:
        return "—"
    return f"{v:,.{2 if v < 10 else 1 if v < 1000 else 0}f}"


def write_summary(data, path, charts):
    m = data.machine
    out = ["# brlock bench lock: rma vs fcntl vs OFD locks", ""]
    date = m.get("date_utc") or "?"
    out.append(f"Run of {date}: {data.machine_line()}; {data.settings_line()}.")
    details = []
    if m.get("kernel"):
        details.append(f"kernel {m['kernel']}")
    if m.get("glusterfs_version"):
        details.append(str(m["glusterfs_version"]))
    if m.get("duration_s") is not None:
        details.append(f"whole run {fmt_duration(m['duration_s'])}")
    if m.get("quick"):
        details.append("**--quick** (smoke run: few configurations and iterations)")
    if details:
        out += ["", "; ".join(details) + "."]
    iters = m.get("iters_per_rank")
    if isinstance(iters, dict) and iters:
        out += ["", "Iterations per rank: " + ", ".join(f"{k} {v}" for k, v in iters.items()) + "."]
    out.append("")

    part_failures = [f for f in data.failures if not f.get("pattern")]
    if part_failures:
        out += ["## Parts that did not run", ""]
        out += [f"- **{f.get('fs', '?')}**: {f.get('reason', '?')}" for f in part_failures]
        out.append("")

    several_modes = len(data.modes) > 1
    backends = data.backends()
    others = [b for b in backends if b != "rma"]
    configs = []
    for r in data.rows:
        c = data.config(r)
        if c not in configs:
            configs.append(c)

    # At a glance: one line per configuration, the fastest mean in bold.
    if "rma" in backends and others:
        out += ["## At a glance", ""]
        head = ["fs", "ranks", "pattern"] + (["mode"] if several_modes else [])
        head += [f"{b} mean µs" for b in backends] + ["raw pair µs", "rma / raw", "rma / hand-off floor"]
        head += [f"rma speedup over {b}" for b in others]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---" if h in ("fs", "pattern", "mode") else "---:" for h in head) + "|")
        for c in configs:
            fs, mode, pattern, ranks = c
            runs = {b: data.cell.get(c + (b,)) for b in backends}
            means = {b: mean_us(r) for b, r in runs.items() if r is not None and mean_us(r) is not None}
            best = min(means, key=means.get) if means else None
            cells = [fs, str(ranks), pattern] + ([mode] if several_modes else [])
            for b in backends:
                v = fmt_us_cell(means.get(b))
                cells.append(f"**{v}**" if b == best and len(means) > 1 else v)
            rma = runs.get("rma")
            cells.append(fmt_us_cell(num(rma.get("raw_epoch_pair_us"))) if rma else "—")
            cells.append(fmt_ratio(num(rma.get("ratio_to_raw"))) if rma else "—")
            cells.append(fmt_ratio(num(rma.get("ratio_to_handoff_floor"))) if rma else "—")
            cells += [fmt_ratio(runs[b]["_speedup"]) if runs.get(b) else "—" for b in others]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")

    out += ["## All runs", ""]
    head = ["fs", "ranks", "pattern"] + (["mode"] if several_modes else []) + [
        "backend", "iters", "mean µs", "p99 µs", "ops/s", "raw pair µs", "ratio to raw", "rma speedup"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join("---" if h in ("fs", "pattern", "mode", "backend") else "---:" for h in head) + "|")
    for r in data.rows:
        viol = r.get("violations")
        backend = str(r.get("backend"))
        if viol:
            backend += f" (**{viol} violations**)"
        cells = [r["_fs"], str(r.get("ranks")), str(r.get("pattern"))]
        if several_modes:
            cells.append(str(r.get("mode")))
        cells += [
            backend,
            str(r.get("iters")),
            fmt_us_cell(mean_us(r)),
            fmt_us_cell(p99_us(r)),
            fmt_num(num(r.get("ops_per_s")), 0),
            fmt_us_cell(num(r.get("raw_epoch_pair_us"))),
            fmt_ratio(num(r.get("ratio_to_raw"))),
            fmt_ratio(r["_speedup"]),
        ]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(
        "mean, p99: microseconds per lock+unlock as one rank sees it; ops/s: lock+unlock pairs "
        "per second over all ranks; raw pair: the bare pair of epochs the rma lock needs, "
        "measured in the same run (its limit uncontended); ratio to raw: rma mean / raw pair; "
        "rma / hand-off floor (pattern same): rma mean / the mean of a token passed round the "
        "ranks with the same epochs, message and holding and no protocol decisions (the limit "
        "of any lock that hands one range from rank to rank on this transport); rma speedup: "
        "this backend's mean / rma's mean in the same fs, ranks and pattern (> 1: rma is "
        "faster).")
    out.append("")

    config_failures = [f for f in data.failures if f.get("pattern")]
    if config_failures:
        out += ["## Failed configurations", ""]
        for f in config_failures:
            log = f" (log: `{f['log']}`)" if f.get("log") else ""
            out.append(
                f"- {f.get('fs', '?')}, {f.get('ranks', '?')} ranks, {f.get('pattern', '?')}, "
                f"{f.get('backend', '?')}: {f.get('reason', '?')}{log}")
        out.append("")

    violators = [r for r in data.rows if r.get("violations")]
    if violators:
        out += ["## Violations of mutual exclusion", ""]
        out += [f"- {r['_fs']}, {r.get('ranks')} ranks, {r.get('pattern')}, {r.get('backend')}: "
                f"{r.get('violations')}" for r in violators]
        out.append("")

    if charts:
        out += ["## Charts", ""]
        for name in charts:
            out += [f"![{name}]({name})", ""]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out))


def fmt_duration(seconds):
    seconds = int(round(float(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


# --- SVG -------------------------------------------------------------------------------------


class Svg:
    def __init__(self, width, height):
        self.width, self.height = width, height
        self.items = []
        self.defs = []

    def add(self, s):
        self.items.append(s)

    def text(self, x, y, s, size=12, anchor="start", weight="normal", color="#222", rotate=None,
             halo=False):
        attrs = f'x="{x:.1f}" y="{y:.1f}"'
        if rotate is not None:
            attrs = f'transform="translate({x:.1f},{y:.1f}) rotate({rotate})"'
        extra = ""
        if halo:
            # A white outline under the glyphs keeps labels readable over lines and bars.
            extra = ' stroke="white" stroke-width="3" stroke-linejoin="round" paint-order="stroke"'
        self.add(
            f'<text {attrs} font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{color}"{extra}>{html.escape(str(s))}</text>')

    def line(self, x1, y1, x2, y2, color="#222", width=1, dash=None, opacity=None):
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        if opacity is not None:
            extra += f' stroke-opacity="{opacity}"'
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" '
                 f'stroke-width="{width}"{extra}/>')

    def rect(self, x, y, w, h, fill, stroke=None, title=None):
        extra = f' stroke="{stroke}" stroke-width="1"' if stroke else ""
        body = f"<title>{html.escape(title)}</title>" if title else ""
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
                 f'fill="{fill}"{extra}>{body}</rect>')

    def save(self, path):
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                f'viewBox="0 0 {self.width} {self.height}" font-family="{FONT}">')
        body = [head, f'<rect width="{self.width}" height="{self.height}" fill="white"/>']
        if self.defs:
            body.append("<defs>" + "".join(self.defs) + "</defs>")
        body += self.items
        body.append("</svg>")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write('<?xml version="1.0" encoding="UTF-8"?>\n' + "\n".join(body) + "\n")


class LogAxis:
    """A vertical log10 axis from lo (bottom, y1) to hi (top, y0)."""

    def __init__(self, lo, hi, y0, y1):
        self.l, self.h = math.log10(lo), math.log10(hi)
        self.lo, self.hi, self.y0, self.y1 = lo, hi, y0, y1

    def y(self, v):
        v = min(max(v, self.lo), self.hi)
        return self.y1 - (math.log10(v) - self.l) / (self.h - self.l) * (self.y1 - self.y0)

    def decades(self):
        d = math.ceil(self.l - 1e-9)
        while d <= self.h + 1e-9:
            yield 10.0 ** d
            d += 1

    def minors(self):
        d = math.floor(self.l)
        while d <= self.h:
            for k in range(2, 10):
                v = k * 10.0 ** d
                if self.lo < v < self.hi:
                    yield v
            d += 1


def log_range(values, plot_h, head_px, foot_px):
    """lo, hi of a log axis of plot_h pixels that shows every value with head_px free above
    the largest and foot_px below the smallest (room for labels); at least one decade."""
    values = [v for v in values if v and v > 0]
    if not values:
        return 1.0, 10.0
    a_min, a_max = math.log10(min(values)), math.log10(max(values))
    f_top, f_bot = head_px / plot_h, foot_px / plot_h
    span = max((a_max - a_min) / (1 - f_top - f_bot), 1.0)
    extra = span - (a_max - a_min)
    below = extra * f_bot / (f_top + f_bot)
    return 10.0 ** (a_min - below), 10.0 ** (a_max + extra - below)


def draw_axis(svg, axis, x0, x1, fmt, label):
    few = len(list(axis.decades())) < 3
    for v in axis.minors():
        svg.line(x0, axis.y(v), x1, axis.y(v), color="#eeeeee")
        if few and round(v / 10 ** math.floor(math.log10(v) + 1e-9)) in (2, 5):
            svg.line(x0 - 3, axis.y(v), x0, axis.y(v), color="#444")
            svg.text(x0 - 8, axis.y(v) + 4, fmt(v), size=10, anchor="end", color="#666")
    for v in axis.decades():
        y = axis.y(v)
        svg.line(x0, y, x1, y, color="#cccccc")
        svg.line(x0 - 5, y, x0, y, color="#444")
        svg.text(x0 - 8, y + 4, fmt(v), size=11, anchor="end", color="#333")
    svg.line(x0, axis.y0, x0, axis.y1, color="#444")
    svg.line(x0, axis.y1, x1, axis.y1, color="#444")
    svg.text(18, (axis.y0 + axis.y1) / 2, label, size=12, anchor="middle", rotate=-90, color="#333")


def group_labels(svg, groups, centers, spans, y, several_modes):
    """Ranks under each group, the pattern (and mode) under its run of groups."""
    for (mode, pattern, ranks), cx in zip(groups, centers):
        svg.text(cx, y, f"{ranks} ranks", size=11, anchor="middle", color="#333")
    for (mode, pattern), (xa, xb) in spans:
        label = f"{pattern} / {mode}" if several_modes else pattern
        svg.line(xa + 4, y + 8, xb - 4, y + 8, color="#999")
        svg.text((xa + xb) / 2, y + 24, label, size=12, anchor="middle", weight="bold", color="#222")


def layout_groups(groups, x0, group_w):
    """Centers of the groups and the x extent of each run of equal (mode, pattern)."""
    centers, spans = [], []
    for i, g in enumerate(groups):
        xa = x0 + i * group_w
        centers.append(xa + group_w / 2)
        key = (g[0], g[1])
        if spans and spans[-1][0] == key:
            spans[-1] = (key, (spans[-1][1][0], xa + group_w))
        else:
            spans.append((key, (xa, xa + group_w)))
    return centers, spans


def legend(svg, x, y, entries, max_x):
    """entries: (kind, color, label[, fill]); kind 'bar' (filled with fill or color), 'dash',
    'whisker' or 'text'. Wraps to a new line at max_x; returns the last line's y."""
    cx = x
    for kind, color, label, *fill in entries:
        w = 26 + 7 * len(label)
        if cx + w > max_x and cx > x:
            cx = x
            y += 20
        if kind == "text":
            svg.text(cx, y, label, size=11, color=color)
            cx += w - 12
            continue
        if kind == "bar":
            svg.rect(cx, y - 10, 14, 12, fill[0] if fill else color, stroke=color)
        elif kind == "dash":
            svg.line(cx, y - 4, cx + 14, y - 4, color=color, width=2, dash="4,3")
        elif kind == "whisker":
            svg.line(cx + 7, y - 11, cx + 7, y + 2, color=color)
            svg.line(cx + 3, y - 11, cx + 11, y - 11, color=color)
        svg.text(cx + 19, y, label, size=11, color="#222")
        cx += w
    return y


def title_block(svg, title, subtitle, width):
    svg.text(width / 2, 24, title, size=15, anchor="middle", weight="bold")
    svg.text(width / 2, 43, subtitle, size=11, anchor="middle", color="#444")


def failure_chart(path, title, subtitle, lines):
    width = 900
    svg = Svg(width, 200)
    title_block(svg, title, subtitle, width)
    wrapped = [w for s in lines for w in textwrap.wrap(str(s), 110) or [""]]
    svg.height = 110 + 20 * len(wrapped)
    y = 95
    for s in wrapped:
        svg.text(width / 2, y, s, size=13, anchor="middle", color="#b00020")
        y += 20
    svg.save(path)


def latency_chart(data, fs, path):
    rows = [r for r in data.rows if r["_fs"] == fs]
    title = f"brlock bench lock: mean lock+unlock per rank, {FS_TITLE.get(fs, fs)}"
    fails = data.failures_of(fs)
    if not rows:
        lines = [f"no runs on {fs}:"] + [str(f.get("reason")) for f in fails[:3]]
        failure_chart(path, title, data.machine_line(), lines)
        return
    subtitle = f"{data.machine_line(fs)} · {data.settings_line(fs)}"
    backends = data.backends(rows)
    colors = {b: BACKEND_COLOR.get(b, EXTRA_COLORS[i % len(EXTRA_COLORS)]) for i, b in enumerate(backends)}
    keyset = {(str(r.get("mode")), str(r.get("pattern")), r.get("ranks")) for r in rows}
    keyset |= {(str(f.get("mode")), str(f.get("pattern")), f.get("ranks"))
               for f in fails if f.get("pattern") and str(f.get("mode")) in data.modes}
    groups = sorted(keyset, key=lambda g: (g[0], order_key(g[1], PATTERN_ORDER), g[2] or 0))
    bar_w, bar_gap, group_gap = 18, 2, 24
    group_w = len(backends) * (bar_w + bar_gap) - bar_gap + group_gap
    left, right = 86, 24
    width = max(760, int(left + len(groups) * group_w + right), int(len(subtitle) * 6.4) + 40)
    top, plot_h = 70, 360
    y0, y1 = top, top + plot_h
    values = []
    for r in rows:
        values += [mean_us(r), p99_us(r), num(r.get("raw_epoch_pair_us"))]
    lo, hi = log_range(values, plot_h, head_px=52, foot_px=14)
    axis = LogAxis(lo, hi, y0, y1)
    x0, x1 = left, width - right
    group_x0 = x0 + (x1 - x0 - len(groups) * group_w) / 2
    svg = Svg(width, y1 + 110)
    title_block(svg, title, subtitle, width)
    draw_axis(svg, axis, x0, x1, fmt_tick_us, "microseconds per lock+unlock (log scale)")
    centers, spans = layout_groups(groups, group_x0, group_w)
    labels = []  # drawn last, over the bars and lines
    for g, cx in zip(groups, centers):
        mode, pattern, ranks = g
        xa = cx - (group_w - group_gap) / 2
        raws = []
        for i, b in enumerate(backends):
            x = xa + i * (bar_w + bar_gap)
            r = data.cell.get((fs, mode, pattern, ranks, b))
            if r is None or mean_us(r) is None:
                failed = any(f.get("backend") == b and str(f.get("pattern")) == pattern
                             and f.get("ranks") == ranks for f in fails)
                if failed:
                    svg.text(x + bar_w / 2 + 4, y1 - 6, "failed", size=10, color="#b00020", rotate=-90)
                continue
            m, p = mean_us(r), p99_us(r)
            ym = axis.y(m)
            tip = (f"{fs}, {ranks} ranks, {pattern}, {b}: mean {fmt_us(m)}, p99 {fmt_us(p)}, "
                   f"{fmt_num(num(r.get('ops_per_s')), 0)} ops/s")
            svg.rect(x, ym, bar_w, y1 - ym, colors[b], title=tip)
            ytop = ym
            if p is not None and p > m:
                yp = axis.y(p)
                svg.line(x + bar_w / 2, ym, x + bar_w / 2, yp, color="#333")
                svg.line(x + 4, yp, x + bar_w - 4, yp, color="#333")
                ytop = yp
            labels.append((x + bar_w / 2 + 4, ytop - 3, fmt_us(m)))
            if r.get("violations"):
                svg.text(x + bar_w / 2, y1 - 4, "!", size=12, anchor="middle", weight="bold", color="#b00020")
            raw = num(r.get("raw_epoch_pair_us"))
            if raw:
                raws.append((b == "rma", raw))
        if raws:
            # The rma run's own measurement when there is one, else the mean of the others.
            own = [v for is_rma, v in raws if is_rma]
            raw = own[0] if own else sum(v for _, v in raws) / len(raws)
            yr = axis.y(raw)
            svg.line(xa - 3, yr, xa + group_w - group_gap + 3, yr, color="#000", width=1.6, dash="5,3")
    for x, y, s in labels:
        svg.text(x, y, s, size=9.5, color="#222", rotate=-90, halo=True)
    group_labels(svg, groups, centers, spans, y1 + 16, len(data.modes) > 1)
    entries = [("bar", colors[b], f"{b} (mean)") for b in backends]
    entries += [("whisker", "#333", "p99"), ("dash", "#000", "raw epoch pair (limit of rma)")]
    legend(svg, x0, y1 + 72, entries, x1)
    svg.save(path)


def speedup_chart(data, path):
    series = []  # (fs, backend)
    for fs in FS_ORDER + [f for f in data.fs_present() if f not in FS_ORDER]:
        for b in data.backends():
            if b == "rma":
                continue
            if any(r["_fs"] == fs and r.get("backend") == b and r["_speedup"] for r in data.rows):
                series.append((fs, b))
    title = "brlock bench lock: speedup of rma over fcntl and OFD locks (mean lock+unlock)"
    subtitle = f"{data.machine_line()} · {data.settings_line()}"
    if not series:
        failure_chart(path, title, subtitle, ["no configuration has both an rma run and an fcntl/ofd run"])
        return
    keyset = {(str(r.get("mode")), str(r.get("pattern")), r.get("ranks")) for r in data.rows
              if r["_speedup"]}
    groups = sorted(keyset, key=lambda g: (g[0], order_key(g[1], PATTERN_ORDER), g[2] or 0))
    bar_w, bar_gap, group_gap = 16, 2, 24
    group_w = len(series) * (bar_w + bar_gap) - bar_gap + group_gap
    left, right = 86, 24
    width = max(760, int(left + len(groups) * group_w + right), int(len(subtitle) * 6.4) + 40)
    top, plot_h = 70, 360
    y0, y1 = top, top + plot_h
    speeds = [r["_speedup"] for r in data.rows if r["_speedup"]]
    # Labels go above bars that rise and below bars that fall: room on both sides.
    lo, hi = log_range(speeds + [1.0], plot_h, head_px=46, foot_px=46)
    axis = LogAxis(lo, hi, y0, y1)
    x0, x1 = left, width - right
    group_x0 = x0 + (x1 - x0 - len(groups) * group_w) / 2
    svg = Svg(width, y1 + 110)
    hatch_ids = {}
    for fs in {s[0] for s in series}:
        hid = f"hatch-{fs}"
        hatch_ids[fs] = hid
        color = FS_COLOR.get(fs, "#999999")
        svg.defs.append(
            f'<pattern id="{hid}" width="6" height="6" patternUnits="userSpaceOnUse" '
            f'patternTransform="rotate(45)"><rect width="6" height="6" fill="white"/>'
            f'<rect width="3.2" height="6" fill="{color}"/></pattern>')
    title_block(svg, title, subtitle, width)
    draw_axis(svg, axis, x0, x1, lambda v: f"{v:g}×",
              "mean(fcntl or ofd) / mean(rma)  (log scale)")
    y_one = axis.y(1.0)
    centers, spans = layout_groups(groups, group_x0, group_w)
    for g, cx in zip(groups, centers):
        mode, pattern, ranks = g
        xa = cx - (group_w - group_gap) / 2
        for i, (fs, b) in enumerate(series):
            x = xa + i * (bar_w + bar_gap)
            r = data.cell.get((fs, mode, pattern, ranks, b))
            s = r["_speedup"] if r else None
            if not s:
                continue
            ys = axis.y(s)
            color = FS_COLOR.get(fs, "#999999")
            fill = color if b == "fcntl" else f"url(#{hatch_ids[fs]})"
            tip = f"{fs}, {ranks} ranks, {pattern}: rma is {sig3(s)}× faster than {b}"
            svg.rect(x, min(ys, y_one), bar_w, abs(y_one - ys), fill, stroke=color, title=tip)
            if s >= 1:
                svg.text(x + bar_w / 2 + 4, ys - 3, f"{sig3(s)}×", size=9.5, rotate=-90, halo=True)
            else:
                svg.text(x + bar_w / 2 + 4, ys + 3, f"{sig3(s)}×", size=9.5, anchor="end", rotate=-90,
                         halo=True)
    svg.line(x0, y_one, x1, y_one, color="#000", width=1.4)
    group_labels(svg, groups, centers, spans, y1 + 16, len(data.modes) > 1)
    entries = []
    for fs, b in series:
        color = FS_COLOR.get(fs, "#999999")
        fill = color if b == "fcntl" else f"url(#{hatch_ids[fs]})"
        entries.append(("bar", color, f"{fs}: {b} / rma", fill))
    entries.append(("text", "#444", "(> 1: rma is faster)"))
    legend(svg, x0, y1 + 72, entries, x1)
    svg.save(path)


# --- main ------------------------------------------------------------------------------------


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr if len(argv) != 2 else sys.stdout)
        return 0 if len(argv) == 2 else 2
    folder = argv[1]
    if not os.path.isdir(folder):
        print(f"plot.py: {folder} is not a directory", file=sys.stderr)
        return 2
    data = Data(folder)
    if not data.rows and not data.failures:
        print(f"plot.py: {folder}/lock.jsonl has no runs", file=sys.stderr)
        return 1
    write_csv(data, os.path.join(folder, "lock.csv"))
    charts = []
    for fs in data.fs_present():
        name = f"lock-latency-{fs}.svg"
        latency_chart(data, fs, os.path.join(folder, name))
        charts.append(name)
    if data.rows:
        speedup_chart(data, os.path.join(folder, "lock-speedup.svg"))
        charts.append("lock-speedup.svg")
    write_summary(data, os.path.join(folder, "summary.md"), charts)
    written = ["lock.csv", "summary.md"] + charts
    print(f"plot.py: wrote {', '.join(written)} in {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
