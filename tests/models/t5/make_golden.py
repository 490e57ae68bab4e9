#!/usr/bin/env python3
"""Step 2 of make_golden.sh: a tiny random-weight Flan-T5-style encoder (our reference, python/sparvar_ref/t5.py,
config 't5-tiny') run on golden/token_ids.npy. Writes into golden/:
  t5_sharded/   config.json + model-0000i-of-0000N.safetensors + model.safetensors.index.json (fp16,
                'shared.weight' only, as transformers writes tied weights to safetensors)
  t5_bin/       config.json + pytorch_model.bin (fp16, torch zip, both tied keys)
  features.npy  (B, L, d_model) float32 encoder output with the padding mask (every row, padded ones too)
  buckets.npy   (1401,) int64 relative-position buckets of rel = -700..700 (32 buckets, max distance 128)
The reference runs with the fp16-rounded weights cast to fp32, exactly what the C++ side loads."""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "python"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sparvar_ref import checkpoints as ck, t5  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "golden"))
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    m = t5.build_t5("t5-tiny", seed=21)
    with torch.no_grad():   # non-trivial norm weights (default ones would hide a missing multiply)
        for mod in m.modules():
            if isinstance(mod, t5.T5LayerNorm):
                mod.weight.uniform_(0.5, 1.5)
    sd = ck.cast_state_dict(m.state_dict(), torch.float16)
    m.load_state_dict({k: v.float() for k, v in sd.items()})
    cfg_json = m.cfg.hf_config()

    sharded = os.path.join(a.out, "t5_sharded")
    st = {k: v for k, v in sd.items() if k != "encoder.embed_tokens.weight"}
    ck.save_sharded(st, sharded, 300 * 1024, "safetensors")
    binf = os.path.join(a.out, "t5_bin")
    os.makedirs(binf, exist_ok=True)
    ck.save_torch(sd, os.path.join(binf, "pytorch_model.bin"))
    for d in (sharded, binf):
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg_json, f, indent=2)

    ids = torch.from_numpy(np.load(os.path.join(a.out, "token_ids.npy"))).long()
    lens = torch.from_numpy(np.load(os.path.join(a.out, "token_lens.npy"))).long()
    mask = (torch.arange(ids.shape[1])[None] < lens[:, None]).long()
    feats, _ = m(ids, mask)
    np.save(os.path.join(a.out, "features.npy"), feats.numpy().astype(np.float32))
    rel = torch.arange(-700, 701)
    np.save(os.path.join(a.out, "buckets.npy"), t5.relative_bucket(rel, 32, 128).numpy().astype(np.int64))
    print("features", tuple(feats.shape), "std", float(feats.std()))


if __name__ == "__main__":
    main()
