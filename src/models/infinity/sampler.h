// Per-bit sampling of the bitwise head (sampling.py): each bit is a 2-way distribution over its two logits
// (after tau and CFG). top-k (only k = 1 removes anything: the smaller logit; ties keep both), top-p (the less
// likely bit is removed when its probability <= 1 - top_p), softmax, then bit = 1 iff u >= p(bit = 0).
// Uniforms come from Philox (seed; stream offset = scale index; element = (batch, token, bit) row-major)
// or, for parity with the reference, from a supplied array consumed in the same order scale after scale.
// The arithmetic is core/bit_sampling.h's, which the backends' sample_bits share: the same logits and uniforms
// give the same bits here, on the CPU backend and on the GPU. The generator samples on the backend; these host
// functions remain for tests and tools.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace sparvar::infinity {

struct SamplingParams {
  int top_k = 900;     // <= 0 or >= 2: no top-k filtering
  float top_p = 0.97f; // <= 0: no top-p filtering
};

// p(bit = 0) after filtering.
float bit_prob_zero(float logit0, float logit1, const SamplingParams& params);

class UniformSource {
 public:
  static UniformSource philox(uint64_t seed);
  static UniformSource supplied(std::vector<float> values);

  // The `count` uniforms of scale `scale` (scales must be drawn in order for supplied arrays).
  void draw(int scale, int64_t count, float* out);
  bool is_supplied() const { return supplied_.has_value(); }

 private:
  uint64_t seed_ = 0;
  std::optional<std::vector<float>> supplied_;
  int64_t position_ = 0;
};

// logits [count, 2] (F32, host) -> bits [count] in {0, 1}.
void sample_bits(const float* logits, int64_t count, const SamplingParams& params, const float* uniforms,
                 uint8_t* bits);

}  // namespace sparvar::infinity
