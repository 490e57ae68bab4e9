// Pieces shared by the launchers of the persistent kernels (pipelined, wide, shared).
#pragma once

#include <algorithm>
#include <cstdlib>

#include "attention_tile.cuh"

namespace sparvar::attention_cuda {

// The [rows, D] bf16 matrix of every (batch x head) as Kernel's TMA descriptors see it; consecutive (batch x
// head) matrices are row_stride rows apart (a KV cache longer than the keys read: row_stride > rows).
template <class Kernel, int D>
typename Kernel::GmemTensor gmem_view(const __nv_bfloat16* ptr, int rows, int bh, int row_stride = 0) {
  const int64_t stride = static_cast<int64_t>(row_stride > 0 ? row_stride : rows) * D;
  return make_tensor(make_gmem_ptr(reinterpret_cast<const Element*>(ptr)),
                     typename Kernel::GmemLayout(make_shape(rows, Int<D>{}, bh), make_stride(Int<D>{}, _1{}, stride)));
}

// Persistent grid: one CTA per SM; SPARVAR_ATTN_MAX_CTAS caps it (tests use it to make the work loop wrap).
inline int max_ctas() {
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
    count = 132;
  if (const char* cap = std::getenv("SPARVAR_ATTN_MAX_CTAS")) count = std::max(1, std::min(count, std::atoi(cap)));
  return count;
}

}  // namespace sparvar::attention_cuda
