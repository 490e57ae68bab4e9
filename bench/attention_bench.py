#!/usr/bin/env python3
"""Block-sparse attention benchmark: our Hopper kernel (ctypes, libsparvar_attention_capi.so) against cuDNN SDPA,
FlashAttention-2 (torch SDPA backends, dense) and FlexAttention (compiled, BlockMask built from the SAME CSR lists),
all timed in one run on Infinity 1024x1024 shapes (B=2, head dim 128).

  python3 bench/attention_bench.py --lib build/src/attention/cuda/libsparvar_attention_capi.so --out $OUT
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
                ("softmax_scale", ctypes.c_float), ("block_mass", ctypes.c_void_p), ("kernel", ctypes.c_int)]


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


def bench(fn):
    fn()
    torch.cuda.synchronize()
    return do_bench(fn, warmup=30, rep=150, return_mode="median")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--heads", default="16,28")
    ap.add_argument("--kernels", default="1", help="our variants: 1 simple, 2 pipelined")
    ap.add_argument("--densities", default="1.0,0.3,0.2,0.15,0.1,0.05")
    ap.add_argument("--blocks", default="64,128")
    ap.add_argument("--scales", default="64", help="query grid sides to time (16..64)")
    ap.add_argument("--no-flex", action="store_true")
    opt = ap.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    ours = Ours(opt.lib)
    kernels = [int(x) for x in opt.kernels.split(",")]
    flex = None
    if not opt.no_flex:
        from torch.nn.attention.flex_attention import flex_attention
        flex = torch.compile(flex_attention, dynamic=False)
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


if __name__ == "__main__":
    sys.exit(main())
