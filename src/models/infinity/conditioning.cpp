#include "models/infinity/conditioning.h"

#include <cmath>
#include <cstring>

#include "core/error.h"

namespace sparvar::infinity {

Tensor Conditioning::ca_keys(int layer) const {
  const Tensor& t = ca_kv.at(static_cast<size_t>(layer));
  return t.slice0(0, 1).view({t.dim(1), t.dim(2), t.dim(3), t.dim(4)});
}
Tensor Conditioning::ca_values(int layer) const {
  const Tensor& t = ca_kv.at(static_cast<size_t>(layer));
  return t.slice0(1, 2).view({t.dim(1), t.dim(2), t.dim(3), t.dim(4)});
}
Tensor Conditioning::mod(int layer, int which) const {
  const Tensor& t = block_mod.at(static_cast<size_t>(layer));
  return t.slice0(which, which + 1).view({t.dim(1), t.dim(2)});
}
Tensor Conditioning::mod_row(int layer, int which, int64_t row) const {
  const Tensor m = mod(layer, which);
  return m.slice0(row, row + 1).view({m.dim(1)});
}

Tensor unconditional_text(const InfinityWeights& w, int64_t rows, int64_t text_len, const std::vector<int32_t>& lengths) {
  const int64_t Ct5 = w.config.text_channels;
  SPARVAR_CHECK(text_len <= w.config.text_maxlen, "text has {} tokens; the model's unconditional text has only {}",
                text_len, w.config.text_maxlen);
  Tensor out = Tensor::zeros({rows, text_len, Ct5}, DType::F32);
  float* p = out.data_as<float>();
  for (int64_t b = 0; b < rows; ++b)
    std::memcpy(p + b * text_len * Ct5, w.cfg_uncond.data(),
                sizeof(float) * static_cast<size_t>(lengths.at(static_cast<size_t>(b)) * Ct5));
  return out;
}

Conditioning encode_text(Backend& be, const InfinityWeights& w, const Tensor& text, const std::vector<int32_t>& lengths) {
  const InfinityConfig& c = w.config;
  const DType dt = w.dtype;
  SPARVAR_CHECK(text.ndim() == 3 && text.dim(2) == c.text_channels,
                "text features {} must be [batch, tokens, {}]", shape_string(text.shape()), c.text_channels);
  const int64_t bs = text.dim(0), Lt = text.dim(1), C = c.embed_dim, D = c.embed_dim, H = c.num_heads;
  const int64_t hd = c.head_dim(), Hp = c.pool_heads, hdp = D / Hp;
  Conditioning out;
  out.batch = bs;
  out.text_len = Lt;
  out.lengths = lengths;

  Tensor t = be.upload(text, dt);
  be.rms_norm(t, &w.text_norm_w, c.norm_eps, t);

  // Attentive pool: one learned query per head over the normalised text.
  Tensor kvp = be.empty({bs, Lt, 2 * D}, dt);
  be.linear(t, w.pool_kv_w, &w.pool_kv_b, Activation::None, kvp);
  Tensor kvp_t = be.empty({2, bs, Hp, Lt, hdp}, dt);
  be.permute(kvp.view({bs, Lt, 2, Hp, hdp}), {2, 0, 3, 1, 4}, kvp_t);
  std::vector<float> q_host;
  for (int64_t b = 0; b < bs; ++b) q_host.insert(q_host.end(), w.pool_q.begin(), w.pool_q.end());
  Tensor q = be.upload(Tensor::from_floats({bs, Hp, 1, hdp}, q_host), dt);
  Tensor pooled = be.empty({bs, Hp, 1, hdp}, dt);
  AttentionParams params;
  params.softmax_scale = 1.0f / std::sqrt(static_cast<float>(hdp));
  params.kv_lengths = lengths;
  be.attention(q, kvp_t.slice0(0, 1).view({bs, Hp, Lt, hdp}), kvp_t.slice0(1, 2).view({bs, Hp, Lt, hdp}), params,
               pooled);
  Tensor cond = be.empty({bs, D}, dt);  // [bs, Hp, 1, hdp] has the layout of [bs, 1, Hp * hdp]
  be.linear(pooled.view({bs, D}), w.pool_proj_w, &w.pool_proj_b, Activation::None, cond);

  // Text for cross-attention, then each layer's keys/values of it (constant over scales).
  Tensor a = be.empty({bs, Lt, D}, dt);
  be.linear(t, w.text_ca0_w, &w.text_ca0_b, Activation::GeluTanh, a);
  Tensor kv_text = be.empty({bs, Lt, D}, dt);
  be.linear(a, w.text_ca2_w, &w.text_ca2_b, Activation::None, kv_text);
  Tensor kv = be.empty({bs, Lt, 2 * C}, dt);
  for (int l = 0; l < c.depth; ++l) {
    be.linear(kv_text, w.blocks[static_cast<size_t>(l)].ca_kv_w, &w.blocks[static_cast<size_t>(l)].ca_kv_b,
              Activation::None, kv);
    Tensor kv_t = be.empty({2, bs, H, Lt, hd}, dt);
    be.permute(kv.view({bs, Lt, 2, H, hd}), {2, 0, 3, 1, 4}, kv_t);
    out.ca_kv.push_back(kv_t);
  }

  // AdaLN: shared linear of SiLU(cond), plus each block's own offsets; the head's own linear.
  Tensor sc = be.empty({bs, D}, dt);
  be.activation(cond, Activation::Silu, sc);
  Tensor shared = be.empty({bs, 6 * C}, dt);
  be.linear(sc, w.shared_ada_w, &w.shared_ada_b, Activation::None, shared);
  const std::vector<float> shared_h = be.download(shared).to_floats();
  std::vector<float> mod(static_cast<size_t>(6 * bs * C));
  for (int l = 0; l < c.depth; ++l) {
    const std::vector<float>& gss = w.blocks[static_cast<size_t>(l)].ada_gss;
    for (int64_t j = 0; j < 6; ++j)
      for (int64_t b = 0; b < bs; ++b)
        for (int64_t i = 0; i < C; ++i)
          mod[static_cast<size_t>((j * bs + b) * C + i)] =
              gss[static_cast<size_t>(j * C + i)] + shared_h[static_cast<size_t>(b * 6 * C + j * C + i)];
    out.block_mod.push_back(be.upload(Tensor::from_floats({6, bs, C}, mod), dt));
  }
  Tensor head_mod = be.empty({bs, 2 * C}, dt);
  be.linear(sc, w.head_nm_w, &w.head_nm_b, Activation::None, head_mod);
  const std::vector<float> hm = be.download(head_mod).to_floats();
  std::vector<float> scale, shift;
  for (int64_t b = 0; b < bs; ++b) {
    scale.insert(scale.end(), hm.begin() + b * 2 * C, hm.begin() + b * 2 * C + C);
    shift.insert(shift.end(), hm.begin() + b * 2 * C + C, hm.begin() + (b + 1) * 2 * C);
  }
  out.head_scale = be.upload(Tensor::from_floats({bs, C}, scale), dt);
  out.head_shift = be.upload(Tensor::from_floats({bs, C}, shift), dt);

  // Start token: pooled text + pos_start (the level embedding is added by the scale loop).
  std::vector<float> start = be.download(cond).to_floats();
  for (int64_t b = 0; b < bs; ++b)
    for (int64_t i = 0; i < C; ++i) start[static_cast<size_t>(b * C + i)] += w.pos_start[static_cast<size_t>(i)];
  out.start = be.upload(Tensor::from_floats({bs, 1, C}, start), dt);
  return out;
}

}  // namespace sparvar::infinity
