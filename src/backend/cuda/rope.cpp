// Entry point of rope (kernel in rope.cu).
#include <cstdint>

#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"

namespace sparvar::cuda {

void CudaBackend::rope(const Tensor& x, const Tensor& cos, const Tensor& sin, Tensor& y) {
  constexpr const char* op = "rope";
  check_compute(x, op, "x");
  SPARVAR_CHECK(x.ndim() == 4 && x.dim(3) % 2 == 0, "{}: x must be [B, H, N, D] with D even, got {}", op,
                shape_string(x.shape()));
  const int64_t N = x.dim(2), half_d = x.dim(3) / 2;
  check_table(cos, {N, half_d}, op, "cos");
  check_table(sin, {N, half_d}, op, "sin");
  check_output(y, x, x.shape(), op);
  check_same_or_disjoint(x, y, op, "x");
  check_disjoint(cos, y, op, "cos");
  check_disjoint(sin, y, op, "sin");
  const size_t pair_bytes = 2 * dtype_size(x.dtype());
  SPARVAR_CHECK(reinterpret_cast<uintptr_t>(x.data()) % pair_bytes == 0 && reinterpret_cast<uintptr_t>(y.data()) % pair_bytes == 0,
                "{}: x and y must be aligned to whole (x0, x1) pairs ({} bytes)", op, pair_bytes);
  const int64_t pairs = x.numel() / 2;
  if (pairs == 0) return;
  make_current();
  launch_rope(x.dtype(), x.data(), y.data(), static_cast<const float*>(cos.data()), static_cast<const float*>(sin.data()),
              pairs, half_d, N, stream_);
}

}  // namespace sparvar::cuda
