#!/usr/bin/env python3
"""Per-kernel GPU time from `ncu --csv --metrics gpu__time_duration.sum` logs (device_profile.sh writes them):
kernels grouped by name, sorted by total time, with their share of the phase."""
import csv
import re
import sys
from collections import defaultdict


def short(name: str) -> str:
    name = re.sub(r"\(.*$", "", name) if not name.startswith("void ") else name[5:]
    # Keep the template head: enough to tell cuDNN engines and our instances apart.
    return name if len(name) <= 110 else name[:107] + "..."


def summarise(path: str) -> None:
    rows = []
    with open(path, newline="") as f:
        lines = [ln for ln in f if ln.startswith('"')]
    for r in csv.DictReader(lines):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        scale = {"ns": 1e-6, "nsecond": 1e-6, "us": 1e-3, "usecond": 1e-3, "ms": 1.0, "msecond": 1.0, "s": 1e3, "second": 1e3}[r["Metric Unit"]]
        rows.append((short(r["Kernel Name"]), float(r["Metric Value"].replace(",", "")) * scale,
                     r.get("Grid Size", ""), r.get("Block Size", "")))
    total = sum(ms for _, ms, _, _ in rows)
    groups = defaultdict(lambda: [0.0, 0, set()])
    for name, ms, grid, block in rows:
        g = groups[name]
        g[0] += ms
        g[1] += 1
        g[2].add(grid)
    print(f"## {path}: {len(rows)} kernels, {total:.2f} ms of GPU time (sum of kernel durations)\n")
    print("| ms | % | launches | mean us | kernel | grids |")
    print("|---|---|---|---|---|---|")
    for name, (ms, n, grids) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        gl = ", ".join(sorted(grids)[:3]) + (" ..." if len(grids) > 3 else "")
        print(f"| {ms:.3f} | {100 * ms / max(total, 1e-9):.1f} | {n} | {1e3 * ms / n:.1f} | `{name}` | {gl} |")
    print()


if __name__ == "__main__":
    for p in sys.argv[1:]:
        summarise(p)
