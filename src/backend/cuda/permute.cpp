// Entry point of permute (kernel in permute.cu).
#include <algorithm>

#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"

namespace sparvar::cuda {

void CudaBackend::permute(const Tensor& x, const std::vector<int>& perm, Tensor& y) {
  constexpr const char* op = "permute";
  check_compute(x, op, "x");
  const int nd = x.ndim();
  SPARVAR_CHECK(static_cast<int>(perm.size()) == nd && nd <= 6,
                "{}: perm has {} entries for x {} (at most {} dimensions)", op, perm.size(), shape_string(x.shape()),
                6);
  std::vector<int> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (int d = 0; d < nd; ++d)
    SPARVAR_CHECK(sorted[static_cast<size_t>(d)] == d, "{}: perm is not a permutation of 0..{} for x {}", op, nd - 1,
                  shape_string(x.shape()));
  Shape out_shape(static_cast<size_t>(nd));
  for (int d = 0; d < nd; ++d) out_shape[static_cast<size_t>(d)] = x.shape()[static_cast<size_t>(perm[static_cast<size_t>(d)])];
  check_output(y, x, out_shape, op);
  check_disjoint(x, y, op, "x");
  if (x.numel() == 0) return;
  make_current();
  launch_permute(dtype_size(x.dtype()), x.data(), y.data(), x.shape(), perm, stream_);
}

}  // namespace sparvar::cuda
