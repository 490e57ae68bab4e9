// Host side shared by the launchers of the kernels built on PipelinedKernel's CTA (pipelined, wide): the TMA
// descriptors, the persistent grid and the launch.
#pragma once

#include "kernel_launch.h"
#include "kernel_pipelined.cuh"
#include "launch_common.cuh"

namespace sparvar::attention_cuda {

template <int D, class KernelFn>
cudaError_t launch_on_lanes(KernelFn kernel, const LaunchShape& shape, const KernelParams& p, cudaStream_t stream,
                            int* tile_counter = nullptr) {
  using K = PipelinedKernel<D>;
  using Cfg = typename K::Cfg;
  const int bh = shape.batch * p.heads;
  typename K::Params prm{};
  prm.p = p;
  prm.num_tiles = bh * (p.nq / kTileM);
  prm.tile_counter = tile_counter;  // kernels that schedule dynamically (wide); the others ignore it
  prm.tma_q = make_tma_copy(SM90_TMA_LOAD{}, gmem_view<K, D>(p.q, p.nq, bh), typename Cfg::SmemLayoutQ{},
                            Shape<Int<kTileM>, Int<D>>{}, _1{});
  prm.tma_k = make_tma_copy(SM90_TMA_LOAD{}, gmem_view<K, D>(p.k, p.nk, bh, p.kv_rows), typename K::SmemLayoutKStage{},
                            Shape<Int<K::kBK>, Int<D>>{}, _1{});
  prm.tma_v = make_tma_copy(SM90_TMA_LOAD{}, gmem_view<K, D>(p.v, p.nk, bh, p.kv_rows), typename K::SmemLayoutKStage{},
                            Shape<Int<K::kBK>, Int<D>>{}, _1{});
  constexpr int smem = K::kSmemBytes;
  cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (status != cudaSuccess) return status;
  const int lanes_needed = (prm.num_tiles + K::kLanes - 1) / K::kLanes;
  const int grid = std::min(lanes_needed, max_ctas());
  kernel<<<grid, K::kThreads, smem, stream>>>(prm);
  return cudaGetLastError();
}

}  // namespace sparvar::attention_cuda
