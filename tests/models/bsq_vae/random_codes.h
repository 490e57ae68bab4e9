// Seeded codes for the decoder tests (test_bsq_vae.cpp, test_rgb8_path.cpp).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "core/tensor.h"

namespace sparvar::test {

// Seeded normal codes [B, d, h, w] on the host (the decoder takes any float codes; BSQ's are +-1/sqrt(d) sums).
inline Tensor random_codes(const Shape& shape, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = normal(gen);
  return Tensor::from_floats(shape, v);
}

}  // namespace sparvar::test
