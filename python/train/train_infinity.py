#!/usr/bin/env python3
"""Train the small Infinity transformer (sparvar_ref.infinity, config infinity_ship) jointly with a small
T5-style text encoder trained from scratch (sparvar_ref.t5, config t5-ship), on the bit labels of the
trained BSQ-VAE.

Why jointly: no pretrained text encoder exists here, and the captions are short names ('red apple'); a
4-layer encoder learned with the image loss is enough to map them to features, and one optimiser keeps the
pipeline to one stage. The T5 keeps its official key layout, so it exports like Flan-T5.

Training objective (as the official trainer): teacher-forced bitwise cross-entropy over all scales.
- The frozen VAE encodes every training image once (fp32) through the reference's multi-scale BSQ
  (bsq_vae.BSQVAE.encode); its per-scale bits are the labels.
- codes.teacher_inputs turns the labels into the inputs of scales 1..K-1 (running sum of upsampled codes,
  resampled to the next grid), exactly the arithmetic of generation.
- Infinity.forward_teacher (block-causal scale mask; fused attention through the attn_fn hook) gives 2
  logits per bit; loss = mean CE over all tokens and bits.
- Text dropout for classifier-free guidance: with probability --cfg-drop a row's T5 features are replaced by
  the model's cfg_uncond rows (the same features generate() uses for the unconditional half).
Writes to --out: ckpt.pt (resumable), infinity_log.csv, infinity_loss.png, samples_heldout.png.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sparvar_ref import bsq_vae, codes as C, infinity, t5  # noqa: E402


def init_infinity(m: infinity.Infinity):
    """Small-std init (the official trainer also re-initialises: trunc-normal linears, small head), so the
    AdaLN gates and the head start near zero and early steps are stable."""
    std = (1.0 / m.cfg.embed_dim / 3) ** 0.5
    for mod in m.modules():
        if isinstance(mod, nn.Linear):
            nn.init.trunc_normal_(mod.weight, std=std)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
    with torch.no_grad():
        m.head.weight.mul_(0.1)
        m.shared_ada_lin[-1].weight.mul_(0.5)


@torch.no_grad()
def encode_labels(vae, imgs_u8, vsched, device, batch=32):
    """All images -> bits (N, L_total, d) uint8, scales concatenated in schedule order (token = latent grid)."""
    out = []
    for i in range(0, len(imgs_u8), batch):
        x = common.to_model_range(torch.from_numpy(imgs_u8[i:i + batch]).to(device))
        _, _, bits = vae.encode(x, vsched)
        out.append(torch.cat([C.latent_bits_to_token_bits(b[:, 0], False) for b in bits], 1).to(torch.uint8))
    return torch.cat(out, 0)


def text_features(tm, inf, ids, mask, drop):
    """T5 features (zeros past each length) with rows in `drop` replaced by the unconditional rows."""
    feats, m = common.t5_forward(tm, ids, mask)
    feats = feats * m[..., None].to(feats.dtype)
    if drop is not None and drop.any():
        un = inf.uncond_text(m).to(feats.dtype)
        feats = torch.where(drop[:, None, None], un, feats)
    return feats, m


def bit_loss(logits, labels):
    """logits list of (B, n_k, 2d); labels (B, L, d) -> (mean CE, bit accuracy per scale)."""
    lg = torch.cat(logits, 1).float()
    B, L, D2 = lg.shape
    lg = lg.view(B, L, D2 // 2, 2)
    ce = F.cross_entropy(lg.reshape(-1, 2), labels.reshape(-1).long())
    acc, start = [], 0
    for l in logits:
        n = l.shape[1]
        acc.append((lg[:, start:start + n].argmax(-1) == labels[:, start:start + n]).float().mean().item())
        start += n
    return ce, acc


@torch.no_grad()
def sample_grid(inf, tm, vae, sp, prompts, sched, device, path, maxlen, cfg=3.0, seed=0):
    from PIL import Image
    from sparvar_ref.sampling import TorchSampler
    ids, mask = common.tokenize(sp, prompts, maxlen, device)
    feats, m = text_features(tm, inf, ids, mask, None)
    out = inf.generate(feats, m, sched, cfg=cfg, tau=1.0, top_k=0, top_p=0.0, sampler=TorchSampler(seed))
    img = bsq_vae.to_uint8_image(vae.decode_codes(out["summed_codes"]))
    Image.fromarray(np.concatenate(list(img), 1)).save(path)
    return img


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(common.DATA, "sparvar_set"))
    ap.add_argument("--tokenizer", default=os.path.join(common.DATA, "tokenizer", "spiece.model"))
    ap.add_argument("--vae-ckpt", default=os.path.join(common.DATA, "runs", "vae", "ckpt.pt"))
    ap.add_argument("--out", default=os.path.join(common.DATA, "runs", "infinity"))
    ap.add_argument("--config", default="infinity_ship", choices=sorted(infinity.CONFIGS))
    ap.add_argument("--t5-config", default="t5-ship", choices=sorted(t5.T5_CONFIGS))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--cfg-drop", type=float, default=0.1, help="probability of the unconditional text")
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--minutes", type=float, default=0, help="time budget (0 = only --steps)")
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--stop-after", type=float, default=0,
                    help="end this invocation after N minutes (resume later with --resume; the budget is --minutes)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--samples", type=int, default=8, help="held-out prompts sampled at the end (0 = none)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args(argv)

    import sentencepiece as spm
    torch.set_grad_enabled(True)     # a caller (e.g. another tool in the same process) may have turned it off
    dev = common.pick_device(a.device)
    common.set_fast_math(dev)
    common.seed_all(a.seed)
    os.makedirs(a.out, exist_ok=True)
    icfg, tcfg = infinity.CONFIGS[a.config], t5.T5_CONFIGS[a.t5_config]
    assert tcfg.d_model == icfg.text_channels, "T5 d_model must equal the transformer's text_channels"
    assert not icfg.spatial_patchify, "the training pipeline is written for VAEs without 2x2 patchify"
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    assert sp.get_piece_size() <= tcfg.vocab_size, "tokenizer has more pieces than the encoder's vocab"

    vst = common.load_checkpoint(a.vae_ckpt)
    vcfg = bsq_vae.VAE_CONFIGS[vst["config"]]
    size = vst["size"]
    assert vcfg.codebook_dim == icfg.vae_codebook_dim, "VAE codebook_dim must match the transformer"
    vae = bsq_vae.BSQVAE(vcfg)
    vae.load_state_dict(vst["model"])
    vae = vae.to(dev).eval()
    sched = common.schedule_for(size, vcfg.patch_size)
    imgs, caps = common.load_images(a.data, size, "train", a.limit, a.workers)
    _, held_caps = common.load_images(a.data, size, "heldout", max(a.samples, 1), 1)
    t0 = time.time()
    labels = encode_labels(vae, imgs, sched, dev)                    # (N, L, d) uint8 on the device
    lens = [h * w for _, h, w in sched]
    print(f"Infinity {a.config} + {a.t5_config}: {len(imgs)} images, schedule {[s[1] for s in sched]} "
          f"({sum(lens)} tokens), labels in {time.time() - t0:.1f}s, device {dev}", flush=True)
    ids_all, mask_all = common.tokenize(sp, caps, icfg.text_maxlen, dev)

    inf = infinity.build(icfg, seed=a.seed)
    init_infinity(inf)
    tm = t5.build_t5(tcfg, seed=a.seed + 1)
    with torch.no_grad():
        tm.shared.weight.normal_(0, 1.0)
    inf, tm = inf.to(dev).train(), tm.to(dev).train()
    params = list(inf.parameters()) + list(tm.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=a.wd), dict(params=no_decay, weight_decay=0.0)],
                            lr=a.lr, betas=(0.9, 0.97))
    ck = os.path.join(a.out, "ckpt.pt")
    step, spent = 0, 0.0
    if a.resume and os.path.exists(ck):
        st = common.load_checkpoint(ck)
        inf.load_state_dict(st["infinity"])
        tm.load_state_dict(st["t5"])
        opt.load_state_dict(st["opt"])
        step, spent = st["step"], st["elapsed"]
        common.set_rng_state(st["rng"])
        print(f"resumed at step {step} ({spent / 60:.1f} min spent)")
    budget = common.Budget(a.steps, a.minutes, step, spent, a.stop_after)
    log = common.CSVLog(os.path.join(a.out, "infinity_log.csv"),
                        ["step", "time_s", "lr", "loss", "acc_first", "acc_mid", "acc_last"], resume=a.resume)
    gen = torch.Generator(device="cpu").manual_seed(a.seed * 1000 + step)

    def save():
        common.save_checkpoint(ck, infinity=inf.state_dict(), t5=tm.state_dict(), opt=opt.state_dict(), step=step,
                               elapsed=budget.elapsed(), rng=common.rng_state(), config=a.config,
                               t5_config=a.t5_config, vae_ckpt=os.path.abspath(a.vae_ckpt), size=size)

    t_last = time.time()
    while not budget.done(step):
        lr = common.lr_at(budget.progress(step), step, a.lr, a.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(imgs), (a.batch,), generator=gen).to(dev)
        drop = (torch.rand(a.batch, generator=gen) < a.cfg_drop).to(dev)
        lab = labels[idx]                                            # (B, L, d)
        per_scale = list(torch.split(lab, lens, 1))
        x_in, _ = C.teacher_inputs(per_scale, sched, icfg.vae_codebook_dim, False)
        ids, mask = ids_all[idx], mask_all[idx]
        keep = int(mask.sum(1).max())
        ids, mask = ids[:, :keep], mask[:, :keep]
        with common.autocast(dev):
            feats, m = text_features(tm, inf, ids, mask, drop)
            logits = inf.forward_teacher(feats, m, x_in, sched, attn_fn=common.sdpa_attention)
        loss, acc = bit_loss(logits, lab)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % a.log_every == 0 or step == 1 or budget.done(step):
            row = dict(loss=loss.item(), acc_first=acc[0], acc_mid=acc[len(acc) // 2], acc_last=acc[-1])
            log.log(step=step, time_s=budget.elapsed(), lr=lr, **row)
            dt = (time.time() - t_last) / (a.log_every if step > 1 else 1)
            t_last = time.time()
            print(f"infinity step {step} loss {row['loss']:.4f} bit acc {acc[0]:.3f}/{row['acc_mid']:.3f}/"
                  f"{acc[-1]:.3f} lr {lr:.2e} {dt:.3f}s/step", flush=True)
        if step % a.save_every == 0:
            save()
    save()
    if not budget.finished(step):
        print(f"Infinity paused at step {step} ({budget.elapsed() / 60:.1f} min of {a.minutes}); rerun with --resume")
        return
    common.plot_csv(os.path.join(a.out, "infinity_log.csv"), os.path.join(a.out, "infinity_loss.png"),
                    ["loss"], "Infinity bitwise CE")
    inf.eval(), tm.eval()
    if a.samples and held_caps:
        prompts = held_caps[:a.samples]
        try:  # samples are evidence, not part of the model: a failure here must not cost the trained weights
            sample_grid(inf, tm, vae, sp, prompts, sched, dev, os.path.join(a.out, "samples_heldout.png"),
                        icfg.text_maxlen)
        except Exception as e:  # noqa: BLE001
            print(f"warning: held-out sampling failed ({type(e).__name__}: {e}); the checkpoint is saved")
        with open(os.path.join(a.out, "samples_heldout.txt"), "w") as f:
            f.write("\n".join(prompts) + "\n")
    print(f"Infinity done: {step} steps, {budget.elapsed() / 60:.1f} min, last loss {loss.item():.4f}; checkpoint {ck}")


if __name__ == "__main__":
    main()
