#!/usr/bin/env python3
"""Summarises scripts/bench_targets.sh: medians over the repetitions and the target ratios.

Usage: scripts/plot_targets.py RESULTS_DIR   (reads targets.jsonl, writes targets.md)
"""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1])
    runs = [json.loads(l) for l in (out / "targets.jsonl").read_text().splitlines() if l.strip()]
    times = defaultdict(list)  # (part, clients, ranks, who) -> seconds per unit of work
    per_rep = defaultdict(dict)  # (part, clients, ranks, rep) -> who -> seconds
    verified = defaultdict(list)
    for r in runs:
        who = r.get("backend") or r.get("method")
        secs = r["seconds"]
        if r["part"] == "sieve":
            secs /= r["reps"]  # pieces runs fewer repetitions: compare seconds per repetition
        key = (r["part"], r["clients"], r["ranks"], who)
        times[key].append(secs)
        per_rep[(r["part"], r["clients"], r["ranks"], r["rep"])][who] = secs
        if "verified" in r:
            verified[key].append(bool(r["verified"]))
    med = {k: statistics.median(v) for k, v in times.items()}

    def ratio(part, clients, ranks, a, b):
        """Median over repetitions of a/b (runs seconds apart), and the ratio of medians."""
        rs = [
            d[a] / d[b]
            for (p, c, n, _), d in per_rep.items()
            if (p, c, n) == (part, clients, ranks) and a in d and b in d and d[b] > 0
        ]
        if not rs:
            return "-"
        return f"{statistics.median(rs):.2f}x (range {min(rs):.2f}-{max(rs):.2f}, n={len(rs)})"

    lines = ["# Benchmark targets (medians over repetitions)", ""]
    lines += ["| part | clients | ranks | who | runs | median s | min s | max s | verified |",
              "|---|---|---|---|---|---|---|---|---|"]
    for k in sorted(times):
        v = times[k]
        ver = verified.get(k)
        vtxt = "-" if ver is None else f"{sum(ver)}/{len(ver)}"
        unit = " per rep" if k[0] == "sieve" else ""
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]}{unit} | {len(v)} | {med[k]:.4g} | "
                     f"{min(v):.4g} | {max(v):.4g} | {vtxt} |")
    lines += ["", "## Ratios (per repetition, then the median over repetitions)", "",
              "| target | clients | ranks | ratio |", "|---|---|---|---|"]
    for clients in (1, 2):
        for ranks in (4, 8):
            lines.append(f"| atomic: rma / nonatomic (target <= 1.15) | {clients} | {ranks} | "
                         f"{ratio('atomic', clients, ranks, 'rma', 'nonatomic')} |")
            lines.append(f"| atomic: rma / ROMIO atomic (target < 1) | {clients} | {ranks} | "
                         f"{ratio('atomic', clients, ranks, 'rma', 'mpiio')} |")
        for ranks in (2, 4):
            lines.append(f"| sieve: sieve / ROMIO sieve (target <= 1) | {clients} | {ranks} | "
                         f"{ratio('sieve', clients, ranks, 'sieve', 'mpiio')} |")
            lines.append(f"| sieve: pieces / sieve, time per repetition (target >= 10) | {clients} | "
                         f"{ranks} | {ratio('sieve', clients, ranks, 'pieces', 'sieve')} |")
        lines.append(f"| append: flock / rma (target >= 10) | {clients} | 8 | "
                     f"{ratio('append', clients, 8, 'flock', 'rma')} |")
    f1 = med.get(("append", 1, 8, "flock"))
    r2 = med.get(("append", 2, 8, "rma"))
    if f1 and r2:
        lines.append(f"| append: flock through one client / rma through two (medians) | - | 8 | "
                     f"{f1 / r2:.2f}x |")
    (out / "targets.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
