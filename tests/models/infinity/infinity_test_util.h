// Shared by the Infinity tests: the golden folder, its checkpoint and run settings, and a relative-error
// helper.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace sparvar::infinity::test {

inline std::filesystem::path golden(const std::string& name) {
  return std::filesystem::path(SPARVAR_INFINITY_GOLDEN_DIR) / name;
}

// max |a - b| / max |b|
inline double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double diff = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    ref = std::max(ref, std::abs(static_cast<double>(b[i])));
  }
  return ref > 0 ? diff / ref : diff;
}

}  // namespace sparvar::infinity::test
