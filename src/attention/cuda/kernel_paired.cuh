// Phase-3 kernel (v3, "paired"): one K/V stream per CTA shared by both consumer warpgroups.
//
// v2 gives each consumer warpgroup its own 64-row query tile and its own K/V ring, so every 64x64 block moves
// 32 KB from L2 for 2.1 MFLOP. Here a work tile is 128 query rows = two adjacent 64-row query blocks of one
// (batch, head): consumer warpgroup c (c = 0, 1) owns rows [64c, 64c + 64). The producer warp streams the UNION
// of the two CSR lists (merged on the fly, ascending) through one ring of kStages K/V stages; each stage's
// empty barrier counts both consumers. For q_block = 128 both halves read the same CSR row, so the union is the
// list itself and every block is used by both (dense and 128x128: half the L2 traffic of v2).
//
// A consumer walks the union and splits it into runs of blocks in its own list. A block not in its list is
// skipped whole (wait for the stage to fill, release it, no math). Inside a run the v2b overlap is kept:
// QK^T of block i and PV of block i-1 are issued back to back and block i's softmax runs under the PV. Every
// wgmma sequence is unconditional inside its loop body and each body waits for all its wgmmas before any
// branch, so no wgmma is in flight across data-dependent control flow (ptxas keeps them asynchronous).
// Q (both halves) is loaded after the tile's first K stage; each consumer frees its Q at its last own QK^T.
// Block mass is not computed here (the decision scale runs the pipelined kernel; block_mass is rejected here).
#pragma once

#include "attention_tile.cuh"
#include "kernel_params.cuh"

#include <cute/atom/copy_traits_sm90_tma.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/arch/reg_reconfig.h>

#include <climits>

namespace sparvar::attention_cuda {

template <int D>
struct PairedKernel {
  static constexpr int kBK = 64;
  static constexpr int kStages = D == 128 ? 5 : 8;
  using Cfg = TileConfig<D, kBK, kStages>;
  static constexpr int kThreads = 384;
  static constexpr int kHalves = 2;  // consumer warpgroups = 64-row halves of the 128-row tile

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
    int bh;         // batch * heads
    int qtiles;     // 64-row query blocks per (batch, head) = nq / 64
    int pairs;      // 128-row work tiles per (batch, head) = ceil(qtiles / 2)
    int num_tiles;  // bh * pairs
  };

  struct Smem {
    alignas(1024) Element q[kHalves][Cfg::kQElems];
    alignas(1024) Element k[Cfg::kKVElems * kStages];
    alignas(1024) Element v[Cfg::kKVElems * kStages];
    uint64_t q_full, q_empty;
    uint64_t k_full[kStages], k_empty[kStages], v_full[kStages], v_empty[kStages];
  };
  static constexpr int kSmemBytes = sizeof(Smem) + 1024;
  static constexpr uint32_t kQBytes = Cfg::kQElems * sizeof(Element);
  static constexpr uint32_t kKVBytes = Cfg::kKVElems * sizeof(Element);
};

// The work tile `tile`: (batch*head, pair of 64-row query blocks) and the two halves' CSR lists.
struct PairTile {
  int bh, qtile0;          // first 64-row query block of the pair
  bool has_second;         // false for the last pair when nq/64 is odd
  const int* list[2];      // CSR entries (k_block units) of half 0 / half 1
  int count[2];            // entries in each list (0 for an absent half)
};

__device__ __forceinline__ PairTile pair_tile(const KernelParams& p, int tile, int qtiles, int pairs) {
  PairTile t;
  t.bh = tile / pairs;
  t.qtile0 = 2 * (tile % pairs);
  t.has_second = t.qtile0 + 1 < qtiles;
  const int head = t.bh % p.heads;
  const int per_block = p.q_block / kTileM;  // 64-row tiles per query block: 1 or 2
  CUTE_UNROLL
  for (int c = 0; c < 2; ++c) {
    if (c == 1 && !t.has_second) {
      t.list[1] = t.list[0];
      t.count[1] = 0;
      continue;
    }
    const int row = pattern_row(p, head, (t.qtile0 + c) / per_block);
    const int start = p.row_offsets[row];
    t.list[c] = p.col_blocks + start;
    t.count[c] = p.row_offsets[row + 1] - start;
  }
  return t;
}

// Walks the ascending union of two ascending lists in 64-token steps (a 128-token key block is two steps).
struct UnionWalk {
  const int* a;
  const int* b;
  int na, nb, ia, ib;
  int ca, cb;       // current heads of a / b (INT_MAX once exhausted)
  int col;          // current union entry (k_block units), INT_MAX at the end
  bool in_a, in_b;  // the entry is listed by half 0 / half 1
  int step, steps;  // 64-token step inside the entry, steps per entry

  __device__ __forceinline__ void init(const PairTile& t, int k_block) {
    a = t.list[0];
    b = t.list[1];
    na = t.count[0];
    nb = t.count[1];
    ia = ib = 0;
    ca = na > 0 ? a[0] : INT_MAX;
    cb = nb > 0 ? b[0] : INT_MAX;
    step = 0;
    steps = k_block / 64;
    pick();
  }
  __device__ __forceinline__ void pick() {
    col = min(ca, cb);
    in_a = ca == col;
    in_b = cb == col;
  }
  __device__ __forceinline__ bool valid() const { return col != INT_MAX; }
  __device__ __forceinline__ bool mine(int half) const { return half == 0 ? in_a : in_b; }
  __device__ __forceinline__ int sub_block() const { return col * steps + step; }
  __device__ __forceinline__ int valid_keys(const KernelParams& p) const {
    if (!p.k_valid) return 64;
    const int v = p.k_valid[col] - 64 * step;
    return v < 0 ? 0 : (v > 64 ? 64 : v);
  }
  __device__ __forceinline__ void next() {
    if (++step < steps) return;
    step = 0;
    if (in_a) {
      ++ia;
      ca = ia < na ? a[ia] : INT_MAX;
    }
    if (in_b) {
      ++ib;
      cb = ib < nb ? b[ib] : INT_MAX;
    }
    pick();
  }
};

// Ping-pong between the two consumer warpgroups (named barriers 8 and 9, 256 threads): on a block both halves
// use, warpgroup c waits for its turn, issues its wgmmas, then hands the turn to the other, so one warpgroup's
// softmax runs under the other's wgmmas instead of both waiting on the same stage and computing in lockstep.
// Predicated (no branch), so no wgmma sits in a divergent path. Blocks of one half only take no turn; both
// halves walk the same union, so their turn counts stay equal.
__device__ __forceinline__ void pingpong_wait(bool on, int half) {
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %0, 0;\n @p bar.sync %1, 256;\n}\n" ::"r"(int(on)),
               "r"(8 + half)
               : "memory");
}
__device__ __forceinline__ void pingpong_pass(bool on, int half) {
  asm volatile("{\n .reg .pred p;\n setp.ne.b32 p, %0, 0;\n @p bar.arrive %1, 256;\n}\n" ::"r"(int(on)),
               "r"(8 + (1 - half))
               : "memory");
}

template <int kStages>
struct PairRing {
  int stage = 0;
  uint32_t phase = 0;
  __device__ void advance() {
    if (++stage == kStages) {
      stage = 0;
      phase ^= 1;
    }
  }
};

template <int D>
__device__ void paired_producer(const typename PairedKernel<D>::Params& prm, typename PairedKernel<D>::Smem& sm) {
  using K = PairedKernel<D>;
  using Cfg = typename K::Cfg;
  using Barrier = cutlass::arch::ClusterBarrier;
  using TxBarrier = cutlass::arch::ClusterTransactionBarrier;
  const KernelParams& p = prm.p;
  Tensor mQ = prm.tma_q.get_tma_tensor(make_shape(p.nq, Int<D>{}, prm.bh));
  Tensor mK = prm.tma_k.get_tma_tensor(make_shape(p.nk, Int<D>{}, prm.bh));
  Tensor mV = prm.tma_v.get_tma_tensor(make_shape(p.nk, Int<D>{}, prm.bh));
  Tensor sK = make_tensor(make_smem_ptr(sm.k), typename Cfg::SmemLayoutK{});
  Tensor sV = make_tensor(make_smem_ptr(sm.v), typename Cfg::SmemLayoutV{});

  PairRing<K::kStages> ring;
  uint32_t q_phase = 0;
  for (int tile = blockIdx.x; tile < prm.num_tiles; tile += gridDim.x) {
    const PairTile t = pair_tile(p, tile, prm.qtiles, prm.pairs);
    UnionWalk w;
    w.init(t, p.k_block);
    if (!w.valid()) continue;
    Tensor gK = local_tile(mK(_, _, t.bh), Shape<Int<K::kBK>, Int<D>>{}, make_coord(_, 0));  // (BK, D, blocks)
    Tensor gV = local_tile(mV(_, _, t.bh), Shape<Int<K::kBK>, Int<D>>{}, make_coord(_, 0));
    auto [tKg, tKs] = tma_partition(prm.tma_k, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sK), group_modes<0, 2>(gK));
    auto [tVg, tVs] = tma_partition(prm.tma_v, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sV), group_modes<0, 2>(gV));
    bool first = true;
    for (; w.valid(); w.next()) {
      const int kb = w.sub_block();
      const int s = ring.stage;
      Barrier::wait(&sm.k_empty[s], ring.phase ^ 1);
      TxBarrier::arrive_and_expect_tx(&sm.k_full[s], K::kKVBytes);
      copy(prm.tma_k.with(sm.k_full[s]), tKg(_, kb), tKs(_, s));
      if (first) {  // Q after K0: the consumers free Q only at their previous tile's last own QK^T
        first = false;
        Barrier::wait(&sm.q_empty, q_phase ^ 1);
        TxBarrier::arrive_and_expect_tx(&sm.q_full, K::kQBytes * (t.has_second ? 2 : 1));
        Tensor gQ = local_tile(mQ(_, _, t.bh), Shape<Int<kTileM>, Int<D>>{}, make_coord(_, 0));  // (64, D, qtiles)
        CUTE_UNROLL
        for (int c = 0; c < 2; ++c) {
          if (c == 1 && !t.has_second) break;
          Tensor sQ = make_tensor(make_smem_ptr(sm.q[c]), typename Cfg::SmemLayoutQ{});
          auto [tQg, tQs] =
              tma_partition(prm.tma_q, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sQ), group_modes<0, 2>(gQ));
          copy(prm.tma_q.with(sm.q_full), tQg(_, t.qtile0 + c), tQs);
        }
        q_phase ^= 1;
      }
      Barrier::wait(&sm.v_empty[s], ring.phase ^ 1);
      TxBarrier::arrive_and_expect_tx(&sm.v_full[s], K::kKVBytes);
      copy(prm.tma_v.with(sm.v_full[s]), tVg(_, kb), tVs(_, s));
      ring.advance();
    }
  }
}

template <int D>
__device__ void paired_consumer(const typename PairedKernel<D>::Params& prm, typename PairedKernel<D>::Smem& sm,
                                int half) {
  using K = PairedKernel<D>;
  using Cfg = typename K::Cfg;
  using Barrier = cutlass::arch::ClusterBarrier;
  constexpr int BK = K::kBK;
  const KernelParams& p = prm.p;
  const int tid = threadIdx.x % 128, lane = tid % 32;

  Tensor sQ = make_tensor(make_smem_ptr(sm.q[half]), typename Cfg::SmemLayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(sm.k), typename Cfg::SmemLayoutK{});
  Tensor sVt = make_tensor(make_smem_ptr(sm.v), typename Cfg::SmemLayoutVt{});
  typename Cfg::MmaQK mma_qk;
  typename Cfg::MmaPV mma_pv;
  auto thr_qk = mma_qk.get_thread_slice(tid);
  auto thr_pv = mma_pv.get_thread_slice(tid);
  Tensor tSrQ = thr_qk.partition_fragment_A(sQ);
  Tensor tSrK = thr_qk.partition_fragment_B(sK);
  Tensor tOrV = thr_pv.partition_fragment_B(sVt);
  Tensor tSrS = partition_fragment_C(mma_qk, Shape<Int<kTileM>, Int<BK>>{});
  Tensor tOrO = partition_fragment_C(mma_pv, Shape<Int<kTileM>, Int<D>>{});
  Tensor tOrP = make_fragment_like<Element>(tSrS);
  Tensor tOrPa = make_tensor(tOrP.data(), accumulator_as_a_operand(tSrS.layout()));

  PairRing<K::kStages> ring;
  uint32_t q_phase = 0;
  pingpong_pass(half == 1, half);  // half 0 takes the first turn
  for (int tile = blockIdx.x; tile < prm.num_tiles; tile += gridDim.x) {
    const PairTile t = pair_tile(p, tile, prm.qtiles, prm.pairs);
    UnionWalk w;
    w.init(t, p.k_block);
    const bool present = half == 0 || t.has_second;
    clear(tOrO);
    RowState st;
    int own_left = (half == 0 ? t.count[0] : t.count[1]) * w.steps;  // own 64-token steps still to multiply by Q
    if (w.valid()) {  // both lists empty: the producer skips the tile (no Q load); the output is zeros
      Barrier::wait(&sm.q_full, q_phase);
      q_phase ^= 1;
      if (own_left == 0) Barrier::arrive(&sm.q_empty);
    }
    while (w.valid()) {
      // Blocks of the other half only: let them pass.
      while (w.valid() && !w.mine(half)) {
        const int s = ring.stage;
        Barrier::wait(&sm.k_full[s], ring.phase);
        Barrier::arrive(&sm.k_empty[s]);
        Barrier::wait(&sm.v_full[s], ring.phase);
        Barrier::arrive(&sm.v_empty[s]);
        ring.advance();
        w.next();
      }
      if (!w.valid()) break;
      // A run of own blocks. Its first block: S = QK^T, softmax, rescale what O holds so far.
      {
        const int s = ring.stage;
        const int valid = w.valid_keys(p);
        const bool both = w.in_a && w.in_b;
        Barrier::wait(&sm.k_full[s], ring.phase);
        pingpong_wait(both, half);
        issue_gemm<true, false>(mma_qk, tSrQ, tSrK(_, _, _, s), tSrS);
        pingpong_pass(both, half);
        warpgroup_wait<0>();
        warpgroup_fence_operand(tSrS);
        Barrier::arrive(&sm.k_empty[s]);
        if (--own_left == 0) Barrier::arrive(&sm.q_empty);
        mask_keys<BK>(tSrS, valid, lane);
        float alpha[2];
        softmax_update<BK>(tSrS, st, alpha, p.scale_log2);
        rescale_rows(tOrO, alpha);
        convert_to_bf16(tSrS, tOrP);
      }
      PairRing<K::kStages> prev = ring;
      ring.advance();
      w.next();
      while (w.valid() && w.mine(half)) {
        const int s = ring.stage;
        const int valid = w.valid_keys(p);
        const bool both = w.in_a && w.in_b;
        Barrier::wait(&sm.k_full[s], ring.phase);
        Barrier::wait(&sm.v_full[prev.stage], prev.phase);
        pingpong_wait(both, half);
        issue_gemm<true, false>(mma_qk, tSrQ, tSrK(_, _, _, s), tSrS);
        issue_gemm<false, true>(mma_pv, tOrPa, tOrV(_, _, _, prev.stage), tOrO);
        pingpong_pass(both, half);
        warpgroup_wait<1>();  // S_i is ready; PV_{i-1} may still run
        warpgroup_fence_operand(tSrS);
        Barrier::arrive(&sm.k_empty[s]);
        if (--own_left == 0) Barrier::arrive(&sm.q_empty);
        mask_keys<BK>(tSrS, valid, lane);
        float alpha[2];
        softmax_update<BK>(tSrS, st, alpha, p.scale_log2);
        warpgroup_wait<0>();
        warpgroup_fence_operand(tOrO);
        warpgroup_fence_operand(tOrPa);
        Barrier::arrive(&sm.v_empty[prev.stage]);
        rescale_rows(tOrO, alpha);
        convert_to_bf16(tSrS, tOrP);
        prev = ring;
        ring.advance();
        w.next();
      }
      // End of the run: the last block's PV.
      Barrier::wait(&sm.v_full[prev.stage], prev.phase);
      warpgroup_gemm<false, true>(mma_pv, tOrPa, tOrV(_, _, _, prev.stage), tOrO);
      Barrier::arrive(&sm.v_empty[prev.stage]);
    }
    if (!present) continue;
    float inv_sum[2];
    finish_rows(st, inv_sum);
    Tensor mO = make_tensor(make_gmem_ptr(reinterpret_cast<Element*>(p.out) + static_cast<int64_t>(t.bh) * p.nq * D),
                            make_shape(p.nq, Int<D>{}), make_stride(Int<D>{}, _1{}));
    Tensor gO = local_tile(mO, Shape<Int<kTileM>, Int<D>>{}, make_coord(t.qtile0 + half, 0));
    Tensor out = make_fragment_like<Element>(tOrO);
    CUTE_UNROLL
    for (int e = 0; e < size(tOrO); ++e) out(e) = Element(tOrO(e) * inv_sum[(e / 2) % 2]);
    copy(out, thr_pv.partition_C(gO));
  }
}

template <int D>
__global__ void __launch_bounds__(384, 1)
    paired_block_sparse_kernel(const __grid_constant__ typename PairedKernel<D>::Params prm) {
  using K = PairedKernel<D>;
  extern __shared__ char smem_raw[];
  char* base = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  auto& smem = *reinterpret_cast<typename K::Smem*>(base);
  const int warpgroup = threadIdx.x / 128;

  if (threadIdx.x == 0) {
    cutlass::arch::ClusterBarrier::init(&smem.q_full, 1);
    cutlass::arch::ClusterBarrier::init(&smem.q_empty, 256);
    for (int s = 0; s < K::kStages; ++s) {
      cutlass::arch::ClusterBarrier::init(&smem.k_full[s], 1);
      cutlass::arch::ClusterBarrier::init(&smem.v_full[s], 1);
      cutlass::arch::ClusterBarrier::init(&smem.k_empty[s], 256);
      cutlass::arch::ClusterBarrier::init(&smem.v_empty[s], 256);
    }
    cutlass::arch::fence_barrier_init();
  }
  __syncthreads();

  if (warpgroup == 0) {
    cutlass::arch::warpgroup_reg_dealloc<40>();
    if (threadIdx.x / 32 == 0 && cute::elect_one_sync()) paired_producer<D>(prm, smem);
  } else {
    cutlass::arch::warpgroup_reg_alloc<232>();
    paired_consumer<D>(prm, smem, warpgroup - 1);
  }
}

}  // namespace sparvar::attention_cuda
