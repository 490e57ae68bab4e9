"""2-D rotary position embedding of Infinity's self-attention (rope2d_normalized_by_hw = 2).

What the official code does (basic.py, precompute_rope2d_freqs_grid / apply_rotary_emb), in our words:
- head_dim is split in two halves: the first half rotates with the token's row, the second with its column.
  Each half has half_dim/2 frequencies inv_freq[j] = 1 / base^(2j / half_dim), base 10000 (float32).
- Rotation pairs are ADJACENT elements (x[2i], x[2i+1]) with angle a[i]; a[i] = row * inv_freq[i] for
  i < half_dim/2, else col * inv_freq[i - half_dim/2]. out = (cos*x0 - sin*x1, sin*x0 + cos*x1).
- Positions are normalised to the LAST scale of the template's '1M' schedule (uph x upw): a token (r, c) of
  an h x w scale sits at (round(r * uph/h), round(c * upw/w)) (float32 product, round half to even).
  The table is built for the 1M schedule of each template and reused for its smaller pixel budgets, whose
  schedules are prefixes of it; the slice used at scale k starts at the number of tokens before scale k.
- Angle grid covers 128 x 128 positions (2048 px / 16).
- RoPE is applied to q and k AFTER their L2 normalisation and q's learned scale.
Where two templates map to the same schedule string the official dict keeps the last one written; we
reproduce that (no such collision exists in the table; checked in tests).
"""
from functools import lru_cache
from typing import Sequence, Tuple

import torch

from .schedules import DYNAMIC_RESOLUTION_H_W

MAX_GRID = 128
BASE = 10000.0


def inv_freqs(head_dim: int, base: float = BASE) -> torch.Tensor:
    half = head_dim // 2
    return 1.0 / (base ** (torch.arange(0, half, 2, dtype=torch.int64).float() / half))


def _template_last_grid(schedule: Sequence[Tuple[int, int, int]]) -> Tuple[int, int]:
    """(uph, upw) used to normalise positions: last grid of the 1M schedule of the template whose table
    covers this schedule (last writer wins); falls back to the schedule's own last grid."""
    key = tuple((1, h, w) for _, h, w in schedule)
    found = None
    for tmpl, entry in DYNAMIC_RESOLUTION_H_W.items():
        for pn, v in entry.items():
            if tuple((1, h, w) for _, h, w in v["scales"]) == key:
                found = entry["1M"]["scales"][-1][1:]
    return tuple(found) if found is not None else tuple(schedule[-1][1:])


def scale_positions(h: int, w: int, uph: int, upw: int) -> torch.Tensor:
    """(h*w, 2) int positions (row, col) on the normalised grid, row-major over the scale."""
    rows = (torch.arange(h) * (uph / h)).reshape(h, 1).expand(h, w)
    cols = (torch.arange(w) * (upw / w)).reshape(1, w).expand(h, w)
    return torch.stack([rows, cols], dim=-1).round().int().reshape(-1, 2)


@lru_cache(maxsize=64)
def _rope_table_cached(schedule: Tuple[Tuple[int, int, int], ...], head_dim: int):
    uph, upw = _template_last_grid(schedule)
    f = inv_freqs(head_dim)
    pos = torch.cat([scale_positions(h, w, uph, upw) for _, h, w in schedule], 0).long()
    # angle computed as float32 position * float32 inv_freq (torch.outer in the official code)
    ang = torch.cat([torch.outer(pos[:, 0].float(), f), torch.outer(pos[:, 1].float(), f)], dim=-1)
    return torch.stack([torch.cos(ang), torch.sin(ang)], 0)  # (2, L, head_dim/2)


def rope_table(schedule, head_dim: int) -> torch.Tensor:
    """(2, L_total, head_dim/2) cos/sin table for the whole schedule."""
    sched = tuple(tuple(int(v) for v in s) for s in schedule)
    return _rope_table_cached(sched, head_dim)


def apply_rope(x: torch.Tensor, cos_sin: torch.Tensor) -> torch.Tensor:
    """x: (B, H, L, head_dim); cos_sin: (2, L, head_dim/2). Adjacent-pair rotation, computed in float32."""
    dt = x.dtype
    x = x.float().reshape(*x.shape[:-1], -1, 2)
    c, s = cos_sin[0].to(x.device), cos_sin[1].to(x.device)
    x0, x1 = x[..., 0], x[..., 1]
    out = torch.stack([c * x0 - s * x1, s * x0 + c * x1], dim=-1)
    return out.reshape(*out.shape[:-2], -1).to(dt)
