// upsample_nearest_nhwc: every output pixel copies the C values of its source pixel (i / fy, j / fx).
#include <algorithm>
#include <cstring>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/nhwc_checks.h"

namespace sparvar::cpu {

void CpuBackend::upsample_nearest_nhwc(const Tensor& x, Tensor& y) {
  constexpr std::string_view op = "upsample_nearest_nhwc";
  check_f32(x, op, "x");
  check_f32(y, op, "output");
  const UpsampleFactors f = check_upsample_nearest_nhwc(x, y, op);
  if (y.numel() == 0) return;
  const int64_t H = x.dim(1), W = x.dim(2), C = x.dim(3), Ho = y.dim(1), Wo = y.dim(2);
  const float* px = x.data_as<float>();
  float* py = y.data_as<float>();
  pool_.parallel_for(0, y.dim(0) * Ho, std::max<int64_t>(1, 16384 / (Wo * C)), [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {  // row = n * Ho + i
      const float* src = px + ((row / Ho) * H + (row % Ho) / f.fy) * W * C;
      float* dst = py + row * Wo * C;
      for (int64_t j = 0; j < Wo; ++j)
        std::memcpy(dst + j * C, src + (j / f.fx) * C, static_cast<size_t>(C) * sizeof(float));
    }
  });
}

}  // namespace sparvar::cpu
