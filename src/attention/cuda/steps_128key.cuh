// The 128-key step shared by the wide (v4, kernel_wide.cuh) and shared (v5, kernel_shared.cuh) kernels: the
// producer's walk over one tile's list and a consumer warpgroup's loop over its tiles. The kernels differ in the CTA
// around them (two independent lanes with 3-stage rings vs one stream read by two consumers with 6-stage rings), in
// how a tile id maps to its list and output rows, and in where the step's second PV is issued (kPvTogether).
//
// Step j of a tile takes sub-blocks 2j and 2j+1 (a 128-token key block is exactly one step). An odd count ends with
// its last block loaded a second time and fully masked, so every step has the same shape and no wgmma is in flight
// across a data-dependent branch (ptxas would serialise them).
#pragma once

#include "pair_lists.cuh"
#include "split_tail_store.cuh"

#include <cuda/ptx>

namespace sparvar::attention_cuda {

// Loads a tile's `steps` 128-key units into the K and V rings, K of step j before V of step j-1, and calls load_q()
// right after the tile's first K block. next_unit(j, s0, s1) gives step j's two 64-token blocks (called for j = 0, 1,
// ... in turn). tKg / tVg: the (batch, head)'s blocks (last mode: block id); tKs / tVs: ring stages.
// Barriers: any struct with k_full / k_empty / v_full / v_empty arrays of kStages and an int k_valid[kStages], where
// each K stage's count of valid keys is published with it (the consumers then read no list or k_valid from global
// memory: those dependent loads sat between a step's QK^T and its softmax, and at every tile start).
template <int kStages, class Bar, class Tma, class KG, class KS, class VG, class VS, class NextUnit, class LoadQ>
__device__ __forceinline__ void produce_128key_steps(int steps, Bar& bar, RingState<kStages>& kring,
                                                     RingState<kStages>& vring, const Tma& tma_k, const Tma& tma_v,
                                                     const KG& tKg, const KS& tKs, const VG& tVg, const VS& tVs,
                                                     uint32_t stage_bytes, NextUnit next_unit, LoadQ load_q) {
  using Barrier = cutlass::arch::ClusterBarrier;
  using TxBarrier = cutlass::arch::ClusterTransactionBarrier;
  auto load_k = [&](const SubBlock& b) {
    const int s = kring.stage;
    Barrier::wait(&bar.k_empty[s], kring.phase ^ 1);
    publish_shared(&bar.k_valid[s], b.valid);
    TxBarrier::arrive_and_expect_tx(&bar.k_full[s], stage_bytes);  // release: the count is visible with the data
    copy(tma_k.with(bar.k_full[s]), tKg(_, b.block), tKs(_, s));
    kring.advance();
  };
  auto load_v = [&](int block) {
    const int s = vring.stage;
    Barrier::wait(&bar.v_empty[s], vring.phase ^ 1);
    TxBarrier::arrive_and_expect_tx(&bar.v_full[s], stage_bytes);
    copy(tma_v.with(bar.v_full[s]), tVg(_, block), tVs(_, s));
    vring.advance();
  };
  int prev0 = 0, prev1 = 0;  // step j-1's blocks, whose V comes after step j's K
  for (int j = 0; j <= steps; ++j) {
    SubBlock s0{prev0, 0}, s1{prev1, 0};
    if (j < steps) {
      next_unit(j, s0, s1);
      load_k(s0);
      if (j == 0) load_q();  // after K0: the consumers free Q after their previous tile's first QK^T
      load_k(s1);
    }
    if (j > 0) {
      load_v(prev0);
      load_v(prev1);
    }
    prev0 = s0.block;
    prev1 = s1.block;
  }
}

// One tile's list (TileCoord) through produce_128key_steps: step j takes sub-blocks 2j and 2j+1; an odd count ends
// with its last block again, fully masked.
template <int kStages, class Bar, class Tma, class KG, class KS, class VG, class VS, class LoadQ>
__device__ __forceinline__ void produce_128key_tile(const KernelParams& p, const TileCoord& t, Bar& bar,
                                                    RingState<kStages>& kring, RingState<kStages>& vring,
                                                    const Tma& tma_k, const Tma& tma_v, const KG& tKg,
                                                    const KS& tKs, const VG& tVg, const VS& tVs,
                                                    uint32_t stage_bytes, LoadQ load_q) {
  const int* cols = p.col_blocks + t.row_start;
  const int last = t.count - 1;
  auto sub = [&](int i) {  // sub-block i of the padded sequence: past the list, the last block again with no keys
    return SubBlock{sub_block(p, cols, i < last ? i : last), i <= last ? sub_block_valid(p, cols, i) : 0};
  };
  produce_128key_steps((t.count + 1) / 2, bar, kring, vring, tma_k, tma_v, tKg, tKs, tVg, tVs, stage_bytes,
                       [&](int j, SubBlock& s0, SubBlock& s1) {
                         s0 = sub(2 * j);
                         s1 = sub(2 * j + 1);
                       },
                       load_q);
}

// Work items that are whole tiles: item i is the mailbox entry i.
struct WholeTiles {
  __device__ __forceinline__ int operator()(int item, int k) const { return k == 0 ? item : -1; }
};

// A producer's walk over its work items (tile_schedule.cuh): from `first`, then the next per the schedule. An item is
// one or two mailbox entries (segment_of(item, k) -> entry id, or -1 past its last; split_tail.h), each posted to the
// consumers with its list length (empty lists too: they still store zeros), the non-empty ones handed to
// produce(t); -1 posted at the end. coord_of(id) -> a TileCoord or PairTile (its list, count and post(id)).
template <class CoordOf, class Produce, class SegmentOf = WholeTiles>
__device__ __forceinline__ void produce_tiles(TileMailbox& box, int first, int num_items, int num_slots, int* counter,
                                              CoordOf coord_of, Produce produce, SegmentOf segment_of = {}) {
  MailboxPos mailbox;
  for (int item = first; item < num_items; item = next_tile(counter, num_items, num_slots, item)) {
    for (int k = 0; k < 2; ++k) {
      const int id = segment_of(item, k);
      if (id < 0) break;
      const auto t = coord_of(id);
      post_tile(box, mailbox, t.post(id));
      if (t.count > 0) produce(t);
    }
  }
  post_tile(box, mailbox, PostedTile{-1, 0});
}

// Where a consumer's tile writes: (batch*head, 64-row output tile), and which consumer of a pair tile it is. seg: the
// part of a split tail tile it computes (split_tail.h; part -1: the whole tile), split_old: the shared int its
// warpgroup's split epilogue uses.
struct ConsumerTile {
  int bh, out_qtile, half = 0;
  WorkSegment seg = {};
  int* split_old = nullptr;
};

// One consumer warpgroup: takes tiles (id, list length) from the mailbox until -1, runs each tile's steps and
// stores its 64 x D output. q, k, v: its Q buffer and the K / V rings (TileConfig<D, 64, kStages> layouts);
// tile_of(tile id) -> ConsumerTile. Every K stage comes with its count of valid keys (bar.k_valid). Per step
// (S = scores, P = probabilities of the previous step):
//   S0, S1 = Q K_{2j}^T, Q K_{2j+1}^T, and O += P0 V_{2j-2} issued behind them (and O += P1 V_{2j-1} too when
//   kPvTogether: deep rings have that V in by then);
//   softmax over S0 and S1 (one max, one rescale factor);
//   O += P1 V_{2j-1} (unless kPvTogether: with 3 stages its V arrives during the softmax);
//   rescale O, P = bf16(S).
// Q lives in registers for the whole tile (loaded by ldmatrix once; QK^T is an RS wgmma), so QK^T reads only K from
// shared memory. Measured 1-5% faster than reading Q from shared memory at every QK^T (H100, session 9).
// kSplit: tiles may be parts of split tail tiles (split_tail.h), stored through the split epilogue. An instantiation of
// its own, so that launches that do not split run the kernel as it was: with the split epilogue inlined (same step-loop
// SASS, twice the tile loop's code) the A/B harness timed them 1-2% slower (H100, session 14).
// kPairs (pair_lists.cuh): the tile's stream holds both consumers' units; this one takes its own, at stream units
// computed from the posted counts, and releases a unit only it takes with two arrivals per thread. The two consumers
// meet at a named barrier before each tile: one that finished early would otherwise wait on stages of the next tile
// while the other's units still fill the ring, where an mbarrier's parity cannot tell two uses of a stage apart.
template <int D, int kStages, bool kPvTogether, bool kPairs, bool kSplit, class Bar, class TileOf>
__device__ void consume_128key_tiles(const KernelParams& p, Bar& bar, Element* q, Element* k, Element* v,
                                     TileOf tile_of) {
  using Cfg = TileConfig<D, 64, kStages>;
  using Barrier = cutlass::arch::ClusterBarrier;
  using Ring = RingState<kStages>;
  constexpr int BK = 64;
  const int tid = threadIdx.x % 128, lane = tid % 32;

  typename Cfg::MmaQKrs mma_qk;
  typename Cfg::MmaPV mma_pv;
  Tensor sQ = make_tensor(make_smem_ptr(q), typename Cfg::SmemLayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(k), typename Cfg::SmemLayoutK{});
  Tensor sVt = make_tensor(make_smem_ptr(v), typename Cfg::SmemLayoutVt{});
  auto thr_qk = mma_qk.get_thread_slice(tid);
  Tensor tSrQ = thr_qk.partition_fragment_A(sQ);
  Tensor tSrK = thr_qk.partition_fragment_B(sK);
  Tensor tOrV = mma_pv.get_thread_slice(tid).partition_fragment_B(sVt);
  auto q_copy = make_tiled_copy_A(Copy_Atom<SM75_U32x4_LDSM_N, Element>{}, mma_qk);
  auto q_thr = q_copy.get_thread_slice(tid);
  Tensor tQs = q_thr.partition_S(sQ);
  Tensor tQr = q_thr.retile_D(tSrQ);

  Tensor tSrS0 = partition_fragment_C(mma_qk, Shape<Int<kTileM>, Int<BK>>{});
  Tensor tSrS1 = partition_fragment_C(mma_qk, Shape<Int<kTileM>, Int<BK>>{});
  Tensor tOrO = partition_fragment_C(mma_pv, Shape<Int<kTileM>, Int<D>>{});
  Tensor tOrP0 = make_fragment_like<Element>(tSrS0);
  Tensor tOrP1 = make_fragment_like<Element>(tSrS1);
  Tensor tOrPa0 = make_tensor(tOrP0.data(), accumulator_as_a_operand(tSrS0.layout()));
  Tensor tOrPa1 = make_tensor(tOrP1.data(), accumulator_as_a_operand(tSrS1.layout()));

  // The producer's ring position, mirrored (its K and V rings move together: a step's V stages are its K's); kPairs
  // computes each step's position from stream_base instead.
  Ring kring;
  int stream_base = 0;  // kPairs: units streamed for the CTA's earlier tiles (both consumers' and common ones)
  uint32_t q_phase = 0;
  MailboxPos mailbox;
  for (PostedTile tile = take_tile(bar.tiles, mailbox); tile.id >= 0; tile = take_tile(bar.tiles, mailbox)) {
    const ConsumerTile ct = tile_of(tile.id);
    const PairUnits units(tile, ct.half);  // kPairs only
    if constexpr (kPairs) cutlass::arch::NamedBarrier::sync(2 * 128, 1);
    clear(tOrO);
    RowState st;
    int valid[2];  // valid keys of the step's two K stages
    // Step j's two stages (K now, V when its PV is issued). kPairs: from the stream unit the step takes, counted from
    // the CTA's first tile (units = 2 stages and kStages is even, so a unit's two stages share the phase). Stepping
    // the ring past the other consumer's units one stage at a time (the first version) made the loop 802 SASS
    // instructions per step against 675 now (D = 128).
    auto stages_of = [&](int j, Ring& a, Ring& b) {
      if constexpr (kPairs) {
        constexpr int kUnits = kStages / 2;
        const int u = stream_base + units.unit(j);
        const int slot = u % kUnits;
        a.stage = 2 * slot;
        b.stage = 2 * slot + 1;
        a.phase = b.phase = static_cast<uint32_t>(u / kUnits) & 1u;
      } else {
        a = take_stage(kring);
        b = take_stage(kring);
      }
    };
    // Releases step j's stage: both consumers arrive on a common unit, only this one on its own (kPairs).
    auto release = [&](uint64_t* empty, int j) {
      if constexpr (kPairs) cuda::ptx::mbarrier_arrive(empty, units.arrivals(j));
      else Barrier::arrive(empty);
    };
    // Takes step j's two K stages, waits for them and reads their valid-key counts (before they are released).
    auto wait_k = [&](int j, Ring& a, Ring& b) {
      stages_of(j, a, b);
      Barrier::wait(&bar.k_full[a.stage], a.phase);
      Barrier::wait(&bar.k_full[b.stage], b.phase);
      valid[0] = read_shared(&bar.k_valid[a.stage]);
      valid[1] = read_shared(&bar.k_valid[b.stage]);
    };
    // S0, S1 = Q K^T (one commit group each).
    auto issue_qk = [&](const Ring& a, const Ring& b) {
      issue_gemm<true, true>(mma_qk, tSrQ, tSrK(_, _, _, a.stage), tSrS0);
      issue_gemm<true, true>(mma_qk, tSrQ, tSrK(_, _, _, b.stage), tSrS1);
    };
    // Once S0, S1 are complete: K stages released (Q too after the first step: its ldmatrix reads are done by then,
    // as the QK^T that used them has completed; releasing Q right after the ldmatrix let the next tile's TMA
    // overwrite it before every read had landed, seen as wrong outputs on the H100), masks, softmax.
    auto softmax_step = [&](const Ring& a, const Ring& b, int step, float alpha[2]) {
      warpgroup_fence_operand(tSrS0);
      warpgroup_fence_operand(tSrS1);
      release(&bar.k_empty[a.stage], step);
      release(&bar.k_empty[b.stage], step);
      if (step == 0) Barrier::arrive(&bar.q_empty);
      mask_keys<BK>(tSrS0, valid[0], lane);
      mask_keys<BK>(tSrS1, valid[1], lane);
      softmax_update_blocks<BK>(st, alpha, p.scale_log2, tSrS0, tSrS1);
    };
    // Waits for every wgmma, then releases the two V stages of step j, whose PV has finished.
    auto finish_pv = [&](const Ring& a, const Ring& b, int j) {
      warpgroup_wait<0>();
      warpgroup_fence_operand(tOrO);
      warpgroup_fence_operand(tOrPa0);
      warpgroup_fence_operand(tOrPa1);
      release(&bar.v_empty[a.stage], j);
      release(&bar.v_empty[b.stage], j);
    };
    const int steps = kPairs ? units.steps() : (tile.count + 1) / 2;
    if (steps > 0) {
      float alpha[2];
      Ring k0, k1, v0, v1;
      Barrier::wait(&bar.q_full, q_phase);
      copy(q_copy, tQs, tQr);
      warpgroup_fence_operand(tSrQ);
      // Step 0: S and softmax only (no P yet).
      wait_k(0, k0, k1);
      issue_qk(k0, k1);
      warpgroup_wait<0>();
      softmax_step(k0, k1, 0, alpha);
      convert_to_bf16(tSrS0, tOrP0);
      convert_to_bf16(tSrS1, tOrP1);
      v0 = k0;  // V positions of the step whose PV is pending
      v1 = k1;
      for (int j = 1; j < steps; ++j) {
        wait_k(j, k0, k1);
        Barrier::wait(&bar.v_full[v0.stage], v0.phase);
        if constexpr (kPvTogether) Barrier::wait(&bar.v_full[v1.stage], v1.phase);
        issue_qk(k0, k1);
        issue_gemm<false, true>(mma_pv, tOrPa0, tOrV(_, _, _, v0.stage), tOrO);
        if constexpr (kPvTogether) {
          issue_gemm<false, true>(mma_pv, tOrPa1, tOrV(_, _, _, v1.stage), tOrO);
          warpgroup_wait<2>();  // S0, S1 are ready; the PVs may still run
          softmax_step(k0, k1, j, alpha);
        } else {
          warpgroup_wait<1>();  // S0, S1 are ready; the first PV may still run
          softmax_step(k0, k1, j, alpha);
          Barrier::wait(&bar.v_full[v1.stage], v1.phase);
          issue_gemm<false, true>(mma_pv, tOrPa1, tOrV(_, _, _, v1.stage), tOrO);
        }
        finish_pv(v0, v1, j - 1);
        rescale_rows(tOrO, alpha);
        convert_to_bf16(tSrS0, tOrP0);
        convert_to_bf16(tSrS1, tOrP1);
        v0 = k0;
        v1 = k1;
      }
      Barrier::wait(&bar.v_full[v0.stage], v0.phase);
      Barrier::wait(&bar.v_full[v1.stage], v1.phase);
      issue_gemm<false, true>(mma_pv, tOrPa0, tOrV(_, _, _, v0.stage), tOrO);
      issue_gemm<false, true>(mma_pv, tOrPa1, tOrV(_, _, _, v1.stage), tOrO);
      finish_pv(v0, v1, steps - 1);
      q_phase ^= 1;
    } else if (kPairs && tile.count > 0) {
      // No units of its own in a pair tile (its query block is past the end, or lists nothing): its half of Q is
      // not read, but the producer waits for both consumers before the next Q. Waiting for this tile's Q first keeps
      // the arrival in this tile's phase.
      Barrier::wait(&bar.q_full, q_phase);
      Barrier::arrive(&bar.q_empty);
      q_phase ^= 1;
    }
    if constexpr (kPairs) stream_base += tile.count / 2;  // the next tile's stream starts there
    if (kPairs && ct.out_qtile * kTileM >= p.nq) continue;  // the second half of a pair tile past the last block
    float inv_sum[2];
    finish_rows(st, inv_sum);
    if (kSplit && ct.seg.part >= 0)
      store_split_part<D>(p, ct.seg, ct.bh, ct.out_qtile, ct.half, tOrO, st, inv_sum, tid, ct.split_old);
    else
      store_scaled_tile<D>(p, ct.bh, ct.out_qtile, tOrO, inv_sum, tid);
  }
}

}  // namespace sparvar::attention_cuda
