#include "models/infinity/block.h"

#include <cmath>

namespace sparvar::infinity {
namespace {

constexpr float kL2Eps = 1e-12f;  // F.normalize's default

// [B, H, n, hd] -> [B, n, C] through the workspace buffer `name`.
Tensor merge_heads(Backend& be, Workspace& ws, const Tensor& o, const char* name) {
  const int64_t B = o.dim(0), H = o.dim(1), n = o.dim(2), hd = o.dim(3);
  Tensor t = ws.take(name, {B, n, H, hd});
  be.permute(o, {0, 2, 1, 3}, t);
  return t.view({B, n, H * hd});
}

enum Mod { G1 = 0, G2 = 1, S1 = 2, S2 = 3, B1 = 4, B2 = 5 };

}  // namespace

void reserve_block_workspace(Workspace& ws, const InfinityConfig& c, int64_t batch, int64_t max_tokens) {
  const int64_t bn = batch * max_tokens, C = c.embed_dim;
  for (const char* name : {"x", "h", "tmp", "q", "attn", "attn_t", "caq", "caq_t"}) ws.reserve(name, bn * C);
  ws.reserve("qkv", bn * 3 * C);
  ws.reserve("ffn", bn * c.ffn_hidden);
  ws.reserve("logits", bn * 2 * c.d_vae());
}

void run_block(Backend& be, const InfinityWeights& w, int layer, const Conditioning& cond, const ScaleStep& step,
               KvCache& cache, AttentionRunner& runner, Workspace& ws, Tensor& x) {
  const InfinityConfig& c = w.config;
  const BlockWeights& bw = w.blocks[static_cast<size_t>(layer)];
  const int64_t B = x.dim(0), n = x.dim(1), C = c.embed_dim, H = c.num_heads, hd = c.head_dim();
  const float eps = c.norm_eps;
  Tensor h = ws.take("h", {B, n, C});
  Tensor tmp = ws.take("tmp", {B, n, C});
  Tensor attn = ws.take("attn", {B, H, n, hd});

  // ---- self-attention: q/k normalised and rotated, k and v straight into the cache ----
  be.layer_norm_modulate(x, cond.mod(layer, S1), cond.mod(layer, B1), eps, h);
  Tensor qkv = ws.take("qkv", {B, n, 3 * C});
  be.linear(h, bw.qkv_w, &bw.qkv_b, Activation::None, qkv);
  Tensor q = ws.take("q", {B, H, n, hd});
  be.qkv_to_attention(qkv, &bw.q_head_scale, step.rope_cos, step.rope_sin, kL2Eps, step.offset, q,
                      cache.mutable_keys(layer), cache.mutable_values(layer));
  SelfAttentionCall call{layer, step.scale, step.schedule, step.offset + n};
  runner.self_attention(be, q, cache.keys(layer), cache.values(layer), call, attn);
  be.linear(merge_heads(be, ws, attn, "attn_t"), bw.sa_proj_w, &bw.sa_proj_b, Activation::None, tmp);
  be.gated_residual(x, cond.mod(layer, G1), tmp);

  // ---- cross-attention to the text ----
  be.layer_norm(x, &bw.ca_norm_w, &bw.ca_norm_b, eps, h);
  Tensor caq = ws.take("caq", {B, n, C});
  be.linear(h, bw.ca_q_w, &bw.ca_q_b, Activation::None, caq);
  Tensor caq_t = ws.take("caq_t", {B, H, n, hd});
  be.permute(caq.view({B, n, H, hd}), {0, 2, 1, 3}, caq_t);
  AttentionParams params;
  params.softmax_scale = 1.0f / std::sqrt(static_cast<float>(hd));
  params.kv_lengths = cond.lengths;
  be.attention(caq_t, cond.ca_keys(layer), cond.ca_values(layer), params, attn);
  be.linear(merge_heads(be, ws, attn, "attn_t"), bw.ca_proj_w, &bw.ca_proj_b, Activation::None, tmp);
  be.add(x, tmp, x);

  // ---- FFN ----
  be.layer_norm_modulate(x, cond.mod(layer, S2), cond.mod(layer, B2), eps, h);
  Tensor f = ws.take("ffn", {B, n, c.ffn_hidden});
  be.linear(h, bw.fc1_w, &bw.fc1_b, Activation::GeluTanh, f);
  be.linear(f, bw.fc2_w, &bw.fc2_b, Activation::None, tmp);
  be.gated_residual(x, cond.mod(layer, G2), tmp);
}

Tensor run_head(Backend& be, const InfinityWeights& w, const Conditioning& cond, Workspace& ws, const Tensor& x) {
  const int64_t B = x.dim(0), n = x.dim(1), C = w.config.embed_dim;
  Tensor h = ws.take("h", {B, n, C});
  be.layer_norm_modulate(x, cond.head_scale, cond.head_shift, w.config.norm_eps, h);
  Tensor logits = ws.take("logits", {B, n, 2 * static_cast<int64_t>(w.config.d_vae())});
  be.linear(h, w.head_w, &w.head_b, Activation::None, logits);
  return logits;
}

}  // namespace sparvar::infinity
