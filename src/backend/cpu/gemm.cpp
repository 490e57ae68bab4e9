// linear: one cblas_sgemm over all rows, then the bias + activation epilogue on the thread pool.
#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"

namespace sparvar::cpu {

void CpuBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act, Tensor& y) {
  constexpr std::string_view op = "linear";
  check_f32(x, op, "input");
  check_f32(w, op, "weight");
  SPARVAR_CHECK(x.ndim() >= 1, "linear: input must have at least one dimension, got {}", shape_string(x.shape()));
  SPARVAR_CHECK(w.ndim() == 2, "linear: weight must be [N, K], got {}", shape_string(w.shape()));
  const int64_t K = x.dim(-1), N = w.dim(0);
  SPARVAR_CHECK(w.dim(1) == K, "linear: weight {} does not match input [..., {}]", shape_string(w.shape()), K);
  if (bias) check_f32_shape(*bias, {N}, op, "bias");
  Shape out_shape = x.shape();
  out_shape.back() = N;
  check_output(y, out_shape, op);
  check_disjoint(x, y, op, "input");
  check_disjoint(w, y, op, "weight");
  if (bias) check_disjoint(*bias, y, op, "bias");

  const int64_t M = x.numel() / std::max<int64_t>(K, 1);
  if (M == 0 || N == 0) return;
  float* out = y.data_as<float>();
  if (K == 0) {
    std::memset(out, 0, y.nbytes());
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(N),
                static_cast<int>(K), 1.0f, x.data_as<float>(), static_cast<int>(K), w.data_as<float>(),
                static_cast<int>(K), 0.0f, out, static_cast<int>(N));
  }
  if (!bias && act == Activation::None) return;
  const float* b = bias ? bias->data_as<float>() : nullptr;
  pool_.parallel_for(0, M, std::max<int64_t>(1, 16384 / N), [&](int64_t lo, int64_t hi) {
    for (int64_t m = lo; m < hi; ++m) {
      float* row = out + m * N;
      if (b)
        for (int64_t n = 0; n < N; ++n) row[n] += b[n];
      apply_activation(row, N, act);
    }
  });
}

}  // namespace sparvar::cpu
