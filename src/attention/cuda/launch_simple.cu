// Instantiations and launch of the phase-1 (simple) kernel.
#include "kernel_launch.h"
#include "kernel_simple.cuh"

namespace sparvar::attention_cuda {
namespace {
template <int D, int BK>
cudaError_t launch(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream) {
  auto kernel = simple_block_sparse_kernel<D, BK>;
  constexpr int smem = SimpleKernel<D, BK>::kSmemBytes;
  cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (status != cudaSuccess) return status;
  const dim3 grid(p.nq / kTileM, shape.batch * p.heads);
  kernel<<<grid, SimpleKernel<D, BK>::kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}
}  // namespace

cudaError_t launch_simple(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream) {
  if (shape.head_dim == 128 && shape.k_block == 64) return launch<128, 64>(shape, p, stream);
  if (shape.head_dim == 128 && shape.k_block == 128) return launch<128, 128>(shape, p, stream);
  if (shape.head_dim == 64 && shape.k_block == 64) return launch<64, 64>(shape, p, stream);
  return launch<64, 128>(shape, p, stream);
}

}  // namespace sparvar::attention_cuda
