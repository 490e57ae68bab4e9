// The GPU CS4A builder's two kernels (see cs4a_build.h) and their launch geometry. The selection follows
// cs4a_rule.h word for word, so it equals cs4a_select on the same (batch-averaged) mass; the map ORs the same
// tables Cs4aMapper uses. Device code only, no CUDA header: cs4a_build.cu launches it on the GPU, and
// tests/attention/test_cs4a_kernels_emulated.cpp runs the very same code on the CPU.
#pragma once

#include <algorithm>

#include "attention/cs4a_rule.h"
#include "cs4a_build_args.h"

namespace sparvar::attn_cuda::cs4a {

using namespace sparvar::cs4a_rule;

constexpr int kSelectWarps = 4;     // decision rows per CTA of the select kernel
constexpr int kWriteThreads = 256;  // CTA of the write kernel
constexpr int kWriteRows = 16;      // rows (query blocks) of one scale and head per write CTA
constexpr unsigned kFull = 0xffffffffu;

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

__device__ __forceinline__ int warp_inclusive_scan(int v, int lane) {
  for (int o = 1; o < 32; o <<= 1) {
    const int t = __shfl_up_sync(kFull, v, o);
    if (lane >= o) v += t;
  }
  return v;
}

__device__ __forceinline__ bool test_bit(const uint64_t* bits, int i) { return (bits[i >> 6] >> (i & 63)) & 1; }

// Per-warp shared scratch of the select kernel, carved from dynamic smem (64-bit arrays first: aligned).
struct SelectScratch {
  uint64_t* fixed;     // [nk]: the row's masses in fixed point
  uint64_t* forced;    // [words]
  uint64_t* bits;      // [words]: forced | chosen
  uint64_t* expanded;  // [max_words]: the row's expansion to one later scale
  float* candidate;    // [nk]: mass of a candidate (non-forced, > 0), else -1
};

// The plan's tables every warp of a select CTA reads (cover words, own windows, inverse map), staged in shared
// memory by the whole CTA in one pass: read from global memory, the expansion and the row lengths were chains of
// dependent L2 loads (one per word and scale, three per scale for the lengths), most of the kernel's time.
// Laid out scale after scale; walking the scales in order gives each one's place (kept out of a per-scale array,
// which ptxas puts in local memory when indexed by a loop counter).
struct StagedTables {
  int cover, own, offsets, rows;  // byte offsets: cover words, own windows, rows_by_decision_offsets, rows_by_decision
  int end;                        // where the next scale's start

  __host__ __device__ static int align16(int bytes) { return (bytes + 15) / 16 * 16; }
  __host__ __device__ StagedTables(const Cs4aBuildArgs& a, int si, int at) {
    const Cs4aScaleArgs& S = a.scales[si];
    cover = at;
    at += align16(8 * (a.num_k_blocks - a.decision_first_block) * S.words);
    own = at;
    at += S.own ? align16(8 * S.num_q_blocks * S.words) : 0;
    offsets = at;
    at += align16(4 * (a.num_q_blocks + 1));
    rows = at;
    end = at + align16(4 * S.num_q_blocks);
  }
};

template <typename T>
__device__ __forceinline__ void stage(T* dst, const T* src, int n) {
  for (int i = threadIdx.x; i < n; i += kSelectWarps * 32) dst[i] = src[i];
}

// One warp per decision row (head h, query block dq).
__global__ void __launch_bounds__(kSelectWarps * 32)
    cs4a_select_expand_kernel(const __grid_constant__ Cs4aBuildArgs a, int max_words, int warp_bytes) {
  extern __shared__ __align__(16) unsigned char cs4a_select_smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int tables_start = kSelectWarps * warp_bytes;
  for (int si = 0, at = tables_start; si < a.num_scales; ++si) {
    const Cs4aScaleArgs& S = a.scales[si];
    const StagedTables t(a, si, at);
    at = t.end;
    stage(reinterpret_cast<uint64_t*>(cs4a_select_smem + t.cover), S.cover,
          (a.num_k_blocks - a.decision_first_block) * S.words);
    if (S.own) stage(reinterpret_cast<uint64_t*>(cs4a_select_smem + t.own), S.own, S.num_q_blocks * S.words);
    stage(reinterpret_cast<int32_t*>(cs4a_select_smem + t.offsets), S.rows_by_decision_offsets, a.num_q_blocks + 1);
    stage(reinterpret_cast<int32_t*>(cs4a_select_smem + t.rows), S.rows_by_decision, S.num_q_blocks);
  }
  __syncthreads();
  const int row = blockIdx.x * kSelectWarps + warp;
  if (row >= a.heads * a.num_q_blocks) return;  // whole warps only: nothing below syncs the CTA
  const int h = row / a.num_q_blocks, dq = row % a.num_q_blocks;
  const int nk = a.num_k_blocks, W = a.words;
  SelectScratch s;
  s.fixed = reinterpret_cast<uint64_t*>(cs4a_select_smem + warp * warp_bytes);
  s.forced = s.fixed + nk;
  s.bits = s.forced + W;
  s.expanded = s.bits + W;
  s.candidate = reinterpret_cast<float*>(s.expanded + max_words);

  for (int w = lane; w < W; w += 32) {
    s.forced[w] = a.forced[static_cast<size_t>(dq) * W + w];
    s.bits[w] = 0;
  }
  __syncwarp();

  // Batch average (the runner's order: float sums over the batch, then one division), checks, fixed point.
  const size_t plane = static_cast<size_t>(a.heads) * a.num_q_blocks * nk;
  const float* m = a.mass + static_cast<size_t>(row) * nk;
  uint64_t total = 0, kept = 0;
  int forced_count = 0;
  bool bad = false;
  for (int c = lane; c < nk; c += 32) {
    float acc = 0.0f;
    for (int b = 0; b < a.batch; ++b) acc = __fadd_rn(acc, m[b * plane + c]);
    float v = __fdiv_rn(acc, static_cast<float>(a.batch));
    if (!is_share(v)) {  // reported through status; the row goes on without it
      bad = true;
      v = 0.0f;
    }
    const uint64_t fx = to_fixed(v);
    const bool forced = test_bit(s.forced, c);
    total += fx;
    if (forced) kept += fx, ++forced_count;
    s.fixed[c] = fx;
    s.candidate[c] = forced || !(v > 0.0f) ? -1.0f : v;
  }
  total = warp_sum(total);
  kept = warp_sum(kept);
  forced_count = warp_sum(forced_count);
  bad = __any_sync(kFull, bad);
  if (lane == 0 && (bad || !row_sum_ok(total))) atomicAdd(a.bad_rows, 1u);
  __syncwarp();

  // Selection: a candidate is kept iff the forced mass plus the mass of the candidates heavier than it is
  // below tau and they number fewer than the cap (cs4a_rule.h). Non-candidates hold -1: never heavier.
  for (int base = 0; base < nk; base += 32) {
    const int c = base + lane;
    bool take = false;
    if (c < nk) {
      take = test_bit(s.forced, c);
      const float v = s.candidate[c];
      if (v > 0.0f) {
        uint64_t heavier_mass = 0;
        int rank = 0;
        for (int c2 = 0; c2 < nk; ++c2) {
          if (heavier(s.candidate[c2], c2, v, c)) {
            ++rank;
            heavier_mass += s.fixed[c2];
          }
        }
        take = kept + heavier_mass < a.tau_fixed && forced_count + rank < a.cap;
      }
    }
    const unsigned ballot = __ballot_sync(kFull, take);
    if (lane == 0) s.bits[base >> 6] |= static_cast<uint64_t>(ballot) << (base & 63);
  }
  __syncwarp();
  for (int w = lane; w < W; w += 32) a.selected[static_cast<size_t>(row) * W + w] = s.bits[w];

  // Expansion to each later scale, and the length of every row of it that takes this decision row. Word w of
  // the expansion: the lanes split the row's blocks (lane l looks at blocks l, l + 32, ...), each ORs the cover
  // words of its selected ones, then the warp ORs the lanes' words. The cover loads of all selected blocks are
  // in flight together; walking the selected blocks one after another (the first version) chained one L2 load
  // per block per scale, most of the build's time on the H100.
  for (int si = 0, at = tables_start; si < a.num_scales; ++si) {
    const Cs4aScaleArgs& S = a.scales[si];
    const StagedTables t(a, si, at);
    at = t.end;
    const uint64_t* cover = reinterpret_cast<const uint64_t*>(cs4a_select_smem + t.cover);
    const uint64_t* own_all = S.own ? reinterpret_cast<const uint64_t*>(cs4a_select_smem + t.own) : nullptr;
    const int32_t* rows_by_decision_offsets = reinterpret_cast<const int32_t*>(cs4a_select_smem + t.offsets);
    const int32_t* rows_by_decision = reinterpret_cast<const int32_t*>(cs4a_select_smem + t.rows);
    const int Ws = S.words;
    for (int w = 0; w < Ws; ++w) {
      uint64_t acc = 0;
      for (int c = lane; c < nk; c += 32) {
        if (!test_bit(s.bits, c)) continue;
        if (c < a.decision_first_block) {  // an earlier scale's block stays itself
          if ((c >> 6) == w) acc |= uint64_t{1} << (c & 63);
        } else {
          acc |= cover[(c - a.decision_first_block) * Ws + w];
        }
      }
      for (int o = 16; o > 0; o >>= 1) acc |= __shfl_xor_sync(kFull, acc, o);
      if (lane == 0) s.expanded[w] = acc;
    }
    __syncwarp();
    for (int w = lane; w < Ws; w += 32) S.expanded[static_cast<size_t>(row) * Ws + w] = s.expanded[w];
    const int end = rows_by_decision_offsets[dq + 1];
    for (int i = rows_by_decision_offsets[dq] + lane; i < end; i += 32) {
      const int qb = rows_by_decision[i];
      const uint64_t* own = own_all ? own_all + qb * Ws : nullptr;
      int length = 0;
      for (int w = 0; w < Ws; ++w) length += __popcll(s.expanded[w] | (own ? own[w] : 0));
      S.lengths[static_cast<size_t>(h) * S.num_q_blocks + qb] = length;
    }
    __syncwarp();  // every lane is done reading `expanded` before the next scale clears it
  }
}

// Sum over the CTA (every thread gets it). `shared`: kWriteThreads / 32 slots.
__device__ inline long long block_sum(long long v, long long* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  long long total = 0;
  for (int w = 0; w < kWriteThreads / 32; ++w) total += shared[w];
  __syncthreads();
  return total;
}

// Exclusive prefix over the CTA's threads in thread order; *total gets the sum.
__device__ inline int block_exclusive_scan(int v, int* shared, int* total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int incl = warp_inclusive_scan(v, lane);
  if (lane == 31) shared[warp] = incl;
  __syncthreads();
  int before = 0, all = 0;
  for (int w = 0; w < kWriteThreads / 32; ++w) {
    if (w < warp) before += shared[w];
    all += shared[w];
  }
  __syncthreads();
  *total = all;
  return before + incl - v;
}

// One CTA per (head, later scale, chunk of kWriteRows rows): every CTA of a (head, scale) works out all its
// rows' offsets (cheap), the z == 0 one stores them, and each writes the columns of its own rows (one warp per
// row). The warp walks a row 32 blocks at a time, lane l on block l: a set bit's column goes to the count of set
// bits below it, so each store instruction writes consecutive entries. Lanes storing their own words' bits
// straight to global memory (the first version) sent every store instruction to 32 lines and made this kernel
// 30 us of a 42 us build on the H100 (ncu; 16 heads, 8x8 tiles); staging a row's columns in shared memory, each
// lane scanning one 64-bit word bit by bit, fixed the stores but left up to 64 serial steps per lane and row.
__global__ void __launch_bounds__(kWriteThreads)
    cs4a_write_kernel(const __grid_constant__ Cs4aBuildArgs a, int max_q) {
  // Dynamic smem only (launch_shape sizes it): this head's row starts (unclamped), the scratch of the block-wide
  // sum and scan.
  extern __shared__ __align__(16) long long cs4a_write_smem[];
  const int h = blockIdx.x;
  const Cs4aScaleArgs& S = a.scales[blockIdx.y];
  const int nq = S.num_q_blocks, Ws = S.words;
  long long* row_start = cs4a_write_smem;                                   // [max_q]
  long long* sum_scratch = row_start + max_q;                               // [kWriteThreads / 32]
  int* scan_scratch = reinterpret_cast<int*>(sum_scratch + kWriteThreads / 32);  // [kWriteThreads / 32]
  const int32_t* lengths = S.lengths + static_cast<size_t>(h) * nq;
  // The select kernel has finished: its count of bad rows is final for this build.
  if (h == 0 && blockIdx.y == 0 && blockIdx.z == 0 && threadIdx.x == 0) a.host_status[0] = *a.bad_rows;

  long long base = 0;  // entries of the earlier heads
  for (int i = threadIdx.x; i < h * nq; i += kWriteThreads) base += S.lengths[i];
  base = block_sum(base, sum_scratch);

  // Each thread scans a contiguous chunk of this head's rows.
  const int per = (nq + kWriteThreads - 1) / kWriteThreads;
  const int lo = min(nq, static_cast<int>(threadIdx.x) * per), hi = min(nq, lo + per);
  int chunk = 0;
  for (int i = lo; i < hi; ++i) chunk += lengths[i];
  int head_total = 0;
  long long pos = base + block_exclusive_scan(chunk, scan_scratch, &head_total);
  const bool first_chunk = blockIdx.z == 0;
  for (int i = lo; i < hi; ++i) {
    row_start[i] = pos;
    // Offsets clamped to the capacity keep an overflowing pattern (reported in status) inside its buffer.
    if (first_chunk)
      S.row_offsets[static_cast<size_t>(h) * nq + i] = static_cast<int32_t>(min(pos, static_cast<long long>(S.capacity)));
    pos += lengths[i];
  }
  if (threadIdx.x == 0 && first_chunk) {
    const long long end = base + head_total;
    if (h == a.heads - 1) S.row_offsets[static_cast<size_t>(a.heads) * nq] = static_cast<int32_t>(min(end, static_cast<long long>(S.capacity)));
    if (end > S.capacity) a.host_status[1] = 1u;
  }
  __syncthreads();

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int row_end = min(nq, static_cast<int>(blockIdx.z + 1) * kWriteRows);
  for (int qb = blockIdx.z * kWriteRows + warp; qb < row_end; qb += kWriteThreads / 32) {
    const uint64_t* e = S.expanded + (static_cast<size_t>(h) * a.num_q_blocks + S.decision_row[qb]) * Ws;
    const uint64_t* own = S.own ? S.own + static_cast<size_t>(qb) * Ws : nullptr;
    long long at = row_start[qb];  // where the next column goes
    for (int w0 = 0; w0 < Ws; w0 += 32) {
      const uint64_t mine = w0 + lane < Ws ? e[w0 + lane] | (own ? own[w0 + lane] : 0) : 0;  // lane l: word w0 + l
      for (int w = w0; w < min(Ws, w0 + 32); ++w) {
        const uint64_t word = __shfl_sync(kFull, mine, w - w0);
        for (int half = 0; half < 2; ++half) {
          // Lane l takes bit l of these 32 blocks: its column's place is the count of set bits below it.
          const unsigned bits = static_cast<unsigned>(word >> (32 * half));
          const long long p = at + __popc(bits & ((1u << lane) - 1u));
          if (((bits >> lane) & 1u) && p < S.capacity) S.col_blocks[p] = w * 64 + 32 * half + lane;
          at += __popc(bits);
        }
      }
    }
  }
}

// How the two kernels are launched; also what an argument set needs (the host checks it first).
struct LaunchShape {
  int max_words = 0;     // longest bitset row of a later scale
  int max_q = 0;         // most query blocks of a later scale
  int warp_bytes = 0;    // select kernel: shared scratch per warp
  int select_blocks = 0, select_threads = kSelectWarps * 32, select_smem = 0;
  int write_blocks_x = 0, write_blocks_y = 0, write_blocks_z = 0, write_threads = kWriteThreads, write_smem = 0;
};

inline bool args_ok(const Cs4aBuildArgs& a) {
  return a.num_scales >= 1 && a.num_scales <= kCs4aMaxScales && a.heads >= 1 && a.batch >= 1 &&
         a.num_q_blocks >= 1 && a.num_k_blocks >= 1 && a.words == (a.num_k_blocks + 63) / 64;
}

inline LaunchShape launch_shape(const Cs4aBuildArgs& a) {
  LaunchShape l;
  for (int s = 0; s < a.num_scales; ++s) {
    l.max_words = std::max(l.max_words, a.scales[s].words);
    l.max_q = std::max(l.max_q, a.scales[s].num_q_blocks);
  }
  l.warp_bytes = (8 * (a.num_k_blocks + 2 * a.words + l.max_words) + 4 * a.num_k_blocks + 15) / 16 * 16;
  l.select_smem = kSelectWarps * l.warp_bytes;
  for (int s = 0; s < a.num_scales; ++s) l.select_smem = StagedTables(a, s, l.select_smem).end;
  l.select_blocks = (a.heads * a.num_q_blocks + kSelectWarps - 1) / kSelectWarps;
  l.write_blocks_x = a.heads;
  l.write_blocks_y = a.num_scales;
  l.write_blocks_z = (l.max_q + kWriteRows - 1) / kWriteRows;
  l.write_smem = static_cast<int>((l.max_q + kWriteThreads / 32) * sizeof(long long) + kWriteThreads / 32 * sizeof(int));
  return l;
}

}  // namespace sparvar::attn_cuda::cs4a
