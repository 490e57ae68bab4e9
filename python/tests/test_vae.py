import torch

from sparvar_ref import bsq_vae, codes as C, schedules as S


def test_decode_shapes_both_variants():
    for name, patch, d, pf in (("vae_tiny_d32", 16, 32, False), ("vae_tiny_d56", 8, 14, True)):
        v = bsq_vae.build_vae(name, seed=0)
        sched = [(1, 1, 1), (1, 2, 2), (1, 3, 3)]
        vs = S.vae_schedule(sched, pf)
        bits = [torch.randint(0, 2, (1, h * w, d * (4 if pf else 1))) for _, h, w in sched]
        _, summed = C.teacher_inputs(bits, vs, d, pf)
        img = v.decode_codes(summed)
        side = vs[-1][1] * patch
        assert img.shape == (1, 3, side, side) and img.abs().max() <= 1
        assert bsq_vae.to_uint8_image(img).shape == (1, side, side, 3)


def test_official_layout_names():
    k = set(bsq_vae.build_vae("vae_tiny_d32", seed=0).state_dict())
    for name in ("encoder.conv_in.conv.weight", "encoder.down.0.block.0.norm1.norm.weight", "encoder.down.3.downsample.conv.conv.weight",
                 "encoder.down.2.block.0.nin_shortcut.conv.weight", "decoder.up.4.upsample.conv.conv.weight", "decoder.up.0.block.1.conv2.conv.bias",
                 "decoder.mid.block_2.norm2.norm.bias", "decoder.conv_out.conv.weight", "quantizer.lfq.mask"):
        assert name in k, name
    assert "encoder.down.4.downsample.conv.conv.weight" not in k and "decoder.up.0.upsample.conv.conv.weight" not in k


def test_encode_quantise_consistent_with_codes():
    v = bsq_vae.build_vae("vae_tiny_d32", seed=0)
    img = torch.rand(1, 3, 64, 64) * 2 - 1
    sched = [(1, 1, 1), (1, 2, 2), (1, 4, 4)]
    h, z, bits = v.encode(img, sched)
    tb = [C.latent_bits_to_token_bits(b[:, 0], False) for b in bits]
    _, summed = C.teacher_inputs(tb, sched, 32, False)
    assert torch.allclose(summed, z, atol=1e-6)


def test_unwrapped_keys_load():
    a, b = bsq_vae.build_vae("vae_tiny_d56", seed=0), bsq_vae.build_vae("vae_tiny_d56", seed=1)
    sd = {k.replace(".conv.weight", ".weight").replace(".norm.bias", ".bias"): t for k, t in a.state_dict().items()}
    b.load_official_state_dict({"vae": sd})
    assert torch.equal(a.decoder.conv_out.conv.weight, b.decoder.conv_out.conv.weight)
