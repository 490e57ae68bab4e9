// The 128-key step shared by the wide (v4, kernel_wide.cuh) and shared (v5, kernel_shared.cuh) kernels: the
// producer's walk over one tile's list and a consumer warpgroup's loop over its tiles. The kernels differ in the CTA
// around them (two independent lanes with 3-stage rings vs one stream read by two consumers with 6-stage rings), in
// how a tile id maps to its list and output rows, and in where the step's second PV is issued (kPvTogether).
//
// Step j of a tile takes sub-blocks 2j and 2j+1 (a 128-token key block is exactly one step). An odd count ends with
// its last block loaded a second time and fully masked, so every step has the same shape and no wgmma is in flight
// across a data-dependent branch (ptxas would serialise them).
#pragma once

#include "kernel_pipelined.cuh"

namespace sparvar::attention_cuda {

// Loads one tile's K and V blocks into the rings, K of step j before V of step j-1, and calls load_q() right after
// the tile's first K block. tKg / tVg: the (batch, head)'s blocks (last mode: block id); tKs / tVs: ring stages.
// Barriers: any struct with k_full / k_empty / v_full / v_empty arrays of kStages and an int k_valid[kStages], where
// each K stage's count of valid keys is published with it (the consumers then read no list or k_valid from global
// memory: those dependent loads sat between a step's QK^T and its softmax, and at every tile start).
template <int kStages, class Bar, class Tma, class KG, class KS, class VG, class VS, class LoadQ>
__device__ __forceinline__ void produce_128key_tile(const KernelParams& p, const TileCoord& t, Bar& bar,
                                                    RingState<kStages>& kring, RingState<kStages>& vring,
                                                    const Tma& tma_k, const Tma& tma_v, const KG& tKg,
                                                    const KS& tKs, const VG& tVg, const VS& tVs,
                                                    uint32_t stage_bytes, LoadQ load_q) {
  using Barrier = cutlass::arch::ClusterBarrier;
  using TxBarrier = cutlass::arch::ClusterTransactionBarrier;
  const int* cols = p.col_blocks + t.row_start;
  const int last = t.count - 1;
  // Sub-block i of the padded sequence: past the list, the last block again (the consumer masks it whole).
  auto block = [&](int i) { return sub_block(p, cols, i < last ? i : last); };
  auto load_k = [&](int i) {
    const int s = kring.stage;
    const int valid = i <= last ? sub_block_valid(p, cols, i) : 0;  // the padding block past the list: none
    Barrier::wait(&bar.k_empty[s], kring.phase ^ 1);
    publish_shared(&bar.k_valid[s], valid);
    TxBarrier::arrive_and_expect_tx(&bar.k_full[s], stage_bytes);  // release: the count is visible with the data
    copy(tma_k.with(bar.k_full[s]), tKg(_, block(i)), tKs(_, s));
    kring.advance();
  };
  auto load_v = [&](int i) {
    const int s = vring.stage;
    Barrier::wait(&bar.v_empty[s], vring.phase ^ 1);
    TxBarrier::arrive_and_expect_tx(&bar.v_full[s], stage_bytes);
    copy(tma_v.with(bar.v_full[s]), tVg(_, block(i)), tVs(_, s));
    vring.advance();
  };
  const int steps = (t.count + 1) / 2;
  for (int j = 0; j <= steps; ++j) {
    if (j < steps) {
      load_k(2 * j);
      if (j == 0) load_q();  // after K0: the consumers free Q after their previous tile's first QK^T
      load_k(2 * j + 1);
    }
    if (j > 0) {
      load_v(2 * j - 2);
      load_v(2 * j - 1);
    }
  }
}

// A producer's walk over its tiles (tile_schedule.cuh): from `first`, then the next per the schedule, each posted to
// the consumers with its list length (empty lists too: they still store zeros), the non-empty ones handed to
// produce(t); -1 posted at the end. coord_of(tile) -> TileCoord with its list.
template <class CoordOf, class Produce>
__device__ __forceinline__ void produce_tiles(TileMailbox& box, int first, int num_tiles, int num_slots, int* counter,
                                              CoordOf coord_of, Produce produce) {
  MailboxPos mailbox;
  for (int tile = first; tile < num_tiles; tile = next_tile(counter, num_tiles, num_slots, tile)) {
    const TileCoord t = coord_of(tile);
    post_tile(box, mailbox, tile, t.count);
    if (t.count > 0) produce(t);
  }
  post_tile(box, mailbox, -1, 0);
}

// Where a consumer's tile writes: (batch*head, 64-row output tile).
struct ConsumerTile {
  int bh, out_qtile;
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
template <int D, int kStages, bool kPvTogether, class Bar, class TileOf>
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

  Ring kring, vring;  // the producer's ring positions, mirrored
  uint32_t q_phase = 0;
  MailboxPos mailbox;
  for (PostedTile tile = take_tile(bar.tiles, mailbox); tile.id >= 0; tile = take_tile(bar.tiles, mailbox)) {
    const ConsumerTile ct = tile_of(tile.id);
    clear(tOrO);
    RowState st;
    int valid[2];  // valid keys of the step's two K stages
    // Takes the next two K stages, waits for them and reads their valid-key counts (before they are released).
    auto wait_k = [&](Ring& a, Ring& b) {
      a = take_stage(kring);
      b = take_stage(kring);
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
      Barrier::arrive(&bar.k_empty[a.stage]);
      Barrier::arrive(&bar.k_empty[b.stage]);
      if (step == 0) Barrier::arrive(&bar.q_empty);
      mask_keys<BK>(tSrS0, valid[0], lane);
      mask_keys<BK>(tSrS1, valid[1], lane);
      softmax_update_blocks<BK>(st, alpha, p.scale_log2, tSrS0, tSrS1);
    };
    // Waits for every wgmma, then releases the two V stages whose PV has finished.
    auto finish_pv = [&](const Ring& a, const Ring& b) {
      warpgroup_wait<0>();
      warpgroup_fence_operand(tOrO);
      warpgroup_fence_operand(tOrPa0);
      warpgroup_fence_operand(tOrPa1);
      Barrier::arrive(&bar.v_empty[a.stage]);
      Barrier::arrive(&bar.v_empty[b.stage]);
    };
    if (tile.count > 0) {
      const int steps = (tile.count + 1) / 2;
      float alpha[2];
      Ring k0, k1;
      Barrier::wait(&bar.q_full, q_phase);
      copy(q_copy, tQs, tQr);
      warpgroup_fence_operand(tSrQ);
      // Step 0: S and softmax only (no P yet).
      wait_k(k0, k1);
      issue_qk(k0, k1);
      warpgroup_wait<0>();
      softmax_step(k0, k1, 0, alpha);
      convert_to_bf16(tSrS0, tOrP0);
      convert_to_bf16(tSrS1, tOrP1);
      Ring v0 = take_stage(vring);  // V positions of the step whose PV is pending
      Ring v1 = take_stage(vring);
      for (int j = 1; j < steps; ++j) {
        wait_k(k0, k1);
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
        finish_pv(v0, v1);
        rescale_rows(tOrO, alpha);
        convert_to_bf16(tSrS0, tOrP0);
        convert_to_bf16(tSrS1, tOrP1);
        v0 = take_stage(vring);
        v1 = take_stage(vring);
      }
      Barrier::wait(&bar.v_full[v0.stage], v0.phase);
      Barrier::wait(&bar.v_full[v1.stage], v1.phase);
      issue_gemm<false, true>(mma_pv, tOrPa0, tOrV(_, _, _, v0.stage), tOrO);
      issue_gemm<false, true>(mma_pv, tOrPa1, tOrV(_, _, _, v1.stage), tOrO);
      finish_pv(v0, v1);
      q_phase ^= 1;
    }
    float inv_sum[2];
    finish_rows(st, inv_sum);
    store_scaled_tile<D>(p, ct.bh, ct.out_qtile, tOrO, inv_sum, tid);
  }
}

}  // namespace sparvar::attention_cuda
