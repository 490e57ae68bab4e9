#include "models/t5/encoder.h"

#include <cstring>

#include "io/checkpoint.h"
#include "models/t5/attention.h"
#include "models/t5/relative_position.h"

namespace sparvar::t5 {
namespace {

// Added to the logits of padded keys; exp() of it underflows to exactly 0 like transformers' finfo.min, and it
// stays finite in bf16 (finfo(f32).min rounds to -inf there).
constexpr float kMaskedLogit = -1e30f;

}  // namespace

T5Encoder T5Encoder::load(const std::filesystem::path& path, Backend& backend, DType dtype,
                          const std::string& preset) {
  const io::Checkpoint ckpt = io::open_checkpoint(path);
  T5Config cfg = infer_t5_config(ckpt);
  apply_config_json(path, cfg);
  if (!preset.empty()) {
    const T5Config want = t5_preset(preset);
    SPARVAR_CHECK(cfg == want, "T5 {}: preset '{}' is {{{}}} but the checkpoint says {{{}}}", path.string(), preset,
                  want.describe(), cfg.describe());
  }
  T5Weights w = load_t5_weights(ckpt, cfg, backend, dtype);
  return T5Encoder(std::move(cfg), std::move(w), backend, dtype);
}

Tensor T5Encoder::embed(const TokenBatch& tokens) const {
  const int64_t B = tokens.ids.dim(0), L = tokens.ids.dim(1), d = cfg_.d_model;
  const std::vector<float> ids = tokens.ids.to_floats();  // exact for ids < 2^24
  const auto row_bytes = static_cast<size_t>(d) * dtype_size(w_.embedding.dtype());
  const auto* table = static_cast<const char*>(w_.embedding.data());
  Tensor x = Tensor::empty({B, L, d}, DType::F32);
  for (int64_t t = 0; t < B * L; ++t) {
    const auto id = static_cast<int64_t>(ids[static_cast<size_t>(t)]);
    SPARVAR_CHECK(id >= 0 && id < cfg_.vocab_size, "T5 encoder: token id {} at row {}, position {} is outside the "
                  "vocabulary [0, {})", id, t / L, t % L, cfg_.vocab_size);
    convert_elements(table + static_cast<size_t>(id) * row_bytes, w_.embedding.dtype(),
                     x.data_as<float>() + t * d, DType::F32, static_cast<size_t>(d));
  }
  return be_->upload(x, dtype_);
}

Tensor T5Encoder::key_mask(const TokenBatch& tokens) const {
  const int64_t B = tokens.ids.dim(0), L = tokens.ids.dim(1);
  bool padded = false;
  Tensor mask = Tensor::zeros({B, L}, DType::F32);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t j = tokens.lengths[static_cast<size_t>(b)]; j < L; ++j) {
      mask.data_as<float>()[b * L + j] = kMaskedLogit;
      padded = true;
    }
  }
  return padded ? be_->upload(mask, dtype_) : Tensor();
}

void T5Encoder::layer(const T5LayerWeights& l, const Tensor& bias, const Tensor& mask, Tensor& x) {
  Backend& be = *be_;
  const int64_t B = x.dim(0), L = x.dim(1), d = cfg_.d_model, H = cfg_.num_heads, dk = cfg_.d_kv;
  const float eps = cfg_.layer_norm_epsilon;

  Tensor n = be.empty(x.shape(), dtype_);
  be.rms_norm(x, &l.attn_norm, eps, n);
  Tensor qkv = be.empty({B, L, 3 * H * dk}, dtype_);
  be.linear(n, l.wqkv, nullptr, Activation::None, qkv);
  Tensor heads = be.empty({3, B, H, L, dk}, dtype_);
  be.permute(qkv.view({B, L, 3, H, dk}), {2, 0, 3, 1, 4}, heads);
  const Tensor ctx = biased_attention(be, heads.slice0(0, 1).view({B, H, L, dk}),
                                      heads.slice0(1, 2).view({B, H, L, dk}),
                                      heads.slice0(2, 3).view({B, H, L, dk}), bias, mask);
  Tensor merged = be.empty({B, L, H, dk}, dtype_);
  be.permute(ctx, {0, 2, 1, 3}, merged);
  Tensor attn_out = be.empty({B, L, d}, dtype_);
  be.linear(merged.view({B, L, H * dk}), l.wo, nullptr, Activation::None, attn_out);
  be.add(x, attn_out, x);

  be.rms_norm(x, &l.ffn_norm, eps, n);
  Tensor gate = be.empty({B, L, cfg_.d_ff}, dtype_);
  Tensor up = be.empty({B, L, cfg_.d_ff}, dtype_);
  be.linear(n, l.wi0, nullptr, Activation::GeluTanh, gate);
  be.linear(n, l.wi1, nullptr, Activation::None, up);
  be.mul(gate, up, gate);
  be.linear(gate, l.wff_out, nullptr, Activation::None, attn_out);
  be.add(x, attn_out, x);
}

T5Output T5Encoder::encode(const TokenBatch& tokens) {
  SPARVAR_CHECK(tokens.ids.defined() && tokens.ids.ndim() == 2 && tokens.ids.dim(0) > 0 && tokens.ids.dim(1) > 0,
                "T5 encoder: token ids must be a non-empty [B, L] tensor");
  SPARVAR_CHECK(tokens.ids.device() == Device::CPU && !dtype_is_float(tokens.ids.dtype()),
                "T5 encoder: token ids must be a host integer tensor, got {}", tokens.ids.describe());
  const int64_t B = tokens.ids.dim(0), L = tokens.ids.dim(1);
  SPARVAR_CHECK(static_cast<int64_t>(tokens.lengths.size()) == B, "T5 encoder: {} lengths for {} rows",
                tokens.lengths.size(), B);
  for (int64_t b = 0; b < B; ++b) {
    const int32_t len = tokens.lengths[static_cast<size_t>(b)];
    SPARVAR_CHECK(len >= 1 && len <= L, "T5 encoder: row {} has length {}, outside [1, {}]", b, len, L);
  }
  Tensor x = embed(tokens);
  const Tensor bias = be_->upload(position_bias(w_.relative_bias, L, cfg_.max_distance), dtype_);
  const Tensor mask = key_mask(tokens);
  for (const auto& l : w_.layers) layer(l, bias, mask, x);
  Tensor out = be_->empty(x.shape(), dtype_);
  be_->rms_norm(x, &w_.final_norm, cfg_.layer_norm_epsilon, out);
  return T5Output{std::move(out), tokens.lengths};
}

}  // namespace sparvar::t5
