// Two 64-row query blocks as one 128-row tile of the shared kernel (kernel_shared.cuh), their two CSR lists walked as
// one K/V stream.
//
// Why: with 64-row query blocks each consumer warpgroup of the wide kernel streams its own list, so a key block that
// two neighbouring query blocks both list (every block on a dense scale, ~80% of them on SparVAR's CSLA lists) crosses
// L2 twice; the shared kernel's CTA loads it once for both consumers. The paired kernel of session 3 (retired) took
// the union of the two lists with each consumer skipping the other's blocks, so both waited on the same stages in
// lockstep. Here the stream is ordered so that each consumer only ever waits for its own blocks, in 128-key units
// (two 64-token blocks, the consumer step of steps_128key.cuh):
//   1. common units: blocks both lists hold, two per unit, taken by both consumers;
//   2. own units: each list's remaining blocks, two per unit, taken by that consumer only, alternating (consumer 0's
//      unit, consumer 1's unit, ...) while both have some left, then the longer one's rest.
// An odd common count leaves its last common block to each consumer's own units (loaded twice, never masked); an odd
// own count ends with the unit's last block repeated and fully masked, as in the wide kernel. So each consumer
// computes exactly the units the wide kernel would give it, and the blocks both lists hold are read once. Equal lists
// (every pair on a dense scale) are all common units, an odd count ending with a masked repeat: two fewer stages per
// tile than an odd common block given to both own lists.
//
// A consumer finds its units from three counts (common units, consumer 0's own units, consumer 1's own units) that
// travel with the tile id through the mailbox: unit u of consumer c sits at stream unit
//   u                          (u < common),
//   common + 2 (u - common) + c  while both have own units left,
//   common + min(own0, own1) + (u - common)  after that.
// Lists must be ascending (the CSR contract) for the merge walk below.
#pragma once

#include "kernel_pipelined.cuh"

#include <cute/arch/copy_sm90_tma.hpp>
#include <cutlass/arch/barrier.h>

namespace sparvar::attention_cuda {

// A 64-token key block to load and its count of valid keys (0: a padding repeat, fully masked).
struct SubBlock {
  int block, valid;
};

// The producer stages the tile's two lists in shared memory (one bulk copy) and marks the entries both hold with
// kCommonBit: its walks then read shared memory (~30 cycles a step) instead of chains of dependent global loads. Each
// dependent load of a list entry costs an L2 round trip; walking a dense pair of lists that way, or even copying it
// four loads at a time, took ~30 us per tile, far longer than the producer runs ahead of the consumers (H100).
constexpr int kCommonBit = 1 << 30;

// One list's entries in order, keeping the common ones (kCommon) or the others plus `extra`.
struct ListWalk {
  int i, end;

  // The next entry, unchecked (equal lists: nothing is marked).
  __device__ __forceinline__ int take(const int* lists) { return i < end ? lists[i++] : -1; }

  template <bool kCommon>
  __device__ __forceinline__ int next(const int* lists, int extra = -1) {
    while (i < end) {
      const int x = lists[i++];
      const int id = x & ~kCommonBit;
      if (kCommon ? (x & kCommonBit) != 0 : ((x & kCommonBit) == 0 || id == extra)) return id;
    }
    return -1;
  }
};

// A 128-row tile of two 64-row query blocks (2 qtile and 2 qtile + 1; the second is absent past the last query
// block) and how its stream splits.
struct PairTile {
  int bh, qtile;
  int shift;   // the staged lists start at lists + shift (the bulk copy keeps the 16-byte alignment of col_blocks)
  int na, nb;  // list lengths; staged at [0, na) and [na, na + nb)
  int extra;   // the last common entry when their count is odd, else -1
  bool equal;  // the two lists are equal: nothing is marked
  int common_units, own_units[2];
  int count;      // 64-token blocks streamed
  int first = 0;  // equal lists, or one list: the staged entry its walk starts at (a split part starts mid-list)

  __device__ __forceinline__ PostedTile post(int id) const { return {id, count, common_units, own_units[0]}; }
};

// The producer's staging area: at least 2 * (key blocks) + 3 ints (the launcher checks), and the mbarrier of its
// bulk copies.
struct ListStage {
  int* lists;
  uint64_t* full;
  uint32_t phase;
};

// Stages the tile's two CSR rows (consecutive in col_blocks) and marks their common entries (one merge walk), unless
// the rows are equal (every pair on a dense scale): then the walks need no marks, and planning a tile costs one bulk
// copy and one compare. The producer plans a tile while the consumers finish the previous one's last ring stages, so
// planning must take less than those few steps.
__device__ __forceinline__ PairTile plan_pair(const KernelParams& p, int tile, ListStage& stage) {
  using Barrier = cutlass::arch::ClusterBarrier;
  using TxBarrier = cutlass::arch::ClusterTransactionBarrier;
  const TileCoord c = tile_place<2 * kTileM>(p, tile);
  PairTile t;
  t.bh = c.bh;
  t.qtile = c.qtile;
  const int qb = 2 * c.qtile;
  const int row = pattern_row(p, c.bh % p.heads, qb);
  const int begin = p.row_offsets[row], a_end = p.row_offsets[row + 1];
  const int b_end = qb + 1 < p.num_q_blocks ? p.row_offsets[row + 2] : a_end;
  t.na = a_end - begin;
  t.nb = b_end - a_end;
  const int n = t.na + t.nb;
  const int* first = p.col_blocks + begin;
  t.shift = static_cast<int>((reinterpret_cast<uintptr_t>(first) >> 2) & 3);
  int* lists = stage.lists + t.shift;
  // [head, tail): the 16-byte-aligned middle, one bulk copy; the ends (at most 3 entries each) one by one.
  const int head = min(n, (4 - t.shift) & 3);
  const int tail = head + (n - head) / 4 * 4;
  if (tail > head) {
    cutlass::arch::fence_view_async_shared();  // the previous tile's reads of the area come before the copy's writes
    const uint32_t bytes = static_cast<uint32_t>(tail - head) * 4;
    TxBarrier::arrive_and_expect_tx(stage.full, bytes);
    SM90_BULK_COPY_G2S::copy(first + head, stage.full, lists + head, static_cast<int32_t>(bytes));
  }
  for (int i = 0; i < head; ++i) lists[i] = first[i];
  for (int i = tail; i < n; ++i) lists[i] = first[i];
  if (tail > head) {
    Barrier::wait(stage.full, stage.phase);
    stage.phase ^= 1;
  }
  int diff = t.na != t.nb || t.na == 0;
  if (!diff) {
#pragma unroll 8
    for (int i = 0; i < t.na; ++i) diff |= lists[i] ^ lists[t.na + i];  // no early exit: the loads pipeline
  }
  t.equal = !diff;
  if (t.equal) {  // all common units, an odd count ending with a masked repeat: no own units, nothing marked
    t.extra = -1;
    t.common_units = (t.na + 1) / 2;
    t.own_units[0] = t.own_units[1] = 0;
  } else {
    int common = 0, last = -1;  // last: the last common entry
    for (int i = 0, j = t.na; i < t.na && j < n;) {
      const int x = lists[i], y = lists[j];
      if (x == y) {
        lists[i] = lists[j] = x | kCommonBit;
        ++common;
        last = x;
      }
      i += x <= y;
      j += y <= x;
    }
    const int odd = common % 2;
    t.extra = odd ? last : -1;
    t.common_units = common / 2;
    t.own_units[0] = (t.na - common + odd + 1) / 2;
    t.own_units[1] = t.nb > 0 ? (t.nb - common + odd + 1) / 2 : 0;
  }
  t.count = 2 * (t.common_units + t.own_units[0] + t.own_units[1]);
  return t;
}

// A part of a split tail tile (split_tail.h): equal lists take its range of common units, a tile of one query block
// (the last of an odd count) its range of that block's own units. Two unequal lists are not cut (the stream
// interleaves the consumers' own units): part 0 takes the whole tile and the others nothing.
__device__ __forceinline__ void split_pair(PairTile& t, const SplitTail& s, const WorkSegment& w) {
  if (w.part < 0) return;
  if (t.equal || t.nb == 0) {
    int begin, end;  // (no reference to the one field: it put the PairTile in local memory)
    split_segment_steps(s, w, t.equal ? t.common_units : t.own_units[0], begin, end);
    t.first = 2 * begin;
    if (t.equal) t.common_units = end - begin;
    else t.own_units[0] = end - begin;
  } else if (w.part > 0) {
    t.common_units = t.own_units[0] = t.own_units[1] = 0;
  }
  t.count = 2 * (t.common_units + t.own_units[0] + t.own_units[1]);
}

// The producer's side: the tile's stream, unit by unit, in the order above. next(u, s0, s1) must be called for
// u = 0, 1, 2, ... in turn.
struct PairStream {
  const int* lists;
  ListWalk common, own0, own1;
  int extra, common_units, interleaved, longer;
  bool equal;

  __device__ __forceinline__ PairStream(const PairTile& t, const int* staging_area)
      : lists(staging_area + t.shift),
        common{t.first, t.na},
        own0{t.first, t.na},
        own1{t.na, t.na + t.nb},
        extra(t.extra),
        common_units(t.common_units),
        interleaved(min(t.own_units[0], t.own_units[1])),
        longer(t.own_units[1] > t.own_units[0]),
        equal(t.equal) {}

  __device__ __forceinline__ void next(const KernelParams& p, int u, SubBlock& s0, SubBlock& s1) {
    int x0, x1;
    if (u < common_units) {
      x0 = equal ? common.take(lists) : common.next<true>(lists);
      x1 = equal ? common.take(lists) : common.next<true>(lists);
    } else {
      const int k = u - common_units;
      if (k < 2 * interleaved ? k % 2 : longer) {  // if / else, not a reference: the walks stay in registers
        x0 = own1.next<false>(lists, extra);
        x1 = own1.next<false>(lists, extra);
      } else {
        x0 = own0.next<false>(lists, extra);
        x1 = own0.next<false>(lists, extra);
      }
    }
    s0 = {x0, block_valid(p, x0)};
    s1 = x1 >= 0 ? SubBlock{x1, block_valid(p, x1)} : SubBlock{x0, 0};
  }
};

// The consumer's side: where its units sit in the stream and how many arrivals release them.
struct PairUnits {
  int common, mine, interleaved, half;

  __device__ __forceinline__ PairUnits(const PostedTile& t, int consumer) {
    const int own0 = t.first_own, own1 = t.count / 2 - t.common - t.first_own;
    common = t.common;
    mine = consumer ? own1 : own0;
    interleaved = min(own0, own1);
    half = consumer;
  }
  __device__ __forceinline__ int steps() const { return common + mine; }
  // Stream unit of this consumer's unit u.
  __device__ __forceinline__ int unit(int u) const {
    const int k = u - common;
    return k < 0 ? u : (k < interleaved ? common + 2 * k + half : common + interleaved + k);
  }
  // Arrivals per thread on the empty barriers of unit u's stages (which count both consumers' threads): a unit only
  // this consumer takes is released by its arrivals alone.
  __device__ __forceinline__ uint32_t arrivals(int u) const { return u < common ? 1u : 2u; }
};

}  // namespace sparvar::attention_cuda
