"""Build the three models from a checkpoint directory written by tools/make_random_checkpoint.py
(manifest.json), or from random weights with a seed. Weights are loaded strictly and kept in fp32."""
import json
import os

import torch

from . import bsq_vae, checkpoints as ck, infinity, t5


def from_manifest(directory):
    with open(os.path.join(directory, "manifest.json")) as f:
        man = json.load(f)
    icfg = infinity.InfinityConfig(**man["infinity"]["config"])
    inf = infinity.Infinity(icfg).eval()
    inf.load_official_state_dict({k: v.float() if v.is_floating_point() else v
                                  for k, v in ck.load_any(os.path.join(directory, man["infinity"]["path"])).items()})
    vcfg = bsq_vae.VAEConfig(**man["vae"]["config"])
    vae = bsq_vae.BSQVAE(vcfg).eval()
    vsd = ck.load_any(os.path.join(directory, man["vae"]["path"]))
    vae.load_official_state_dict({k: v.float() if v.is_floating_point() else v for k, v in vsd["vae"].items()})
    tdir = os.path.join(directory, man["t5"]["path"])
    with open(os.path.join(tdir, "config.json")) as f:
        tc = json.load(f)
    tcfg = t5.T5Config(**{k: tc[k] for k in t5.T5Config.__dataclass_fields__ if k in tc})
    tm = t5.T5Encoder(tcfg).eval()
    tm.load_official_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck.load_any(tdir).items()})
    return inf, vae, tm, man


def from_seed(inf_name, vae_name, t5_name, seed):
    return (infinity.build(inf_name, seed=seed), bsq_vae.build_vae(vae_name, seed=seed + 1),
            t5.build_t5(t5_name, seed=seed + 2))
