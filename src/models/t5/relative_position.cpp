#include "models/t5/relative_position.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace sparvar::t5 {

int64_t relative_bucket(int64_t rel, int num_buckets, int max_distance) {
  const int64_t half = num_buckets / 2;
  const int64_t base = rel > 0 ? half : 0;
  const int64_t n = rel < 0 ? -rel : rel;
  const int64_t max_exact = half / 2;
  if (n < max_exact) return base + n;
  // float32 throughout, like torch: log(n / max_exact) / log(max_distance / max_exact) * (half - max_exact).
  const float log_ratio = std::log(static_cast<float>(n) / static_cast<float>(max_exact));
  const auto log_range = static_cast<float>(std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float scaled = log_ratio / log_range * static_cast<float>(half - max_exact);
  const int64_t large = max_exact + static_cast<int64_t>(scaled);
  return base + std::min(large, half - 1);
}

Tensor position_bias(const Tensor& table, int64_t length, int max_distance) {
  const int64_t buckets = table.dim(0), heads = table.dim(1);
  const std::vector<float> t = table.to_floats();
  // One bucket per relative offset -(L-1) .. L-1, shared by every (i, j) on that diagonal.
  std::vector<int64_t> bucket_of(static_cast<size_t>(2 * length - 1));
  for (int64_t r = -(length - 1); r < length; ++r) {
    bucket_of[static_cast<size_t>(r + length - 1)] = relative_bucket(r, static_cast<int>(buckets), max_distance);
  }
  Tensor bias = Tensor::empty({heads, length, length}, DType::F32);
  float* out = bias.data_as<float>();
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < length; ++i) {
      float* row = out + (h * length + i) * length;
      for (int64_t j = 0; j < length; ++j) {
        row[j] = t[static_cast<size_t>(bucket_of[static_cast<size_t>(j - i + length - 1)] * heads + h)];
      }
    }
  }
  return bias;
}

}  // namespace sparvar::t5
