// Entry point of upsample_nearest_nhwc (kernel in upsample_nhwc.cu): validation, then one copy launch.
#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/nhwc_kernels.h"
#include "backend/nhwc_checks.h"

namespace sparvar::cuda {

void CudaBackend::upsample_nearest_nhwc(const Tensor& x, Tensor& y) {
  constexpr const char* op = "upsample_nearest_nhwc";
  check_compute(x, op, "x");
  check_compute_like(y, x, op, "output");
  const UpsampleFactors f = check_upsample_nearest_nhwc(x, y, op);
  if (y.numel() == 0) return;
  // The kernel indexes within one output row in 32 bits.
  SPARVAR_CHECK(y.dim(2) * y.dim(3) * static_cast<int64_t>(dtype_size(y.dtype())) <= 0x7fffffff,
                "{}: output rows of {} are too long (over 2 GiB)", op, shape_string(y.shape()));
  make_current();
  launch_upsample_nearest_nhwc(dtype_size(x.dtype()), x.data(), y.data(), x.dim(0), x.dim(1), x.dim(2), x.dim(3),
                               f.fy, f.fx, stream_);
}

}  // namespace sparvar::cuda
