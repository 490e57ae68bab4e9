#include "models/infinity/sampler.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/philox.h"

namespace sparvar::infinity {

float bit_prob_zero(float l0, float l1, const SamplingParams& params) {
  bool keep0 = true, keep1 = true;
  if (params.top_k == 1) {  // k-th largest of two: the larger; strictly smaller ones go
    if (l0 < l1) keep0 = false;
    if (l1 < l0) keep1 = false;
  }
  auto p0_of = [&]() -> float {
    if (!keep0) return 0.0f;
    if (!keep1) return 1.0f;
    const float m = std::max(l0, l1);
    const float e0 = std::exp(l0 - m), e1 = std::exp(l1 - m);
    return e0 / (e0 + e1);
  };
  if (params.top_p > 0.0f && keep0 && keep1) {
    // Ascending sort: the smaller logit first; it goes when its probability <= 1 - top_p (never the largest).
    const float threshold = static_cast<float>(1.0 - static_cast<double>(params.top_p));
    const float p0 = p0_of();
    if (l0 < l1 && p0 <= threshold) keep0 = false;
    else if (l1 < l0 && 1.0f - p0 <= threshold) keep1 = false;
    else if (l0 == l1 && 0.5f <= threshold) keep0 = false;  // tie: torch's sort puts index 0 first
  }
  return p0_of();
}

UniformSource UniformSource::philox(uint64_t seed) {
  UniformSource s;
  s.seed_ = seed;
  return s;
}

UniformSource UniformSource::supplied(std::vector<float> values) {
  UniformSource s;
  s.supplied_ = std::move(values);
  return s;
}

void UniformSource::draw(int scale, int64_t count, float* out) {
  if (!supplied_) {
    PhiloxStream(seed_, static_cast<uint64_t>(scale)).fill_uniform(out, static_cast<uint64_t>(count));
    return;
  }
  const int64_t have = static_cast<int64_t>(supplied_->size());
  SPARVAR_CHECK(position_ + count <= have,
                "not enough supplied uniforms: scale {} needs values [{}, {}), the array has {}", scale, position_,
                position_ + count, have);
  std::copy(supplied_->begin() + position_, supplied_->begin() + position_ + count, out);
  position_ += count;
}

void sample_bits(const float* logits, int64_t count, const SamplingParams& params, const float* uniforms,
                 uint8_t* bits) {
  for (int64_t i = 0; i < count; ++i) {
    const float p0 = bit_prob_zero(logits[2 * i], logits[2 * i + 1], params);
    bits[i] = uniforms[i] >= p0 ? 1 : 0;
  }
}

}  // namespace sparvar::infinity
