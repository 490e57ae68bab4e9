// Descriptors, instantiations and launch of the phase-3 (paired: one K/V stream per 128-row tile) kernel.
#include "kernel_launch.h"
#include "launch_common.cuh"
#include "kernel_paired.cuh"

namespace sparvar::attention_cuda {
namespace {

template <int D>
cudaError_t launch(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream) {
  using K = PairedKernel<D>;
  using Cfg = typename K::Cfg;
  typename K::Params prm{};
  prm.p = p;
  prm.bh = shape.batch * p.heads;
  prm.qtiles = p.nq / kTileM;
  prm.pairs = (prm.qtiles + 1) / 2;
  prm.num_tiles = prm.bh * prm.pairs;
  prm.tma_q = make_tma_copy(SM90_TMA_LOAD{}, gmem_view<K, D>(p.q, p.nq, prm.bh), typename Cfg::SmemLayoutQ{},
                            Shape<Int<kTileM>, Int<D>>{}, _1{});
  prm.tma_k = make_tma_copy(SM90_TMA_LOAD{}, gmem_view<K, D>(p.k, p.nk, prm.bh), typename K::SmemLayoutKStage{},
                            Shape<Int<K::kBK>, Int<D>>{}, _1{});
  prm.tma_v = make_tma_copy(SM90_TMA_LOAD{}, gmem_view<K, D>(p.v, p.nk, prm.bh), typename K::SmemLayoutKStage{},
                            Shape<Int<K::kBK>, Int<D>>{}, _1{});
  auto kernel = paired_block_sparse_kernel<D>;
  constexpr int smem = K::kSmemBytes;
  cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (status != cudaSuccess) return status;
  const int grid = std::min(prm.num_tiles, max_ctas());
  kernel<<<grid, K::kThreads, smem, stream>>>(prm);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_paired(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream) {
  if (shape.head_dim == 128) return launch<128>(shape, p, stream);
  return launch<64>(shape, p, stream);
}

}  // namespace sparvar::attention_cuda
