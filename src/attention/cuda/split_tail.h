// Splitting the last partial wave of a persistent launch into ranges of equal work (the shared kernel, dense and
// near-dense lists).
//
// Why: a persistent launch of equal tiles runs ceil(tiles / CTAs) waves. At the last scale with 16 heads that is
// 1,024 tiles on 132 SMs: 7.76 waves run as 8, and for the last one 32 SMs sit idle (3% of the launch; 28 heads:
// 13.58 waves as 14). The whole waves stay as they are; the R = tiles mod CTAs tiles of the last one are cut into
// M ranges of equal work (M > R, so a range is less than a tile and meets at most two tiles), and each range is one
// work item after the whole tiles. A tile cut into parts: each part writes its rows' normalised output (fp32) and
// log-sum-exp to a workspace, and the consumer warpgroup that arrives last on the tile's counter merges the parts and
// stores the tile (split_tail_store.cuh). Every SM then ends within about one part of the others. Measured on the
// H100 it pays where the last wave is mostly empty and the tiles long (3-8% at 40x40 and 48x48 with 16 heads), not
// at the last scale (within +-1%): see plan_split_tail.
//
// Positions in the tail are counted in 1/M of a tile: range i covers [i R, (i+1) R), tail tile t covers
// [t M, (t+1) M). A part's share [lo, hi) of its tile becomes steps [lo S / M, hi S / M) of the tile's S steps, so
// the two sides of a cut agree on the step where it falls. Plain C++ (host and device) so that the arithmetic is
// tested on the CPU (tests/attention/test_split_tail.cpp).
#pragma once

#ifdef __CUDACC__
#define SPARVAR_SPLIT_HD __host__ __device__ __forceinline__
#else
#define SPARVAR_SPLIT_HD inline
#endif

namespace sparvar::attention_cuda {

// What the launcher decided (all zero: no split). Kept in KernelParams.
struct SplitTail {
  int tiles = 0;      // R: the last R work tiles are split
  int ranges = 0;     // M > R: work items they become
  int max_parts = 0;  // the most parts a tile is cut into: workspace slots per tail tile
};

// A mailbox entry of the shared kernel: a whole tile (part < 0), or one part of a tail tile.
struct WorkSegment {
  int tile = 0;       // work tile
  int part = -1;      // index among the tile's parts; -1: the whole tile
  int parts = 1;
  int tail = 0;       // tail tile index (tile - whole tiles): its arrival counter
  int slot = 0;       // workspace slot: tail * max_parts + part
  int lo = 0, hi = 0;  // its share of the tile, in 1/M
};

SPARVAR_SPLIT_HD int split_whole_tiles(const SplitTail& s, int num_tiles) { return num_tiles - s.tiles; }

// Work items of the launch: whole tiles, then the tail's ranges.
SPARVAR_SPLIT_HD int split_work_items(const SplitTail& s, int num_tiles) { return num_tiles - s.tiles + s.ranges; }

// Segments (mailbox entries) of work item `item`: 1, or 2 where its range crosses a tile boundary.
SPARVAR_SPLIT_HD int split_item_segments(const SplitTail& s, int num_tiles, int item) {
  const int whole = split_whole_tiles(s, num_tiles);
  if (item < whole) return 1;
  const int a = (item - whole) * s.tiles, b = a + s.tiles;
  return a / s.ranges != (b - 1) / s.ranges ? 2 : 1;
}

// Segment id of the item's segment k (k < split_item_segments): whole tiles keep their index, range i's segments are
// whole + 2 i + k.
SPARVAR_SPLIT_HD int split_segment_id(const SplitTail& s, int num_tiles, int item, int k) {
  const int whole = split_whole_tiles(s, num_tiles);
  return item < whole ? item : whole + 2 * (item - whole) + k;
}

SPARVAR_SPLIT_HD WorkSegment split_segment(const SplitTail& s, int num_tiles, int id) {
  WorkSegment w;
  const int whole = split_whole_tiles(s, num_tiles);
  if (id < whole) {
    w.tile = id;
    return w;
  }
  const int i = (id - whole) >> 1, k = (id - whole) & 1;
  const int R = s.tiles, M = s.ranges;
  const int a = i * R, b = a + R;
  const int t = a / M + k;
  w.tail = t;
  w.tile = whole + t;
  w.lo = a - t * M > 0 ? a - t * M : 0;
  w.hi = b - t * M < M ? b - t * M : M;
  const int first = t * M / R, last = ((t + 1) * M - 1) / R;  // the ranges that meet tile t
  w.part = i - first;
  w.parts = last - first + 1;
  w.slot = t * s.max_parts + w.part;
  return w;
}

// Steps [begin, end) of the segment, of a tile of `steps` steps.
SPARVAR_SPLIT_HD void split_segment_steps(const SplitTail& s, const WorkSegment& w, int steps, int& begin, int& end) {
  if (w.part < 0) {
    begin = 0;
    end = steps;
    return;
  }
  begin = static_cast<int>(static_cast<long long>(w.lo) * steps / s.ranges);
  end = static_cast<int>(static_cast<long long>(w.hi) * steps / s.ranges);
}

// The launcher's choice, for `tiles` work tiles of about `steps` 128-key steps each on `ctas` persistent CTAs, from a
// model fitted to H100 A/B runs of dense attention at the 32x32 .. 64x64 scales (docs/kernel_notes.md, session 14):
//  - a tile costs its steps plus ~3 (Q load, pipeline fill, store); a CTA's range of split work costs its steps plus
//    ~15 (two parts, each with that fixed cost, the fp32 partial write, the counter and the merge);
//  - the unsplit last wave is not a full wave's time: with fewer SMs busy the clocks and the memory system give
//    each more, ~15% at an empty wave (measured: splitting a 76%-busy last wave gained ~0.5%, not the 3% of idle SMs).
// Splits where the model predicts at least 2% less time, and where each range has at least min_range_steps (pairs of
// 64-row blocks plan each part's two lists: short parts measured 13% slower). force: whenever the last wave is
// partial (tests). max_tail_tiles: the arrival counters available.
inline SplitTail plan_split_tail(int tiles, int ctas, int steps, bool force, int max_tail_tiles,
                                 int min_range_steps = 0) {
  SplitTail s;
  if (tiles <= 0 || ctas <= 1 || steps <= 0) return s;
  const int waves = tiles / ctas, tail = tiles % ctas;
  if (tail == 0 || tail > max_tail_tiles) return s;
  const int ranges = ctas;  // one range per CTA: each ends within one part of the others
  constexpr double kTileCost = 3.0, kRangeCost = 15.0, kTailBoost = 0.15;
  const double busy = static_cast<double>(tail) / ctas, range_steps = static_cast<double>(tail) * steps / ranges;
  const double whole = waves * (steps + kTileCost);
  const double plain = whole + (1.0 - kTailBoost * (1.0 - busy)) * (steps + kTileCost);
  const double split = whole + range_steps + kRangeCost;
  if (!force && (split > 0.98 * plain || range_steps < min_range_steps)) return s;
  s.tiles = tail;
  s.ranges = ranges;
  s.max_parts = (ranges + tail - 1) / tail + 1;
  return s;
}

}  // namespace sparvar::attention_cuda
