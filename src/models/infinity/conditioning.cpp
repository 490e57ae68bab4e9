#include "models/infinity/conditioning.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>

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

namespace {

// Scratch views start on 128-element boundaries (256 bytes or more), as separate allocations would, so GEMMs
// and attention see the same pointer alignment.
constexpr int64_t kScratchAlign = 128;

// The intermediates of one encoding, carved one after another from a flat scratch (or only counted).
struct TextScratch {
  Tensor text, kvp, kvp_t, pooled, cond, a, kv_text, kv, sc, shared, head_mod;
  int64_t numel = 0;

  TextScratch(const InfinityConfig& c, int64_t bs, int64_t Lt, const Tensor* flat) {
    const int64_t C = c.embed_dim, D = c.embed_dim, Hp = c.pool_heads, hdp = D / Hp;
    auto take = [&](const Shape& shape) {
      const int64_t n = shape_numel(shape);
      Tensor t;
      if (flat) t = flat->slice0(numel, numel + n).view(shape);
      numel += (n + kScratchAlign - 1) / kScratchAlign * kScratchAlign;
      return t;
    };
    if (flat) {
      const int64_t need = TextScratch(c, bs, Lt, nullptr).numel;
      SPARVAR_CHECK(flat->numel() >= need, "internal: text scratch has {} elements, encoding needs {}",
                    flat->numel(), need);
    }
    text = take({bs, Lt, c.text_channels});
    kvp = take({bs, Lt, 2 * D});
    kvp_t = take({2, bs, Hp, Lt, hdp});
    pooled = take({bs, Hp, 1, hdp});
    cond = take({bs, D});
    a = take({bs, Lt, D});
    kv_text = take({bs, Lt, D});
    kv = take({bs, Lt, 2 * C});
    sc = take({bs, D});
    shared = take({bs, 6 * C});
    head_mod = take({bs, 2 * C});
  }
};

}  // namespace

TextBuffers::TextBuffers(Backend& be, const InfinityWeights& w, int64_t rows_, int64_t text_len_)
    : rows(rows_), text_len(text_len_), config(&w.config) {
  const InfinityConfig& c = w.config;
  const DType dt = w.dtype;
  SPARVAR_CHECK(rows >= 1 && text_len >= 1, "text buffers for {} rows of {} tokens", rows, text_len);
  const int64_t C = c.embed_dim, H = c.num_heads, hd = c.head_dim(), Hp = c.pool_heads, hdp = c.embed_dim / Hp;
  const int64_t depth = c.depth, Lt = text_len;
  std::vector<float> q;
  for (int64_t b = 0; b < rows; ++b) q.insert(q.end(), w.pool_q.begin(), w.pool_q.end());
  pool_q = be.upload(Tensor::from_floats({rows, Hp, 1, hdp}, q), dt);
  std::vector<float> offsets;
  for (const BlockWeights& bw : w.blocks) offsets.insert(offsets.end(), bw.ada_gss.begin(), bw.ada_gss.end());
  gss = be.upload(Tensor::from_floats({depth, 6 * C}, offsets), DType::F32);
  pos_start = be.upload(Tensor::from_floats({C}, w.pos_start), DType::F32);
  ca_kv = be.empty({depth, 2, rows, H, Lt, hd}, dt);
  block_mod = be.empty({depth, 6, rows, C}, dt);
  head_mod = be.empty({2, rows, C}, dt);
  shared32 = be.empty({rows, 6 * C}, DType::F32);
  mod32 = be.empty({rows, 6 * C}, DType::F32);
  mod32_t = be.empty({6, rows, C}, DType::F32);
  start32 = be.empty({rows, C}, DType::F32);

  cond.batch = rows;
  cond.text_len = Lt;
  cond.start = be.empty({rows, 1, C}, dt);
  for (int64_t l = 0; l < depth; ++l) {
    cond.ca_kv.push_back(ca_kv.slice0(l, l + 1).view({2, rows, H, Lt, hd}));
    cond.block_mod.push_back(block_mod.slice0(l, l + 1).view({6, rows, C}));
  }
  cond.head_scale = head_mod.slice0(0, 1).view({rows, C});
  cond.head_shift = head_mod.slice0(1, 2).view({rows, C});
  if (const int64_t Lp = fold_cross_attention_keys(be, c, dt, Lt); Lp > 0) {
    const int64_t HL = H * Lp;
    ca_kf = be.empty({depth, rows, HL, C}, dt);
    ca_kb = be.empty({depth, rows, HL}, DType::F32);
    ca_vf = be.empty({depth, rows, C, HL}, dt);
    for (int64_t l = 0; l < depth; ++l) {
      FoldedText f;
      f.kf = ca_kf.slice0(l, l + 1).view({rows, HL, C});
      f.kb = ca_kb.slice0(l, l + 1).view({rows, HL});
      f.vf = ca_vf.slice0(l, l + 1).view({rows, C, HL});
      f.heads = H;
      f.keys = Lp;
      cond.folded.push_back(f);
    }
  }
}

int64_t fold_cross_attention_keys(const Backend& be, const InfinityConfig& c, DType dtype, int64_t text_len) {
  const char* env = std::getenv("SPARVAR_FOLD_XATTN");
  if (env && std::string_view(env) == "0") return 0;
  const int64_t Lp = (text_len + 7) / 8 * 8;
  return be.device() == Device::CUDA && dtype == DType::BF16 && Lp <= c.head_dim() / 2 ? Lp : 0;
}

int64_t TextBuffers::scratch_numel() const { return TextScratch(*config, rows, text_len, nullptr).numel; }

size_t TextBuffers::bytes() const {
  size_t total = cond.start.nbytes();
  for (const Tensor* t : {&pool_q, &gss, &pos_start, &ca_kv, &block_mod, &head_mod, &shared32, &mod32,
                          &mod32_t, &start32, &ca_kf, &ca_kb, &ca_vf})
    if (t->defined()) total += t->nbytes();
  return total;
}

void encode_text_into(Backend& be, const InfinityWeights& w, const Tensor& text, const std::vector<int32_t>& lengths,
                      const Tensor& scratch, TextBuffers& buf) {
  const InfinityConfig& c = w.config;
  const int64_t bs = buf.rows, Lt = buf.text_len, C = c.embed_dim, D = c.embed_dim, H = c.num_heads;
  const int64_t hd = c.head_dim(), Hp = c.pool_heads, hdp = D / Hp;
  SPARVAR_CHECK(text.device() == Device::CPU && text.shape() == Shape({bs, Lt, c.text_channels}),
                "text features {} must be a host array [{}, {}, {}] (the buffers' rows and tokens)", text.describe(),
                bs, Lt, c.text_channels);
  SPARVAR_CHECK(static_cast<int64_t>(lengths.size()) == bs, "{} text lengths for {} text rows", lengths.size(), bs);
  SPARVAR_CHECK(scratch.defined() && scratch.device() == be.device() && scratch.dtype() == w.dtype,
                "internal: text scratch {} must be {} on the backend", scratch.describe(), dtype_name(w.dtype));
  TextScratch s(c, bs, Lt, &scratch);
  Conditioning& out = buf.cond;
  out.lengths = lengths;

  Tensor& t = s.text;
  be.write(text, t);
  be.rms_norm(t, &w.text_norm_w, c.norm_eps, t);

  // Attentive pool: one learned query per head over the normalised text.
  be.linear(t, w.pool_kv_w, &w.pool_kv_b, Activation::None, s.kvp);
  be.permute(s.kvp.view({bs, Lt, 2, Hp, hdp}), {2, 0, 3, 1, 4}, s.kvp_t);
  AttentionParams params;
  params.softmax_scale = 1.0f / std::sqrt(static_cast<float>(hdp));
  params.kv_lengths = lengths;
  be.attention(buf.pool_q, s.kvp_t.slice0(0, 1).view({bs, Hp, Lt, hdp}),
               s.kvp_t.slice0(1, 2).view({bs, Hp, Lt, hdp}), params, s.pooled);
  // [bs, Hp, 1, hdp] has the layout of [bs, 1, Hp * hdp]
  be.linear(s.pooled.view({bs, D}), w.pool_proj_w, &w.pool_proj_b, Activation::None, s.cond);

  // Text for cross-attention, then each layer's keys/values of it (constant over scales).
  be.linear(t, w.text_ca0_w, &w.text_ca0_b, Activation::GeluTanh, s.a);
  be.linear(s.a, w.text_ca2_w, &w.text_ca2_b, Activation::None, s.kv_text);
  for (int l = 0; l < c.depth; ++l) {
    const BlockWeights& bw = w.blocks[static_cast<size_t>(l)];
    be.linear(s.kv_text, bw.ca_kv_w, &bw.ca_kv_b, Activation::None, s.kv);
    be.permute(s.kv.view({bs, Lt, 2, H, hd}), {2, 0, 3, 1, 4}, out.ca_kv[static_cast<size_t>(l)]);
    if (!out.folded.empty())
      be.fold_cross_attention(out.ca_keys(l), out.ca_values(l), lengths, bw.ca_q_w, bw.ca_q_b, bw.ca_proj_w,
                              out.folded[static_cast<size_t>(l)]);
  }

  // AdaLN: shared linear of SiLU(cond), plus each block's own offsets (summed in fp32, rounded once); the
  // head's own linear, split into scale and shift.
  be.activation(s.cond, Activation::Silu, s.sc);
  be.linear(s.sc, w.shared_ada_w, &w.shared_ada_b, Activation::None, s.shared);
  be.copy(s.shared, buf.shared32);
  for (int l = 0; l < c.depth; ++l) {
    be.add(buf.shared32, buf.gss.slice0(l, l + 1).view({6 * C}), buf.mod32);
    be.permute(buf.mod32.view({bs, 6, C}), {1, 0, 2}, buf.mod32_t);
    be.copy(buf.mod32_t, out.block_mod[static_cast<size_t>(l)]);
  }
  be.linear(s.sc, w.head_nm_w, &w.head_nm_b, Activation::None, s.head_mod);
  be.permute(s.head_mod.view({bs, 2, C}), {1, 0, 2}, buf.head_mod);

  // Start token: pooled text + pos_start (the level embedding is added by the scale loop).
  be.copy(s.cond, buf.start32);
  be.add(buf.start32, buf.pos_start, buf.start32);
  be.copy(buf.start32, out.start);
}

Conditioning encode_text(Backend& be, const InfinityWeights& w, const Tensor& text, const std::vector<int32_t>& lengths) {
  SPARVAR_CHECK(text.ndim() == 3 && text.dim(2) == w.config.text_channels,
                "text features {} must be [batch, tokens, {}]", shape_string(text.shape()), w.config.text_channels);
  TextBuffers buffers(be, w, text.dim(0), text.dim(1));
  const Tensor scratch = be.empty({buffers.scratch_numel()}, w.dtype);
  encode_text_into(be, w, text, lengths, scratch, buffers);
  be.synchronize();  // the scratch is freed on return
  return buffers.cond;
}

}  // namespace sparvar::infinity
