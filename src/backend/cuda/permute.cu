// Permutation of up to 6 dimensions: one thread per output element (or per 16-byte pack of the last dimension
// when the permutation keeps it last), gathering from the input through precomputed strides. Data is moved
// as raw bytes, so the dtype does not matter.
#include <cstdint>

#include "backend/cuda/device_math.cuh"

namespace sparvar::cuda {

namespace {

constexpr int kMaxDims = 6;

struct PermuteGeometry {
  int ndim;
  int64_t out_dims[kMaxDims];
  int64_t in_strides[kMaxDims];  // input stride of the dimension that output dimension d reads
};

// Index: uint32_t whenever the tensor has fewer than 2^31 elements (units of U): the per-element index
// arithmetic is then 32-bit division, several times cheaper than 64-bit, which otherwise bounds the kernel
// (a [2, 16, 4096, 128] bf16 head split/merge ran at ~1/4 of the memory bandwidth with 64-bit indices).
template <typename U, typename Index>
__global__ void permute_kernel(const U* __restrict__ x, U* __restrict__ y, Index n, PermuteGeometry g) {
  Index out_dims[kMaxDims], in_strides[kMaxDims];
#pragma unroll
  for (int d = 0; d < kMaxDims; ++d) {
    out_dims[d] = static_cast<Index>(g.out_dims[d]);
    in_strides[d] = static_cast<Index>(g.in_strides[d]);
  }
  for (Index o = blockIdx.x * Index(blockDim.x) + threadIdx.x; o < n; o += Index(gridDim.x) * blockDim.x) {
    Index rest = o, src = 0;
#pragma unroll
    for (int d = kMaxDims - 1; d >= 0; --d) {
      if (d >= g.ndim) continue;
      const Index i = rest % out_dims[d];
      rest /= out_dims[d];
      src += i * in_strides[d];
    }
    y[o] = x[src];
  }
}

template <typename U>
void launch_as(const void* x, void* y, const std::vector<int64_t>& in_shape, const std::vector<int>& perm, cudaStream_t stream) {
  const int nd = static_cast<int>(in_shape.size());
  int64_t in_strides[kMaxDims];
  int64_t s = 1;
  for (int d = nd - 1; d >= 0; --d) {
    in_strides[d] = s;
    s *= in_shape[static_cast<size_t>(d)];
  }
  PermuteGeometry g{};
  g.ndim = nd;
  int64_t n = 1;
  for (int d = 0; d < nd; ++d) {
    g.out_dims[d] = in_shape[static_cast<size_t>(perm[static_cast<size_t>(d)])];
    g.in_strides[d] = in_strides[perm[static_cast<size_t>(d)]];
    n *= g.out_dims[d];
  }
  if (n == 0) return;
  if (n < (int64_t{1} << 31))  // o + the grid stride (at most 2^28) stays below 2^32
    permute_kernel<U, uint32_t><<<grid_for(n, 256), 256, 0, stream>>>(static_cast<const U*>(x), static_cast<U*>(y),
                                                                       static_cast<uint32_t>(n), g);
  else
    permute_kernel<U, int64_t><<<grid_for(n, 256), 256, 0, stream>>>(static_cast<const U*>(x), static_cast<U*>(y), n, g);
  CUDA_CHECK_LAUNCH();
}
}  // namespace

void launch_permute(size_t esize, const void* x, void* y, const std::vector<int64_t>& in_shape,
                    const std::vector<int>& perm, cudaStream_t stream) {
  const int nd = static_cast<int>(in_shape.size());
  if (nd == 0) {
    CUDA_CHECK(cudaMemcpyAsync(y, x, esize, cudaMemcpyDeviceToDevice, stream));
    return;
  }
  // When the last dimension stays last, move 16-byte packs of it.
  const int64_t last_bytes = in_shape.back() * static_cast<int64_t>(esize);
  if (perm.back() == nd - 1 && last_bytes % 16 == 0 && aligned_to(x, 16) && aligned_to(y, 16)) {
    std::vector<int64_t> packs = in_shape;
    packs.back() = last_bytes / 16;
    launch_as<uint4>(x, y, packs, perm, stream);
  } else if (esize == 4) {
    launch_as<uint32_t>(x, y, in_shape, perm, stream);
  } else if (esize == 2) {
    launch_as<uint16_t>(x, y, in_shape, perm, stream);
  } else {
    fail_dtype("permute", DType::U8);
  }
}

}  // namespace sparvar::cuda
