// random_decoder_weights (weights.h): the decoder structure of assemble_decoder_weights, filled from a seeded
// xorshift generator (fast enough for the 60M weights of vae_d32; only determinism matters here).
#include <cmath>

#include "models/bsq_vae/weights.h"

namespace sparvar::bsq_vae {

namespace {

class UniformSource {
 public:
  explicit UniformSource(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}

  // A host tensor uniform in [lo, hi).
  Tensor tensor(const Shape& shape, float lo, float hi) {
    Tensor t = Tensor::empty(shape, DType::F32);
    float* p = t.data_as<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = lo + (hi - lo) * next();
    return t;
  }

 private:
  float next() {  // xorshift64*, top 24 bits -> [0, 1)
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return static_cast<float>((state_ * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f;
  }
  uint64_t state_;
};

}  // namespace

DecoderWeights random_decoder_weights(const VaeConfig& cfg, Backend& backend, DType dtype, uint64_t seed) {
  cfg.validate();
  UniformSource random(seed);
  WeightSource src;
  src.conv = [&](const std::string&, int cin, int cout, int k) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(cin * k * k));
    ConvWeights c;
    c.w = backend.upload(random.tensor({cout, cin, k, k}, -bound, bound), dtype);
    c.b = backend.upload(random.tensor({cout}, -bound, bound), dtype);
    c.pad = k / 2;
    return c;
  };
  src.norm = [&](const std::string&, int channels) {
    NormWeights n;
    n.w = backend.upload(random.tensor({channels}, 0.8f, 1.2f), dtype);
    n.b = backend.upload(random.tensor({channels}, -0.2f, 0.2f), dtype);
    n.groups = norm_groups(channels);
    return n;
  };
  return assemble_decoder_weights(cfg, src);
}

}  // namespace sparvar::bsq_vae
