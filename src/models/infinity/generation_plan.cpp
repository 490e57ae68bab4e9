#include "models/infinity/generation_plan.h"

#include <algorithm>

#include "models/infinity/block.h"
#include "models/infinity/codes.h"
#include "models/infinity/rope_tables.h"

namespace sparvar::infinity {
namespace {

// The text is encoded before the scale loop starts, so its intermediates borrow the loop's largest activation
// buffer instead of adding their own memory.
constexpr const char* kTextScratch = "ffn";

}  // namespace

GenerationPlan::GenerationPlan(Backend& be, const InfinityWeights& w, const ScaleSchedule& sched, PlanKey key_in,
                               const CacheOrder* order_in)
    : key(std::move(key_in)),
      schedule(sched),
      batch(key.batch),
      rows(key.cfg ? 2 * key.batch : key.batch),
      bits_per_run(key.batch * sched.total_tokens() * w.config.d_vae()),
      max_n(0),
      order(order_in ? std::optional<CacheOrder>(*order_in) : std::nullopt),
      cache(be, w.config.depth, rows, w.config.num_heads, order ? order->capacity : sched.total_tokens(),
            w.config.head_dim(), w.dtype),
      ws(be, w.dtype),
      codes(be, DType::F32),
      bits(be, DType::U8),
      graphs(sched.num_scales()) {
  const InfinityConfig& c = w.config;
  const int64_t D = c.d_vae(), C = c.embed_dim, d = c.vae_codebook_dim;
  int64_t max_latent = 0;
  for (const auto& g : sched.grids()) {
    max_n = std::max(max_n, g.tokens());
    max_latent = std::max(max_latent, latent_grid(g, c.spatial_patchify).tokens());
  }
  reserve_block_workspace(ws, c, rows, max_n, order ? order->max_q_rows : 0);
  ws.reserve("tokens", batch * max_n * D);
  ws.reserve("embedded", batch * max_n * C);
  const ScaleGrid last = latent_grid(sched.grids().back(), c.spatial_patchify);
  for (const char* name : {"summed", "upsampled", "next"}) codes.reserve(name, batch * d * last.tokens());
  codes.reserve("codes", batch * d * max_latent);
  codes.reserve("tokens", batch * max_n * D);
  bits.reserve("bits", batch * max_n * D);
  const RopeTables host = build_rope_tables(sched, c.head_dim());
  rope_cos = be.upload(host.cos, DType::F32);
  rope_sin = be.upload(host.sin, DType::F32);
  seed = be.empty({8}, DType::U8);
}

TextBuffers& GenerationPlan::text_for(Backend& be, const InfinityWeights& w, int64_t text_len) {
  if (text && text->text_len == text_len) return *text;
  graphs.clear();
  text.reset();
  text = std::make_unique<TextBuffers>(be, w, rows, text_len);
  ws.reserve(kTextScratch, text->scratch_numel());
  return *text;
}

Tensor GenerationPlan::text_scratch() const {
  return ws.take(kTextScratch, {text->scratch_numel()});
}

void GenerationPlan::reserve_kept_logits(const InfinityConfig& c) {
  codes.reserve("logits", batch * max_n * 2 * c.d_vae());
}

Tensor& GenerationPlan::uniforms_buffer(Backend& be) {
  if (!uniforms.defined()) uniforms = be.empty({bits_per_run}, DType::F32);
  return uniforms;
}

Tensor& GenerationPlan::forced_buffer(Backend& be) {
  if (!forced.defined()) forced = be.empty({bits_per_run}, DType::U8);
  return forced;
}

}  // namespace sparvar::infinity
