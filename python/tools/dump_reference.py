#!/usr/bin/env python3
"""Runs the reference Infinity pipeline and dumps every intermediate the C++ parity tests need, as .npy.

Weights: --ckpt DIR (written by make_random_checkpoint.py) or --seed N (random weights built in memory,
same as make_random_checkpoint.py --seed N would write).
Text:    --text-feats F.npy ((Lt, Ct5) or (B, Lt, Ct5); --text-lens for padded rows), or --token-ids F.npy
         ((B, L) int, T5 run here; --text-lens or ids != 0 give the mask), or neither: random features.
Bits:    --bits F.npy ((B, L_total, d_vae) in {0,1}, scales concatenated): fed instead of sampling;
         --uniforms F.npy (flat float32, consumed per scale in (batch, token, bit) order; bit = u >= p0);
         otherwise torch.multinomial with --sample-seed.
Output (--out DIR): meta.json, text_feats.npy, text_mask.npy, scale_KK_{logits,bits,input}.npy
(logits after tau and CFG; input = resampled running sum before word_embed, scales >= 1),
logits_all.npy, bits_all.npy, teacher_logits_all.npy (teacher-forced forward on the same bits, conditional
rows, tau 1), summed_codes.npy, image.npy (decoder output clamped to [-1, 1]), image_uint8.npy, image.png.
Example:
  /usr/bin/python3 python/tools/dump_reference.py --seed 0 --pn 0.06M --cfg 3 --out /tmp/ref_tiny
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sparvar_ref import codes as C, load, schedules  # noqa: E402
from sparvar_ref.bsq_vae import to_uint8_image  # noqa: E402
from sparvar_ref.sampling import TorchSampler, UniformSampler, uniforms_needed  # noqa: E402


def parse_schedule(a):
    if a.schedule:
        return [(1, int(s), int(s)) if "x" not in s else (1, *map(int, s.split("x"))) for s in a.schedule.split(",")]
    return schedules.get_schedule(a.h_div_w, a.pn)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ckpt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--infinity", default="infinity_tiny")
    ap.add_argument("--vae", default=None)
    ap.add_argument("--t5", default="t5-tiny")
    ap.add_argument("--text-feats")
    ap.add_argument("--token-ids")
    ap.add_argument("--text-lens", help="comma-separated lengths per row")
    ap.add_argument("--text-len", type=int, default=8, help="random text: tokens per row")
    ap.add_argument("--batch", type=int, default=1, help="random text: rows")
    ap.add_argument("--bits")
    ap.add_argument("--uniforms")
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--pn", default="0.06M")
    ap.add_argument("--h-div-w", type=float, default=1.0)
    ap.add_argument("--schedule", help="custom schedule, e.g. 1,2,4 or 1x1,2x3 (overrides --pn)")
    ap.add_argument("--cfg", type=float, default=3.0)
    ap.add_argument("--tau", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=900)
    ap.add_argument("--top-p", type=float, default=0.97)
    ap.add_argument("--no-teacher", action="store_true")
    a = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    os.makedirs(a.out, exist_ok=True)

    if a.ckpt:
        inf, vae, tm, man = load.from_manifest(a.ckpt)
    else:
        icfg_p = __import__("sparvar_ref.infinity", fromlist=["CONFIGS"]).CONFIGS[a.infinity]
        vname = a.vae or ("vae_tiny_d56" if icfg_p.spatial_patchify else "vae_tiny_d32")
        inf, vae, tm = load.from_seed(a.infinity, vname, a.t5, a.seed)
        man = {"seed": a.seed, "infinity": {"name": a.infinity}, "vae": {"name": vname}, "t5": {"name": a.t5}}
    cfg = inf.cfg
    sched = parse_schedule(a)

    if a.text_feats:
        tf = torch.from_numpy(np.load(a.text_feats)).float()
        tf = tf[None] if tf.dim() == 2 else tf
        lens = [int(x) for x in a.text_lens.split(",")] if a.text_lens else [tf.shape[1]] * tf.shape[0]
    elif a.token_ids:
        ids = torch.from_numpy(np.load(a.token_ids)).long()
        ids = ids[None] if ids.dim() == 1 else ids
        lens = [int(x) for x in a.text_lens.split(",")] if a.text_lens else (ids != 0).sum(1).tolist()
        m = torch.arange(ids.shape[1])[None] < torch.tensor(lens)[:, None]
        tf, _ = tm(ids, m.long())
    else:
        g = torch.Generator().manual_seed(a.seed + 100)
        tf = torch.randn(a.batch, a.text_len, cfg.text_channels, generator=g)
        lens = [a.text_len] * a.batch
    B, Lt = tf.shape[:2]
    mask = torch.arange(Lt)[None] < torch.tensor(lens)[:, None]
    tf = tf * mask[..., None]

    forced, sampler = None, None
    if a.bits:
        allb = torch.from_numpy(np.load(a.bits)).long()
        forced = list(torch.split(allb, [t * h * w for t, h, w in sched], 1))
    elif a.uniforms:
        sampler = UniformSampler(np.load(a.uniforms))
    else:
        sampler = TorchSampler(a.sample_seed)
    out = inf.generate(tf, mask, sched, cfg=a.cfg, tau=a.tau, top_k=a.top_k, top_p=a.top_p,
                       sampler=sampler, forced_bits=forced)

    np.save(os.path.join(a.out, "text_feats.npy"), tf.numpy())
    np.save(os.path.join(a.out, "text_mask.npy"), mask.numpy())
    for si, lg in enumerate(out["logits"]):
        np.save(os.path.join(a.out, f"scale_{si:02d}_logits.npy"), lg.numpy())
        np.save(os.path.join(a.out, f"scale_{si:02d}_bits.npy"), out["bits"][si].numpy().astype(np.uint8))
    for si, inp in enumerate(out["inputs"]):
        np.save(os.path.join(a.out, f"scale_{si + 1:02d}_input.npy"), inp.numpy())
    np.save(os.path.join(a.out, "logits_all.npy"), torch.cat(out["logits"], 1).numpy())
    bits_all = torch.cat(out["bits"], 1)
    np.save(os.path.join(a.out, "bits_all.npy"), bits_all.numpy().astype(np.uint8))
    np.save(os.path.join(a.out, "summed_codes.npy"), out["summed_codes"].numpy())
    if not a.no_teacher:
        x, _ = C.teacher_inputs(out["bits"], schedules.vae_schedule(sched, cfg.spatial_patchify),
                                cfg.vae_codebook_dim, cfg.spatial_patchify)
        tl = inf.forward_teacher(tf, mask, x, sched)
        np.save(os.path.join(a.out, "teacher_logits_all.npy"), torch.cat(tl, 1).numpy())
    img = vae.decode_codes(out["summed_codes"])
    np.save(os.path.join(a.out, "image.npy"), img.numpy())
    u8 = to_uint8_image(img)
    np.save(os.path.join(a.out, "image_uint8.npy"), u8)
    try:
        from PIL import Image
        for b in range(u8.shape[0]):
            Image.fromarray(u8[b]).save(os.path.join(a.out, "image.png" if b == 0 else f"image_{b}.png"))
    except ImportError:
        pass
    meta = dict(manifest=man, schedule=sched, text_lens=lens, cfg=a.cfg, tau=a.tau, top_k=a.top_k, top_p=a.top_p,
                sampler="forced" if a.bits else "uniforms" if a.uniforms else f"torch:{a.sample_seed}",
                uniforms_needed=uniforms_needed(sched, B, cfg.d_vae), d_vae=cfg.d_vae,
                vae_schedule=schedules.vae_schedule(sched, cfg.spatial_patchify), image_shape=list(img.shape))
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps({k: meta[k] for k in ("schedule", "sampler", "image_shape")}))


if __name__ == "__main__":
    main()
