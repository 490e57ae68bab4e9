import json
import os

import numpy as np
import torch

from sparvar_ref import checkpoints as ck, load
from tools_path import make_random_checkpoint, dump_reference


def test_safetensors_roundtrip(tmp_path):
    sd = {"a.weight": torch.randn(3, 4), "b": torch.randn(5).to(torch.bfloat16), "c": torch.arange(6).view(2, 3),
          "d": torch.randn(2, 2).half(), "e": torch.zeros(0)}
    p = str(tmp_path / "x.safetensors")
    ck.save_safetensors(sd, p, metadata={"format": "pt"})
    raw = open(p, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    assert n % 8 == 0 and json.loads(raw[8:8 + n])["__metadata__"] == {"format": "pt"}
    back = ck.load_safetensors(p)
    for k in sd:
        assert back[k].dtype == sd[k].dtype and torch.equal(back[k], sd[k])


def test_sharded_roundtrip(tmp_path):
    sd = {f"k{i}": torch.randn(100, 10) for i in range(7)}
    for fmt in ("safetensors", "bin"):
        d = str(tmp_path / fmt)
        idx = ck.save_sharded(sd, d, 9000, fmt)
        with open(idx) as f:
            index = json.load(f)
        assert len(set(index["weight_map"].values())) == 4
        assert index["metadata"]["total_size"] == 7 * 4000
        back = ck.load_any(d)
        assert set(back) == set(sd) and all(torch.equal(back[k], sd[k]) for k in sd)


def test_random_checkpoint_set_roundtrip(tmp_path):
    d = str(tmp_path / "ck")
    make_random_checkpoint.main(["--out", d, "--infinity", "infinity_tiny_p", "--infinity-format", "sharded-bin", "--seed", "3"])
    assert os.path.exists(os.path.join(d, "infinity_weights", "pytorch_model.bin.index.json"))
    assert "vae" in ck.load_torch(os.path.join(d, "vae.pth"))
    inf, vae, t5m, man = load.from_manifest(d)
    inf2, vae2, t52 = load.from_seed("infinity_tiny_p", "vae_tiny_d56", "t5-tiny", 3)
    for a, b in ((inf, inf2), (vae, vae2), (t5m, t52)):
        sa, sb = a.state_dict(), b.state_dict()
        assert set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    # dump from files == dump from seed
    o1, o2 = str(tmp_path / "o1"), str(tmp_path / "o2")
    dump_reference.main(["--ckpt", d, "--out", o1, "--schedule", "1,2,3", "--seed", "3"])
    dump_reference.main(["--infinity", "infinity_tiny_p", "--seed", "3", "--out", o2, "--schedule", "1,2,3"])
    for f in ("logits_all.npy", "bits_all.npy", "image_uint8.npy"):
        assert np.array_equal(np.load(os.path.join(o1, f)), np.load(os.path.join(o2, f)))
    t = np.load(os.path.join(o1, "teacher_logits_all.npy"))
    assert t.shape == np.load(os.path.join(o1, "logits_all.npy")).shape
    # forced bits reproduce the run
    o3 = str(tmp_path / "o3")
    dump_reference.main(["--ckpt", d, "--out", o3, "--schedule", "1,2,3", "--seed", "3", "--bits", os.path.join(o1, "bits_all.npy")])
    assert np.array_equal(np.load(os.path.join(o1, "image_uint8.npy")), np.load(os.path.join(o3, "image_uint8.npy")))
    assert np.allclose(np.load(os.path.join(o1, "logits_all.npy")), np.load(os.path.join(o3, "logits_all.npy")))
