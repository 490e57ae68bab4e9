import json
import os

import pytest
import torch

from sparvar_ref import infinity as I

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@pytest.mark.parametrize("name", ["infinity_2b", "infinity_8b"])
def test_official_keys_and_shapes(name):
    with open(os.path.join(DATA, f"{name}_keys.json")) as f:
        want = json.load(f)
    with I.meta_init():
        m = I.Infinity(I.CONFIGS[name])
    got = {k: list(v.shape) for k, v in m.state_dict().items()}
    assert set(got) == set(want), sorted(set(got) ^ set(want))[:10]
    bad = [k for k in got if got[k] != want[k]]
    assert not bad, bad[:10]
    n = sum(torch.Size(s).numel() for s in want.values())
    assert abs(n / 1e9 - {"infinity_2b": 2.2, "infinity_8b": 8.4}[name]) < 0.05


def test_tiny_layout_loads_strict_without_zero_k_bias():
    a, b = I.build("infinity_tiny", seed=0), I.build("infinity_tiny", seed=1)
    sd = {k: v for k, v in a.state_dict().items() if not k.endswith("zero_k_bias")}
    b.load_official_state_dict(sd, strict=True)
    assert torch.equal(a.head.weight, b.head.weight)
    assert any(k.startswith("block_chunks.1.module.0.sa.") for k in a.state_dict())
