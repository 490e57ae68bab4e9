#!/usr/bin/env python3
"""Compare our linear (bench/gemm_bench, C++) with torch on the same GPU, in the same run.

Runs the C++ bench as a subprocess, then times torch at the same shapes the same way (bf16, 3 rotating input
sets, warm-up, CUDA events around each call, median): F.linear(x, w, b), followed by
F.gelu(approximate="tanh") for fc1, which is what a PyTorch model does. Prints a markdown table.

    python3 bench/gemm_bench.py --binary build/bench/gemm_bench [--tokens 8192] [--reps 50]
"""
import argparse
import subprocess
import sys

import torch
import torch.nn.functional as F


def time_torch(m, k, n, act, reps, warmup, sets=3):
    gen = torch.Generator(device="cuda").manual_seed(0)
    xs = [torch.rand(m, k, device="cuda", generator=gen).mul_(2).sub_(1).to(torch.bfloat16) for _ in range(sets)]
    ws = [torch.rand(n, k, device="cuda", generator=gen).mul_(0.1).sub_(0.05).to(torch.bfloat16) for _ in range(sets)]
    bs = [torch.rand(n, device="cuda", generator=gen).mul_(2).sub_(1).to(torch.bfloat16) for _ in range(sets)]

    def call(i):
        y = F.linear(xs[i], ws[i], bs[i])
        if act == "gelu":
            y = F.gelu(y, approximate="tanh")
        return y

    for i in range(warmup):
        call(i % sets)
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for i in range(reps):
        start.record()
        call(i % sets)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()

    out = subprocess.run([args.binary, "--tokens", str(args.tokens), "--reps", str(args.reps), "--warmup",
                          str(args.warmup)], check=True, capture_output=True, text=True)
    sys.stderr.write(out.stderr)
    lines = [l for l in out.stdout.splitlines() if l and not l.startswith("name,")]
    if not lines:
        print(out.stdout)
        sys.exit("gemm_bench printed no results")

    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, bf16, M = {args.tokens} tokens, "
          f"median of {args.reps} after {args.warmup} warm-up, 3 rotating input sets")
    print("| shape | M x K x N | ours ms | ours TFLOP/s | torch ms | torch TFLOP/s | ours/torch throughput |")
    print("|---|---|---|---|---|---|---|")
    worst = None
    for line in lines:
        name, m, k, n, act, ms, _ = line.split(",")
        m, k, n, ms = int(m), int(k), int(n), float(ms)
        flop = 2.0 * m * k * n
        t_ms = time_torch(m, k, n, act, args.reps, args.warmup)
        ratio = t_ms / ms
        worst = ratio if worst is None else min(worst, ratio)
        print(f"| {name} | {m} x {k} x {n} | {ms:.3f} | {flop / ms / 1e9:.0f} | {t_ms:.3f} | "
              f"{flop / t_ms / 1e9:.0f} | {ratio:.3f} |")
    print(f"worst ratio: {worst:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
