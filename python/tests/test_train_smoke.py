"""Smoke test of the training pipeline (python/train) on 16 synthetic sprites, CPU, tiny configs, 2-3 steps
per stage: dataset file -> tokenizer -> VAE -> Infinity + T5 -> export -> load through sparvar_ref.load ->
generate one image. Plus the two training-side forwards against the reference modules they stand in for.
No Debian data packages needed; sentencepiece (python3-sentencepiece) is."""
import io
import json
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import build_dataset  # noqa: E402
import common  # noqa: E402
from sparvar_ref import bsq_vae, t5  # noqa: E402

spm = pytest.importorskip("sentencepiece")

COLOURS = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (40, 70, 220), "yellow": (240, 200, 20)}
SHAPES = ["circle", "square", "triangle", "bar"]


def _sprite(colour, shape, n):
    from PIL import Image, ImageDraw
    w, h = 40 + 4 * (n % 3), 36 + 4 * (n % 2)
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    c = COLOURS[colour] + (255,)
    if shape == "circle":
        d.ellipse((2, 2, w - 3, h - 3), fill=c)
    elif shape == "square":
        d.rectangle((4, 4, w - 5, h - 5), fill=c)
    elif shape == "triangle":
        d.polygon([(w // 2, 2), (2, h - 3), (w - 3, h - 3)], fill=c)
    else:
        d.rectangle((2, h // 3, w - 3, 2 * h // 3), fill=c)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _synthetic_set(directory):
    sprites, items = [], []
    for i, colour in enumerate(COLOURS):
        for j, shape in enumerate(SHAPES):
            n = i * len(SHAPES) + j
            sprites.append(_sprite(colour, shape, n))
            items.append(dict(key=f"synth/{n}", caption=f"a {colour} {shape}", source="synth",
                              split="heldout" if n in (5, 10) else "train"))
    build_dataset.save_set(directory, sprites, items, extra=dict(seed=0))
    return sprites, items


def test_render_and_set_roundtrip(tmp_path):
    sprites, items = _synthetic_set(str(tmp_path))
    s2, i2 = build_dataset.load_set(str(tmp_path))
    assert s2 == sprites and i2 == items
    img = build_dataset.render(sprites[0], 64)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == build_dataset.BACKGROUND          # margin is background
    assert tuple(img[32, 32]) != build_dataset.BACKGROUND        # centre is the sprite


def test_emoji_caption_rules():
    assert build_dataset.emoji_caption((0x1F34E,)) == "red apple"
    assert build_dataset.emoji_caption((0x1F44D, 0x1F3FD)) == "thumbs up sign medium skin tone"
    assert build_dataset.emoji_caption((0x1F1EF, 0x1F1F5)) == "flag jp"
    # Noto lists ZWJ segments in reverse; _noto_order restores 'woman (light) heart man (dark)'
    noto = (0x1F468, 0x200D, 0x2764, 0x200D, 0x1F3FF, 0x1F469, 0x1F3FB)
    assert build_dataset._noto_order(noto) == (0x1F469, 0x1F3FB, 0x200D, 0x2764, 0x200D, 0x1F468, 0x1F3FF)


def test_schedule_for():
    assert [s[1] for s in common.schedule_for(256, 8)] == [1, 2, 4, 6, 8, 12, 16, 20, 24, 32]
    assert [s[1] for s in common.schedule_for(64, 16)] == [1, 2, 4]


@torch.enable_grad()
def test_straight_through_quantiser_matches_reference():
    torch.manual_seed(0)
    vae = bsq_vae.build_vae("vae_tiny_d32", seed=0)
    h = torch.randn(2, 32, 4, 4, requires_grad=True)
    sched = common.schedule_for(64, 16)
    ref, ref_bits = vae.quantizer(h.detach(), sched)
    out, bits, commit, es, ec = common.ms_bsq_train(vae.quantizer, h, sched)
    assert torch.allclose(out, ref, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(bits, ref_bits))
    (out.sum() + commit).backward()
    assert h.grad is not None and h.grad.abs().sum() > 0        # the gradient actually reaches the encoder


def test_t5_forward_matches_reference():
    m = t5.build_t5("t5-tiny", seed=0)
    ids = torch.tensor([[5, 9, 3, 1, 0, 0], [7, 1, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    a, _ = m(ids, mask)
    b, _ = common.t5_forward(m, ids, mask)
    assert torch.allclose(a, b, atol=1e-5)


def test_pipeline_smoke(tmp_path):
    import export_model
    import sample
    import train_infinity
    import train_tokenizer
    import train_vae
    data, runs = str(tmp_path / "set"), tmp_path / "runs"
    _, items = _synthetic_set(data)
    tok = train_tokenizer.train([it["caption"] for it in items if it["split"] == "train"], str(runs / "tok"), 60)
    base = ["--data", data, "--limit", "0", "--workers", "1", "--device", "cpu", "--log-every", "1"]
    train_vae.main(base + ["--config", "vae_tiny_d32", "--size", "64", "--batch", "2", "--steps", "3",
                           "--out", str(runs / "vae")])
    assert (runs / "vae" / "vae_log.csv").exists() and (runs / "vae" / "vae_recon.png").exists()
    # resume: continues from step 3 to step 4 and appends to the log
    train_vae.main(base + ["--config", "vae_tiny_d32", "--size", "64", "--batch", "2", "--steps", "4",
                           "--out", str(runs / "vae"), "--resume"])
    assert common.load_checkpoint(str(runs / "vae" / "ckpt.pt"))["step"] == 4
    assert len(open(runs / "vae" / "vae_log.csv").read().strip().splitlines()) == 1 + 4
    train_infinity.main(base + ["--config", "infinity_tiny", "--t5-config", "t5-tiny", "--batch", "2", "--steps", "2",
                                "--tokenizer", tok, "--vae-ckpt", str(runs / "vae" / "ckpt.pt"),
                                "--out", str(runs / "inf"), "--samples", "1"])
    assert (runs / "inf" / "samples_heldout.png").exists()
    out, total, man = export_model.export(str(runs / "vae" / "ckpt.pt"), str(runs / "inf" / "ckpt.pt"), tok,
                                          str(runs / "export"))
    assert total < 50 * 2 ** 20
    with open(os.path.join(out, "manifest.json")) as f:
        assert json.load(f)["schedule"] == [[1, 1, 1], [1, 2, 2], [1, 4, 4]]
    img = sample.generate(out, ["a red circle"])
    assert img.shape == (1, 64, 64, 3) and img.dtype == np.uint8
