#include "models/infinity/generator.h"

#include <chrono>
#include <cstring>

#include "core/error.h"
#include "models/infinity/block.h"
#include "models/infinity/codes.h"
#include "models/infinity/conditioning.h"
#include "models/infinity/kv_cache.h"
#include "models/infinity/rope_tables.h"
#include "models/infinity/workspace.h"

namespace sparvar::infinity {
namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<int32_t> checked_lengths(const TextInput& text, const InfinityConfig& c) {
  const Tensor& f = text.features;
  SPARVAR_CHECK(f.defined() && f.ndim() == 3 && f.dtype() == DType::F32 && f.device() == Device::CPU,
                "text features must be a host f32 array [batch, tokens, {}], got {}", c.text_channels,
                f.defined() ? f.describe() : std::string("nothing"));
  SPARVAR_CHECK(f.dim(0) >= 1 && f.dim(1) >= 1, "text features {} are empty (need at least one row and one token)",
                shape_string(f.shape()));
  SPARVAR_CHECK(f.dim(2) == c.text_channels, "text features {} have {} channels; the model expects {}",
                shape_string(f.shape()), f.dim(2), c.text_channels);
  std::vector<int32_t> lens = text.lengths;
  if (lens.empty()) lens.assign(static_cast<size_t>(f.dim(0)), static_cast<int32_t>(f.dim(1)));
  SPARVAR_CHECK(static_cast<int64_t>(lens.size()) == f.dim(0), "{} text lengths given for {} text rows", lens.size(),
                f.dim(0));
  for (int32_t l : lens)
    SPARVAR_CHECK(l >= 1 && l <= f.dim(1), "text length {} is outside [1, {}]", l, f.dim(1));
  return lens;
}

// Rows [cond..., uncond...] (or cond only), zeros past each length, as the reference masks them.
Tensor batch_text(const InfinityWeights& w, const Tensor& features, const std::vector<int32_t>& lens, bool cfg) {
  const int64_t B = features.dim(0), Lt = features.dim(1), Ct5 = features.dim(2);
  Tensor out = Tensor::zeros({cfg ? 2 * B : B, Lt, Ct5}, DType::F32);
  float* o = out.data_as<float>();
  const float* f = features.data_as<float>();
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(o + b * Lt * Ct5, f + b * Lt * Ct5, sizeof(float) * static_cast<size_t>(lens[static_cast<size_t>(b)] * Ct5));
  if (cfg) {
    const Tensor un = unconditional_text(w, B, Lt, lens);
    std::memcpy(o + B * Lt * Ct5, un.data(), un.nbytes());
  }
  return out;
}

std::vector<uint8_t> checked_forced_bits(const Tensor& t, int64_t B, int64_t L, int64_t D) {
  SPARVAR_CHECK(t.shape() == Shape({B, L, D}), "forced bits {} must be [{}, {}, {}] (batch, tokens, bits)",
                shape_string(t.shape()), B, L, D);
  const std::vector<float> v = t.to_floats();
  std::vector<uint8_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    SPARVAR_CHECK(v[i] == 0.0f || v[i] == 1.0f, "forced bits hold the value {} at element {} (only 0 and 1)", v[i], i);
    out[i] = v[i] != 0.0f;
  }
  return out;
}

// Forced bits [B, L, D] regrouped scale by scale ([B, n_k, D] blocks one after the other, scales [0, scales)),
// so each scale's bits are one contiguous slice of a single upload.
Tensor forced_bits_by_scale(const std::vector<uint8_t>& forced, const ScaleSchedule& sched, int scales, int64_t B,
                            int64_t D) {
  const int64_t L = sched.total_tokens();
  Tensor out = Tensor::empty({B * sched.offset(scales - 1) + B * sched.tokens(scales - 1), D}, DType::U8);
  uint8_t* o = out.data_as<uint8_t>();
  for (int k = 0; k < scales; ++k)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = sched.tokens(k), off = sched.offset(k);
      std::memcpy(o + (B * off + b * n) * D, forced.data() + (b * L + off) * D, static_cast<size_t>(n * D));
    }
  return out.view({out.numel()});
}

}  // namespace

InfinityModel::InfinityModel(Backend& backend, InfinityWeights weights) : backend_(backend), weights_(std::move(weights)) {}

GenerateResult InfinityModel::generate(const TextInput& text, const GenerateOptions& o, AttentionRunner* runner_in) {
  Backend& be = backend_;
  const InfinityWeights& w = weights_;
  const InfinityConfig& c = w.config;
  const ScaleSchedule& sched = o.schedule;
  const int K = sched.num_scales();
  SPARVAR_CHECK(K >= 1, "empty scale schedule");
  SPARVAR_CHECK(K <= c.num_lvl, "schedule {} has {} scales; the model has level embeddings for {}", sched.describe(),
                K, c.num_lvl);
  SPARVAR_CHECK(o.tau > 0.0f, "tau must be > 0, got {}", o.tau);
  SPARVAR_CHECK(o.skip_last >= 0 && o.skip_last < K, "skip-last {} must be in [0, {}] for a schedule of {} scales",
                o.skip_last, K - 1, K);
  const int K_run = K - o.skip_last;
  const std::vector<int32_t> lens = checked_lengths(text, c);
  const int64_t B = text.features.dim(0), L = sched.total_tokens(), D = c.d_vae(), C = c.embed_dim;
  const bool use_cfg = o.cfg != 1.0f;
  const int64_t bs = use_cfg ? 2 * B : B;
  // Bits drawn by the scales that run: B * n_k * D per scale, consumed in scale order.
  const int64_t run_bits = B * (sched.offset(K_run - 1) + sched.tokens(K_run - 1)) * D;
  std::vector<uint8_t> forced;
  if (o.forced_bits) forced = checked_forced_bits(*o.forced_bits, B, L, D);
  const bool supplied = forced.empty() && o.uniforms.has_value();
  if (supplied) {
    const int64_t have = static_cast<int64_t>(o.uniforms->size());
    for (int k = 0; k < K_run; ++k) {
      const int64_t first = B * sched.offset(k) * D, last = first + B * sched.tokens(k) * D;
      SPARVAR_CHECK(last <= have, "not enough supplied uniforms: scale {} needs values [{}, {}), the array has {}", k,
                    first, last, have);
    }
  }
  DenseAttentionRunner dense;
  AttentionRunner& runner = runner_in ? *runner_in : dense;
  GenerateResult result;

  // ---- once per image: text, RoPE tables, KV cache, workspace, sampling inputs ----
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> lens_all = lens;
  if (use_cfg) lens_all.insert(lens_all.end(), lens.begin(), lens.end());
  const Conditioning cond = encode_text(be, w, batch_text(w, text.features, lens, use_cfg), lens_all);
  const RopeTables rope_host = build_rope_tables(sched, c.head_dim());
  const Tensor rope_cos = be.upload(rope_host.cos, DType::F32), rope_sin = be.upload(rope_host.sin, DType::F32);
  KvCache cache(be, c.depth, bs, c.num_heads, L, c.head_dim(), w.dtype);
  int64_t max_n = 0, max_latent = 0;
  for (const auto& g : sched.grids()) {
    max_n = std::max(max_n, g.tokens());
    max_latent = std::max(max_latent, latent_grid(g, c.spatial_patchify).tokens());
  }
  Workspace ws(be, w.dtype);
  reserve_block_workspace(ws, c, bs, max_n);
  ws.reserve("tokens", B * max_n * D);
  ws.reserve("embedded", B * max_n * C);
  Workspace codes_ws(be, DType::F32);  // the running sum stays fp32 on every backend
  const ScaleGrid last = latent_grid(sched.grids().back(), c.spatial_patchify);
  const int64_t d = c.vae_codebook_dim;
  for (const char* name : {"summed", "upsampled", "next"}) codes_ws.reserve(name, B * d * last.tokens());
  codes_ws.reserve("codes", B * d * max_latent);
  codes_ws.reserve("tokens", B * max_n * D);
  if (o.keep_logits) codes_ws.reserve("logits", B * max_n * 2 * D);
  Workspace bits_ws(be, DType::U8);
  bits_ws.reserve("bits", B * max_n * D);
  // Forced bits and supplied uniforms go to the device once, scale-major, so each scale takes a slice.
  Tensor forced_dev, uniforms_dev;
  if (!forced.empty()) forced_dev = be.upload(forced_bits_by_scale(forced, sched, K_run, B, D), DType::U8);
  if (supplied)
    uniforms_dev = be.upload(Tensor::from_floats({run_bits}, std::vector<float>(o.uniforms->begin(),
                                                                                 o.uniforms->begin() + run_bits)),
                             DType::F32);
  const CodeValues code = code_values(c);
  const int patch = c.spatial_patchify ? 2 : 1;
  BitSampling sampling;
  sampling.tau = o.tau;
  sampling.cfg = o.cfg;
  sampling.top_k = o.sampling.top_k;
  sampling.top_p = o.sampling.top_p;
  sampling.seed = o.seed;
  Tensor summed = codes_ws.take("summed", {B, d, last.h, last.w});
  Tensor x = ws.take("x", {bs, 1, C});
  be.copy(cond.start, x);
  be.synchronize();
  result.text_ms = ms_since(t0);
  result.kv_cache_bytes = cache.bytes();
  result.workspace_bytes = ws.bytes() + codes_ws.bytes() + bits_ws.bytes();

  std::vector<std::unique_ptr<TimingEvent>> marks;  // !sync_each_scale: the end of each scale's work
  if (!o.sync_each_scale) marks.push_back(be.record_event());
  for (int si = 0; si < K_run; ++si) {
    t0 = std::chrono::steady_clock::now();
    const ScaleGrid grid = sched.grid(si);
    const int64_t n = grid.tokens(), off = sched.offset(si);
    ScaleStep step{si, &sched, n, off, rope_cos.slice0(off, off + n), rope_sin.slice0(off, off + n)};
    x = ws.take("x", {bs, n, C});
    be.add(x, w.lvl_embed.slice0(si, si + 1).view({C}), x);
    for (int l = 0; l < c.depth; ++l) run_block(be, w, l, cond, step, cache, runner, ws, x);

    // Head, tau, CFG and sampling on the backend (forced bits: the logits only, when they are kept).
    const Tensor raw = run_head(be, w, cond, ws, x);
    const int64_t first = B * off * D, count = B * n * D;
    sampling.stream = static_cast<uint64_t>(si);  // PhiloxStream(seed, scale), as UniformSource draws
    Tensor logits = o.keep_logits ? codes_ws.take("logits", {B, n, 2 * D}) : Tensor();
    Tensor bits;
    if (!forced.empty()) {
      bits = forced_dev.slice0(first, first + count).view({B, n, D});
      if (o.keep_logits) be.sample_bits(raw, sampling, nullptr, nullptr, &logits);
    } else {
      bits = bits_ws.take("bits", {B, n, D});
      const Tensor u = supplied ? uniforms_dev.slice0(first, first + count).view({B, n, D}) : Tensor();
      be.sample_bits(raw, sampling, supplied ? &u : nullptr, &bits, o.keep_logits ? &logits : nullptr);
    }
    if (o.keep_logits) result.logits.push_back(be.download(logits));
    if (o.keep_bits) result.bits.push_back(be.download(bits).to_dtype(DType::U8));

    // Running sum of codes; the next scale's input.
    const bool is_last = si == K - 1;
    const ScaleGrid lat = latent_grid(grid, c.spatial_patchify);
    Tensor codes = codes_ws.take("codes", {B, d, lat.h, lat.w});
    be.bits_to_codes(bits, patch, code.zero, code.one, codes);
    Tensor up = is_last ? codes : codes_ws.take("upsampled", {B, d, last.h, last.w});
    if (!is_last) be.resample(codes, ResampleMode::Bilinear, up);
    if (si == 0) be.copy(up, summed);
    else be.add(summed, up, summed);
    if (si + 1 < K_run) {
      const ScaleGrid next = sched.grid(si + 1), next_lat = latent_grid(next, c.spatial_patchify);
      const int64_t nn = next.tokens();
      Tensor resampled = codes_ws.take("next", {B, d, next_lat.h, next_lat.w});
      be.resample(summed, ResampleMode::Bilinear, resampled);
      Tensor tokens32 = codes_ws.take("tokens", {B, nn, D});
      latent_to_tokens(be, resampled, c.spatial_patchify, tokens32);
      if (o.keep_inputs) result.inputs.push_back(be.download(tokens32));
      Tensor tokens = ws.take("tokens", {B, nn, D});
      be.copy(tokens32, tokens);
      Tensor embedded = ws.take("embedded", {B, nn, C});
      be.linear(tokens, w.word_embed_w, &w.word_embed_b, Activation::None, embedded);
      x = ws.take("x", {bs, nn, C});
      for (int64_t r = 0; r < bs / B; ++r) {
        Tensor half = x.slice0(r * B, (r + 1) * B);
        be.copy(embedded, half);
      }
    }
    if (o.sync_each_scale) {
      be.synchronize();
      result.scale_ms.push_back(ms_since(t0));
      if (o.on_scale) o.on_scale(ScaleReport{si, K_run, grid, result.scale_ms.back()});
    } else {
      marks.push_back(be.record_event());
    }
  }
  result.summed_codes = be.download(summed).view({B, d, 1, last.h, last.w});
  if (!o.sync_each_scale) {
    be.synchronize();
    for (int si = 0; si < K_run; ++si) {
      result.scale_ms.push_back(marks[static_cast<size_t>(si) + 1]->ms_since(*marks[static_cast<size_t>(si)]));
      if (o.on_scale) o.on_scale(ScaleReport{si, K_run, sched.grid(si), result.scale_ms.back()});
    }
  }
  return result;
}

}  // namespace sparvar::infinity
