#!/usr/bin/env python3
"""Train the small BSQ-VAE (sparvar_ref.bsq_vae, config vae_ship_p8 by default) on the rendered set.

Loss = L1 + L2 + 0.5 * L1 of image gradients (a cheap edge term: no downloaded perceptual nets exist)
       + beta * commitment (normalised residual vs its signs, every scale)
       + gamma * (per-sample bit entropy - codebook bit entropy)   (BSQ's entropy regulariser, factorised per bit)
The quantiser is the reference's multi-scale BSQ with a straight-through gradient (common.ms_bsq_train),
on the same scale schedule the transformer uses, so the decoder learns exactly the summed codes it will be
given at generation time. Random horizontal flips (the VAE is caption-free, so flips are harmless).

Writes to --out: ckpt.pt (resumable: model, optimiser, step, RNG, elapsed time), vae_log.csv, vae_loss.png,
vae_recon.png (held-out originals over reconstructions).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sparvar_ref import bsq_vae  # noqa: E402


def grad_l1(a, b):
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]
    return (dx(a) - dx(b)).abs().mean() + (dy(a) - dy(b)).abs().mean()


def vae_losses(vae, x, vsched, beta, gamma):
    h = vae.encoder(x)
    z, bits, commit, ent_s, ent_c = common.ms_bsq_train(vae.quantizer, h, vsched)
    rec = vae.decoder(z.squeeze(2).to(h.dtype))
    rec = rec.float()
    l1 = (rec - x).abs().mean()
    l2 = (rec - x).pow(2).mean()
    lg = grad_l1(rec, x)
    loss = l1 + l2 + 0.5 * lg + beta * commit + gamma * (ent_s - ent_c)
    return loss, dict(l1=l1.item(), l2=l2.item(), grad=lg.item(), commit=float(commit), ent_sample=float(ent_s),
                      ent_codebook=float(ent_c)), rec


@torch.no_grad()
def recon_grid(vae, imgs_u8, vsched, device, path):
    from PIL import Image
    x = common.to_model_range(torch.as_tensor(imgs_u8).to(device))
    _, z, _ = vae.encode(x, vsched)
    rec = bsq_vae.to_uint8_image(vae.decode_codes(z))
    Image.fromarray(np.concatenate([np.concatenate(list(imgs_u8), 1), np.concatenate(list(rec), 1)], 0)).save(path)
    return float(np.abs(rec.astype(np.float32) - imgs_u8.astype(np.float32)).mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(common.DATA, "sparvar_set"))
    ap.add_argument("--out", default=os.path.join(common.DATA, "runs", "vae"))
    ap.add_argument("--config", default="vae_ship_p8", choices=sorted(bsq_vae.VAE_CONFIGS))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--beta", type=float, default=0.25, help="commitment weight")
    ap.add_argument("--gamma", type=float, default=0.05, help="entropy regulariser weight")
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--minutes", type=float, default=0, help="time budget (0 = only --steps)")
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--stop-after", type=float, default=0,
                    help="end this invocation after N minutes (resume later with --resume; the budget is --minutes)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images (smoke tests)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for rendering")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args(argv)

    torch.set_grad_enabled(True)     # a caller (e.g. another tool in the same process) may have turned it off
    dev = common.pick_device(a.device)
    common.set_fast_math(dev)
    common.seed_all(a.seed)
    os.makedirs(a.out, exist_ok=True)
    cfg = bsq_vae.VAE_CONFIGS[a.config]
    vsched = common.schedule_for(a.size, cfg.patch_size)        # VAE latent grids (no patchify)
    imgs, _ = common.load_images(a.data, a.size, "train", a.limit, a.workers)
    held, _ = common.load_images(a.data, a.size, "heldout", 8, 1)
    data = torch.from_numpy(imgs).to(dev)                        # uint8 on the device: ~0.9 GB at 256 px
    print(f"VAE {a.config}: {len(imgs)} train images at {a.size}px, latent schedule {[s[1] for s in vsched]}, "
          f"device {dev}", flush=True)

    vae = bsq_vae.build_vae(a.config, seed=a.seed).to(dev).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=a.lr, betas=(0.9, 0.99), weight_decay=0.0)
    ck = os.path.join(a.out, "ckpt.pt")
    step, spent = 0, 0.0
    if a.resume and os.path.exists(ck):
        st = common.load_checkpoint(ck)
        vae.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, spent = st["step"], st["elapsed"]
        common.set_rng_state(st["rng"])
        print(f"resumed at step {step} ({spent / 60:.1f} min spent)")
    budget = common.Budget(a.steps, a.minutes, step, spent, a.stop_after)
    log = common.CSVLog(os.path.join(a.out, "vae_log.csv"),
                        ["step", "time_s", "lr", "loss", "l1", "l2", "grad", "commit", "ent_sample", "ent_codebook"],
                        resume=a.resume)
    gen = torch.Generator(device="cpu").manual_seed(a.seed * 1000 + step)

    def save():
        common.save_checkpoint(ck, model=vae.state_dict(), opt=opt.state_dict(), step=step,
                               elapsed=budget.elapsed(), rng=common.rng_state(), config=a.config, size=a.size)

    t_last = time.time()
    while not budget.done(step):
        lr = common.lr_at(budget.progress(step), step, a.lr, a.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(data), (a.batch,), generator=gen)
        x = common.to_model_range(data[idx.to(dev)])
        flip = torch.rand(a.batch, generator=gen) < 0.5
        x = torch.where(flip.to(dev)[:, None, None, None], x.flip(-1), x)
        with common.autocast(dev):
            loss, parts, _ = vae_losses(vae, x, vsched, a.beta, a.gamma)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        if step % a.log_every == 0 or step == 1 or budget.done(step):
            log.log(step=step, time_s=budget.elapsed(), lr=lr, loss=loss.item(), **parts)
            dt = (time.time() - t_last) / (a.log_every if step > 1 else 1)
            t_last = time.time()
            print(f"vae step {step} loss {loss.item():.4f} l1 {parts['l1']:.4f} commit {parts['commit']:.3f} "
                  f"ent {parts['ent_sample']:.3f}/{parts['ent_codebook']:.3f} lr {lr:.2e} {dt:.3f}s/step", flush=True)
        if step % a.save_every == 0:
            save()
    save()
    if not budget.finished(step):
        print(f"VAE paused at step {step} ({budget.elapsed() / 60:.1f} min of {a.minutes}); rerun with --resume")
        return
    vae.eval()
    mae = recon_grid(vae, held, vsched, dev, os.path.join(a.out, "vae_recon.png")) if len(held) else float("nan")
    common.plot_csv(os.path.join(a.out, "vae_log.csv"), os.path.join(a.out, "vae_loss.png"),
                    ["loss", "l1", "l2", "commit"], "BSQ-VAE")
    print(f"VAE done: {step} steps, {budget.elapsed() / 60:.1f} min; held-out reconstruction MAE "
          f"{mae:.2f}/255; checkpoint {ck}")


if __name__ == "__main__":
    main()
