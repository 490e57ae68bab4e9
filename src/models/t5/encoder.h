// The Flan-T5 encoder (transformers' T5EncoderModel graph and key layout) over the backend interface:
//   x = embedding[ids]
//   per block: x += o(attention(q, k, v of rms_norm_0(x)) with relative-position bias + key padding mask)
//              x += wo(gelu_tanh(wi_0 n) * wi_1 n),  n = rms_norm_1(x)
//   features = final rms_norm(x)
// T5's RMS norm has no mean subtraction and no bias; attention has no 1/sqrt(d) scaling.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/t5/config.h"
#include "models/t5/tokenizer.h"
#include "models/t5/weights.h"

namespace sparvar::t5 {

struct T5Output {
  // [B, L, d_model] on the backend. Rows b, positions >= lengths[b] are padding: computed as transformers
  // does (they see the valid keys only) but meant to be ignored (Infinity keeps the first lengths[b]).
  Tensor features;
  std::vector<int32_t> lengths;
};

class T5Encoder {
 public:
  // path: a transformers folder (config.json + model.safetensors / pytorch_model.bin, sharded or not) or a
  // single weights file. The config comes from the shapes (+ config.json when present); with a preset name it
  // must also equal that preset.
  static T5Encoder load(const std::filesystem::path& path, Backend& backend, DType dtype = DType::F32,
                        const std::string& preset = "");

  const T5Config& config() const { return cfg_; }
  T5Output encode(const TokenBatch& tokens);

 private:
  T5Encoder(T5Config cfg, T5Weights w, Backend& be, DType dtype)
      : cfg_(std::move(cfg)), w_(std::move(w)), be_(&be), dtype_(dtype) {}
  Tensor embed(const TokenBatch& tokens) const;
  Tensor key_mask(const TokenBatch& tokens) const;
  void layer(const T5LayerWeights& l, const Tensor& bias, const Tensor& mask, Tensor& x);

  T5Config cfg_;
  T5Weights w_;
  Backend* be_;
  DType dtype_;
};

}  // namespace sparvar::t5
