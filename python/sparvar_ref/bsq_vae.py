"""BSQ-VAE of Infinity (encoder, multi-scale bitwise quantiser, decoder), our PyTorch reference.

Layout and names follow the official AutoEncoder (bsq_vae/flux_vqgan.py, conv.py, multiscale_bsq.py) as
built by tools/run_infinity.py load_visual_tokenizer: 2-D convs wrapped as '.conv' (keys '...conv_in.conv.weight'),
GroupNorm wrapped as '.norm' (32 groups, or 24 when C % 32 != 0; eps 1e-6), base channels 128,
2 res blocks per level (3 in the decoder), no attention in the middle, swish activations.
- d32: codebook_dim 32, patch 16, ch_mult [1, 2, 4, 4, 4];  d56: codebook_dim 14, patch 8, ch_mult [1, 2, 4, 4]
  (+ 2x2 patchify on the transformer side: 4 x 14 = 56 bits per token).
Encoder level i downsamples (pad right/bottom by 1, 3x3 stride-2 conv) when i < log2(patch); decoder level i
upsamples (nearest x2 then 3x3 conv) when 1 <= i <= log2(patch); decoder levels run from last to first.
Quantiser: for each scale, area-downsample the residual, L2-normalise over channels, take signs scaled by
1/sqrt(d) (bit = value > 0), upsample trilinear to the full grid, subtract from the residual. The only state
is the buffer 'quantizer.lfq.mask' (2^(d-1) ... 1, int64).
decode(z) = clamp(decoder(z), -1, 1); the image is (x + 1) / 2 * 255 truncated to uint8 (RGB; the official
script flips to BGR for cv2).
Official checkpoint file: a dict {'vae': state_dict} (or {'ema': ...}); the official loader also accepts keys
without the '.conv'/'.norm' wrappers; load_official_state_dict does the same.
"""
import math
from dataclasses import dataclass, asdict, field
from typing import List

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import codes as C


@dataclass
class VAEConfig:
    codebook_dim: int = 32
    patch_size: int = 16
    base_ch: int = 128
    ch_mult: List[int] = field(default_factory=lambda: [1, 2, 4, 4, 4])
    num_res_blocks: int = 2
    in_channels: int = 3


VAE_CONFIGS = {
    "vae_d32": VAEConfig(),
    "vae_d56": VAEConfig(codebook_dim=14, patch_size=8, ch_mult=[1, 2, 4, 4]),
    # tiny, for tests: same structure, 24 base channels (GroupNorm with 24 groups), 1 res block per level
    "vae_tiny_d32": VAEConfig(base_ch=24, ch_mult=[1, 1, 2, 2, 2], num_res_blocks=1),
    "vae_tiny_d56": VAEConfig(codebook_dim=14, patch_size=8, ch_mult=[1, 1, 2, 2], base_ch=24, num_res_blocks=1),
    # the model sparvar ships (python/train): 256x256 images, patch 8 -> 32x32 latents, 16 bits, no patchify
    "vae_ship_p8": VAEConfig(codebook_dim=16, patch_size=8, base_ch=48, ch_mult=[1, 2, 2, 4], num_res_blocks=1),
}


class Conv(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding)

    def forward(self, x):
        return self.conv(x)


class Normalize(nn.Module):
    def __init__(self, c):
        super().__init__()
        groups = 32 if c % 32 == 0 else 24
        assert c % groups == 0, f"channels {c} not divisible by 32 or 24"
        self.norm = nn.GroupNorm(groups, c, eps=1e-6, affine=True)

    def forward(self, x):
        return self.norm(x)


def swish(x):
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = Normalize(cin)
        self.conv1 = Conv(cin, cout, 3, padding=1)
        self.norm2 = Normalize(cout)
        self.conv2 = Conv(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = Conv(cin, cout, 1)
        self.cin, self.cout = cin, cout

    def forward(self, x):
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        if self.cin != self.cout:
            x = self.nin_shortcut(x)
        return x + h


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = Conv(c, c, 3, stride=2)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = Conv(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch, mult = cfg.base_ch, cfg.ch_mult
        n_down = int(round(math.log2(cfg.patch_size)))
        self.conv_in = Conv(cfg.in_channels, ch, 3, padding=1)
        in_mult = (1,) + tuple(mult)
        self.down = nn.ModuleList()
        for i in range(len(mult)):
            lvl = nn.Module()
            lvl.block = nn.ModuleList()
            lvl.attn = nn.ModuleList()
            cin, cout = ch * in_mult[i], ch * mult[i]
            for _ in range(cfg.num_res_blocks):
                lvl.block.append(ResnetBlock(cin, cout))
                cin = cout
            if i < n_down:
                lvl.downsample = Downsample(cout)
            self.down.append(lvl)
        c = ch * mult[-1]
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(c, c)
        self.mid.block_2 = ResnetBlock(c, c)
        self.norm_out = Normalize(c)
        self.conv_out = Conv(c, cfg.codebook_dim, 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for lvl in self.down:
            for b in lvl.block:
                h = b(h)
            if hasattr(lvl, "downsample"):
                h = lvl.downsample(h)
        h = self.mid.block_2(self.mid.block_1(h))
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        ch, mult = cfg.base_ch, cfg.ch_mult
        n_up = int(round(math.log2(cfg.patch_size)))
        c = ch * mult[-1]
        self.conv_in = Conv(cfg.codebook_dim, c, 3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(c, c)
        self.mid.block_2 = ResnetBlock(c, c)
        ups = []
        for i in reversed(range(len(mult))):
            lvl = nn.Module()
            lvl.block = nn.ModuleList()
            lvl.attn = nn.ModuleList()
            cout = ch * mult[i]
            for _ in range(cfg.num_res_blocks + 1):
                lvl.block.append(ResnetBlock(c, cout))
                c = cout
            if 1 <= i <= n_up:
                lvl.upsample = Upsample(c)
            ups.insert(0, lvl)
        self.up = nn.ModuleList(ups)
        self.norm_out = Normalize(c)
        self.conv_out = Conv(c, 3, 3, padding=1)

    def forward(self, z):
        h = self.mid.block_2(self.mid.block_1(self.conv_in(z)))
        for i in reversed(range(len(self.up))):
            lvl = self.up[i]
            for b in lvl.block:
                h = b(h)
            if hasattr(lvl, "upsample"):
                h = lvl.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class BSQ(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.d = d
        self.register_buffer("mask", 2 ** torch.arange(d - 1, -1, -1))


class MultiScaleBSQ(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lfq = BSQ(d)

    def quantize(self, x_BdTHW):
        """One scale: (B, d, 1, h, w) -> (quantized (same shape), bits (B, 1, h, w, d) int)."""
        z = F.normalize(x_BdTHW.permute(0, 2, 3, 4, 1), dim=-1)
        s = 1.0 / math.sqrt(self.lfq.d)
        zhat = torch.where(z > 0, torch.tensor(s), torch.tensor(-s))
        q = z + (zhat - z)          # official straight-through form; equals zhat up to rounding
        bits = (q > 0).int()
        return q.permute(0, 4, 1, 2, 3), bits

    def forward(self, h_BdHW, vae_sched):
        """Multi-scale residual quantisation of the encoder output on the VAE-latent schedule.
        Returns (summed quantized (B, d, 1, H, W), list of bits (B, 1, h_k, w_k, d))."""
        x = h_BdHW.unsqueeze(2)
        full = tuple(x.shape[2:])
        residual, out, bits_all = x, 0, []
        for thw in vae_sched:
            thw = tuple(thw)
            r = F.interpolate(residual, size=thw, mode=C.INTERP_DOWN) if thw != full else residual
            q, bits = self.quantize(r)
            if thw != full:
                q = F.interpolate(q, size=full, mode=C.INTERP_UP)
            residual = residual - q
            out = out + q
            bits_all.append(bits)
        return out, bits_all


class BSQVAE(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantizer = MultiScaleBSQ(cfg.codebook_dim)

    @property
    def codebook_dim(self):
        return self.cfg.codebook_dim

    def decode(self, z_BdHW):
        return self.decoder(z_BdHW).clamp(-1, 1)

    def decode_codes(self, summed_BdTHW):
        return self.decode(summed_BdTHW.squeeze(2))

    def encode(self, img_B3HW, vae_sched):
        """img in [-1, 1]. Returns (raw features, summed quantized codes, per-scale bits)."""
        h = self.encoder(img_B3HW)
        z, bits = self.quantizer(h, vae_sched)
        return h, z, bits

    def load_official_state_dict(self, sd, strict=True):
        if "vae" in sd and isinstance(sd["vae"], dict):
            sd = sd["vae"]
        elif "ema" in sd and isinstance(sd["ema"], dict):
            sd = sd["ema"]
        own = self.state_dict()
        fixed = {}
        for k, v in sd.items():
            if k in own:
                fixed[k] = v
                continue
            # keys saved without the Conv / Normalize wrappers
            for a, b in ((".weight", ".conv.weight"), (".bias", ".conv.bias"), (".weight", ".norm.weight"), (".bias", ".norm.bias")):
                if k.endswith(a) and k[: -len(a)] + b in own:
                    fixed[k[: -len(a)] + b] = v
                    break
            else:
                fixed[k] = v
        return self.load_state_dict(fixed, strict=strict)


def to_uint8_image(img_B3HW: torch.Tensor) -> np.ndarray:
    """[-1, 1] -> (B, H, W, 3) uint8 RGB, truncating like the official script ((x + 1) / 2 * 255 -> uint8)."""
    x = ((img_B3HW + 1) / 2).permute(0, 2, 3, 1).mul(255)
    return x.to(torch.uint8).cpu().numpy()


def build_vae(name_or_cfg, seed=None) -> BSQVAE:
    cfg = VAE_CONFIGS[name_or_cfg] if isinstance(name_or_cfg, str) else name_or_cfg
    if seed is not None:
        torch.manual_seed(seed)
    return BSQVAE(cfg).eval()


def config_dict(cfg: VAEConfig) -> dict:
    return asdict(cfg)
