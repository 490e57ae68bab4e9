#!/usr/bin/env python3
"""Times the official Infinity inference code (github.com/FoundationVision/Infinity, fetched separately and
never committed) the way ../shared/spec/targets.md measures it: official 2B / 8B configuration, 1024x1024,
13 scales, CFG 3 on the logits (batch 2), top-k 900, top-p 0.97, BSQ-VAE decode included, text features given
(T5 not timed), wall time per image, best of N after warm-up.

The model is built exactly as tools/run_infinity.py's load_infinity builds it (same constructor flags, blocks
in bf16, bf16 autocast) and loaded with the same random-weight checkpoint our engine reads
(python/tools/make_random_checkpoint.py): the official loader accepting our file is part of the evidence that
our writers and readers follow the official key layout. flash-attn is not installable on the GPU machine, so
its varlen cross-attention entry point is provided by a shim over torch SDPA (`--sdpa` picks the backend for
every attention call: cudnn or flash = torch's FlashAttention-2).

  python3 bench/infinity_e2e/official_infinity.py --repo .official/Infinity --ckpt /tmp/ckpt_2b \
      --model infinity_2b --sdpa cudnn --json /tmp/out/official_2b_cudnn.json
"""
import argparse
import json
import os
import sys
import time
import types


def install_shims():
    """flash_attn (the kernels are not installable here) and pytz (only for a log timestamp) when missing."""
    import torch
    import torch.nn.functional as F

    try:
        import flash_attn  # noqa: F401
    except ImportError:
        def varlen_kvpacked(q, kv, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                            softmax_scale=None, **_):
            # q [sum Lq, H, c], kv [sum Lk, 2, H, c] -> [sum Lq, H, c]. Equal lengths (the benchmark's case): one
            # batched SDPA call; otherwise one call per sequence.
            lq = (cu_seqlens_q[1:] - cu_seqlens_q[:-1]).tolist()
            lk = (cu_seqlens_k[1:] - cu_seqlens_k[:-1]).tolist()
            if len(set(lq)) == 1 and len(set(lk)) == 1:
                B, H, c = len(lq), q.shape[1], q.shape[2]
                qb = q.view(B, lq[0], H, c).transpose(1, 2)
                kb, vb = kv.view(B, lk[0], 2, H, c).unbind(2)
                o = F.scaled_dot_product_attention(qb, kb.transpose(1, 2), vb.transpose(1, 2), scale=softmax_scale)
                return o.transpose(1, 2).reshape(-1, H, c)
            outs = []
            for i in range(len(lq)):
                qi = q[cu_seqlens_q[i]:cu_seqlens_q[i + 1]].transpose(0, 1).unsqueeze(0)
                ki, vi = kv[cu_seqlens_k[i]:cu_seqlens_k[i + 1]].unbind(1)
                o = F.scaled_dot_product_attention(qi, ki.transpose(0, 1).unsqueeze(0), vi.transpose(0, 1).unsqueeze(0),
                                                   scale=softmax_scale)
                outs.append(o[0].transpose(0, 1))
            return torch.cat(outs, 0)

        def dense(q, k, v, dropout_p=0.0, softmax_scale=None, **_):  # BLHc, only used with customized_flash_attn
            o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=softmax_scale)
            return o.transpose(1, 2)

        m = types.ModuleType("flash_attn")
        m.flash_attn_func = dense
        m.flash_attn_varlen_kvpacked_func = varlen_kvpacked
        sys.modules["flash_attn"] = m
    try:
        import pytz  # noqa: F401
    except ImportError:
        m = types.ModuleType("pytz")
        m.timezone = lambda name: None
        sys.modules["pytz"] = m


def load_checkpoint_into(model, ckpt_dir):
    """Our writer's files: infinity.pth (a flat state dict) or infinity_weights/ (sharded safetensors + index)."""
    import torch
    pth = os.path.join(ckpt_dir, "infinity.pth")
    if os.path.exists(pth):
        sd = torch.load(pth, map_location="cuda", weights_only=True)
    else:
        from safetensors.torch import load_file
        wdir = os.path.join(ckpt_dir, "infinity_weights")
        index = json.load(open(next(os.path.join(wdir, f) for f in os.listdir(wdir) if f.endswith(".index.json"))))
        sd = {}
        for shard in sorted(set(index["weight_map"].values())):
            sd.update(load_file(os.path.join(wdir, shard), device="cuda"))
    result = model.load_state_dict(sd, strict=False)
    del sd
    return {"missing": list(result.missing_keys), "unexpected": list(result.unexpected_keys)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", required=True, help="checkout of FoundationVision/Infinity")
    ap.add_argument("--ckpt", default="", help="folder from make_random_checkpoint.py (default: the official random init)")
    ap.add_argument("--model", default="infinity_2b", choices=["infinity_2b", "infinity_8b"])
    ap.add_argument("--sdpa", default="cudnn", choices=["cudnn", "flash", "auto"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--text-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)

    sys.path.insert(0, os.path.abspath(a.repo))
    install_shims()
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from infinity.models.bsq_vae.vae import vae_model
    from infinity.models.infinity import Infinity
    from infinity.utils.dynamic_resolution import dynamic_resolution_h_w

    eight = a.model == "infinity_8b"
    # tools/run_infinity.py: load_visual_tokenizer and load_transformer, with scripts/infer.sh's flags
    codebook_dim = 14 if eight else 32
    patch, ch_mult = (8, [1, 2, 4, 4]) if eight else (16, [1, 2, 4, 4, 4])
    vae_path = os.path.join(a.ckpt, "vae.pth") if a.ckpt else {}
    t0 = time.time()
    # Built on the GPU (minutes faster than the CPU init of 8B parameters); the constructor draws cfg_uncond
    # with a CPU generator, which torch refuses for CUDA tensors: that one init drops the generator (the values
    # are replaced by the checkpoint's anyway).
    trunc_normal = torch.nn.init.trunc_normal_
    torch.nn.init.trunc_normal_ = lambda t, *args, generator=None, **kw: trunc_normal(t, *args, **kw)
    with torch.device("cuda"):
        vae = vae_model(vae_path, "dynamic", codebook_dim, 2 ** codebook_dim, patch_size=patch,
                        encoder_ch_mult=ch_mult, decoder_ch_mult=ch_mult, test_mode=True).cuda()
        kw = (dict(depth=40, embed_dim=3584, num_heads=28, drop_path_rate=0.1, mlp_ratio=4, block_chunks=8) if eight
              else dict(depth=32, embed_dim=2048, num_heads=16, drop_path_rate=0.1, mlp_ratio=4, block_chunks=8))
        model = Infinity(vae_local=vae, text_channels=2048, text_maxlen=512, shared_aln=True, raw_scale_schedule=None,
                         checkpointing="full-block", customized_flash_attn=False, fused_norm=True,
                         pad_to_multiplier=128, use_flex_attn=False, add_lvl_embeding_only_first_block=1,
                         use_bit_label=1, rope2d_each_sa_layer=1, rope2d_normalized_by_hw=2, pn="1M",
                         apply_spatial_patchify=int(eight), inference_mode=True, train_h_div_w_list=[1.0], **kw)
    torch.nn.init.trunc_normal_ = trunc_normal
    for block in model.unregistered_blocks:
        block.bfloat16()
    model.eval().requires_grad_(False).cuda()
    load_report = load_checkpoint_into(model, a.ckpt) if a.ckpt else {"missing": [], "unexpected": [], "random_init": True}
    model.rng = torch.Generator(device="cuda")
    torch.cuda.synchronize()
    params = sum(p.numel() for p in model.parameters())
    print(f"official {a.model}: {params / 1e9:.2f} B parameters, built + loaded in {time.time() - t0:.1f} s; "
          f"checkpoint keys missing {len(load_report['missing'])} {load_report['missing'][:5]}, "
          f"unexpected {len(load_report['unexpected'])} {load_report['unexpected'][:5]}", flush=True)

    schedule = [(1, h, w) for (_, h, w) in dynamic_resolution_h_w[1.0]["1M"]["scales"]]
    g = torch.Generator().manual_seed(a.seed)
    feats = (torch.rand(a.text_tokens, 2048, generator=g) * 2 - 1).cuda()
    lens = [a.text_tokens]
    cu = F.pad(torch.tensor(lens, device="cuda", dtype=torch.int32).cumsum(0, dtype=torch.int32), (1, 0))
    text_cond = (feats, lens, cu, max(lens))

    # VAE decode timed inside the call (autoregressive_infer_cfg decodes when ret_img=True).
    vae_ms = []
    decode = vae.decode

    def timed_decode(*args, **kwargs):
        torch.cuda.synchronize()
        s = time.perf_counter()
        out = decode(*args, **kwargs)
        torch.cuda.synchronize()
        vae_ms.append((time.perf_counter() - s) * 1e3)
        return out
    vae.decode = timed_decode

    # The preferred backend first; calls it cannot take (the official code also attends in fp32 where autocast
    # is off) fall through to the next ones, as torch would pick them.
    rest = [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    backends = {"cudnn": [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION] + rest,
                "flash": [SDPBackend.FLASH_ATTENTION] + rest,
                "auto": [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION] + rest}[a.sdpa]

    def sdpa_context():
        try:
            return sdpa_kernel(backends, set_priority=True)
        except TypeError:  # older torch: no priority order
            return sdpa_kernel(backends)
    runs = []
    for i in range(a.warmup + a.repeat):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        s = time.perf_counter()
        with sdpa_context(), torch.no_grad(), torch.amp.autocast("cuda", dtype=torch.bfloat16):
            _, _, img = model.autoregressive_infer_cfg(
                vae=vae, scale_schedule=schedule, label_B_or_BLT=text_cond, g_seed=a.seed + i, B=1,
                negative_label_B_or_BLT=None, force_gt_Bhw=None, cfg_sc=3, cfg_list=[3.0] * len(schedule),
                tau_list=[1.0] * len(schedule), top_k=900, top_p=0.97, returns_vemb=1, ratio_Bl1=None, gumbel=0,
                norm_cfg=False, cfg_exp_k=0.0, cfg_insertion_layer=[0], vae_type=codebook_dim, softmax_merge_topk=-1,
                ret_img=True, trunk_scale=1000, gt_leak=0, gt_ls_Bl=None, inference_mode=True, sampling_per_bits=1)
        torch.cuda.synchronize()
        total = (time.perf_counter() - s) * 1e3
        run = {"total_ms": total, "vae_ms": vae_ms[-1], "transformer_ms": total - vae_ms[-1],
               "peak_allocated_bytes": torch.cuda.max_memory_allocated(),
               "peak_reserved_bytes": torch.cuda.max_memory_reserved()}
        print(f"official {a.model} sdpa={a.sdpa} {'warm-up' if i < a.warmup else 'run'}: {total:.1f} ms "
              f"(transformer {run['transformer_ms']:.1f}, VAE {run['vae_ms']:.1f}), image {tuple(img.shape)}, "
              f"peak allocated {run['peak_allocated_bytes'] / 2**20:.0f} MiB, reserved "
              f"{run['peak_reserved_bytes'] / 2**20:.0f} MiB", flush=True)
        if i >= a.warmup:
            runs.append(run)
    best = min(runs, key=lambda r: r["total_ms"])
    out = {"model": a.model, "sdpa": a.sdpa, "params": params, "best": best, "runs": runs,
           "checkpoint": {"dir": a.ckpt, "missing": len(load_report["missing"]),
                          "unexpected": len(load_report["unexpected"])},
           "gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    print(f"official {a.model} sdpa={a.sdpa}: best {best['total_ms']:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
