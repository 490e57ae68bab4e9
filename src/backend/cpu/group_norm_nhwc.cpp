// group_norm_nhwc: statistics per (image, group) in double, two passes (mean, then squared deviations), as the
// NCHW group_norm computes them; then one pass over the pixels applying normalisation, affine and activation.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/nhwc_checks.h"

namespace sparvar::cpu {

void CpuBackend::group_norm_nhwc(const Tensor& x, int groups, const Tensor* w, const Tensor* b, float eps,
                                 Activation act, Tensor& y) {
  constexpr std::string_view op = "group_norm_nhwc";
  check_f32(x, op, "x");
  if (w) check_f32(*w, op, "w");
  if (b) check_f32(*b, op, "b");
  check_f32(y, op, "output");
  check_group_norm_nhwc(x, groups, w, b, y, op);
  SPARVAR_CHECK(act == Activation::None || act == Activation::GeluTanh || act == Activation::Silu,
                "{}: unknown activation {}", op, static_cast<int>(act));
  if (x.numel() == 0) return;
  const int64_t N = x.dim(0), HW = x.dim(1) * x.dim(2), C = x.dim(3), per_group = C / groups;
  const double count = static_cast<double>(HW * per_group);
  const float* px = x.data_as<float>();
  const float* pw = w ? w->data_as<float>() : nullptr;
  const float* pb = b ? b->data_as<float>() : nullptr;
  float* py = y.data_as<float>();

  // mean and 1 / sqrt(var + eps) of group g of image n at [n * groups + g]: read in full before y is written.
  std::vector<double> mean(static_cast<size_t>(N * groups)), inv(static_cast<size_t>(N * groups));
  pool_.parallel_for(0, N * groups, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t ng = lo; ng < hi; ++ng) {
      const float* image = px + (ng / groups) * HW * C + (ng % groups) * per_group;
      double sum = 0.0;
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = 0; c < per_group; ++c) sum += image[p * C + c];
      const double m = sum / count;
      double sq = 0.0;
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = 0; c < per_group; ++c) sq += (image[p * C + c] - m) * (image[p * C + c] - m);
      mean[static_cast<size_t>(ng)] = m;
      inv[static_cast<size_t>(ng)] = 1.0 / std::sqrt(sq / count + eps);  // biased variance, like torch
    }
  });
  pool_.parallel_for(0, N * HW, std::max<int64_t>(1, 16384 / C), [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t stats = (row / HW) * groups;
      const float* in = px + row * C;
      float* out = py + row * C;
      for (int64_t c = 0; c < C; ++c) {
        const auto ng = static_cast<size_t>(stats + c / per_group);
        const double scale = pw ? pw[c] : 1.0, shift = pb ? pb[c] : 0.0;
        out[c] = static_cast<float>((in[c] - mean[ng]) * inv[ng] * scale + shift);
      }
      apply_activation(out, C, act);
    }
  });
}

}  // namespace sparvar::cpu
