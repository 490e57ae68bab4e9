// Entry point of resample (kernels in resample.cu).
#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"

namespace sparvar::cuda {

void CudaBackend::resample(const Tensor& x, ResampleMode mode, Tensor& y) {
  constexpr const char* op = "resample";
  check_compute(x, op, "x");
  SPARVAR_CHECK(x.ndim() == 4, "{}: x must be [N, C, H, W], got {}", op, shape_string(x.shape()));
  check_compute_like(y, x, op, "output");
  SPARVAR_CHECK(y.ndim() == 4 && y.dim(0) == x.dim(0) && y.dim(1) == x.dim(1),
                "{}: output {} must be [N, C, H', W'] with N, C of x {}", op, shape_string(y.shape()),
                shape_string(x.shape()));
  check_disjoint(x, y, op, "x");
  SPARVAR_CHECK(y.numel() == 0 || (x.dim(2) > 0 && x.dim(3) > 0), "{}: cannot resample the empty image {} to {}", op,
                shape_string(x.shape()), shape_string(y.shape()));
  if (y.numel() == 0) return;
  make_current();
  ResampleGeometry g{x.dim(0) * x.dim(1), x.dim(2), x.dim(3), y.dim(2), y.dim(3),
                     static_cast<float>(x.dim(2)) / static_cast<float>(y.dim(2)),
                     static_cast<float>(x.dim(3)) / static_cast<float>(y.dim(3))};
  KernelResample kmode = KernelResample::Nearest;
  switch (mode) {
    case ResampleMode::Nearest: kmode = KernelResample::Nearest; break;
    case ResampleMode::Bilinear: kmode = KernelResample::Bilinear; break;
    case ResampleMode::Bicubic: kmode = KernelResample::Bicubic; break;
    case ResampleMode::Area: kmode = KernelResample::Area; break;
  }
  launch_resample(x.dtype(), kmode, x.data(), y.data(), g, stream_);
}

}  // namespace sparvar::cuda
