#include "models/infinity/block.h"

#include <algorithm>
#include <cmath>

namespace sparvar::infinity {
namespace {

constexpr float kL2Eps = 1e-12f;  // F.normalize's default

enum Mod { G1 = 0, G2 = 1, S1 = 2, S2 = 3, B1 = 4, B2 = 5 };

// The cross-attention as attention: q projection, attention to the text's keys / values, projection into x.
void cross_attention(Backend& be, const BlockWeights& bw, const Conditioning& cond, int layer, Workspace& ws,
                     const Tensor& h, Tensor& x, Tensor& attn, Tensor& tmp) {
  const int64_t B = h.dim(0), n = h.dim(1), C = h.dim(2), H = attn.dim(2), hd = attn.dim(3);
  Tensor caq = ws.take("caq", {B, n, C});
  be.linear(h, bw.ca_q_w, &bw.ca_q_b, Activation::None, caq);
  AttentionParams params;
  params.softmax_scale = 1.0f / std::sqrt(static_cast<float>(hd));
  params.kv_lengths = cond.lengths;
  params.q_tokens_major = params.out_tokens_major = true;
  be.attention(caq.view({B, n, H, hd}), cond.ca_keys(layer), cond.ca_values(layer), params, attn);
  be.linear_residual(attn.view({B, n, C}), bw.ca_proj_w, &bw.ca_proj_b, nullptr, x, tmp);
}

// A float32 view of the start of a workspace buffer (the workspace holds the model's dtype; the folded
// cross-attention's scores are fp32).
Tensor f32_view(const Tensor& buffer, const Shape& shape) {
  SPARVAR_CHECK(static_cast<size_t>(shape_numel(shape)) * sizeof(float) <= buffer.nbytes(),
                "internal: {} f32 elements do not fit in a workspace buffer of {} bytes", shape_numel(shape),
                buffer.nbytes());
  const auto offset = static_cast<size_t>(static_cast<char*>(buffer.data()) -
                                          static_cast<char*>(buffer.storage()->data));
  return Tensor(buffer.storage(), offset, shape, DType::F32);
}

}  // namespace

void reserve_block_workspace(Workspace& ws, const InfinityConfig& c, int64_t batch, int64_t max_tokens,
                             int64_t max_q_rows) {
  const int64_t bn = batch * max_tokens, C = c.embed_dim;
  for (const char* name : {"x", "h", "tmp", "attn", "caq"}) ws.reserve(name, bn * C);
  ws.reserve("q", batch * std::max(max_tokens, max_q_rows) * C);
  ws.reserve("qkv", bn * 3 * C);
  ws.reserve("ffn", bn * c.ffn_hidden);
  ws.reserve("logits", bn * 2 * c.d_vae());
}

LayerNormSpec block_input_norm(const Conditioning& cond, int layer) {
  return LayerNormSpec::modulate(cond.mod(layer, S1), cond.mod(layer, B1));
}

LayerNormSpec head_input_norm(const Conditioning& cond) {
  return LayerNormSpec::modulate(cond.head_scale, cond.head_shift);
}

void run_block(Backend& be, const InfinityWeights& w, int layer, const Conditioning& cond, const ScaleStep& step,
               KvCache& cache, AttentionRunner& runner, Workspace& ws, Tensor& x, InputNorm in,
               const LayerNormSpec& next) {
  const InfinityConfig& c = w.config;
  const BlockWeights& bw = w.blocks[static_cast<size_t>(layer)];
  const int64_t B = x.dim(0), n = x.dim(1), C = c.embed_dim, H = c.num_heads, hd = c.head_dim();
  const float eps = c.norm_eps;
  Tensor h = ws.take("h", {B, n, C});
  Tensor tmp = ws.take("tmp", {B, n, C});
  // Attention outputs are token-major [B, n, H, hd]: the output projections read them as [B, n, C].
  Tensor attn = ws.take("attn", {B, n, H, hd});

  // ---- self-attention: q/k normalised and rotated, k and v straight into the cache ----
  if (in == InputNorm::Compute) be.layer_norm_modulate(x, cond.mod(layer, S1), cond.mod(layer, B1), eps, h);
  Tensor qkv = ws.take("qkv", {B, n, 3 * C});
  be.linear(h, bw.qkv_w, &bw.qkv_b, Activation::None, qkv);
  // In the runner's cache order (padded tile order on CUDA) when it keeps one: its kernel then reads q, k, v in place.
  const ScaleRows* rows = step.rows;
  Tensor q = ws.take("q", {B, H, rows ? rows->q_rows : n, hd});
  const QkvRowMap map{rows && rows->q_src.defined() ? &rows->q_src : nullptr, rows ? &rows->kv_src : nullptr};
  be.qkv_to_attention(qkv, &bw.q_head_scale, step.rope_cos, step.rope_sin, kL2Eps, rows ? rows->first_row : step.offset,
                      q, cache.mutable_keys(layer), cache.mutable_values(layer), rows ? &map : nullptr);
  SelfAttentionCall call{layer, step.scale, step.schedule, step.offset + n, rows != nullptr};
  runner.self_attention(be, q, cache.keys(layer), cache.values(layer), call, attn);
  // The gated residual (a per-(batch, column) gate no GEMM epilogue applies) and ca_norm in one pass.
  be.linear(attn.view({B, n, C}), bw.sa_proj_w, &bw.sa_proj_b, Activation::None, tmp);
  be.gated_residual_norm(x, cond.mod(layer, G1), tmp, LayerNormSpec::affine(&bw.ca_norm_w, &bw.ca_norm_b), eps, h);

  // ---- cross-attention to the text ----
  if (!cond.folded.empty()) {  // a short text, folded into the projections (Backend::fold_cross_attention)
    const FoldedText& folded = cond.folded[static_cast<size_t>(layer)];
    const Shape s_shape{B, n, folded.heads * folded.keys};
    Tensor scores = f32_view(ws.take("ffn", {B, n, c.ffn_hidden}), s_shape);
    Tensor probs = ws.take("caq", s_shape);
    be.folded_cross_attention(h, folded, 1.0f / std::sqrt(static_cast<float>(hd)), &bw.ca_proj_b, x, scores, probs,
                              tmp);
  } else {
    cross_attention(be, bw, cond, layer, ws, h, x, attn, tmp);
  }

  // ---- FFN ----
  be.layer_norm_modulate(x, cond.mod(layer, S2), cond.mod(layer, B2), eps, h);
  Tensor f = ws.take("ffn", {B, n, c.ffn_hidden});
  be.linear(h, bw.fc1_w, &bw.fc1_b, Activation::GeluTanh, f);
  be.linear(f, bw.fc2_w, &bw.fc2_b, Activation::None, tmp);
  be.gated_residual_norm(x, cond.mod(layer, G2), tmp, next, eps, h);  // h: the next block's (or the head's) input
}

Tensor run_head(Backend& be, const InfinityWeights& w, const Conditioning& cond, Workspace& ws, const Tensor& x,
                InputNorm in) {
  const int64_t B = x.dim(0), n = x.dim(1), C = w.config.embed_dim;
  Tensor h = ws.take("h", {B, n, C});
  if (in == InputNorm::Compute) be.layer_norm_modulate(x, cond.head_scale, cond.head_shift, w.config.norm_eps, h);
  Tensor logits = ws.take("logits", {B, n, 2 * static_cast<int64_t>(w.config.d_vae())});
  be.linear(h, w.head_w, &w.head_b, Activation::None, logits);
  return logits;
}

}  // namespace sparvar::infinity
