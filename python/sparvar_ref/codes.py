"""Bit labels <-> BSQ codes and the running-sum ("summed codes") arithmetic shared by the transformer's
generation loop, its teacher-forced input builder, and the VAE.

Official behaviour (multiscale_bsq.py BSQ.indices_to_codes, infinity.py autoregressive_infer_cfg):
- a bit b of a VAE channel becomes the code (2b - 1) / sqrt(d), d = the VAE's codebook_dim (32 for d32,
  14 for d56); the official code then L2-normalises the d-vector, which leaves it unchanged (already unit).
- codes of scale k (h_k x w_k in VAE latent units) are upsampled to the last grid with 'trilinear'
  (= bilinear over (h, w), align_corners=False, on a 5-D tensor with T = 1) and summed; the last scale is
  added without resampling. The next scale's input is the running sum resampled, also 'trilinear' (NOT
  'area', even though it shrinks), to the next grid.
- the d56 model sees 2x2-patchified latents: a token of the transformer's h x w grid holds the 4 x 14 bits of
  a 2x2 latent patch, in pixel_unshuffle channel order (channel c*4 + i*2 + j <-> latent (c, 2y+i, 2x+j)).
"""
import math

import torch
import torch.nn.functional as F

INTERP_UP = "trilinear"
INTERP_DOWN = "area"   # only used by the VAE encoder's multi-scale quantiser


def bits_to_codes(bits: torch.Tensor, codebook_dim: int) -> torch.Tensor:
    """bits (..., d) in {0,1} -> codes (..., d) = +-1/sqrt(d), then L2-normalised like the official code."""
    s = 1.0 / math.sqrt(codebook_dim)
    codes = bits.float() * s * 2 - s
    return F.normalize(codes, dim=-1)


def token_bits_to_latent_bits(bits_BLd: torch.Tensor, h: int, w: int, patchify: bool) -> torch.Tensor:
    """Transformer bits (B, h*w, D) -> latent bits (B, H, W, d) with H, W = 2h, 2w and d = D/4 if patchify."""
    B = bits_BLd.shape[0]
    x = bits_BLd.reshape(B, h, w, -1)
    if patchify:
        x = F.pixel_shuffle(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    return x


def latent_bits_to_token_bits(bits_BHWd: torch.Tensor, patchify: bool) -> torch.Tensor:
    """Inverse of token_bits_to_latent_bits: (B, H, W, d) -> (B, h*w, D)."""
    B = bits_BHWd.shape[0]
    x = bits_BHWd
    if patchify:
        x = F.pixel_unshuffle(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    return x.reshape(B, -1, x.shape[-1])


def latent_codes(bits_BHWd: torch.Tensor, codebook_dim: int) -> torch.Tensor:
    """(B, H, W, d) bits -> (B, d, 1, H, W) codes, the 5-D layout the official code interpolates."""
    return bits_to_codes(bits_BHWd, codebook_dim).permute(0, 3, 1, 2).unsqueeze(2)


def resample(x_BdTHW: torch.Tensor, size_thw) -> torch.Tensor:
    return F.interpolate(x_BdTHW, size=tuple(size_thw), mode=INTERP_UP)


def features_to_tokens(x_BdTHW: torch.Tensor, patchify: bool) -> torch.Tensor:
    """(B, d, 1, H, W) latent features -> (B, h*w, D) transformer inputs (pixel_unshuffle if patchify)."""
    x = x_BdTHW.squeeze(2)
    if patchify:
        x = F.pixel_unshuffle(x, 2)
    return x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)


def accumulate(summed, codes_BdTHW: torch.Tensor, final_thw, is_last: bool):
    """One step of the running sum: add this scale's codes, upsampled to the final grid (unless last)."""
    add = codes_BdTHW if is_last else resample(codes_BdTHW, final_thw)
    return add if isinstance(summed, int) else summed + add


def teacher_inputs(bits_per_scale, vae_sched, codebook_dim: int, patchify: bool):
    """Inputs x_BLC_wo_prefix (B, L - 1, D) for the teacher-forced forward, given the bits of every scale
    (list of (B, h*w, D) tensors, token grids). Same arithmetic as the generation loop (and as the
    official bitwise_self_correction.flip_requant with no flips). Returns (inputs, summed_codes)."""
    summed = 0
    xs = []
    K = len(vae_sched)
    for si, bits in enumerate(bits_per_scale):
        _, H, W = vae_sched[si]
        h, w = (H // 2, W // 2) if patchify else (H, W)
        lat = token_bits_to_latent_bits(bits, h, w, patchify)
        summed = accumulate(summed, latent_codes(lat, codebook_dim), vae_sched[-1], si == K - 1)
        if si != K - 1:
            xs.append(features_to_tokens(resample(summed, vae_sched[si + 1]), patchify))
    return torch.cat(xs, 1), summed
