"""Helpers shared by the training scripts: paths, seeds, device/autocast, the rendered image set, the scale
schedule, time budgets and LR schedule, resumable checkpoints, CSV logs and loss plots, and two
training-side forwards (a straight-through multi-scale BSQ quantiser and a device-safe T5 forward) that reuse
the reference modules' parameters unchanged, so what we train is exactly what sparvar_ref (and the C++
engine) load.

Runs with torch 1.13 on CPU (smoke tests here) and torch 2.x on CUDA (training on the H100).
"""
import contextlib
import csv
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))          # python/ -> sparvar_ref
sys.path.insert(0, HERE)

from sparvar_ref import codes as C, schedules  # noqa: E402
import build_dataset  # noqa: E402

REPO = build_dataset.REPO
DATA = os.path.join(REPO, ".data")


# ---------------------------------------------------------------------------------------------------------
def seed_all(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (fp32 master weights, fp32 norms/softmax inside the reference modules);
    plain fp32 on CPU, where bf16 is slow and torch 1.13's CPU autocast is incomplete."""
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_fast_math(device):
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


# ---------------------------------------------------------------------------------------------------------
def schedule_for(image_size: int, patch: int):
    """Square scale schedule whose last grid is image_size / patch: the prefix of the official square 1M
    template up to that grid (256 px with patch 8 -> 1,2,4,6,8,12,16,20,24,32 = the official 0.25M list)."""
    g = image_size // patch
    assert g * patch == image_size, "image size must be a multiple of the VAE patch"
    full = schedules.get_schedule(1.0, "1M")
    sched = [s for s in full if s[1] <= g]
    assert sched[-1][1] == g, f"no square template scale of {g}x{g} tokens"
    return sched


def load_images(data_dir: str, size: int, split: str = "train", limit: int = 0, workers: int = 0):
    """(uint8 images (N, size, size, 3), captions) of one split, rendered by build_dataset.render and cached
    as .data/.../render_<split>_<size>.npy so later stages (and reruns) skip the rendering."""
    sprites, items = build_dataset.load_set(data_dir)
    idx = [i for i, it in enumerate(items) if split == "all" or it["split"] == split]
    if limit:
        idx = idx[:limit]
    caps = [items[i]["caption"] for i in idx]
    cache = os.path.join(data_dir, f"render_{split}_{size}_{limit}.npy")
    if os.path.exists(cache) and os.path.getmtime(cache) >= os.path.getmtime(os.path.join(data_dir, "sprites.npz")):
        arr = np.load(cache, mmap_mode="r")
        if arr.shape[0] == len(idx):
            return np.array(arr), caps
    srcs = [sprites[i] for i in idx]
    if workers and workers > 1:
        from multiprocessing import Pool
        with Pool(workers) as p:
            imgs = p.starmap(build_dataset.render, [(s, size) for s in srcs], chunksize=64)
    else:
        imgs = [build_dataset.render(s, size) for s in srcs]
    arr = np.stack(imgs) if imgs else np.zeros((0, size, size, 3), np.uint8)
    try:
        np.save(cache, arr)
    except OSError:
        pass
    return arr, caps


def to_model_range(u8_BHW3: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1], the VAE's input range."""
    return u8_BHW3.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


# ---------------------------------------------------------------------------------------------------------
class Budget:
    """Stops a run at --steps or --minutes, whichever comes first; progress() drives the LR schedule so a
    time-limited run still finishes its cosine decay."""

    def __init__(self, steps: int, minutes: float, start_step: int = 0, spent_s: float = 0.0, stop_after: float = 0):
        self.steps, self.seconds = steps, minutes * 60 if minutes and minutes > 0 else float("inf")
        self.t0 = time.time() - spent_s
        self.start_step = start_step
        # stop_after: end THIS invocation after that many minutes (checkpoint saved, LR schedule untouched),
        # so a stage longer than one device call (10 min) runs as several --resume calls
        self.stop_at = time.time() + stop_after * 60 if stop_after and stop_after > 0 else float("inf")

    def elapsed(self):
        return time.time() - self.t0

    def progress(self, step):
        return min(1.0, max(step / max(1, self.steps), self.elapsed() / self.seconds))

    def finished(self, step):
        return step >= self.steps or self.elapsed() >= self.seconds

    def done(self, step):
        return self.finished(step) or time.time() >= self.stop_at


def lr_at(progress: float, step: int, base: float, warmup: int, final_frac: float = 0.1):
    w = min(1.0, (step + 1) / max(1, warmup))
    cos = final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * progress))
    return base * w * cos


# ---------------------------------------------------------------------------------------------------------
class CSVLog:
    def __init__(self, path, fields, resume=False):
        self.path, self.fields = path, list(fields)
        new = not (resume and os.path.exists(path))
        self.f = open(path, "w" if new else "a", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=self.fields, extrasaction="ignore")
        if new:
            self.w.writeheader()

    def log(self, **row):
        self.w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self.f.flush()


def plot_csv(csv_path, png_path, columns, title=""):
    """Loss curves (log y) from a CSV log; skipped with a message if matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (the CSV has the numbers)")
        return None
    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        return None
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for c in columns:
        ys = [float(r[c]) if r.get(c) not in (None, "") else float("nan") for r in rows]
        ax.plot(steps, ys, label=c)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path


# ---------------------------------------------------------------------------------------------------------
def save_checkpoint(path, **state):
    """Atomic save (write + rename), so a run killed mid-save keeps the previous checkpoint."""
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path):
    # Our own training checkpoints hold numpy RNG state next to tensors; torch >= 2.6 refuses those with its
    # default weights_only=True. They are written by this pipeline, so full unpickling is acceptable here.
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:  # torch without the weights_only argument
        return torch.load(path, map_location="cpu")


def rng_state():
    s = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s):
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


# ---------------------------------------------------------------------------------------------------------
def ms_bsq_train(quantizer, h_BdHW, vae_sched, tau: float = 1.0):
    """Multi-scale BSQ of the reference (bsq_vae.MultiScaleBSQ.forward), with a real straight-through
    gradient (the reference computes q = z + (zhat - z) without detach, which is right for inference but
    passes no gradient). Same arithmetic: per scale, area-downsample the residual, L2-normalise, take signs
    * 1/sqrt(d), upsample trilinear, subtract. Returns (summed codes (B, d, 1, H, W) with gradient,
    bits per scale [(B, 1, h, w, d)], commitment loss, per-sample entropy, codebook entropy)."""
    d = quantizer.lfq.d
    s = 1.0 / math.sqrt(d)
    x = h_BdHW.unsqueeze(2)
    full = tuple(x.shape[2:])
    residual, out, bits_all = x, 0, []
    commit, ent_s, ent_c = 0.0, 0.0, 0.0
    for thw in vae_sched:
        thw = tuple(thw)
        r = F.interpolate(residual, size=thw, mode=C.INTERP_DOWN) if thw != full else residual
        z = F.normalize(r.permute(0, 2, 3, 4, 1).float(), dim=-1)          # (B, 1, h, w, d)
        zhat = torch.where(z > 0, torch.full_like(z, s), torch.full_like(z, -s))
        commit = commit + (z - zhat.detach()).pow(2).sum(-1).mean()
        # soft bit probabilities (BSQ-style factorised entropy): confident per sample, balanced overall
        p = torch.sigmoid(4.0 * z / (s * tau)).reshape(-1, d)
        ent_s = ent_s + _bin_entropy(p).mean()
        ent_c = ent_c + _bin_entropy(p.mean(0)).mean()
        q = (z + (zhat - z).detach()).permute(0, 4, 1, 2, 3)
        bits_all.append((zhat > 0).int())
        if thw != full:
            q = F.interpolate(q, size=full, mode=C.INTERP_UP)
        residual = residual - q
        out = out + q
    K = len(vae_sched)
    return out, bits_all, commit / K, ent_s / K, ent_c / K


def _bin_entropy(p):
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def t5_forward(model, input_ids, attention_mask):
    """sparvar_ref.t5.T5Encoder.forward, but with the relative-position buckets built on the ids' device
    (the reference builds them on the CPU). Same modules, same arithmetic."""
    from sparvar_ref.t5 import relative_bucket
    B, L = input_ids.shape
    x = model.shared(input_ids).float()
    ext = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    att0 = model.encoder.block[0].layer[0].SelfAttention
    pos = torch.arange(L, device=input_ids.device)
    b = relative_bucket(pos[None, :] - pos[:, None], model.cfg.relative_attention_num_buckets,
                        model.cfg.relative_attention_max_distance)
    bias = att0.relative_attention_bias(b).permute(2, 0, 1).unsqueeze(0).float() + ext
    for blk in model.encoder.block:
        x = blk(x, bias)
    return model.encoder.final_layer_norm(x), attention_mask.bool()


def tokenize(sp, captions, maxlen, device):
    """T5-style ids (eos-terminated, pad 0) and mask for a list of captions."""
    import train_tokenizer
    rows = [train_tokenizer.encode(sp, c, maxlen) for c in captions]
    L = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), L, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    return ids.to(device), (ids != 0).long().to(device)


def sdpa_attention(q, k, v, bias=None, info=None):
    """attn_fn for Infinity's self-attention in training: torch 2.x fused attention (memory-efficient
    kernel with the block-causal scale mask as a boolean mask); falls back to the reference's dense
    attention on torch 1.x. Softmax scale 1: q already carries the learned per-head scale."""
    if not hasattr(F, "scaled_dot_product_attention"):
        from sparvar_ref.infinity import dense_attention
        return dense_attention(q, k, v, bias, info)
    mask = None if bias is None else (bias == 0)
    dt = q.dtype
    return F.scaled_dot_product_attention(q, k.to(dt), v.to(dt), attn_mask=mask, scale=1.0)
