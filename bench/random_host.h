// Benchmark data: a host F32 tensor uniform in [-scale, scale) from xorshift64*, fast enough for hundreds of MB and
// never all zeros (gemm_bench, skinny_bench).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace sparvar::bench {

inline Tensor random_host(const Shape& shape, uint64_t seed, float scale) {
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data_as<float>();
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    const uint64_t r = s * 0x2545F4914F6CDD1Dull;
    p[i] = (static_cast<float>(r >> 40) / 16777216.0f * 2.0f - 1.0f) * scale;
  }
  return t;
}

}  // namespace sparvar::bench
