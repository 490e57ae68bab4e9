// The epilogue of one part of a split tail tile (split_tail.h): the consumer warpgroup writes its 64 rows' output,
// normalised, in fp32, and their log-sum-exp (exp2 domain) to its workspace slot, then counts itself in on the tile's
// counter for its half; the warpgroup that arrives last reads every part back, merges them and stores the tile
// through the usual epilogue (output_store.cuh), and puts the counter back to 0 for the next launch on the stream.
// Ordering: each thread's stores, a device-scope fence, a barrier of the warpgroup, then one relaxed atomic (the
// classic last-block pattern); the merging warpgroup fences after the atomic and reads with ld.global.cg (L2, not a
// possibly stale L1 line).
#pragma once

#include "output_store.cuh"
#include "split_tail.h"
#include "tile_schedule.cuh"

namespace sparvar::attention_cuda {

// The shared kernel's workspace for the split tail (per stream, see tile_counter.cu): kSplitRows rows per slot.
constexpr int kSplitRows = 2 * kTileM;

// The merge, by the warpgroup that arrived last: each thread takes 8-column pieces of the half's 64 rows in turn and
// weighs every part's piece by 2^(its lse - the largest lse). A loop over memory rather than over the accumulator
// fragment: the fragment's registers need compile-time indices, and an unrolled merge doubled the consumer's per-tile
// code.
template <int D>
__device__ __forceinline__ void merge_split_parts(const KernelParams& p, const WorkSegment& w, int bh, int out_qtile,
                                               int half, int tid) {
  constexpr int kPieces = D / 8;
  const int first_slot = w.slot - w.part;
#pragma unroll 1
  for (int k = 0; k < kTileM * kPieces / 128; ++k) {  // a fixed count: a per-thread loop bound (c < ... from tid)
    const int c = 128 * k + tid;                      // cost the step loop its uniform registers (733 vs 681 SASS)
    const int r = half * kTileM + c / kPieces, col = c % kPieces * 8;
    float m = -INFINITY;
#pragma unroll 1
    for (int i = 0; i < w.parts; ++i) m = fmaxf(m, __ldcg(p.split_lse + static_cast<long long>(first_slot + i) * kSplitRows + r));
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}, total = 0.f;
#pragma unroll 1
    for (int i = 0; i < w.parts; ++i) {
      const long long row = static_cast<long long>(first_slot + i) * kSplitRows + r;
      const float lse = __ldcg(p.split_lse + row);
      const float weight = lse == -INFINITY ? 0.f : exp2f(lse - m);  // a part with no valid key weighs 0
      total += weight;
      const float4* x = reinterpret_cast<const float4*>(p.split_o + row * D + col);
      const float4 x0 = __ldcg(x), x1 = __ldcg(x + 1);
      acc[0] += weight * x0.x;
      acc[1] += weight * x0.y;
      acc[2] += weight * x0.z;
      acc[3] += weight * x0.w;
      acc[4] += weight * x1.x;
      acc[5] += weight * x1.y;
      acc[6] += weight * x1.z;
      acc[7] += weight * x1.w;
    }
    const float inv = total > 0.f ? 1.f / total : 0.f;
    uint32_t packed[4];
    CUTE_UNROLL
    for (int k = 0; k < 4; ++k)
      packed[k] = static_cast<uint32_t>(Element(acc[2 * k] * inv).raw()) |
                  (static_cast<uint32_t>(Element(acc[2 * k + 1] * inv).raw()) << 16);
    Element* dst = output_row<D>(p, bh, out_qtile * kTileM + c / kPieces);
    if (dst) *reinterpret_cast<uint4*>(dst + col) = make_uint4(packed[0], packed[1], packed[2], packed[3]);
  }
}

// o: the part's PV accumulator, st / inv_sum: its finished row state; half: which
// 64 rows of the tile; slot_old: a shared int for this warpgroup (the atomic's result, broadcast).
template <int D, class Acc>
__device__ __forceinline__ void store_split_part(const KernelParams& p, const WorkSegment& w, int bh, int out_qtile,
                                                 int half, const Acc& o, const RowState& st, const float inv_sum[2], int tid,
                                                 int* slot_old) {
  const int warp = tid / 32, lane = tid % 32, q = lane % 4;
  const int barrier_id = 2 + half;  // 1 is the pair tiles' meeting (steps_128key.cuh)
  auto row_of = [&](int r) { return half * kTileM + 16 * warp + lane / 4 + 8 * r; };
  auto part_o = [&](int slot, int r) { return p.split_o + (static_cast<long long>(slot) * kSplitRows + row_of(r)) * D; };
  auto part_lse = [&](int slot, int r) { return p.split_lse + static_cast<long long>(slot) * kSplitRows + row_of(r); };
  CUTE_UNROLL
  for (int r = 0; r < 2; ++r) {
    float* row = part_o(w.slot, r);
    CUTE_UNROLL
    for (int j = 0; j < D / 8; ++j)
      *reinterpret_cast<float2*>(row + 8 * j + 2 * q) =
          make_float2(o(2 * r + 4 * j) * inv_sum[r], o(1 + 2 * r + 4 * j) * inv_sum[r]);
    if (q == 0) *part_lse(w.slot, r) = st.sum[r] > 0.f ? st.max[r] * p.scale_log2 + __log2f(st.sum[r]) : -INFINITY;
  }
  __threadfence();
  cutlass::arch::NamedBarrier::sync(128, barrier_id);
  int* arrivals = p.split_arrivals + 2 * w.tail + half;
  if (tid == 0) {
    const int before = atomicAdd(arrivals, 1);
    if (before == w.parts - 1) *arrivals = 0;  // every part is in: ready for the next launch
    publish_shared(slot_old, before);
  }
  cutlass::arch::NamedBarrier::sync(128, barrier_id);
  if (read_shared(slot_old) != w.parts - 1) return;  // another part merges
  __threadfence();
  merge_split_parts<D>(p, w, bh, out_qtile, half, tid);
}

}  // namespace sparvar::attention_cuda
