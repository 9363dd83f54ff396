#!/usr/bin/env python3
"""Medians of two builds per configuration, from compare.jsonl (scripts/compare_bins.sh).

For each configuration: the figure that matters for it (lock: mean lock+unlock; atomic:
microseconds per access of one rank; sieve and append: seconds of the timed phase), the
median over repetitions for the old and the new binary, the range, and new / old. Prints a
Markdown table on stdout.
"""

import json
import statistics
import sys
from collections import defaultdict


def figure(run):
    """(name, value) of the figure that matters for this run's benchmark."""
    bench = run.get("bench")
    if bench == "lock":
        return "lock+unlock mean us", run["lock_unlock_us"]["mean"]
    if bench == "atomic":
        return "us per access", run["us_per_op"]
    return "seconds", run["seconds"]


def main(path):
    runs = [json.loads(line) for line in open(path) if line.strip()]
    values = defaultdict(lambda: defaultdict(list))
    names = {}
    order = []
    for run in runs:
        name, value = figure(run)
        config = run["config"]
        if config not in names:
            order.append(config)
        names[config] = name
        values[config][run["which"]].append(value)
    print("| configuration | figure | old median (range) | new median (range) | new / old |")
    print("|---|---|---:|---:|---:|")
    for config in order:
        cells = []
        medians = {}
        for which in ("old", "new"):
            v = values[config][which]
            if not v:
                cells.append("-")
                continue
            medians[which] = statistics.median(v)
            cells.append(f"{medians[which]:.4g} ({min(v):.4g}-{max(v):.4g})")
        ratio = (
            f"{medians['new'] / medians['old']:.2f}"
            if medians.get("old") and "new" in medians
            else "-"
        )
        print(f"| {config} | {names[config]} | {cells[0]} | {cells[1]} | {ratio} |")


if __name__ == "__main__":
    main(sys.argv[1])
