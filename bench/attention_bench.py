#!/usr/bin/env python3
"""Block-sparse attention benchmark: our Hopper kernel (ctypes, libsparvar_attention_capi.so) against cuDNN SDPA,
FlashAttention-2 (torch SDPA backends, dense) and FlexAttention (compiled, BlockMask built from the SAME CSR lists),
all timed in one run on Infinity 1024x1024 shapes (B=2, head dim 128).

  python3 bench/attention_bench.py --lib build/src/attention/cuda/libsparvar_attention_capi.so --out $OUT
  # real CSLA masks written by `export_patterns DIR` (last three scales of 1024x1024, 64 and 128 blocks):
  python3 bench/attention_bench.py --lib ... --patterns DIR --kernels 2,3
  # one launch per case and no baselines (for ncu -k regex:block_sparse):
  python3 bench/attention_bench.py --lib ... --profile --kernels 2,3 --densities 1.0,0.1 --blocks 64 --heads 16
"""
import argparse
import ctypes
import datetime
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from triton.testing import do_bench

INFINITY_1024 = [1, 2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64]


class Args(ctypes.Structure):
    _fields_ = [("q", ctypes.c_void_p), ("k", ctypes.c_void_p), ("v", ctypes.c_void_p), ("out", ctypes.c_void_p),
                ("batch", ctypes.c_int), ("heads", ctypes.c_int), ("head_dim", ctypes.c_int),
                ("nq", ctypes.c_int), ("nk", ctypes.c_int), ("q_block", ctypes.c_int), ("k_block", ctypes.c_int),
                ("row_offsets", ctypes.c_void_p), ("col_blocks", ctypes.c_void_p), ("nnz", ctypes.c_int),
                ("pattern_heads", ctypes.c_int), ("k_valid", ctypes.c_void_p), ("q_valid", ctypes.c_void_p),
                ("softmax_scale", ctypes.c_float), ("block_mass", ctypes.c_void_p), ("kernel", ctypes.c_int),
                ("kv_rows", ctypes.c_int), ("out_rows", ctypes.c_void_p), ("out_tokens", ctypes.c_int)]


def compiled_flex():
    """flex_attention compiled once per shape. Each shape is one more compiled entry; past dynamo's recompile limit
    (8 in torch 2.11) torch runs flex_attention uncompiled, which materialises every score (session 10: the last
    four CSLA shapes timed at 33-99 ms). Raise the limit above the cases one run times."""
    import torch._dynamo
    from torch.nn.attention.flex_attention import flex_attention
    cfg = torch._dynamo.config
    for name, value in (("recompile_limit", 64), ("cache_size_limit", 64),
                        ("accumulated_recompile_limit", 256), ("accumulated_cache_size_limit", 256)):
        if hasattr(cfg, name):  # the names changed across torch versions
            setattr(cfg, name, max(getattr(cfg, name), value))
    return torch.compile(flex_attention, dynamic=False)


def pad(n, b):
    return (n + b - 1) // b * b


def random_rows(heads, qblocks, kblocks, density, gen):
    """Per head and query block: 3 sink blocks + random others, density of the key blocks (1.0 = all)."""
    want = max(3, min(kblocks, round(density * kblocks)))
    rows = []
    for _ in range(heads * qblocks):
        if want >= kblocks:
            rows.append(list(range(kblocks)))
            continue
        others = torch.randperm(kblocks - 3, generator=gen)[: want - 3] + 3
        rows.append(sorted([0, 1, 2] + others.tolist()))
    return rows


class Pattern:
    def __init__(self, rows, heads, qblocks, kblocks, dev):
        self.rows, self.heads, self.qblocks, self.kblocks = rows, heads, qblocks, kblocks
        counts = torch.tensor([len(r) for r in rows], dtype=torch.int32)
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.int32), counts.cumsum(0).to(torch.int32)]).to(dev)
        self.cols = torch.tensor([c for r in rows for c in r], dtype=torch.int32, device=dev)
        self.nnz = int(counts.sum())
        self.counts = counts

    def flex_mask(self, batch, nq, nk, qb, kb, dev):
        from torch.nn.attention.flex_attention import BlockMask
        idx = torch.zeros(self.heads * self.qblocks, self.kblocks, dtype=torch.int32)
        for i, r in enumerate(self.rows):
            idx[i, : len(r)] = torch.tensor(r, dtype=torch.int32)
        idx = idx.view(1, self.heads, self.qblocks, self.kblocks).expand(batch, -1, -1, -1).contiguous().to(dev)
        full = self.counts.view(1, self.heads, self.qblocks).expand(batch, -1, -1).contiguous().to(dev)
        zero = torch.zeros_like(full)
        return BlockMask.from_kv_blocks(zero, torch.zeros_like(idx), full, idx, BLOCK_SIZE=(qb, kb),
                                        seq_lengths=(nq, nk))


class Ours:
    def __init__(self, lib_path):
        self.lib = ctypes.CDLL(lib_path)
        self.lib.sparvar_block_sparse_attention.argtypes = [ctypes.POINTER(Args), ctypes.c_void_p]
        self.lib.sparvar_block_sparse_attention.restype = ctypes.c_int
        self.lib.sparvar_last_error.restype = ctypes.c_char_p

    def prepare(self, q, k, v, out, pat, qb, kb, k_valid, kernel, mass=None):
        B, H, nq, D = q.shape
        a = Args(q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), B, H, D, nq, k.shape[2], qb, kb,
                 pat.offsets.data_ptr(), pat.cols.data_ptr(), pat.nnz, pat.heads,
                 k_valid.data_ptr() if k_valid is not None else None, None, 1.0 / math.sqrt(D),
                 mass.data_ptr() if mass is not None else None, kernel)
        stream = torch.cuda.current_stream().cuda_stream

        def run():
            if self.lib.sparvar_block_sparse_attention(ctypes.byref(a), stream) != 0:
                raise RuntimeError(self.lib.sparvar_last_error().decode())
        return run


def load_patterns(path):
    """index.txt + .npy files of export_patterns: [(side, blk, offsets, cols, k_valid, q_valid, cost, pairs)]."""
    import numpy as np
    out = []
    with open(os.path.join(path, "index.txt")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            side, blk, nqb, nkb, nnz, qtok, ktok, cost, pairs = line.split()
            stem = os.path.join(path, f"csla_s{side}_b{blk}_")
            arr = {n: np.load(stem + n + ".npy").astype("int32") for n in ("row_offsets", "col_blocks", "k_valid",
                                                                            "q_valid")}
            assert len(arr["row_offsets"]) == int(nqb) + 1 and len(arr["col_blocks"]) == int(nnz)
            assert len(arr["k_valid"]) == int(nkb) and len(arr["q_valid"]) == int(nqb)
            out.append((int(side), int(blk), arr, int(qtok), int(ktok), float(cost), float(pairs)))
    return out


def flex_mask_partial(rows, heads, qblocks, kblocks, blk, k_valid, batch, dev):
    """BlockMask for shared rows: fully valid key blocks 'full', partly valid ones masked per key by k_valid."""
    from torch.nn.attention.flex_attention import BlockMask
    kv = torch.tensor(k_valid, dtype=torch.int32)
    full_idx = torch.zeros(qblocks, kblocks, dtype=torch.int32)
    part_idx = torch.zeros(qblocks, kblocks, dtype=torch.int32)
    full_n = torch.zeros(qblocks, dtype=torch.int32)
    part_n = torch.zeros(qblocks, dtype=torch.int32)
    for i, r in enumerate(rows):
        f = [c for c in r if kv[c] >= blk]
        p = [c for c in r if kv[c] < blk]
        full_idx[i, : len(f)] = torch.tensor(f, dtype=torch.int32)
        part_idx[i, : len(p)] = torch.tensor(p, dtype=torch.int32) if p else 0
        full_n[i], part_n[i] = len(f), len(p)

    def expand(t):
        return t.view(1, 1, *t.shape).expand(batch, heads, *t.shape).contiguous().to(dev)
    kv_dev = kv.to(dev)

    def mask_mod(b, h, q_idx, kv_idx):
        return (kv_idx % blk) < kv_dev[kv_idx // blk]
    return BlockMask.from_kv_blocks(expand(part_n), expand(part_idx), expand(full_n), expand(full_idx),
                                    BLOCK_SIZE=(blk, blk), mask_mod=mask_mod, seq_lengths=(qblocks * blk, kblocks * blk))


def bench(fn):
    fn()
    torch.cuda.synchronize()
    return do_bench(fn, warmup=30, rep=150, return_mode="median")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--heads", default="16,28")
    ap.add_argument("--kernels", default="1", help="our variants: 0 auto, 1 simple, 2 pipelined, 4 wide, 5 shared (q_block 128, or pairs of 64-row blocks)")
    ap.add_argument("--densities", default="1.0,0.3,0.2,0.15,0.1,0.05")
    ap.add_argument("--blocks", default="64,128")
    ap.add_argument("--scales", default="64", help="query grid sides to time (16..64)")
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--patterns", default=None, help="directory written by export_patterns: time those masks")
    ap.add_argument("--profile", action="store_true", help="one launch per case of ours, no baselines (for ncu)")
    opt = ap.parse_args()
    if opt.profile:
        return profile(opt)
    if opt.patterns:
        return bench_patterns(opt)
    dev = torch.device("cuda")
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    ours = Ours(opt.lib)
    kernels = [int(x) for x in opt.kernels.split(",")]
    flex = None
    if not opt.no_flex:
        flex = compiled_flex()
    B, D = 2, 128
    lines = []

    def emit(s):
        print(s, flush=True)
        lines.append(s)

    gpu = torch.cuda.get_device_name()
    emit(f"# {gpu}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
         f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    emit("| scale | heads | blk | density | cuDNN ms (TF/s) | FA2 ms | "
         + " | ".join(f"ours k{k} ms (TF/s, x cuDNN)" for k in kernels)
         + " | Flex ms (TF/s) | ours/Flex |")
    emit("|" + "---|" * (7 + len(kernels)))
    for side in [int(s) for s in opt.scales.split(",")]:
        k_idx = INFINITY_1024.index(side)
        nq_true = side * side
        nk_true = sum(s * s for s in INFINITY_1024[: k_idx + 1])
        for H in [int(h) for h in opt.heads.split(",")]:
            q0 = torch.randn(B, H, nq_true, D, device=dev, dtype=torch.bfloat16)
            k0 = torch.randn(B, H, nk_true, D, device=dev, dtype=torch.bfloat16)
            v0 = torch.randn(B, H, nk_true, D, device=dev, dtype=torch.bfloat16)
            dense_flops = 4.0 * B * H * nq_true * nk_true * D
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                t_cudnn = bench(lambda: F.scaled_dot_product_attention(q0, k0, v0))
                ref_dense = F.scaled_dot_product_attention(q0, k0, v0)
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                t_fa2 = bench(lambda: F.scaled_dot_product_attention(q0, k0, v0))
            for blk in [int(b) for b in opt.blocks.split(",")]:
                nq, nk = pad(nq_true, blk), pad(nk_true, blk)
                qblocks, kblocks = nq // blk, nk // blk
                q = torch.zeros(B, H, nq, D, device=dev, dtype=torch.bfloat16)
                k = torch.zeros(B, H, nk, D, device=dev, dtype=torch.bfloat16)
                v = torch.zeros_like(k)
                q[:, :, :nq_true] = q0
                k[:, :, :nk_true] = k0
                v[:, :, :nk_true] = v0
                k_valid = torch.full((kblocks,), blk, dtype=torch.int32)
                k_valid[-1] = nk_true - (kblocks - 1) * blk
                k_valid = k_valid.to(dev)
                out = torch.empty_like(q)
                for dens in [float(x) for x in opt.densities.split(",")]:
                    pat = Pattern(random_rows(H, qblocks, kblocks, dens, gen), H, qblocks, kblocks, dev)
                    flops = 4.0 * B * blk * blk * D * pat.nnz
                    cells = []
                    t_best = None
                    for kern in kernels:
                        try:
                            run = ours.prepare(q, k, v, out, pat, blk, blk, k_valid, kern)
                            t = bench(run)
                            if dens >= 1.0 and kern == kernels[0]:
                                err = ((out[:, :, :nq_true].float() - ref_dense.float()).norm()
                                       / ref_dense.float().norm()).item()
                                emit(f"<!-- check: ours k{kern} dense vs cuDNN, scale {side} H{H} blk {blk}: "
                                     f"rel err {err:.2e} -->")
                            cells.append(f"{t:.3f} ({flops / t / 1e9:.0f}, {t_cudnn / t:.2f}x)")
                            t_best = t if t_best is None else min(t_best, t)
                        except Exception as e:  # report, keep going
                            cells.append(f"err: {str(e)[:40]}")
                    fcell, ratio = "-", "-"
                    if flex is not None:
                        try:
                            bm = pat.flex_mask(B, nq, nk, blk, blk, dev)
                            kw = {} if blk == 128 else {"kernel_options": {"BLOCK_M": 64, "BLOCK_N": 64}}
                            t_flex = bench(lambda: flex(q, k, v, block_mask=bm, **kw))
                            fcell = f"{t_flex:.3f} ({flops / t_flex / 1e9:.0f})"
                            if t_best:
                                ratio = f"{t_flex / t_best:.2f}x"
                            if dens == 0.1:
                                fo = flex(q, k, v, block_mask=bm, **kw)
                                ours.prepare(q, k, v, out, pat, blk, blk, None, kernels[0])()
                                err = ((out.float() - fo.float()).norm() / fo.float().norm()).item()
                                emit(f"<!-- check: ours vs Flex at 10%, scale {side} H{H} blk {blk}: rel err {err:.2e} -->")
                        except Exception as e:
                            fcell = f"err: {str(e)[:60]}"
                    emit(f"| {side}x{side} | {H} | {blk} | {'dense' if dens >= 1 else f'{dens:.0%}'} | "
                         f"{t_cudnn:.3f} ({dense_flops / t_cudnn / 1e9:.0f}) | {t_fa2:.3f} | "
                         + " | ".join(cells) + f" | {fcell} | {ratio} |")
            del q0, k0, v0
            torch.cuda.empty_cache()
    with open(os.path.join(opt.out, "attention_bench.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def profile(opt):
    """Two launches per (kernel, block, density) at the last scale, random masks as in the main table."""
    dev = torch.device("cuda")
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    ours = Ours(opt.lib)
    B, D, side = 2, 128, int(opt.scales.split(",")[0])
    k_idx = INFINITY_1024.index(side)
    nq_true, nk_true = side * side, sum(s * s for s in INFINITY_1024[: k_idx + 1])
    for H in [int(h) for h in opt.heads.split(",")]:
        for blk in [int(b) for b in opt.blocks.split(",")]:
            nq, nk = pad(nq_true, blk), pad(nk_true, blk)
            q = torch.randn(B, H, nq, D, device=dev, dtype=torch.bfloat16)
            k = torch.randn(B, H, nk, D, device=dev, dtype=torch.bfloat16)
            v = torch.randn_like(k)
            out = torch.empty_like(q)
            for dens in [float(x) for x in opt.densities.split(",")]:
                pat = Pattern(random_rows(H, nq // blk, nk // blk, dens, gen), H, nq // blk, nk // blk, dev)
                for kern in [int(x) for x in opt.kernels.split(",")]:
                    run = ours.prepare(q, k, v, out, pat, blk, blk, None, kern)
                    for _ in range(2):
                        run()
                    torch.cuda.synchronize()
                    print(f"profiled: H{H} blk {blk} density {dens} kernel {kern} (launches 2)", flush=True)


def bench_patterns(opt):
    """Real CSLA masks (export_patterns) at their exact padded tile-order shapes; shared across heads."""
    dev = torch.device("cuda")
    torch.manual_seed(0)
    ours = Ours(opt.lib)
    kernels = [int(x) for x in opt.kernels.split(",")]
    flex = None
    if not opt.no_flex:
        flex = compiled_flex()
    B, D = 2, 128
    lines = []

    def emit(s):
        print(s, flush=True)
        lines.append(s)

    emit(f"# CSLA patterns from {opt.patterns}: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
         f"cuDNN {torch.backends.cudnn.version()}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    emit("| scale | heads | blk | density (full-block cost) | cuDNN ms (TF/s) | FA2 ms | "
         + " | ".join(f"ours k{k} ms (TF/s, x cuDNN)" for k in kernels) + " | Flex ms (TF/s) | ours/Flex |")
    emit("|" + "---|" * (8 + len(kernels)))
    pats = load_patterns(opt.patterns)
    for H in [int(h) for h in opt.heads.split(",")]:
        dense_cache = {}
        for side, blk, arr, qtok, ktok, cost, pairs in pats:
            if side not in dense_cache:
                q0 = torch.randn(B, H, qtok, D, device=dev, dtype=torch.bfloat16)
                k0 = torch.randn(B, H, ktok, D, device=dev, dtype=torch.bfloat16)
                v0 = torch.randn(B, H, ktok, D, device=dev, dtype=torch.bfloat16)
                with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                    t_cudnn = bench(lambda: F.scaled_dot_product_attention(q0, k0, v0))
                with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    t_fa2 = bench(lambda: F.scaled_dot_product_attention(q0, k0, v0))
                dense_cache[side] = (t_cudnn, t_fa2, 4.0 * B * H * qtok * ktok * D)
                del q0, k0, v0
            t_cudnn, t_fa2, dense_flops = dense_cache[side]
            offs, cols = arr["row_offsets"], arr["col_blocks"]
            qblocks, kblocks = len(offs) - 1, len(arr["k_valid"])
            rows = [cols[offs[i]:offs[i + 1]].tolist() for i in range(qblocks)]
            pat = Pattern(rows, 1, qblocks, kblocks, dev)
            nq, nk = qblocks * blk, kblocks * blk
            # Random values in every slot (padding keys hold data too: the masks must hide them).
            q = torch.randn(B, H, nq, D, device=dev, dtype=torch.bfloat16)
            k = torch.randn(B, H, nk, D, device=dev, dtype=torch.bfloat16)
            v = torch.randn(B, H, nk, D, device=dev, dtype=torch.bfloat16)
            k_valid = torch.tensor(arr["k_valid"], dtype=torch.int32, device=dev)
            out = torch.empty_like(q)
            flops = 4.0 * B * H * blk * blk * D * pat.nnz
            qmask = (torch.arange(blk).view(1, blk) < torch.tensor(arr["q_valid"]).view(-1, 1)).reshape(-1).to(dev)
            cells, t_best, outs = [], None, {}
            for kern in kernels:
                try:
                    run = ours.prepare(q, k, v, out, pat, blk, blk, k_valid, kern)
                    t = bench(run)
                    run()
                    outs[kern] = out[:, :, qmask].float().clone()
                    cells.append(f"{t:.3f} ({flops / t / 1e9:.0f}, {t_cudnn / t:.2f}x)")
                    t_best = t if t_best is None else min(t_best, t)
                except Exception as e:
                    cells.append(f"err: {str(e)[:40]}")
            fcell, ratio = "-", "-"
            if flex is not None:
                try:
                    bm = flex_mask_partial(rows, H, qblocks, kblocks, blk, arr["k_valid"].tolist(), B, dev)
                    kw = {} if blk == 128 else {"kernel_options": {"BLOCK_M": 64, "BLOCK_N": 64}}
                    t_flex = bench(lambda: flex(q, k, v, block_mask=bm, **kw))
                    fcell = f"{t_flex:.3f} ({flops / t_flex / 1e9:.0f})"
                    if t_best:
                        ratio = f"{t_flex / t_best:.2f}x"
                    fo = flex(q, k, v, block_mask=bm, **kw)[:, :, qmask].float()
                    for kern, o in outs.items():
                        err = ((o - fo).norm() / fo.norm()).item()
                        emit(f"<!-- check: ours k{kern} vs Flex, CSLA {side}x{side} H{H} blk {blk}: "
                             f"rel err {err:.2e} (valid query rows) -->")
                except Exception as e:
                    fcell = f"err: {str(e)[:60]}"
            emit(f"| {side}x{side} | {H} | {blk} | {cost:.1%} | {t_cudnn:.3f} ({dense_flops / t_cudnn / 1e9:.0f}) | "
                 f"{t_fa2:.3f} | " + " | ".join(cells) + f" | {fcell} | {ratio} |")
            del q, k, v, out
            torch.cuda.empty_cache()
    with open(os.path.join(opt.out, "attention_patterns.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
