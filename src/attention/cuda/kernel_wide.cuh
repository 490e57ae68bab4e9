// Phase-4 kernel ("wide"): the pipelined kernel's CTA, lanes and rings, but every consumer step covers 128 keys
// (two listed 64-token blocks) instead of 64 (the step: steps_128key.cuh).
//
// Why: with 64-key steps the pipelined kernel is latency-bound (ncu: tensor pipe ~55% busy, no unit saturated):
// each step pays the same fixed chain of barrier waits, wgmma fences, row-max shuffles and an O rescale for only
// 64 x 64 x D of QK^T. Two blocks per step halve that fixed cost per key and double the wgmma chain issued
// between waits, as FlashAttention-3 does with 128+ key tiles.
//
// Shared memory holds 3 stages of 64 keys per lane (4 for D = 64): there is no room for two whole 128-key
// stages of K and V per lane. So K and V keep separate rings, and the producer runs the K stream one step ahead
// of the V stream (K of step j, then V of step j-1): K pair j is loaded during step j-1, V_{2j-2} too, and only
// V_{2j-1} (whose slot frees when step j-1 ends) is loaded during step j's QK^T and softmax, so the step's second
// PV is issued after the softmax.
//
// Tiles come from the producer (tile_schedule.cuh: dynamic when Params::tile_counter is set, else static).
// No block mass: CS4A's decision scale runs the pipelined kernel (the launcher picks it).
#pragma once

#include "steps_128key.cuh"

namespace sparvar::attention_cuda {

template <int D>
__device__ void wide_producer(const typename PipelinedKernel<D>::Params& prm, typename PipelinedKernel<D>::LaneSmem& sm,
                              typename PipelinedKernel<D>::Barriers& bar, int lane_slot, int num_slots) {
  using K = PipelinedKernel<D>;
  using Barrier = cutlass::arch::ClusterBarrier;
  using TxBarrier = cutlass::arch::ClusterTransactionBarrier;
  const KernelParams& p = prm.p;

  RingState<K::kStages> kring, vring;
  uint32_t q_phase = 0;
  auto coord_of = [&](int tile) { return tile_coord(p, tile); };
  produce_tiles(bar.tiles, lane_slot, prm.num_tiles, num_slots, prm.tile_counter, coord_of, [&](const TileCoord& t) {
    auto [tQg, tQs, tKg, tKs, tVg, tVs] = producer_views<D>(prm, sm, t);
    produce_128key_tile(p, t, bar, kring, vring, prm.tma_k, prm.tma_v, tKg, tKs, tVg, tVs, K::kKVBytes, [&] {
      Barrier::wait(&bar.q_empty, q_phase ^ 1);
      TxBarrier::arrive_and_expect_tx(&bar.q_full, K::kQBytes);
      copy(prm.tma_q.with(bar.q_full), tQg, tQs);
      q_phase ^= 1;
    });
  });
}

template <int D>
__global__ void __launch_bounds__(384, 1)
    wide_block_sparse_kernel(const __grid_constant__ typename PipelinedKernel<D>::Params prm) {
  using K = PipelinedKernel<D>;
  extern __shared__ char smem_raw[];
  const KernelParams& p = prm.p;
  run_lanes<D>(
      smem_raw, [&](auto& sm, auto& bar, int slot, int slots) { wide_producer<D>(prm, sm, bar, slot, slots); },
      [&](auto& sm, auto& bar, int, int) {
        consume_128key_tiles<D, K::kStages, false, false, false>(p, bar, sm.q, sm.k, sm.v, [&](int tile) {
          const TileCoord t = tile_place(p, tile);
          return ConsumerTile{t.bh, t.qtile};
        });
      });
}

}  // namespace sparvar::attention_cuda
