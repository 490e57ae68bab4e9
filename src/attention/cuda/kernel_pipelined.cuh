// Phase-2 kernel: FA3-style, warp-specialised and persistent.
//
// A CTA (384 threads, one per SM) holds two independent lanes of work. Lane c = one producer warp (warp c of
// warpgroup 0, one elected thread issuing TMA) + one consumer warpgroup (warpgroup 1 + c) that owns a 64-row
// query tile and its own CSR list. Each lane has its own Q buffer and K/V rings of kStages stages with
// full/empty mbarriers; the producer walks the lane's sequence of work tiles and their listed blocks, so it runs
// ahead across tile boundaries: the next tile's first K/V blocks (and its Q, once the current tile's last QK^T
// is issued) are in flight while the current tile finishes its softmax, PV and epilogue. With two lanes per SM,
// one lane's softmax overlaps the other's wgmma. Work tiles are ordered head-major so concurrent tiles share
// K/V in L2. Inside a consumer, block i's QK^T and block i-1's PV are issued back to back and block i's
// softmax runs while the PV wgmma is in flight. A 128-token key block is walked as two 64-token halves.
//
// Block mass (kMass, CS4A's decision scale): after a tile's main loop the producer streams the tile's K blocks
// a second time and the consumer recomputes S per block under the final row max / sum, adding each block's
// share of the mass (the simple kernel's two-pass scheme, so both give the same numbers). Q stays resident
// until that pass ends. The second pass uses the K ring only, so K and V keep separate ring positions; with
// kMass = false they are one position, as before, and the kernel is unchanged.
#pragma once

#include "attention_tile.cuh"
#include "kernel_params.cuh"
#include "output_store.cuh"
#include "tile_schedule.cuh"

#include <cute/atom/copy_traits_sm90_tma.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/arch/reg_reconfig.h>

namespace sparvar::attention_cuda {

template <int D>
struct PipelinedKernel {
  static constexpr int kBK = 64;
  static constexpr int kStages = D == 128 ? 3 : 4;
  using Cfg = TileConfig<D, kBK, kStages>;
  static constexpr int kThreads = 384;
  static constexpr int kLanes = 2;

  // Row-major [rows, D] per (batch*head): TMA sees (rows, D, bh).
  using GmemLayout = Layout<Shape<int, Int<D>, int>, Stride<Int<D>, _1, int64_t>>;
  using GmemTensor = decltype(make_tensor(make_gmem_ptr(static_cast<const Element*>(nullptr)), GmemLayout{}));
  using SmemLayoutKStage = decltype(take<0, 2>(typename Cfg::SmemLayoutK{}));
  using TmaQ = decltype(make_tma_copy(SM90_TMA_LOAD{}, GmemTensor{}, typename Cfg::SmemLayoutQ{},
                                      Shape<Int<kTileM>, Int<D>>{}, _1{}));
  using TmaKV = decltype(make_tma_copy(SM90_TMA_LOAD{}, GmemTensor{}, SmemLayoutKStage{},
                                       Shape<Int<kBK>, Int<D>>{}, _1{}));

  struct Params {
    KernelParams p;
    TmaQ tma_q;
    TmaKV tma_k, tma_v;
    int num_tiles;  // (batch*heads) * nq/64 work tiles
    int num_items;  // work items the schedule hands out: num_tiles, unless the shared kernel splits its tail
    int* tile_counter;  // dynamic tile schedule (tile_schedule.cuh); null: static (kernels that support both)
  };

  struct LaneSmem {
    alignas(1024) Element q[Cfg::kQElems];
    alignas(1024) Element k[Cfg::kKVElems * kStages];
    alignas(1024) Element v[Cfg::kKVElems * kStages];
  };
  struct Barriers {
    uint64_t q_full, q_empty;
    uint64_t k_full[kStages], k_empty[kStages], v_full[kStages], v_empty[kStages];
    TileMailbox tiles;  // the lane's tile ids, producer to consumer (kernels that schedule tiles dynamically)
    int k_valid[kStages];  // valid keys of the block in each K stage, from the producer (wide kernel)
  };
  struct Smem {
    LaneSmem lane[kLanes];
    Barriers bar[kLanes];
  };
  static constexpr int kSmemBytes = sizeof(Smem) + 1024;
  static constexpr uint32_t kQBytes = Cfg::kQElems * sizeof(Element);
  static constexpr uint32_t kKVBytes = Cfg::kKVElems * sizeof(Element);
};

// Position in a ring of mbarrier stages: index and the parity to wait for.
template <int kStages>
struct RingState {
  int stage = 0;
  uint32_t phase = 0;
  __device__ void advance() {
    if (++stage == kStages) {
      stage = 0;
      phase ^= 1;
    }
  }
};

// The ring's current position, and the ring moved past it (the next stage a consumer takes).
template <int kStages>
__device__ __forceinline__ RingState<kStages> take_stage(RingState<kStages>& ring) {
  const RingState<kStages> taken = ring;
  ring.advance();
  return taken;
}

struct TileCoord {
  int bh, qtile, row_start, count;  // count: 64-token key blocks to walk (a 128-token block is two)
  __device__ __forceinline__ PostedTile post(int id) const { return {id, count}; }
};

// Valid keys of 64-token key block `block` (k_block 64).
__device__ __forceinline__ int block_valid(const KernelParams& p, int block) {
  return p.k_valid ? p.k_valid[block] : 64;
}

// The 64-token half `i` of the tile's list: its block id in 64-token units and its valid keys.
__device__ __forceinline__ int sub_block(const KernelParams& p, const int* cols, int i) {
  return p.k_block == 64 ? cols[i] : 2 * cols[i >> 1] + (i & 1);
}
__device__ __forceinline__ int sub_block_valid(const KernelParams& p, const int* cols, int i) {
  if (!p.k_valid) return 64;
  if (p.k_block == 64) return block_valid(p, cols[i]);
  const int v = p.k_valid[cols[i >> 1]] - 64 * (i & 1);
  return v < 0 ? 0 : (v > 64 ? 64 : v);
}

// Where work tile `tile` of kRows query rows writes: (batch*head, query tile of kRows rows). No memory access.
// A (batch, head) has ceil(nq / kRows) tiles: 128-row tiles of 64-row query blocks may end with one block.
template <int kRows = kTileM>
__device__ __forceinline__ TileCoord tile_place(const KernelParams& p, int tile) {
  const int qtiles = (p.nq + kRows - 1) / kRows;
  TileCoord t;
  t.bh = tile / qtiles;
  t.qtile = tile % qtiles;
  t.row_start = t.count = 0;
  return t;
}

// Fills t's list: the CSR row of query block qb of t's head (reads the CSR offsets).
__device__ __forceinline__ void read_tile_list(const KernelParams& p, TileCoord& t, int qb) {
  const int row = pattern_row(p, t.bh % p.heads, qb);
  t.row_start = p.row_offsets[row];
  t.count = (p.row_offsets[row + 1] - t.row_start) * (p.k_block / 64);
}

// A 64-row tile and its list (a 128-row query block's list serves both of its 64-row tiles).
__device__ __forceinline__ TileCoord tile_coord(const KernelParams& p, int tile) {
  TileCoord t = tile_place(p, tile);
  read_tile_list(p, t, t.qtile / (p.q_block / kTileM));
  return t;
}

// A consumer thread's wgmma operand views of its lane's Q, K ring (QK^T: A and B) and V ring (PV: B).
template <int D>
__device__ __forceinline__ auto consumer_operands(typename PipelinedKernel<D>::LaneSmem& sm, int tid) {
  using Cfg = typename PipelinedKernel<D>::Cfg;
  Tensor sQ = make_tensor(make_smem_ptr(sm.q), typename Cfg::SmemLayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(sm.k), typename Cfg::SmemLayoutK{});
  Tensor sVt = make_tensor(make_smem_ptr(sm.v), typename Cfg::SmemLayoutVt{});
  auto thr_qk = typename Cfg::MmaQK{}.get_thread_slice(tid);
  auto thr_pv = typename Cfg::MmaPV{}.get_thread_slice(tid);
  return cute::make_tuple(thr_qk.partition_fragment_A(sQ), thr_qk.partition_fragment_B(sK),
                          thr_pv.partition_fragment_B(sVt));
}

// The producer's TMA views of one work tile: its Q tile, every K / V block of its (batch, head) (indexed by block
// id, last mode) and the lane's Q buffer and K / V rings (indexed by stage).
template <int D>
__device__ __forceinline__ auto producer_views(const typename PipelinedKernel<D>::Params& prm,
                                               typename PipelinedKernel<D>::LaneSmem& sm, const TileCoord& t) {
  using K = PipelinedKernel<D>;
  using Cfg = typename K::Cfg;
  const KernelParams& p = prm.p;
  const int bh_count = prm.num_tiles / (p.nq / kTileM);
  Tensor mQ = prm.tma_q.get_tma_tensor(make_shape(p.nq, Int<D>{}, bh_count));
  Tensor mK = prm.tma_k.get_tma_tensor(make_shape(p.nk, Int<D>{}, bh_count));
  Tensor mV = prm.tma_v.get_tma_tensor(make_shape(p.nk, Int<D>{}, bh_count));
  Tensor sQ = make_tensor(make_smem_ptr(sm.q), typename Cfg::SmemLayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(sm.k), typename Cfg::SmemLayoutK{});
  Tensor sV = make_tensor(make_smem_ptr(sm.v), typename Cfg::SmemLayoutV{});
  Tensor gQ = local_tile(mQ(_, _, t.bh), Shape<Int<kTileM>, Int<D>>{}, make_coord(t.qtile, 0));
  Tensor gK = local_tile(mK(_, _, t.bh), Shape<Int<K::kBK>, Int<D>>{}, make_coord(_, 0));  // (BK, D, blocks)
  Tensor gV = local_tile(mV(_, _, t.bh), Shape<Int<K::kBK>, Int<D>>{}, make_coord(_, 0));
  auto [tQg, tQs] = tma_partition(prm.tma_q, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sQ), group_modes<0, 2>(gQ));
  auto [tKg, tKs] = tma_partition(prm.tma_k, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sK), group_modes<0, 2>(gK));
  auto [tVg, tVs] = tma_partition(prm.tma_v, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sV), group_modes<0, 2>(gV));
  return cute::make_tuple(tQg, tQs, tKg, tKs, tVg, tVs);
}

template <int D, bool kMass>
__device__ void pipelined_producer(const typename PipelinedKernel<D>::Params& prm,
                                   typename PipelinedKernel<D>::LaneSmem& sm,
                                   typename PipelinedKernel<D>::Barriers& bar, int lane_slot, int num_slots) {
  using K = PipelinedKernel<D>;
  using Barrier = cutlass::arch::ClusterBarrier;
  using TxBarrier = cutlass::arch::ClusterTransactionBarrier;
  const KernelParams& p = prm.p;

  // K and V ring positions: one and the same without block mass, apart with it (the mass pass loads K only).
  RingState<K::kStages> kring, vring_own;
  RingState<K::kStages>& vring = kMass ? vring_own : kring;
  uint32_t q_phase = 0;
  for (int tile = lane_slot; tile < prm.num_tiles; tile += num_slots) {
    const TileCoord t = tile_coord(p, tile);
    if (t.count == 0) continue;
    auto [tQg, tQs, tKg, tKs, tVg, tVs] = producer_views<D>(prm, sm, t);
    const int* cols = p.col_blocks + t.row_start;
    for (int i = 0; i < t.count; ++i) {
      const int kb = sub_block(p, cols, i);
      const int s = kring.stage;
      Barrier::wait(&bar.k_empty[s], kring.phase ^ 1);
      TxBarrier::arrive_and_expect_tx(&bar.k_full[s], K::kKVBytes);
      copy(prm.tma_k.with(bar.k_full[s]), tKg(_, kb), tKs(_, s));
      if (i == 0) {  // Q after K0: the consumer frees Q only at its previous tile's last QK^T
        Barrier::wait(&bar.q_empty, q_phase ^ 1);
        TxBarrier::arrive_and_expect_tx(&bar.q_full, K::kQBytes);
        copy(prm.tma_q.with(bar.q_full), tQg, tQs);
        q_phase ^= 1;
      }
      const int vs = vring.stage;
      Barrier::wait(&bar.v_empty[vs], vring.phase ^ 1);
      TxBarrier::arrive_and_expect_tx(&bar.v_full[vs], K::kKVBytes);
      copy(prm.tma_v.with(bar.v_full[vs]), tVg(_, kb), tVs(_, vs));
      kring.advance();
      if constexpr (kMass) vring.advance();
    }
    if constexpr (kMass) {  // the mass pass: the same K blocks again
      for (int i = 0; i < t.count; ++i) {
        const int s = kring.stage;
        Barrier::wait(&bar.k_empty[s], kring.phase ^ 1);
        TxBarrier::arrive_and_expect_tx(&bar.k_full[s], K::kKVBytes);
        copy(prm.tma_k.with(bar.k_full[s]), tKg(_, sub_block(p, cols, i)), tKs(_, s));
        kring.advance();
      }
    }
  }
}

// The block-mass pass of one tile (kMass): S again per listed block, now under the final row max and sum;
// each warp adds its rows' share to the block's entry (a 128-row query block is two tiles adding into one
// entry, a 128-token key block two halves). Releases Q at its last QK^T.
template <int D, class Ring, class TQ, class TK, class TS>
__device__ __forceinline__ void block_mass_pass(const KernelParams& p, typename PipelinedKernel<D>::Barriers& bar,
                                                const TileCoord& t, Ring& kring, const RowState& st,
                                                const float inv_sum[2], TQ const& tSrQ, TK const& tSrK, TS& tSrS) {
  using Barrier = cutlass::arch::ClusterBarrier;
  constexpr int BK = PipelinedKernel<D>::kBK;
  typename PipelinedKernel<D>::Cfg::MmaQK mma_qk;
  const int tid = threadIdx.x % 128, lane = tid % 32, warp = tid / 32;
  const int tiles_per_qblock = p.q_block / kTileM;
  const int qb = t.qtile / tiles_per_qblock, qsub = t.qtile % tiles_per_qblock;
  const int q_valid = p.q_valid ? p.q_valid[qb] : p.q_block;
  const int row0 = qsub * kTileM + 16 * warp + lane / 4;
  const bool row_valid[2] = {row0 < q_valid, row0 + 8 < q_valid};
  const float inv_valid = q_valid > 0 ? 1.f / q_valid : 0.f;
  const int halves_shift = p.k_block == 128 ? 1 : 0;
  float* mass = p.block_mass + mass_base(p, t.bh / p.heads, t.bh % p.heads) + t.row_start;
  const int* cols = p.col_blocks + t.row_start;
  for (int i = 0; i < t.count; ++i) {
    const int s = kring.stage;
    Barrier::wait(&bar.k_full[s], kring.phase);
    warpgroup_gemm<true, false>(mma_qk, tSrQ, tSrK(_, _, _, s), tSrS);
    Barrier::arrive(&bar.k_empty[s]);
    if (i + 1 == t.count) Barrier::arrive(&bar.q_empty);
    mask_keys<BK>(tSrS, sub_block_valid(p, cols, i), lane);
    const float part = warp_sum(block_mass_partial<BK>(tSrS, st, inv_sum, row_valid, p.scale_log2));
    if (lane == 0) atomicAdd(mass + (i >> halves_shift), part * inv_valid);
    kring.advance();
  }
}

template <int D, bool kMass>
__device__ void pipelined_consumer(const typename PipelinedKernel<D>::Params& prm,
                                   typename PipelinedKernel<D>::LaneSmem& sm,
                                   typename PipelinedKernel<D>::Barriers& bar, int lane_slot, int num_slots) {
  using K = PipelinedKernel<D>;
  using Cfg = typename K::Cfg;
  using Barrier = cutlass::arch::ClusterBarrier;
  constexpr int BK = K::kBK;
  const KernelParams& p = prm.p;
  const int tid = threadIdx.x % 128, lane = tid % 32;

  typename Cfg::MmaQK mma_qk;
  typename Cfg::MmaPV mma_pv;
  auto [tSrQ, tSrK, tOrV] = consumer_operands<D>(sm, tid);
  Tensor tSrS = partition_fragment_C(mma_qk, Shape<Int<kTileM>, Int<BK>>{});
  Tensor tOrO = partition_fragment_C(mma_pv, Shape<Int<kTileM>, Int<D>>{});

  // The producer's ring positions, mirrored (see pipelined_producer).
  RingState<K::kStages> kring, vring_own;
  RingState<K::kStages>& vring = kMass ? vring_own : kring;
  uint32_t q_phase = 0;
  for (int tile = lane_slot; tile < prm.num_tiles; tile += num_slots) {
    const TileCoord t = tile_coord(p, tile);
    clear(tOrO);
    RowState st;
    const int* cols = p.col_blocks + t.row_start;
    if (t.count > 0) {
      // Block 0: S = QK^T, softmax. Then per block i: issue S_i = QK_i^T and O += P_{i-1} V_{i-1} back to back,
      // do block i's softmax while the PV wgmma runs, rescale O once it has finished.
      Barrier::wait(&bar.q_full, q_phase);
      Barrier::wait(&bar.k_full[kring.stage], kring.phase);
      warpgroup_gemm<true, false>(mma_qk, tSrQ, tSrK(_, _, _, kring.stage), tSrS);
      Barrier::arrive(&bar.k_empty[kring.stage]);
      if (!kMass && t.count == 1) Barrier::arrive(&bar.q_empty);
      mask_keys<BK>(tSrS, sub_block_valid(p, cols, 0), lane);
      float alpha[2];
      softmax_update<BK>(tSrS, st, alpha, p.scale_log2);
      Tensor tOrP = make_fragment_like<Element>(tSrS);
      convert_to_bf16(tSrS, tOrP);
      Tensor tOrPa = make_tensor(tOrP.data(), accumulator_as_a_operand(tSrS.layout()));
      RingState<K::kStages> prev = vring;  // V position of the block whose PV is pending
      kring.advance();
      if constexpr (kMass) vring.advance();
      for (int i = 1; i < t.count; ++i) {
        const int s = kring.stage;
        const int valid = sub_block_valid(p, cols, i);
        Barrier::wait(&bar.k_full[s], kring.phase);
        issue_gemm<true, false>(mma_qk, tSrQ, tSrK(_, _, _, s), tSrS);
        Barrier::wait(&bar.v_full[prev.stage], prev.phase);
        issue_gemm<false, true>(mma_pv, tOrPa, tOrV(_, _, _, prev.stage), tOrO);
        warpgroup_wait<1>();  // S_i is ready; PV_{i-1} may still run
        warpgroup_fence_operand(tSrS);
        Barrier::arrive(&bar.k_empty[s]);
        if (!kMass && i + 1 == t.count) Barrier::arrive(&bar.q_empty);
        mask_keys<BK>(tSrS, valid, lane);
        softmax_update<BK>(tSrS, st, alpha, p.scale_log2);
        warpgroup_wait<0>();
        warpgroup_fence_operand(tOrO);
        warpgroup_fence_operand(tOrPa);
        Barrier::arrive(&bar.v_empty[prev.stage]);
        rescale_rows(tOrO, alpha);
        convert_to_bf16(tSrS, tOrP);
        prev = vring;
        kring.advance();
        if constexpr (kMass) vring.advance();
      }
      Barrier::wait(&bar.v_full[prev.stage], prev.phase);
      warpgroup_gemm<false, true>(mma_pv, tOrPa, tOrV(_, _, _, prev.stage), tOrO);
      Barrier::arrive(&bar.v_empty[prev.stage]);
    }
    if (t.count > 0) q_phase ^= 1;
    float inv_sum[2];
    finish_rows(st, inv_sum);
    store_scaled_tile<D>(p, t.bh, t.qtile, tOrO, inv_sum, tid);
    if constexpr (kMass) {
      if (t.count > 0) block_mass_pass<D>(p, bar, t, kring, st, inv_sum, tSrQ, tSrK, tSrS);
    }
  }
}

// Aligns the dynamic shared memory and initialises every lane's mbarriers (one producer arrival + TMA bytes for
// "full", the consumer warpgroup's 128 threads for "empty"). Called by all threads: ends with __syncthreads.
template <int D>
__device__ __forceinline__ typename PipelinedKernel<D>::Smem& lane_smem(char* smem_raw) {
  char* base = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  return *reinterpret_cast<typename PipelinedKernel<D>::Smem*>(base);
}
template <int D>
__device__ __forceinline__ void init_lane_barriers(typename PipelinedKernel<D>::Smem& smem) {
  using K = PipelinedKernel<D>;
  if (threadIdx.x == 0) {
    for (int c = 0; c < K::kLanes; ++c) {
      auto& b = smem.bar[c];
      cutlass::arch::ClusterBarrier::init(&b.q_full, 1);
      cutlass::arch::ClusterBarrier::init(&b.q_empty, 128);
      for (int s = 0; s < K::kStages; ++s) {
        cutlass::arch::ClusterBarrier::init(&b.k_full[s], 1);
        cutlass::arch::ClusterBarrier::init(&b.v_full[s], 1);
        cutlass::arch::ClusterBarrier::init(&b.k_empty[s], 128);
        cutlass::arch::ClusterBarrier::init(&b.v_empty[s], 128);
      }
      init_tile_mailbox(b.tiles);
    }
    cutlass::arch::fence_barrier_init();
  }
  __syncthreads();
}

// The body of a kernel on this CTA layout: barriers set up, then warpgroup 0 gives up registers and its warp c
// (one elected thread) runs lane c's producer, warpgroup 1 + c takes registers and runs lane c's consumer.
// produce / consume: (LaneSmem&, Barriers&, lane_slot, num_slots).
template <int D, class Produce, class Consume>
__device__ __forceinline__ void run_lanes(char* smem_raw, Produce produce, Consume consume) {
  using K = PipelinedKernel<D>;
  auto& smem = lane_smem<D>(smem_raw);
  const int warp = threadIdx.x / 32;
  const int warpgroup = threadIdx.x / 128;

  init_lane_barriers<D>(smem);

  const int num_slots = gridDim.x * K::kLanes;
  if (warpgroup == 0) {
    cutlass::arch::warpgroup_reg_dealloc<40>();
    if (warp < K::kLanes && cute::elect_one_sync())
      produce(smem.lane[warp], smem.bar[warp], blockIdx.x * K::kLanes + warp, num_slots);
  } else {
    cutlass::arch::warpgroup_reg_alloc<232>();
    // Warp-uniform to ptxas (a lane-0 broadcast): the lane's rings, and so every wgmma descriptor made from them,
    // then stay in uniform registers (as threadIdx.x / 128 they cost 62-94 R2UR moves per wide consumer loop).
    const int c = cutlass::canonical_warp_group_idx() - 1;
    consume(smem.lane[c], smem.bar[c], blockIdx.x * K::kLanes + c, num_slots);
  }
}

template <int D, bool kMass>
__global__ void __launch_bounds__(384, 1)
    pipelined_block_sparse_kernel(const __grid_constant__ typename PipelinedKernel<D>::Params prm) {
  extern __shared__ char smem_raw[];
  run_lanes<D>(
      smem_raw, [&](auto& sm, auto& bar, int slot, int slots) { pipelined_producer<D, kMass>(prm, sm, bar, slot, slots); },
      [&](auto& sm, auto& bar, int slot, int slots) { pipelined_consumer<D, kMass>(prm, sm, bar, slot, slots); });
}

}  // namespace sparvar::attention_cuda
