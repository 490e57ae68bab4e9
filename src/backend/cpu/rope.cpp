// 2-D RoPE as Infinity applies it: interleaved pairs (x[2i], x[2i+1]) rotated by the angle of (n, i).
#include <algorithm>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"

namespace sparvar::cpu {

void CpuBackend::rope(const Tensor& x, const Tensor& cos, const Tensor& sin, Tensor& y) {
  constexpr std::string_view op = "rope";
  check_f32(x, op, "input");
  SPARVAR_CHECK(x.ndim() == 4, "rope: input must be [B, H, N, D], got {}", shape_string(x.shape()));
  const int64_t N = x.dim(2), D = x.dim(3);
  SPARVAR_CHECK(D % 2 == 0, "rope: head dim {} of input {} must be even", D, shape_string(x.shape()));
  const int64_t half = D / 2;
  check_f32(cos, op, "cos");
  SPARVAR_CHECK(cos.shape() == Shape({N, half}), "rope: cos {} does not match input {} (expected [{},{}])",
                shape_string(cos.shape()), shape_string(x.shape()), N, half);
  check_f32(sin, op, "sin");
  SPARVAR_CHECK(sin.shape() == Shape({N, half}), "rope: sin {} does not match input {} (expected [{},{}])",
                shape_string(sin.shape()), shape_string(x.shape()), N, half);
  check_output(y, x.shape(), op);
  check_same_or_disjoint(x, y, op, "input");
  check_disjoint(cos, y, op, "cos");
  check_disjoint(sin, y, op, "sin");
  if (D == 0) return;
  const float* px = x.data_as<float>();
  const float* pc = cos.data_as<float>();
  const float* ps = sin.data_as<float>();
  float* py = y.data_as<float>();
  pool_.parallel_for(0, x.numel() / D, std::max<int64_t>(1, 8192 / D), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const float* c = pc + (r % N) * half;
      const float* s = ps + (r % N) * half;
      const float* in = px + r * D;
      float* out = py + r * D;
      for (int64_t i = 0; i < half; ++i) {
        const float x0 = in[2 * i], x1 = in[2 * i + 1];
        out[2 * i] = c[i] * x0 - s[i] * x1;
        out[2 * i + 1] = s[i] * x0 + c[i] * x1;
      }
    }
  });
}

}  // namespace sparvar::cpu
