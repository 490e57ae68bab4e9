#include "models/infinity/scale_work.h"

#include "models/infinity/block.h"
#include "models/infinity/codes.h"

namespace sparvar::infinity {
namespace {

// Scale k's slice of a scale-major [batch * tokens * d_vae] buffer (supplied uniforms, forced bits).
Tensor scale_slice(const Tensor& all, const GenerationPlan& p, const InfinityConfig& c, int scale) {
  const int64_t B = p.batch, D = c.d_vae(), n = p.schedule.tokens(scale), first = B * p.schedule.offset(scale) * D;
  return all.slice0(first, first + B * n * D).view({B, n, D});
}

}  // namespace

Tensor scale_bits(const GenerationPlan& p, const InfinityConfig& c, int scale) {
  if (p.settings.forced_bits) return scale_slice(p.forced, p, c, scale);
  return p.bits.take("bits", {p.batch, p.schedule.tokens(scale), c.d_vae()});
}

Tensor scale_logits(const GenerationPlan& p, const InfinityConfig& c, int scale) {
  return p.codes.take("logits", {p.batch, p.schedule.tokens(scale), 2 * static_cast<int64_t>(c.d_vae())});
}

Tensor next_input(const GenerationPlan& p, const InfinityConfig& c, int scale) {
  return p.codes.take("tokens", {p.batch, p.schedule.tokens(scale + 1), c.d_vae()});
}

void run_scale(Backend& be, const InfinityWeights& w, GenerationPlan& p, AttentionRunner& runner, int si,
               bool prepares_next) {
  const InfinityConfig& c = w.config;
  const ScaleSchedule& sched = p.schedule;
  const Conditioning& cond = p.text->cond;
  const ScaleSettings& s = p.settings;
  const int64_t B = p.batch, bs = p.rows, C = c.embed_dim, d = c.vae_codebook_dim;
  const int K = sched.num_scales();
  const ScaleGrid grid = sched.grid(si);
  const int64_t n = grid.tokens(), off = sched.offset(si);

  // Transformer: x holds this scale's input rows (the start token at scale 0).
  ScaleStep step{si, &sched, n, off, p.rope_cos.slice0(off, off + n), p.rope_sin.slice0(off, off + n),
                 p.order ? &p.order->scales[static_cast<size_t>(si)] : nullptr};
  Tensor x = p.ws.take("x", {bs, n, C});
  be.add(x, w.lvl_embed.slice0(si, si + 1).view({C}), x);
  // Each block's last residual normalises x for the next block, the last one's for the head (see block.h).
  for (int l = 0; l < c.depth; ++l) {
    const LayerNormSpec next = l + 1 < c.depth ? block_input_norm(cond, l + 1) : head_input_norm(cond);
    run_block(be, w, l, cond, step, p.cache, runner, p.ws, x, l == 0 ? InputNorm::Compute : InputNorm::Ready, next);
  }

  // Head, tau, CFG and sampling (forced bits: the logits only, when they are kept).
  const Tensor raw = run_head(be, w, cond, p.ws, x, InputNorm::Ready);
  BitSampling sampling = s.sampling;
  sampling.stream = static_cast<uint64_t>(si);  // PhiloxStream(seed, scale), as UniformSource draws
  sampling.seed_tensor = &p.seed;
  Tensor logits = s.keep_logits ? scale_logits(p, c, si) : Tensor();
  Tensor bits = scale_bits(p, c, si);
  if (s.forced_bits) {
    if (s.keep_logits) be.sample_bits(raw, sampling, nullptr, nullptr, &logits);
  } else {
    const Tensor u = s.supplied_uniforms ? scale_slice(p.uniforms, p, c, si) : Tensor();
    be.sample_bits(raw, sampling, s.supplied_uniforms ? &u : nullptr, &bits, s.keep_logits ? &logits : nullptr);
  }

  // Running sum of codes (every scale but the last of the schedule upsampled to the last grid).
  const bool is_last = si == K - 1;
  const ScaleGrid lat = latent_grid(grid, c.spatial_patchify);
  const ScaleGrid last = latent_grid(sched.grids().back(), c.spatial_patchify);
  Tensor summed = p.codes.take("summed", {B, d, last.h, last.w});
  Tensor codes = p.codes.take("codes", {B, d, lat.h, lat.w});
  const CodeValues code = code_values(c);
  be.bits_to_codes(bits, c.spatial_patchify ? 2 : 1, code.zero, code.one, codes);
  Tensor up = is_last ? codes : p.codes.take("upsampled", {B, d, last.h, last.w});
  if (!is_last) be.resample(codes, ResampleMode::Bilinear, up);
  if (si == 0) be.copy(up, summed);
  else be.add(summed, up, summed);
  if (!prepares_next) return;

  // The next scale's input: the running sum on its grid, embedded, in every row (cond and uncond alike).
  const ScaleGrid next = sched.grid(si + 1), next_lat = latent_grid(next, c.spatial_patchify);
  const int64_t nn = next.tokens();
  Tensor resampled = p.codes.take("next", {B, d, next_lat.h, next_lat.w});
  be.resample(summed, ResampleMode::Bilinear, resampled);
  Tensor tokens32 = next_input(p, c, si);
  latent_to_tokens(be, resampled, c.spatial_patchify, tokens32);
  Tensor tokens = p.ws.take("tokens", {B, nn, c.d_vae()});
  be.copy(tokens32, tokens);
  Tensor embedded = p.ws.take("embedded", {B, nn, C});
  be.linear(tokens, w.word_embed_w, &w.word_embed_b, Activation::None, embedded);
  Tensor x_next = p.ws.take("x", {bs, nn, C});
  for (int64_t r = 0; r < bs / B; ++r) {
    Tensor half = x_next.slice0(r * B, (r + 1) * B);
    be.copy(embedded, half);
  }
}

}  // namespace sparvar::infinity
