#!/usr/bin/env python3
"""Markdown table from run_device.sh's JSON files (ours_<m>.json, official_<m>_<sdpa>.json) in a folder."""
import glob
import json
import os
import sys


def main(folder):
    print("| model | pipeline | best ms | transformer ms | VAE ms | peak GPU MiB | vs official cuDNN | vs official FA2 |")
    print("|---|---|---|---|---|---|---|---|")
    for m in ("2b", "8b"):
        off = {}
        for sdpa in ("cudnn", "flash"):
            p = os.path.join(folder, f"official_{m}_{sdpa}.json")
            if os.path.exists(p):
                off[sdpa] = json.load(open(p))
        ours_p = os.path.join(folder, f"ours_{m}.json")
        ours = json.load(open(ours_p)) if os.path.exists(ours_p) else None
        if not off and not ours:
            continue

        def ratio(ms, sdpa):
            return f"{off[sdpa]['best']['total_ms'] / ms:.2f}x" if sdpa in off else "-"
        for sdpa, o in off.items():
            b = o["best"]
            print(f"| {m.upper()} | official, SDPA {sdpa} | {b['total_ms']:.1f} | {b['transformer_ms']:.1f} | "
                  f"{b['vae_ms']:.1f} | {b['peak_allocated_bytes'] / 2**20:.0f} (reserved "
                  f"{b['peak_reserved_bytes'] / 2**20:.0f}) | {ratio(b['total_ms'], 'cudnn')} | {ratio(b['total_ms'], 'flash')} |")
        if ours:
            for mode, r in ours["modes"].items():
                print(f"| {m.upper()} | sparvar {mode} | {r['best_ms']:.1f} | {r['condition_ms'] + r['scales_ms']:.1f} | "
                      f"{r['vae_ms']:.1f} | {r['peak_gpu_bytes'] / 2**20:.0f} | {ratio(r['best_ms'], 'cudnn')} | "
                      f"{ratio(r['best_ms'], 'flash')} |")
    print()
    for p in sorted(glob.glob(os.path.join(folder, "ours_*.json"))):
        ours = json.load(open(p))
        modes = list(ours["modes"])
        print(f"Per scale, ms ({os.path.basename(p)}, best run): " + ", ".join(modes))
        n = len(ours["modes"][modes[0]]["scale_ms"])
        for k in range(n):
            print(f"  scale {k + 1:2d}: " + "  ".join(f"{ours['modes'][mo]['scale_ms'][k]:8.2f}" for mo in modes))
    for p in sorted(glob.glob(os.path.join(folder, "official_*.json"))):
        o = json.load(open(p))
        print(f"{os.path.basename(p)}: checkpoint keys missing {o['checkpoint']['missing']}, unexpected "
              f"{o['checkpoint']['unexpected']}; {o['gpu']}, torch {o['torch']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
