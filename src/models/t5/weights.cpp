#include "models/t5/weights.h"

#include <cstring>
#include <set>

#include "io/checkpoint.h"
#include "models/t5/keys.h"

namespace sparvar::t5 {
namespace {

class Loader {
 public:
  Loader(const io::Checkpoint& ckpt, Backend& backend, DType dtype) : ckpt_(ckpt), be_(backend), dtype_(dtype) {}

  Tensor host(const std::string& key, const Shape& shape) {
    used_.insert(key);
    return ckpt_.tensor(key, shape);
  }
  Tensor device(const std::string& key, const Shape& shape) { return be_.upload(host(key, shape), dtype_); }

  // Rows of several [n_i, K] matrices stacked into one [sum n_i, K] on the backend.
  Tensor stacked(const std::vector<std::string>& keys, int64_t rows, int64_t cols) {
    Tensor all = Tensor::empty({rows * static_cast<int64_t>(keys.size()), cols}, DType::F32);
    for (size_t i = 0; i < keys.size(); ++i) {
      const std::vector<float> part = host(keys[i], {rows, cols}).to_floats();
      std::memcpy(all.data_as<float>() + i * static_cast<size_t>(rows * cols), part.data(), part.size() * sizeof(float));
    }
    return be_.upload(all, dtype_);
  }

  void reject_unused_encoder_keys() const {
    for (const auto& t : ckpt_.tensors()) {
      if (t.name.rfind("encoder.", 0) == 0 && !used_.count(t.name) && t.name != "encoder.embed_tokens.weight") {
        fail("T5 checkpoint {}: unexpected encoder key '{}' {} for the configured encoder", ckpt_.path(), t.name,
             shape_string(t.shape));
      }
    }
  }

 private:
  const io::Checkpoint& ckpt_;
  Backend& be_;
  DType dtype_;
  std::set<std::string> used_;
};

}  // namespace

T5Weights load_t5_weights(const io::Checkpoint& ckpt, const T5Config& cfg, Backend& backend, DType dtype) {
  cfg.validate();
  Loader ld(ckpt, backend, dtype);
  const int64_t d = cfg.d_model, inner = cfg.inner_dim(), ff = cfg.d_ff;
  T5Weights w;
  w.embedding = ld.host(embedding_key(ckpt), {cfg.vocab_size, d});
  w.relative_bias = ld.host(block_key(0, kRelativeBias), {cfg.num_buckets, cfg.num_heads});
  for (int i = 0; i < cfg.num_layers; ++i) {
    T5LayerWeights l;
    l.attn_norm = ld.device(block_key(i, kAttnNorm), {d});
    l.wqkv = ld.stacked({block_key(i, kQ), block_key(i, kK), block_key(i, kV)}, inner, d);
    l.wo = ld.device(block_key(i, kO), {d, inner});
    l.ffn_norm = ld.device(block_key(i, kFfnNorm), {d});
    l.wi0 = ld.device(block_key(i, kWi0), {ff, d});
    l.wi1 = ld.device(block_key(i, kWi1), {ff, d});
    l.wff_out = ld.device(block_key(i, kWo), {d, ff});
    w.layers.push_back(std::move(l));
  }
  w.final_norm = ld.device(kFinalNorm, {d});
  ld.reject_unused_encoder_keys();
  return w;
}

}  // namespace sparvar::t5
