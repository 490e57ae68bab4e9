// Host side shared by the launchers of the kernels built on PipelinedKernel's CTA (pipelined, wide): the TMA
// descriptors, the persistent grid and the launch.
#pragma once

#include "kernel_launch.h"
#include "kernel_pipelined.cuh"
#include "launch_common.cuh"

namespace sparvar::attention_cuda {

// The parameters of a kernel on PipelinedKernel's TMA descriptors: work tiles of tile_rows query rows.
template <int D>
typename PipelinedKernel<D>::Params lane_params(const LaunchShape& shape, const KernelParams& p, int tile_rows,
                                               int* tile_counter) {
  using K = PipelinedKernel<D>;
  using Cfg = typename K::Cfg;
  const int bh = shape.batch * p.heads;
  typename K::Params prm{};
  prm.p = p;
  prm.num_tiles = bh * ((p.nq + tile_rows - 1) / tile_rows);  // 128-row tiles of 64-row blocks: the last may be half
  prm.num_items = prm.num_tiles;
  prm.tile_counter = tile_counter;  // kernels that schedule dynamically (wide, shared); the others ignore it
  prm.tma_q = make_tma_copy(SM90_TMA_LOAD{}, gmem_view<K, D>(p.q, p.nq, bh), typename Cfg::SmemLayoutQ{},
                            Shape<Int<kTileM>, Int<D>>{}, _1{});
  prm.tma_k = make_tma_copy(SM90_TMA_LOAD{}, gmem_view<K, D>(p.k, p.nk, bh, p.kv_rows), typename K::SmemLayoutKStage{},
                            Shape<Int<K::kBK>, Int<D>>{}, _1{});
  prm.tma_v = make_tma_copy(SM90_TMA_LOAD{}, gmem_view<K, D>(p.v, p.nk, bh, p.kv_rows), typename K::SmemLayoutKStage{},
                            Shape<Int<K::kBK>, Int<D>>{}, _1{});
  return prm;
}

// A persistent launch: 384 threads, `smem` bytes, one CTA per `tiles_per_cta` work items up to one per SM.
template <class KernelFn, class Params>
cudaError_t launch_persistent(KernelFn kernel, const Params& prm, int smem, int tiles_per_cta, cudaStream_t stream) {
  cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (status != cudaSuccess) return status;
  const int ctas_needed = (prm.num_items + tiles_per_cta - 1) / tiles_per_cta;
  const int grid = std::min(ctas_needed, max_ctas());
  kernel<<<grid, 384, smem, stream>>>(prm);
  return cudaGetLastError();
}

template <int D, class KernelFn>
cudaError_t launch_on_lanes(KernelFn kernel, const LaunchShape& shape, const KernelParams& p, cudaStream_t stream,
                            int* tile_counter = nullptr) {
  using K = PipelinedKernel<D>;
  return launch_persistent(kernel, lane_params<D>(shape, p, kTileM, tile_counter), K::kSmemBytes, K::kLanes, stream);
}

}  // namespace sparvar::attention_cuda
