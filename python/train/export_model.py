#!/usr/bin/env python3
"""Export the trained VAE + Infinity + T5 checkpoints into the folder sparvar ships (models/<name>/):

  infinity.safetensors   transformer, official key layout (block_chunks.{c}.module.{j}.*), fp16 by default
  vae.pth                BSQ-VAE in the official file format {'vae': state_dict}, official keys (what
                         sparvar_ref/load.py and the official loader read; the engine has a zip-pickle reader)
  vae.safetensors        only with --vae-safetensors: the same flat state dict as safetensors (+13 MB: the
                         ship config is ~48.5 MB without it, so it does not fit the 50 MB budget together
                         with vae.pth; load.py cannot read a flat VAE file yet)
  t5/config.json, t5/model.safetensors (shared.weight only, like transformers), t5/spiece.model
  manifest.json          the format of sparvar_ref/load.py (+ image size, schedule, tokenizer, sampling defaults)

Checks: total size <= --max-mb, no inf/nan after the cast, and the folder loads back with
sparvar_ref.load.from_manifest.
"""
import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import torch  # noqa: E402
from sparvar_ref import bsq_vae, checkpoints as ck, infinity, load, t5  # noqa: E402


def _cast(sd, dtype):
    out = ck.cast_state_dict({k: v.detach().cpu() for k, v in sd.items()}, dtype)
    for k, v in out.items():
        if v.is_floating_point() and not torch.isfinite(v.float()).all():
            raise ValueError(f"{k} is not finite after the cast to {dtype}")
    return out


def export(vae_ckpt, inf_ckpt, tokenizer, out, dtype="fp16", max_mb=50.0, name="sparvar-small", vae_safetensors=False):
    dt = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    vst, ist = common.load_checkpoint(vae_ckpt), common.load_checkpoint(inf_ckpt)
    vname, iname, tname = vst["config"], ist["config"], ist["t5_config"]
    vcfg, icfg, tcfg = bsq_vae.VAE_CONFIGS[vname], infinity.CONFIGS[iname], t5.T5_CONFIGS[tname]
    os.makedirs(out, exist_ok=True)
    meta = {"format": "pt", "producer": "sparvar python/train"}

    isd = _cast(ist["infinity"], dt)
    ck.save_safetensors(isd, os.path.join(out, "infinity.safetensors"), metadata=meta)
    vsd = _cast(vst["model"], dt)
    ck.save_torch({"vae": vsd}, os.path.join(out, "vae.pth"))
    if vae_safetensors:
        ck.save_safetensors(vsd, os.path.join(out, "vae.safetensors"), metadata=meta)
    tdir = os.path.join(out, "t5")
    os.makedirs(tdir, exist_ok=True)
    tsd = _cast(ist["t5"], dt)
    tsd.pop("encoder.embed_tokens.weight", None)       # tied to shared.weight (transformers stores one)
    ck.save_safetensors(tsd, os.path.join(tdir, "model.safetensors"), metadata=meta)
    with open(os.path.join(tdir, "config.json"), "w") as f:
        json.dump(tcfg.hf_config(), f, indent=2)
    shutil.copyfile(tokenizer, os.path.join(tdir, "spiece.model"))

    size = ist["size"]
    sched = common.schedule_for(size, vcfg.patch_size)
    man = {
        "name": name, "dtype": dtype,
        "infinity": {"name": iname, "config": infinity.config_dict(icfg), "path": "infinity.safetensors",
                     "format": "safetensors"},
        "vae": {"name": vname, "config": bsq_vae.config_dict(vcfg), "path": "vae.pth"},
        "t5": {"name": tname, "path": "t5", "tokenizer": "t5/spiece.model", "max_tokens": icfg.text_maxlen},
        "image_size": [size, size],
        "schedule": [list(s) for s in sched],
        "sampling_defaults": {"cfg": 3.0, "tau": 1.0, "top_k": 0, "top_p": 0.0},
        "training": {"vae_steps": vst["step"], "vae_minutes": round(vst["elapsed"] / 60, 2),
                     "infinity_steps": ist["step"], "infinity_minutes": round(ist["elapsed"] / 60, 2)},
    }
    if vae_safetensors:
        man["vae"]["safetensors_path"] = "vae.safetensors"
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=2)
    files = [os.path.join(r, f) for r, _, fs in os.walk(out) for f in fs]
    total = sum(os.path.getsize(f) for f in files)
    inf, vae, tm, _ = load.from_manifest(out)           # strict loads: keys and shapes as the engine expects
    if total > max_mb * 2 ** 20:
        raise SystemExit(f"export is {total / 2**20:.1f} MiB > {max_mb} MiB")
    return out, total, man


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vae-ckpt", default=os.path.join(common.DATA, "runs", "vae", "ckpt.pt"))
    ap.add_argument("--infinity-ckpt", default=os.path.join(common.DATA, "runs", "infinity", "ckpt.pt"))
    ap.add_argument("--tokenizer", default=os.path.join(common.DATA, "tokenizer", "spiece.model"))
    ap.add_argument("--out", default=os.path.join(common.DATA, "export", "sparvar-small"))
    ap.add_argument("--dtype", default="fp16", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--max-mb", type=float, default=50.0)
    ap.add_argument("--vae-safetensors", action="store_true", help="also write vae.safetensors")
    a = ap.parse_args(argv)
    out, total, man = export(a.vae_ckpt, a.infinity_ckpt, a.tokenizer, a.out, a.dtype, a.max_mb,
                            vae_safetensors=a.vae_safetensors)
    print(f"exported {out} ({total / 2**20:.1f} MiB, {a.dtype}); loads with sparvar_ref.load.from_manifest")


if __name__ == "__main__":
    main()
