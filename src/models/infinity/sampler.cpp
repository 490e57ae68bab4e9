#include "models/infinity/sampler.h"

#include <algorithm>

#include "core/bit_sampling.h"
#include "core/error.h"
#include "core/philox.h"

namespace sparvar::infinity {

float bit_prob_zero(float l0, float l1, const SamplingParams& params) {
  return bitsample::prob_zero(l0, l1, params.top_k, params.top_p);
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
    bits[i] = bitsample::sample(bit_prob_zero(logits[2 * i], logits[2 * i + 1], params), uniforms[i]);
  }
}

}  // namespace sparvar::infinity
