// copy_slice: one cudaMemcpy2DAsync (the rows of src into a window of each row of dst), e.g. a scale's keys into
// the KV cache instead of one copy per (batch, head).
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "core/slice_copy.h"

namespace sparvar::cuda {

void CudaBackend::copy_slice(const Tensor& src, Tensor& dst, int dim, int64_t offset) {
  constexpr const char* op = "copy_slice";
  SPARVAR_CHECK(src.defined() && dst.defined(), "{}: source or destination is missing (undefined tensor)", op);
  SPARVAR_CHECK(src.device() == Device::CUDA && dst.device() == Device::CUDA,
                "{}: {} -> {}: both must be on the cuda backend", op, src.describe(), dst.describe());
  const SliceCopy g = slice_copy_geometry(src, dst, dim, offset, op);
  check_disjoint(src, dst, op, "source");
  if (g.rows == 0 || g.src_pitch == 0) return;
  make_current();
  char* first = static_cast<char*>(dst.data()) + g.dst_start;
  if (g.rows == 1) {  // one run (a slice of dimension 0): a plain copy, no pitch limit
    CUDA_CHECK(cudaMemcpyAsync(first, src.data(), static_cast<size_t>(g.src_pitch), cudaMemcpyDeviceToDevice, stream_));
    return;
  }
  SPARVAR_CHECK(static_cast<size_t>(g.dst_pitch) <= props_.memPitch,
                "{}: rows of {} bytes in the destination {} exceed the device's copy pitch limit ({} bytes)", op,
                g.dst_pitch, dst.describe(), props_.memPitch);
  CUDA_CHECK(cudaMemcpy2DAsync(first, static_cast<size_t>(g.dst_pitch),
                               src.data(), static_cast<size_t>(g.src_pitch), static_cast<size_t>(g.src_pitch),
                               static_cast<size_t>(g.rows), cudaMemcpyDeviceToDevice, stream_));
}

}  // namespace sparvar::cuda
