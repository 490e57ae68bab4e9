#!/usr/bin/env python3
"""Generate images from an exported model folder (manifest.json) with the reference: spiece tokenizer ->
T5 encoder -> Infinity.generate (KV cache, CFG) -> BSQ-VAE decoder. This is the check that an export is
complete and loads through sparvar_ref/load.py, and the Python twin of the engine's generate command.

  /usr/bin/python3 python/train/sample.py --model .data/export/sparvar-small --prompt "red apple" --out apple.png
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sparvar_ref import bsq_vae, load  # noqa: E402
from sparvar_ref.sampling import TorchSampler  # noqa: E402


def generate(model_dir, prompts, cfg=None, tau=None, seed=0, threads=0):
    import sentencepiece as spm
    if threads:
        torch.set_num_threads(threads)
    inf, vae, tm, man = load.from_manifest(model_dir)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, man["t5"]["tokenizer"]))
    d = man.get("sampling_defaults", {})
    sched = [tuple(s) for s in man["schedule"]]
    with torch.no_grad():
        ids, mask = common.tokenize(sp, prompts, man["t5"]["max_tokens"], torch.device("cpu"))
        feats, m = common.t5_forward(tm, ids, mask)
        feats = feats * m[..., None].float()
        out = inf.generate(feats, m, sched, cfg=cfg if cfg is not None else d.get("cfg", 3.0),
                           tau=tau if tau is not None else d.get("tau", 1.0), top_k=d.get("top_k", 0),
                           top_p=d.get("top_p", 0.0), sampler=TorchSampler(seed))
        img = bsq_vae.to_uint8_image(vae.decode_codes(out["summed_codes"]))
    return img


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(common.DATA, "export", "sparvar-small"))
    ap.add_argument("--prompt", action="append", required=True)
    ap.add_argument("--out", default="sample.png")
    ap.add_argument("--cfg", type=float, default=None)
    ap.add_argument("--tau", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args(argv)
    from PIL import Image
    t0 = time.time()
    img = generate(a.model, a.prompt, a.cfg, a.tau, a.seed, a.threads)
    Image.fromarray(np.concatenate(list(img), 1)).save(a.out)
    print(f"wrote {a.out} ({len(a.prompt)} image(s) {img.shape[1]}x{img.shape[2]}) in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
