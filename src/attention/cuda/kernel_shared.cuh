// Phase-5 kernel ("shared"): one K/V stream per 128-row query block, read by both consumer warpgroups.
//
// Why: the wide kernel's two lanes each stream their own K/V, 32 KB of L2 traffic per 64x128 step, and its rings
// hold only 1.5 steps. Measured on the H100 (session 9): the wide kernel with its K/V loads removed runs 7-13%
// faster, with its softmax removed 13-16%, with both removed ~40%: the loads and the softmax both sit on each
// warpgroup's critical path. When a 128-row query block has one list (q_block = 128: every CSR row covers 128
// queries), its two 64-row halves need the same K/V blocks: loading them once halves the L2 traffic per FLOP, and
// the shared smem holds twice as many stages (6 of 64 keys for D = 128 instead of 3 per lane), so the producer
// runs three 128-key steps ahead. This is FlashAttention-3's CTA.
//
// Layout: warpgroup 0 = producer (one elected thread of warp 0 issues TMA), warpgroups 1 and 2 = consumers of the
// query rows 0-63 and 64-127 of the tile. Q lives in each consumer's registers (loaded once per tile by ldmatrix).
// Every "empty" barrier counts both consumers (256 arrivals). Each consumer step is the wide kernel's
// (steps_128key.cuh), except that both PVs of the previous step are issued with the QK^T (V is in by then: the
// rings are deep). Turn-taking between the consumers (FA3's
// ping-pong, named barriers) was measured and brought nothing here (bench/attention_results.md, session 9).
// Tiles: lane = CTA, dynamic schedule (tile_schedule.cuh) when Params::tile_counter is set; the last partial wave
// may be split into ranges of equal work (split_tail.h; kSplit, an instantiation of its own).
// kPairs: 64-row query blocks (q_block = 64, k_block = 64), two per tile, their lists walked as one stream in which
// each consumer takes its own units (pair_lists.cuh).
#pragma once

#include "pipelined_launch.cuh"
#include "steps_128key.cuh"

namespace sparvar::attention_cuda {

template <int D, bool kPairs = false>
struct SharedKernel {
  static constexpr int kBK = 64;
  static constexpr int kStages = D == 128 ? 6 : 8;  // per ring (K and V), 64 keys each
  static constexpr int kTileRows = 2 * kTileM;
  static constexpr int kConsumers = 2;
  using Cfg = TileConfig<D, kBK, kStages>;
  using Params = typename PipelinedKernel<D>::Params;  // the same TMA descriptors (one 64-row Q box, one K/V stage)

  struct Barriers {
    uint64_t q_full, q_empty;
    uint64_t k_full[kStages], k_empty[kStages], v_full[kStages], v_empty[kStages];
    TileMailbox tiles;
    int k_valid[kStages];  // valid keys of the block in each K stage, from the producer
    uint64_t lists_full;   // kPairs: the producer's bulk copies of a tile's lists
    int split_old[2];      // each consumer's split epilogue (split_tail_store.cuh)
  };
  // kPairs: the producer's copy of a tile's two lists (pair_lists.cuh), in what the rings leave of the 227 KB.
  static constexpr int kRingBytes = sizeof(Element) * (kConsumers * Cfg::kQElems + 2 * Cfg::kKVElems * kStages);
  static constexpr int kListCap =
      kPairs ? std::min<int>(4096, (227 * 1024 - 1024 - kRingBytes - int(sizeof(Barriers)) - 16) / 4 / 4 * 4) : 4;
  struct Smem {
    alignas(1024) Element q[kConsumers][Cfg::kQElems];
    alignas(1024) Element k[Cfg::kKVElems * kStages];
    alignas(1024) Element v[Cfg::kKVElems * kStages];
    Barriers bar;
    alignas(16) int lists[kListCap];
  };
  static constexpr int kSmemBytes = sizeof(Smem) + 1024;
  static_assert(kSmemBytes <= 227 * 1024, "shared memory over the sm_90 opt-in limit");
  static constexpr uint32_t kQBytes = Cfg::kQElems * sizeof(Element);
  static constexpr uint32_t kKVBytes = Cfg::kKVElems * sizeof(Element);
  static constexpr int kConsumerThreads = 128 * kConsumers;
};

// The 128-row tile and its list (q_block == 128: one CSR row per tile), or the part of it a split segment takes
// (split_tail.h): a range of its 128-key steps.
__device__ __forceinline__ TileCoord shared_tile_coord(const KernelParams& p, const WorkSegment& w) {
  TileCoord t = tile_place<2 * kTileM>(p, w.tile);
  read_tile_list(p, t, t.qtile);
  if (w.part >= 0) {
    int begin, end;
    split_segment_steps(p.split, w, (t.count + 1) / 2, begin, end);
    t.row_start += 2 * begin * 64 / p.k_block;  // list entries (a 128-token entry is one step)
    t.count = max(0, min(t.count, 2 * end) - 2 * begin);
  }
  return t;
}

template <int D, bool kPairs, bool kSplit>
__device__ void shared_producer(const typename SharedKernel<D, kPairs>::Params& prm,
                                typename SharedKernel<D, kPairs>::Smem& sm) {
  using K = SharedKernel<D, kPairs>;
  using Cfg = typename K::Cfg;
  using Barrier = cutlass::arch::ClusterBarrier;
  using TxBarrier = cutlass::arch::ClusterTransactionBarrier;
  const KernelParams& p = prm.p;
  auto& bar = sm.bar;

  const int bh_count = prm.num_tiles / ((p.nq + K::kTileRows - 1) / K::kTileRows);
  Tensor mQ = prm.tma_q.get_tma_tensor(make_shape(p.nq, Int<D>{}, bh_count));
  Tensor mK = prm.tma_k.get_tma_tensor(make_shape(p.nk, Int<D>{}, bh_count));
  Tensor mV = prm.tma_v.get_tma_tensor(make_shape(p.nk, Int<D>{}, bh_count));
  Tensor sQ0 = make_tensor(make_smem_ptr(sm.q[0]), typename Cfg::SmemLayoutQ{});
  Tensor sQ1 = make_tensor(make_smem_ptr(sm.q[1]), typename Cfg::SmemLayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(sm.k), typename Cfg::SmemLayoutK{});
  Tensor sV = make_tensor(make_smem_ptr(sm.v), typename Cfg::SmemLayoutV{});

  RingState<K::kStages> kring, vring;
  uint32_t q_phase = 0;
  // The tile's Q (both 64-row halves, or the first only when the second is past the last query block) and its
  // TMA views, then its K / V stream.
  auto produce = [&](const auto& t, auto produce_steps) {
    Tensor gQ = local_tile(mQ(_, _, t.bh), Shape<Int<kTileM>, Int<D>>{}, make_coord(_, 0));  // (64, D, 64-row tiles)
    Tensor gK = local_tile(mK(_, _, t.bh), Shape<Int<K::kBK>, Int<D>>{}, make_coord(_, 0));
    Tensor gV = local_tile(mV(_, _, t.bh), Shape<Int<K::kBK>, Int<D>>{}, make_coord(_, 0));
    auto [tQg, tQs0] = tma_partition(prm.tma_q, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sQ0), group_modes<0, 2>(gQ));
    auto tQs1 = get<1>(tma_partition(prm.tma_q, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sQ1), group_modes<0, 2>(gQ)));
    auto [tKg, tKs] = tma_partition(prm.tma_k, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sK), group_modes<0, 2>(gK));
    auto [tVg, tVs] = tma_partition(prm.tma_v, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sV), group_modes<0, 2>(gV));
    const bool second_half = (2 * t.qtile + 1) * kTileM < p.nq;
    produce_steps(tKg, tKs, tVg, tVs, [&] {
      Barrier::wait(&bar.q_empty, q_phase ^ 1);  // both consumers are done with the previous tile's Q
      TxBarrier::arrive_and_expect_tx(&bar.q_full, (second_half ? 2 : 1) * K::kQBytes);
      copy(prm.tma_q.with(bar.q_full), tQg(_, 2 * t.qtile), tQs0);
      if (second_half) copy(prm.tma_q.with(bar.q_full), tQg(_, 2 * t.qtile + 1), tQs1);
      q_phase ^= 1;
    });
  };
  // Work items: whole tiles, then (kSplit) the split tail's ranges of one or two segments (split_tail.h).
  auto segment_of = [&](int item, int k) {
    if constexpr (!kSplit) return WholeTiles{}(item, k);
    return k < split_item_segments(p.split, prm.num_tiles, item) ? split_segment_id(p.split, prm.num_tiles, item, k)
                                                                 : -1;
  };
  auto segment = [&](int id) {
    if constexpr (!kSplit) return WorkSegment{id};
    return split_segment(p.split, prm.num_tiles, id);
  };
  if constexpr (kPairs) {
    ListStage staging{sm.lists, &bar.lists_full, 0};
    produce_tiles(bar.tiles, blockIdx.x, prm.num_items, gridDim.x, prm.tile_counter,
                  [&](int id) {
                    const WorkSegment w = segment(id);
                    PairTile t = plan_pair(p, w.tile, staging);
                    split_pair(t, p.split, w);
                    return t;
                  },
                  [&](const PairTile& t) {
                    produce(t, [&](const auto& tKg, const auto& tKs, const auto& tVg, const auto& tVs, auto load_q) {
                      PairStream stream(t, sm.lists);
                      produce_128key_steps(t.count / 2, bar, kring, vring, prm.tma_k, prm.tma_v, tKg, tKs, tVg,
                                           tVs, K::kKVBytes,
                                           [&](int u, SubBlock& s0, SubBlock& s1) { stream.next(p, u, s0, s1); },
                                           load_q);
                    });
                  },
                  segment_of);
  } else {
    produce_tiles(bar.tiles, blockIdx.x, prm.num_items, gridDim.x, prm.tile_counter,
                  [&](int id) { return shared_tile_coord(p, segment(id)); },
                  [&](const TileCoord& t) {
                    produce(t, [&](const auto& tKg, const auto& tKs, const auto& tVg, const auto& tVs, auto load_q) {
                      produce_128key_tile(p, t, bar, kring, vring, prm.tma_k, prm.tma_v, tKg, tKs, tVg, tVs,
                                          K::kKVBytes, load_q);
                    });
                  },
                  segment_of);
  }
}

template <int D, bool kPairs, bool kSplit>
__global__ void __launch_bounds__(384, 1)
    shared_block_sparse_kernel(const __grid_constant__ typename SharedKernel<D, kPairs>::Params prm) {
  using K = SharedKernel<D, kPairs>;
  extern __shared__ char smem_raw[];
  char* base = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  auto& sm = *reinterpret_cast<typename K::Smem*>(base);
  if (threadIdx.x == 0) {
    using Barrier = cutlass::arch::ClusterBarrier;
    Barrier::init(&sm.bar.q_full, 1);
    Barrier::init(&sm.bar.q_empty, K::kConsumerThreads);
    Barrier::init(&sm.bar.lists_full, 1);
    for (int s = 0; s < K::kStages; ++s) {
      Barrier::init(&sm.bar.k_full[s], 1);
      Barrier::init(&sm.bar.v_full[s], 1);
      Barrier::init(&sm.bar.k_empty[s], K::kConsumerThreads);
      Barrier::init(&sm.bar.v_empty[s], K::kConsumerThreads);
    }
    for (int s = 0; s < 2; ++s) {
      Barrier::init(&sm.bar.tiles.full[s], 1);
      Barrier::init(&sm.bar.tiles.empty[s], K::kConsumerThreads);  // both consumers take every tile
    }
    cutlass::arch::fence_barrier_init();
  }
  __syncthreads();
  const int warpgroup = threadIdx.x / 128;
  if (warpgroup == 0) {
    cutlass::arch::warpgroup_reg_dealloc<40>();
    if (threadIdx.x / 32 == 0 && cute::elect_one_sync()) shared_producer<D, kPairs, kSplit>(prm, sm);
  } else {
    cutlass::arch::warpgroup_reg_alloc<232>();
    // Warp-uniform to ptxas (a lane-0 broadcast): with pairs a consumer's step count depends on it, and a loop count
    // ptxas thinks per-thread moves the ring stages, and every wgmma descriptor made from them, out of uniform
    // registers (95 R2UR moves in the D = 128 consumer loop, 10% slower dense, H100).
    const int half = cutlass::canonical_warp_group_idx() - 1;
    const KernelParams& p = prm.p;
    consume_128key_tiles<D, K::kStages, true, kPairs, kSplit>(p, sm.bar, sm.q[half], sm.k, sm.v, [&](int id) {
      const WorkSegment w = kSplit ? split_segment(p.split, prm.num_tiles, id) : WorkSegment{id};
      const TileCoord t = tile_place<2 * kTileM>(p, w.tile);
      return ConsumerTile{t.bh, 2 * t.qtile + half, half, w, &sm.bar.split_old[half]};
    });
  }
}

// The launch of one instantiation (launch_shared.cu; the kSplit ones are compiled in launch_shared_split.cu).
template <int D, bool kPairs, bool kSplit>
cudaError_t run_shared_kernel(const typename SharedKernel<D, kPairs>::Params& prm, cudaStream_t stream) {
  return launch_persistent(shared_block_sparse_kernel<D, kPairs, kSplit>, prm, SharedKernel<D, kPairs>::kSmemBytes, 1,
                           stream);
}

}  // namespace sparvar::attention_cuda
