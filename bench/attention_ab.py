#!/usr/bin/env python3
"""A/B of kernel builds: several builds of libsparvar_attention_capi.so (say HEAD and a variant, each configured with
its own -DCMAKE_CUDA_FLAGS) timed alternately in one process, best of 3 rounds, last scale of 1024x1024 (B = 2, D = 128),
random masks at 16 / 28 heads and 64 / 128-token blocks, plus fixed list lengths L (128-token blocks, 16 heads: the
per-tile cost). The last column: each build's output against the first's (and, dense, the first's against cuDNN).

  python3 bench/attention_ab.py A=/tmp/bA/src/attention/cuda/libsparvar_attention_capi.so B=/tmp/bB/...
A build may name the kernel it runs (default 0, auto): W=/tmp/b/.../libsparvar_attention_capi.so@4 S=...@5, and
environment settings it runs under (read by the library at each call), e.g. the split tail off and on with one build:
  OFF=$L@5@SPARVAR_BSA_SPLIT=off ON=$L@5
AB_CASES=dense,10% (environment) times only those cases; AB_SCALES=48,64 the query grid sides (default 64, the last
scale; the fixed-length cases run at 64 only).
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attention_bench as ab
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

if len(sys.argv) < 2 or any("=" not in a for a in sys.argv[1:]):
    sys.exit(__doc__)
libs, kernel_of, env_of = [], {}, {}
for a in sys.argv[1:]:
    name, spec = a.split("=", 1)
    path, _, rest = spec.partition("@")
    kern, _, envs = rest.partition("@")
    libs.append((name, ab.Ours(path)))
    kernel_of[name] = int(kern or 0)
    env_of[name] = dict(e.split("=", 1) for e in envs.split(",") if e)
env_keys = {k for e in env_of.values() for k in e}


def use_env(name):
    """The environment build `name` runs under: its settings, the others' keys unset."""
    for k in env_keys:
        if k in env_of[name]:
            os.environ[k] = env_of[name][k]
        else:
            os.environ.pop(k, None)


dev = torch.device("cuda")
torch.manual_seed(0)
gen = torch.Generator().manual_seed(1)
B, D = 2, 128
print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}")
print("| scale | heads | blk | case | cuDNN ms | " + " | ".join(f"{n} ms (TF/s)" for n, _ in libs) + " | err vs first |")
for side, H in [(int(s), h) for s in os.environ.get("AB_SCALES", "64").split(",") for h in (16, 28)]:
    k_idx = ab.INFINITY_1024.index(side)
    nq_true, nk_true = side * side, sum(s * s for s in ab.INFINITY_1024[: k_idx + 1])
    q0 = torch.randn(B, H, nq_true, D, device=dev, dtype=torch.bfloat16)
    k0 = torch.randn(B, H, nk_true, D, device=dev, dtype=torch.bfloat16)
    v0 = torch.randn(B, H, nk_true, D, device=dev, dtype=torch.bfloat16)
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        t_cudnn = ab.bench(lambda: F.scaled_dot_product_attention(q0, k0, v0))
        ref = F.scaled_dot_product_attention(q0, k0, v0)
    for blk in (128, 64):
        nq, nk = ab.pad(nq_true, blk), ab.pad(nk_true, blk)
        qb, kb = nq // blk, nk // blk
        q = torch.zeros(B, H, nq, D, device=dev, dtype=torch.bfloat16)
        k = torch.zeros(B, H, nk, D, device=dev, dtype=torch.bfloat16)
        v = torch.zeros_like(k)
        q[:, :, :nq_true] = q0; k[:, :, :nk_true] = k0; v[:, :, :nk_true] = v0
        k_valid = torch.full((kb,), blk, dtype=torch.int32)
        k_valid[-1] = nk_true - (kb - 1) * blk
        k_valid = k_valid.to(dev)
        cases = [(f"{d:.0%}" if d < 1 else "dense", ab.random_rows(H, qb, kb, d, gen)) for d in (1.0, 0.3, 0.1, 0.05)]
        if blk == 128 and H == 16 and side == 64:
            for L in (1, 2, 4, 8, 16, 32):
                rows = []
                for _ in range(H * qb):
                    rows.append(sorted(torch.randperm(kb, generator=gen)[:L].tolist()))
                cases.append((f"L={L}", rows))
        only = os.environ.get("AB_CASES")
        for name, rows in cases:
            if only and name not in only.split(","):
                continue
            pat = ab.Pattern(rows, H, qb, kb, dev)
            flops = 4.0 * B * blk * blk * D * pat.nnz
            outs, best = [], [math.inf] * len(libs)
            runs = []
            for name_, lib in libs:
                o = torch.full_like(q, float("nan"))
                runs.append((lib.prepare(q, k, v, o, pat, blk, blk, k_valid, kernel_of[name_]), o))
            for rnd in range(3):
                for i, (run, _) in enumerate(runs):
                    use_env(libs[i][0])
                    best[i] = min(best[i], ab.bench(run))
            o0 = runs[0][1][:, :, :nq_true].float()
            errs = [((r[1][:, :, :nq_true].float() - o0).norm() / o0.norm()).item() for r in runs[1:]]
            if name == "dense":
                errs.append(((o0 - ref.float()).norm() / ref.float().norm()).item())
            print(f"| {side} | {H} | {blk} | {name} | {t_cudnn:.3f} | " + " | ".join(
                f"{t:.4f} ({flops / t / 1e9:.0f})" for t in best) + " | " + " ".join(f"{e:.1e}" for e in errs) + " |",
                flush=True)
    del q0, k0, v0
    torch.cuda.empty_cache()
