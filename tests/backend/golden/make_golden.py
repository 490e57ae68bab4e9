#!/usr/bin/env python3
"""Golden values from PyTorch for the CPU backend tests (tests/backend/test_cpu_golden.cpp).

CI has no torch: the outputs are committed next to this script. Regenerate with Debian's torch:
    /usr/bin/python3 tests/backend/golden/make_golden.py
Format of each .txt: one tensor per two lines: "<name> <ndim> <d0> ... <dn-1>", then the values, row-major.
Inputs are stored too, so the C++ test needs no RNG that matches torch's.
"""
import os

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def write(filename, tensors, comment):
    with open(os.path.join(HERE, filename), "w") as f:
        f.write(f"# {comment} (torch {torch.__version__}; made by make_golden.py)\n")
        for name, t in tensors:
            t = t.detach().to(torch.float64).contiguous()
            f.write(f"{name} {t.dim()} {' '.join(str(d) for d in t.shape)}\n")
            f.write(" ".join(f"{v:.9g}" for v in t.flatten().tolist()) + "\n")


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def resample_cases():
    # Interpolation runs in fp32, as the model would run it: the taps torch picks depend on fp32 arithmetic.
    out = []
    x22 = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    out.append(("x22", x22))
    for mode in ("nearest", "bilinear", "bicubic"):
        kw = {} if mode == "nearest" else {"align_corners": False}
        out.append((f"x22_{mode}_4x4", F.interpolate(x22, size=(4, 4), mode=mode, **kw)))
    x55 = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)
    out.append(("x55", x55))
    out.append(("x55_area_3x3", F.interpolate(x55, size=(3, 3), mode="area")))
    xr = randn(1, 2, 5, 7)
    out.append(("xr", xr))
    for size in ((3, 4), (9, 13), (8, 3)):
        for mode in ("nearest", "bilinear", "bicubic", "area"):
            kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
            out.append((f"xr_{mode}_{size[0]}x{size[1]}", F.interpolate(xr, size=size, mode=mode, **kw)))
    # torch's nearest index is floorf(dst * float(in / out)) in fp32, not the exact integer dst * in // out:
    # they differ for 6 -> 74 at dst 37 (2, not 3) and 26 -> 22 at dst 11 (12, not 13).
    xh = torch.arange(6, dtype=torch.float32).reshape(1, 1, 6, 1)
    xw = torch.arange(26, dtype=torch.float32).reshape(1, 1, 1, 26)
    out += [("xh", xh), ("xh_nearest_74x1", F.interpolate(xh, size=(74, 1), mode="nearest"))]
    out += [("xw", xw), ("xw_nearest_1x22", F.interpolate(xw, size=(1, 22), mode="nearest"))]
    write("resample.txt", out, "F.interpolate(size=...) nearest / bilinear / bicubic (align_corners=False) / area")


def elementwise_cases():
    x = randn(2, 33) * 3.0
    write("elementwise.txt", [
        ("x", x),
        ("gelu_tanh", F.gelu(x.double(), approximate="tanh")),
        ("silu", F.silu(x.double())),
        ("softmax", torch.softmax(x.double(), dim=-1)),
    ], "gelu(approximate='tanh'), silu, softmax(dim=-1)")


def norm_cases():
    x = randn(2, 3, 24) * 2.0 + 0.5
    w, b = randn(24), randn(24)
    g = randn(1, 8, 3, 5) * 1.5 - 0.3
    gw, gb = randn(8), randn(8)
    q = randn(1, 3, 2, 16)
    hs = torch.rand(3) * 3.0 + 0.5
    write("norm.txt", [
        ("x", x), ("w", w), ("b", b),
        ("layer_norm", F.layer_norm(x.double(), (24,), w.double(), b.double(), eps=1e-6)),
        ("layer_norm_plain", F.layer_norm(x.double(), (24,), eps=1e-5)),
        ("g", g), ("gw", gw), ("gb", gb),
        ("group_norm", F.group_norm(g.double(), 4, gw.double(), gb.double(), eps=1e-6)),
        ("group_norm_plain", F.group_norm(g.double(), 2, eps=1e-5)),
        ("q", q), ("head_scale", hs),
        ("l2_normalize", F.normalize(q.double(), dim=-1, eps=1e-12) * hs.double().view(1, 3, 1, 1)),
    ], "layer_norm, group_norm, F.normalize * head scale")


def conv_cases():
    x = randn(1, 3, 7, 6)
    cases = [("x", x)]
    for name, (cout, kh, kw, stride, pad, bias) in {
        "k3s2p1": (4, 3, 3, 2, 1, True),
        "k1s1p0": (5, 1, 1, 1, 0, True),
        "k3s1p0": (2, 3, 3, 1, 0, False),
        "k4x2s3p2": (3, 4, 2, 3, 2, True),
    }.items():
        w = randn(cout, 3, kh, kw)
        bb = randn(cout) if bias else None
        cases.append((f"{name}_w", w))
        if bias:
            cases.append((f"{name}_b", bb))
        y = F.conv2d(x.double(), w.double(), None if bb is None else bb.double(), stride=stride, padding=pad)
        cases.append((f"{name}_y", y))
    write("conv2d.txt", cases, "F.conv2d with zero padding and stride")


def rope_cases():
    # Infinity's apply_rotary_emb: q reshaped to (..., D/2, 2), rotated pairwise by the (cos, sin) of the grid.
    B, H, N, D = 1, 2, 6, 8
    x = randn(B, H, N, D)
    angle = torch.rand(N, D // 2) * 6.0
    cos, sin = torch.cos(angle), torch.sin(angle)
    xd = x.double().reshape(B, H, N, D // 2, 2)
    c, s = cos.double(), sin.double()
    y = torch.stack([c * xd[..., 0] - s * xd[..., 1], s * xd[..., 0] + c * xd[..., 1]], dim=-1).reshape(B, H, N, D)
    write("rope.txt", [("x", x), ("cos", cos), ("sin", sin), ("y", y)], "Infinity 2-D RoPE (interleaved pairs)")


if __name__ == "__main__":
    torch.manual_seed(20240607)
    resample_cases()
    elementwise_cases()
    norm_cases()
    conv_cases()
    rope_cases()
