import numpy as np
import pytest
import torch

from sparvar_ref import codes as C, infinity as I, schedules as S
from sparvar_ref.sampling import UniformSampler, filter_logits, sample_bits, uniforms_needed

SCHED = [(1, 1, 1), (1, 2, 2), (1, 3, 3), (1, 4, 4)]


def _setup(name, B=2):
    m = I.build(name, seed=0)
    g = torch.Generator().manual_seed(1)
    text = torch.randn(B, 5, m.cfg.text_channels, generator=g)
    mask = torch.ones(B, 5, dtype=torch.bool)
    mask[-1, 3:] = False
    return m, text * mask[..., None], mask


def _uniforms(m, B, sched=SCHED, seed=0):
    return np.random.RandomState(seed).rand(uniforms_needed(sched, B, m.cfg.d_vae))


@pytest.mark.parametrize("name", ["infinity_tiny", "infinity_tiny_p"])
def test_teacher_equals_autoregressive(name):
    m, text, mask = _setup(name)
    out = m.generate(text, mask, SCHED, cfg=3.0, tau=0.7, sampler=UniformSampler(_uniforms(m, 2)))
    ref = m.generate(text, mask, SCHED, cfg=1.0, tau=1.0, forced_bits=out["bits"])
    vs = S.vae_schedule(SCHED, m.cfg.spatial_patchify)
    x, summed = C.teacher_inputs(out["bits"], vs, m.cfg.vae_codebook_dim, m.cfg.spatial_patchify)
    assert torch.equal(summed, out["summed_codes"])
    assert torch.allclose(torch.cat(out["inputs"], 1), x)
    tl = m.forward_teacher(text, mask, x, SCHED)
    for a, b in zip(tl, ref["logits"]):
        assert torch.allclose(a, b, atol=2e-5), (a - b).abs().max()


def test_cfg_on_logits_matches_two_teacher_passes():
    m, text, mask = _setup("infinity_tiny", B=1)
    cfg, tau = 3.0, 0.5
    out = m.generate(text, mask, SCHED, cfg=cfg, tau=tau, sampler=UniformSampler(_uniforms(m, 1)))
    vs = S.vae_schedule(SCHED, False)
    x, _ = C.teacher_inputs(out["bits"], vs, 32, False)
    lc = m.forward_teacher(text, mask, x, SCHED)
    lu = m.forward_teacher(m.uncond_text(mask), mask, x, SCHED)
    for k in range(len(SCHED)):
        want = cfg * lc[k] / tau + (1 - cfg) * lu[k] / tau
        assert torch.allclose(out["logits"][k], want, atol=1e-4)


def test_kv_cache_step_equals_full_recompute():
    torch.manual_seed(0)
    sa = I.SelfAttention(128, 2)
    x = torch.randn(2, S.total_tokens(SCHED), 128)
    tab = I.rope_table(SCHED, 64)
    full = sa(x, tab, I.scale_mask(SCHED))
    cache, start, outs = I.KVCache(), 0, []
    for si, (_, h, w) in enumerate(SCHED):
        n = h * w
        outs.append(sa(x[:, start:start + n], tab[:, start:start + n], None, cache, None, dict(layer=0, scale=si)))
        start += n
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-5)


def test_attn_fn_hook_is_used():
    m, text, mask = _setup("infinity_tiny", B=1)
    calls = []

    def hook(q, k, v, bias, info):
        calls.append((info["layer"], info["scale"], q.shape[2], k.shape[2]))
        return I.dense_attention(q, k, v, bias, info)

    a = m.generate(text, mask, SCHED, cfg=2.0, sampler=UniformSampler(_uniforms(m, 1)), attn_fn=hook)
    b = m.generate(text, mask, SCHED, cfg=2.0, sampler=UniformSampler(_uniforms(m, 1)))
    assert len(calls) == 2 * len(SCHED)
    assert calls[-1] == (1, 3, 16, 30)
    for x, y in zip(a["bits"], b["bits"]):
        assert torch.equal(x, y)


def test_uniform_sampler_rule_and_filters():
    logits = torch.tensor([[[0.0, 1.0, 3.0, -3.0, 2.0, 2.0]]])        # 3 bits
    # top_p 0.97: the bit-1 of bit#1 (p ~ 0.0025) is removed; ties are kept
    f = filter_logits(logits.reshape(-1, 2), 0, 0.97)
    assert torch.isinf(f[1, 1]) and not torch.isinf(f).any(-1)[[0, 2]].any()
    p0 = torch.softmax(logits.reshape(-1, 2), -1)[:, 0]
    u = torch.tensor([float(p0[0]) - 1e-4, 0.999, float(p0[2]) + 1e-4])
    bits = sample_bits(logits, 900, 0.97, UniformSampler(u.numpy()), 0)
    assert bits.tolist() == [[[0, 0, 1]]]
    bits = sample_bits(logits, 1, 0.0, UniformSampler(np.full(3, 0.5)), 0)   # top-1 = argmax (ties: both kept)
    assert bits.tolist() == [[[1, 0, 1]]]


def test_patchify_bit_order_roundtrip():
    b = torch.randint(0, 2, (2, 9, 56))
    lat = C.token_bits_to_latent_bits(b, 3, 3, True)
    assert lat.shape == (2, 6, 6, 14)
    # token (y, x) channel c*4 + i*2 + j <-> latent (2y+i, 2x+j) channel c
    assert lat[1, 2 * 1 + 1, 2 * 2 + 0, 5] == b[1, 1 * 3 + 2, 5 * 4 + 1 * 2 + 0]
    assert torch.equal(C.latent_bits_to_token_bits(lat, True), b)
