#!/usr/bin/env python3
"""Writes random-weight checkpoints in the official file formats and key layouts, plus a manifest.json that
dump_reference.py reads back.

  infinity: '<dir>/infinity.pth' (torch.save of the flat state dict, like infinity_2b_reg.pth), or
            '<dir>/infinity_weights/' sharded transformers-style (model-0000i-of-0000N.safetensors or
            pytorch_model-*.bin + index JSON, like infinity_8b_weights/)
  vae:      '<dir>/vae.pth' = torch.save({'vae': state_dict})
  t5:       '<dir>/t5/' = config.json + model.safetensors (or pytorch_model.bin)

Examples (tiny, a few MB, CPU):
  /usr/bin/python3 python/tools/make_random_checkpoint.py --out /tmp/ckpt_tiny
  /usr/bin/python3 python/tools/make_random_checkpoint.py --out /tmp/ckpt_tiny_p --infinity infinity_tiny_p --vae vae_tiny_d56
Large (GPU machine, lots of RAM/disk): --infinity infinity_2b --vae vae_d32 --t5 flan-t5-xl --dtype bf16
  --infinity infinity_8b --vae vae_d56 --t5 flan-t5-xl --dtype bf16 (sharded by default)
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from sparvar_ref import bsq_vae, checkpoints as ck, infinity, t5  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--infinity", default="infinity_tiny", choices=sorted(infinity.CONFIGS))
    ap.add_argument("--vae", default=None, choices=sorted(bsq_vae.VAE_CONFIGS), help="default: matches the transformer")
    ap.add_argument("--t5", default=None, choices=sorted(t5.T5_CONFIGS), help="default: t5-tiny for small models")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--infinity-format", default=None, choices=["pth", "sharded-safetensors", "sharded-bin"],
                    help="default: sharded-safetensors for infinity_8b, pth otherwise")
    ap.add_argument("--shard-mb", type=float, default=None, help="shard size (default 5000 MB; 1 MB for tiny)")
    ap.add_argument("--t5-format", default="safetensors", choices=["safetensors", "bin"])
    ap.add_argument("--no-t5", action="store_true", help="skip the text encoder (benchmarks give text features)")
    ap.add_argument("--device", default="cpu", help="build (initialise) the models here, e.g. cuda: much faster "
                    "for 2B/8B (needs torch >= 2.0); the files are the same either way")
    a = ap.parse_args(argv)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype]
    icfg = infinity.CONFIGS[a.infinity]
    vae_name = a.vae or ("vae_d56" if a.infinity == "infinity_8b" else "vae_d32" if a.infinity == "infinity_2b"
                         else "vae_tiny_d56" if icfg.spatial_patchify else "vae_tiny_d32")
    t5_name = a.t5 or ("flan-t5-xl" if icfg.text_channels == 2048 else "t5-tiny")
    vcfg, tcfg = bsq_vae.VAE_CONFIGS[vae_name], t5.T5_CONFIGS[t5_name]
    assert vcfg.codebook_dim == icfg.vae_codebook_dim, "VAE codebook_dim must match the transformer"
    assert tcfg.d_model == icfg.text_channels, "T5 d_model must equal the transformer's text_channels"
    fmt = a.infinity_format or ("sharded-safetensors" if a.infinity == "infinity_8b" else "pth")
    os.makedirs(a.out, exist_ok=True)
    man = {"seed": a.seed, "dtype": a.dtype}

    import contextlib
    where = torch.device(a.device) if a.device != "cpu" else contextlib.nullcontext()
    with torch.no_grad(), where:
        m = infinity.build(a.infinity, seed=a.seed)
        sd = ck.cast_state_dict(m.state_dict(), dtype)
        del m
        if fmt == "pth":
            ck.save_torch(sd, os.path.join(a.out, "infinity.pth"))
            path = "infinity.pth"
        else:
            shard = int((a.shard_mb or (1 if icfg.embed_dim <= 256 else 5000)) * 2 ** 20)
            ck.save_sharded(sd, os.path.join(a.out, "infinity_weights"), shard, "safetensors" if fmt.endswith("safetensors") else "bin")
            path = "infinity_weights"
        man["infinity"] = {"name": a.infinity, "config": infinity.config_dict(icfg), "path": path, "format": fmt}
        del sd

        v = bsq_vae.build_vae(vae_name, seed=a.seed + 1)
        ck.save_torch({"vae": ck.cast_state_dict(v.state_dict(), dtype)}, os.path.join(a.out, "vae.pth"))
        man["vae"] = {"name": vae_name, "config": bsq_vae.config_dict(vcfg), "path": "vae.pth"}
        del v

        if not a.no_t5:
            tm = t5.build_t5(t5_name, seed=a.seed + 2)
            tdir = os.path.join(a.out, "t5")
            os.makedirs(tdir, exist_ok=True)
            tsd = ck.cast_state_dict(tm.state_dict(), dtype)
            if a.t5_format == "safetensors":   # safetensors cannot hold the tied copy: keep shared.weight only
                tsd.pop("encoder.embed_tokens.weight")
                ck.save_safetensors(tsd, os.path.join(tdir, "model.safetensors"), metadata={"format": "pt"})
            else:
                ck.save_torch(tsd, os.path.join(tdir, "pytorch_model.bin"))
            with open(os.path.join(tdir, "config.json"), "w") as f:
                json.dump(tcfg.hf_config(), f, indent=2)
            man["t5"] = {"name": t5_name, "path": "t5"}

    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=2)
    print(json.dumps(man, indent=1))


if __name__ == "__main__":
    main()
