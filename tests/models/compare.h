// Comparison helpers shared by the model parity tests (bsq_vae, t5): relative L2 error and max abs difference against a golden array.
#pragma once

#include <cmath>
#include <vector>

#include "core/tensor.h"

namespace sparvar::test {

struct Diff {
  double rel_l2 = 0;   // ||a - b|| / ||b||
  double max_abs = 0;
};

inline Diff compare(const Tensor& got, const Tensor& want) {
  const std::vector<float> a = got.to_floats(), b = want.to_floats();
  Diff d;
  if (a.size() != b.size()) return {INFINITY, INFINITY};  // a shape mismatch never passes
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = static_cast<double>(a[i]) - b[i];
    num += e * e;
    den += static_cast<double>(b[i]) * b[i];
    d.max_abs = std::max(d.max_abs, std::abs(e));
    if (std::isnan(a[i])) d.max_abs = INFINITY;
  }
  d.rel_l2 = std::sqrt(num / std::max(den, 1e-30));
  return d;
}

}  // namespace sparvar::test
