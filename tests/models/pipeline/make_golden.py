#!/usr/bin/env python3
"""Golden data of test_pipeline: a TINY random model folder in the exported layout (manifest.json +
infinity.safetensors + vae.pth + t5/) and the reference's images for fixed uniforms.

Model (custom tiny configs, so the folder stays small): Infinity depth 1, width 64, 1 head, text 128 ch,
8 bits; BSQ-VAE 8 bits, patch 4, base 24; T5 d_model 128, 1 layer; the tiny sentencepiece model of the T5
tests. Schedule 1,2,4,6 (the official square prefix) -> 24x24 images. fp16 files, fp32 arithmetic.
Run: prompts ["Red Apple", ""] (the second is the unconditional path: cfg_uncond[:1]), CFG 3, tau 0.9,
top-k 0, top-p 0, supplied uniforms; once with every scale and once with the last scale skipped
(trunk_scale). Uniforms too close to a decision threshold are nudged and the run repeated, so an fp32
engine reproduces every bit.
"""
import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "python", "train"))
from sparvar_ref import bsq_vae, checkpoints as ck, infinity, load, t5  # noqa: E402
from sparvar_ref.sampling import UniformSampler  # noqa: E402
import common  # noqa: E402

ICFG = infinity.InfinityConfig(depth=1, embed_dim=64, num_heads=1, text_channels=128, text_maxlen=16,
                               vae_codebook_dim=8, block_chunks=1, num_lvl=4)
VCFG = bsq_vae.VAEConfig(codebook_dim=8, patch_size=4, base_ch=24, ch_mult=[1, 1, 2], num_res_blocks=1)
TCFG = t5.T5Config(vocab_size=256, d_model=128, d_kv=32, num_heads=4, d_ff=128, num_layers=1)
SCHED = [(1, 1, 1), (1, 2, 2), (1, 4, 4), (1, 6, 6)]
PROMPTS = ["Red Apple", ""]
CFG, TAU = 3.0, 0.9


def write_model(out):
    torch.manual_seed(3)
    inf = infinity.Infinity(ICFG).eval()
    with torch.no_grad():  # what init leaves constant, randomised so the test sees every parameter
        for k, v in inf.named_parameters():
            if k.endswith(("q_bias", "v_bias")):
                v.copy_(torch.randn_like(v) * 0.1)
    vae = bsq_vae.build_vae(VCFG, seed=4)
    tm = t5.build_t5(TCFG, seed=5)
    os.makedirs(os.path.join(out, "t5"), exist_ok=True)
    f16 = lambda sd: ck.cast_state_dict({k: v.detach() for k, v in sd.items()}, torch.float16)  # noqa: E731
    ck.save_safetensors(f16(inf.state_dict()), os.path.join(out, "infinity.safetensors"), metadata={"format": "pt"})
    ck.save_torch({"vae": f16(vae.state_dict())}, os.path.join(out, "vae.pth"))
    tsd = f16(tm.state_dict())
    tsd.pop("encoder.embed_tokens.weight", None)
    ck.save_safetensors(tsd, os.path.join(out, "t5", "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out, "t5", "config.json"), "w") as f:
        json.dump(TCFG.hf_config(), f, indent=2)
    shutil.copyfile(os.path.join(ROOT, "tests", "models", "t5", "data", "tiny_spiece.model"),
                    os.path.join(out, "t5", "spiece.model"))
    man = {
        "name": "pipeline-tiny", "dtype": "fp16",
        "infinity": {"name": "tiny", "config": infinity.config_dict(ICFG), "path": "infinity.safetensors",
                     "format": "safetensors"},
        "vae": {"name": "tiny", "config": bsq_vae.config_dict(VCFG), "path": "vae.pth"},
        "t5": {"name": "tiny", "path": "t5", "tokenizer": "t5/spiece.model", "max_tokens": ICFG.text_maxlen},
        "image_size": [24, 24],
        "schedule": [list(s) for s in SCHED],
        "sampling_defaults": {"cfg": CFG, "tau": TAU, "top_k": 0, "top_p": 0.0},
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=2)


def text_rows(inf, tm, sp):
    """T5 features of the conditional prompts; empty prompts -> cfg_uncond[:1] (one token), as the engine."""
    cond = [p for p in PROMPTS if p.strip()]
    ids, mask = common.tokenize(sp, cond, ICFG.text_maxlen, torch.device("cpu"))
    feats, m = common.t5_forward(tm, ids, mask)
    feats = feats * m[..., None].float()
    Lt = feats.shape[1]
    rows, masks, ci = [], [], 0
    for p in PROMPTS:
        if p.strip():
            rows.append(feats[ci]); masks.append(m[ci]); ci += 1
        else:
            mk = torch.zeros(Lt, dtype=torch.long); mk[0] = 1
            rows.append(inf.uncond_text(mk[None].bool())[0].float()); masks.append(mk)
    return torch.stack(rows), torch.stack(masks)


def run(inf, vae, text, mask, u, trunk):
    s = UniformSampler(u)
    out = inf.generate(text, mask.bool(), SCHED, cfg=CFG, tau=TAU, top_k=0, top_p=0.0, sampler=s, trunk_scale=trunk)
    img = bsq_vae.to_uint8_image(vae.decode_codes(out["summed_codes"]))
    return out, img, s


def main():
    import sentencepiece as spm
    out = os.path.join(HERE, "golden")
    shutil.rmtree(out, ignore_errors=True)
    model = os.path.join(out, "model")
    write_model(model)
    inf, vae, tm, man = load.from_manifest(model)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model, "t5", "spiece.model"))
    with torch.no_grad():
        text, mask = text_rows(inf, tm, sp)
        B, d = len(PROMPTS), ICFG.d_vae
        n = sum(t * h * w for t, h, w in SCHED) * B * d
        u = np.random.default_rng(9).random(n).astype(np.float32)
        for attempt in range(8):   # nudge uniforms away from p(0): the engine's fp32 logits differ in the last bits
            res, img, s = run(inf, vae, text, mask, u, None)
            p0 = torch.cat([lg.reshape(-1, 2).double().softmax(-1)[:, 0] for lg in res["logits"]]).numpy()
            bad = np.abs(u.astype(np.float64) - p0) < 2e-3
            print(f"attempt {attempt}: {int(bad.sum())} near-threshold draws")
            if not bad.any():
                break
            u[bad] = np.where(p0[bad] < 0.5, np.minimum(p0[bad] + 0.05, 0.999), np.maximum(p0[bad] - 0.05, 0.001))
        else:
            raise SystemExit("could not clear near-threshold draws")
        _, img_skip, _ = run(inf, vae, text, mask, u, len(SCHED) - 1)
    np.save(os.path.join(out, "uniforms.npy"), u)
    np.save(os.path.join(out, "image_full.npy"), img)
    np.save(os.path.join(out, "image_skip1.npy"), img_skip)
    with open(os.path.join(out, "prompts.json"), "w") as f:
        json.dump(PROMPTS, f)
    total = sum(os.path.getsize(os.path.join(r, x)) for r, _, fs in os.walk(out) for x in fs)
    print(f"golden: {out} ({total / 1024:.0f} KiB), images {img.shape}, distinct values {len(np.unique(img))}")


if __name__ == "__main__":
    main()
