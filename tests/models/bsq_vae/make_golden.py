#!/usr/bin/env python3
"""Golden data for tests/models/bsq_vae: tiny random-weight BSQ-VAE decoders (our PyTorch reference,
python/sparvar_ref/bsq_vae.py) and their decoded images for random multi-scale summed codes.

Per variant (vae_tiny_d32, vae_tiny_d56) it writes into --out:
  <name>.pth             torch.save({'vae': decoder state dict}) in fp16 (decoder + quantizer keys only, to keep
                         the committed file small; the C++ loader ignores encoder keys anyway). The d56 file is
                         written WITHOUT the '.conv'/'.norm' wrapper names, the other key spelling the official
                         loader accepts, so both spellings are exercised.
  <name>_codes.npy       (B, d, H, W) float32 summed codes on the VAE latent grid (the decoder's input)
  <name>_tokens.npy      d56 only: (B, 4d, H/2, W/2) the same codes 2x2-patchified (pixel_unshuffle order)
  <name>_image.npy       (B, 3, 16H or 8H, ...) float32 decoder output clamped to [-1, 1]
  <name>_uint8.npy       (B, H', W', 3) uint8 RGB, to_uint8_image()
The reference runs with the fp16-rounded weights cast to fp32, exactly what the C++ side loads.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "python"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from sparvar_ref import bsq_vae, checkpoints as ck, codes as C  # noqa: E402

# (name, seed, batch, latent schedule (t, h, w) ending at the decoder's grid, unwrapped key names)
VARIANTS = [
    ("vae_tiny_d32", 11, 2, [(1, 1, 1), (1, 2, 2), (1, 3, 4)], False),
    ("vae_tiny_d56", 12, 2, [(1, 2, 2), (1, 4, 2), (1, 6, 4)], True),
]


def unwrap(key):
    return key.replace(".conv.weight", ".weight").replace(".conv.bias", ".bias") \
              .replace(".norm.weight", ".weight").replace(".norm.bias", ".bias")


def summed_codes(batch, sched, d, gen):
    """Running sum over scales of random-bit codes, upsampled (trilinear) to the last grid, like generation."""
    summed = 0
    for si, (_, h, w) in enumerate(sched):
        bits = torch.randint(0, 2, (batch, h, w, d), generator=gen)
        summed = C.accumulate(summed, C.latent_codes(bits, d), sched[-1], si == len(sched) - 1)
    return summed  # (B, d, 1, H, W)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "golden"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_grad_enabled(False)
    for name, seed, batch, sched, unwrapped in VARIANTS:
        vae = bsq_vae.build_vae(name, seed=seed)
        # Random GroupNorm affine parameters too (default init is 1/0, which would hide a swapped w/b).
        for mod in vae.modules():
            if isinstance(mod, torch.nn.GroupNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
        sd = {k: v for k, v in vae.state_dict().items() if k.startswith(("decoder.", "quantizer."))}
        sd = ck.cast_state_dict(sd, torch.float16)
        # The reference uses exactly the stored (fp16-rounded) weights.
        vae.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=False)
        if unwrapped:
            sd = {unwrap(k): v for k, v in sd.items()}
        ck.save_torch({"vae": sd}, os.path.join(a.out, f"{name}.pth"))

        gen = torch.Generator().manual_seed(seed + 100)
        z = summed_codes(batch, sched, vae.codebook_dim, gen)
        img = vae.decode_codes(z)
        np.save(os.path.join(a.out, f"{name}_codes.npy"), z.squeeze(2).numpy().astype(np.float32))
        if vae.cfg.patch_size == 8:
            np.save(os.path.join(a.out, f"{name}_tokens.npy"), F.pixel_unshuffle(z.squeeze(2), 2).numpy())
        np.save(os.path.join(a.out, f"{name}_image.npy"), img.numpy().astype(np.float32))
        np.save(os.path.join(a.out, f"{name}_uint8.npy"), bsq_vae.to_uint8_image(img))
        print(name, "codes", tuple(z.shape), "image", tuple(img.shape),
              "range", float(img.min()), float(img.max()), "std", float(img.std()))


if __name__ == "__main__":
    main()
