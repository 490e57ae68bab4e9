// Descriptors, instantiations and launch of the phase-2 (pipelined, persistent) kernel.
#include "kernel_launch.h"
#include "launch_common.cuh"
#include "kernel_pipelined.cuh"

namespace sparvar::attention_cuda {
namespace {

template <int D, bool kMass>
cudaError_t launch(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream) {
  using K = PipelinedKernel<D>;
  using Cfg = typename K::Cfg;
  const int bh = shape.batch * p.heads;
  typename K::Params prm{};
  prm.p = p;
  prm.num_tiles = bh * (p.nq / kTileM);
  prm.tma_q = make_tma_copy(SM90_TMA_LOAD{}, gmem_view<K, D>(p.q, p.nq, bh), typename Cfg::SmemLayoutQ{},
                            Shape<Int<kTileM>, Int<D>>{}, _1{});
  prm.tma_k = make_tma_copy(SM90_TMA_LOAD{}, gmem_view<K, D>(p.k, p.nk, bh, p.kv_rows), typename K::SmemLayoutKStage{},
                            Shape<Int<K::kBK>, Int<D>>{}, _1{});
  prm.tma_v = make_tma_copy(SM90_TMA_LOAD{}, gmem_view<K, D>(p.v, p.nk, bh, p.kv_rows), typename K::SmemLayoutKStage{},
                            Shape<Int<K::kBK>, Int<D>>{}, _1{});
  auto kernel = pipelined_block_sparse_kernel<D, kMass>;
  constexpr int smem = K::kSmemBytes;
  cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (status != cudaSuccess) return status;
  const int lanes_needed = (prm.num_tiles + K::kLanes - 1) / K::kLanes;
  const int grid = std::min(lanes_needed, max_ctas());
  kernel<<<grid, K::kThreads, smem, stream>>>(prm);
  return cudaGetLastError();
}

}  // namespace

// Every shape (128-token key blocks as two 64-token halves), with or without block mass.
bool pipelined_supports(const LaunchShape&) { return true; }

// The block-mass variant is its own instantiation, so calls without it pay nothing for it.
cudaError_t launch_pipelined(const LaunchShape& shape, const KernelParams& p, cudaStream_t stream) {
  const bool mass = p.block_mass != nullptr;
  if (shape.head_dim == 128) return mass ? launch<128, true>(shape, p, stream) : launch<128, false>(shape, p, stream);
  return mass ? launch<64, true>(shape, p, stream) : launch<64, false>(shape, p, stream);
}

}  // namespace sparvar::attention_cuda
