"""Dynamic-resolution scale schedules of Infinity.

Official behaviour (infinity/utils/dynamic_resolution.py): for 8 aspect ratios h/w >= 1 a hand-made list of
13 (h, w) token grids is given; the ratio's reciprocal uses the transposed grids. A pixel budget picks a
prefix of that list: '0.06M' -> 7 scales, '0.25M' -> 10, '0.60M' -> 12, '1M' -> 13. Each scale also
carries a frame count t from a fixed list (1 for images: the inference scripts replace every t by 1).
The grid lists themselves are data (not derivable by a formula); everything else is computed here.

Templates (dictionary keys) are the ratio and int(1000/ratio)/1000 for its reciprocal, in the official
insertion order (ratio, reciprocal, next ratio, ...). The order matters for the RoPE table
(see rope.py: later entries win when two templates give the same schedule).
"""
from typing import Dict, List, Tuple

import numpy as np

VAE_STRIDE = 16  # pixels per token at the 16x-downsampling VAE (d32); d56 uses 8 px x 2x2 patchify = 16 too

# The 13 token grids (h x w) of each ratio h/w >= 1, coarse to fine (data read from the official table).
_GRIDS_TALL = {
    1.000: "1x1 2x2 4x4 6x6 8x8 12x12 16x16 20x20 24x24 32x32 40x40 48x48 64x64",
    1.250: "1x1 2x2 3x3 5x4 10x8 15x12 20x16 25x20 30x24 35x28 45x36 55x44 70x56",
    1.333: "1x1 2x2 4x3 8x6 12x9 16x12 20x15 24x18 28x21 36x27 48x36 60x45 72x54",
    1.500: "1x1 2x2 3x2 6x4 9x6 15x10 21x14 27x18 33x22 39x26 48x32 63x42 78x52",
    1.750: "1x1 2x2 3x3 7x4 11x6 14x8 21x12 28x16 35x20 42x24 56x32 70x40 84x48",
    2.000: "1x1 2x2 4x2 6x3 10x5 16x8 22x11 30x15 38x19 46x23 60x30 74x37 90x45",
    2.500: "1x1 2x2 5x2 10x4 15x6 20x8 25x10 30x12 40x16 50x20 65x26 80x32 100x40",
    3.000: "1x1 2x2 6x2 9x3 15x5 21x7 27x9 36x12 45x15 54x18 72x24 90x30 111x37",
}
FRAME_COUNTS = (1, 2, 3, 4, 5, 6, 7, 9, 11, 13, 15, 17, 21)
PIXEL_BUDGETS = {"0.06M": 7, "0.25M": 10, "0.60M": 12, "1M": 13}

Scale = Tuple[int, int, int]


def _parse(s: str) -> List[Tuple[int, int]]:
    return [tuple(int(v) for v in item.split("x")) for item in s.split()]


def _build() -> Dict[float, Dict[str, dict]]:
    out: Dict[float, Dict[str, dict]] = {}
    for ratio, text in _GRIDS_TALL.items():
        tall = _parse(text)
        variants = [(ratio, tall)]
        if ratio != 1.0:
            # reciprocal template key: truncated to 3 decimals, as the official table does
            variants.append((int(1 / ratio * 1000) / 1000, [(w, h) for h, w in tall]))
        for key, grids in variants:
            entry = {}
            for pn, n in PIXEL_BUDGETS.items():
                h, w = grids[n - 1]
                assert abs(h / w - key) < 0.01
                entry[pn] = {
                    "pixel": (h * VAE_STRIDE, w * VAE_STRIDE),
                    "scales": [(t, gh, gw) for t, (gh, gw) in zip(FRAME_COUNTS, grids[:n])],
                }
            out[key] = entry
    return out


DYNAMIC_RESOLUTION_H_W = _build()
H_DIV_W_TEMPLATES = np.array(list(DYNAMIC_RESOLUTION_H_W.keys()))


def nearest_template(h_div_w: float) -> float:
    """The template ratio nearest to h/w (first one on ties, like np.argmin)."""
    return float(H_DIV_W_TEMPLATES[np.argmin(np.abs(H_DIV_W_TEMPLATES - h_div_w))])


def get_schedule(h_div_w: float = 1.0, pn: str = "1M", image: bool = True) -> List[Scale]:
    """Scale schedule [(t, h, w), ...] for the template nearest to h_div_w. image=True sets t=1 everywhere,
    as tools/run_infinity.py does before generation."""
    sched = DYNAMIC_RESOLUTION_H_W[nearest_template(h_div_w)][pn]["scales"]
    return [(1, h, w) for _, h, w in sched] if image else list(sched)


def total_tokens(schedule) -> int:
    return int(sum(t * h * w for t, h, w in schedule))


def vae_schedule(schedule, spatial_patchify: bool) -> List[Scale]:
    """Grids in VAE latent units: 2x the token grids when the 2x2 spatial patchify (d56 VAE) is used."""
    if spatial_patchify:
        return [(t, 2 * h, 2 * w) for t, h, w in schedule]
    return [tuple(s) for s in schedule]
