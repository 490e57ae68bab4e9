// Entry point of softmax (kernel in softmax.cu).
#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"

namespace sparvar::cuda {

void CudaBackend::softmax(const Tensor& x, Tensor& y) {
  constexpr const char* op = "softmax";
  check_compute(x, op, "x");
  SPARVAR_CHECK(x.ndim() >= 1, "{}: x must have at least one dimension", op);
  check_output(y, x, x.shape(), op);
  check_same_or_disjoint(x, y, op, "x");
  const int64_t cols = x.dim(-1), rows = cols == 0 ? 0 : x.numel() / cols;
  SPARVAR_CHECK(rows <= 0x7fffffff, "{}: {} rows is too many for one launch", op, rows);
  make_current();
  launch_softmax(x.dtype(), x.data(), y.data(), rows, cols, stream_);
}

}  // namespace sparvar::cuda
