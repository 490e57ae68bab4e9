// CSLA, cross-scale local attention: a static pattern that depends only on the schedule and these options,
// so it is built once per resolution (and cached by the caller). See docs/attention.md for measured
// densities. For the query block covering the token rectangle R of scale k (normalised region R / grid):
//  - sinks: every key block of scales 0..sink_scales-1;
//  - every earlier scale j (sink_scales <= j < k): the key blocks of scale j whose tokens intersect R, seen
//    at scale j's resolution, grown by r_j tokens of scale j on each side;
//  - own scale k: the key blocks intersecting R grown by own_radius_tiles query tiles on each side
//    (radius 1 = the 3x3 tile neighbourhood when query and key tiles are equal).
// A query scale with fewer than dense_below_tokens tokens, or with k < sink_scales, gets the dense pattern.
#pragma once

#include <cstdint>
#include <vector>

#include "attention/pattern.h"

namespace sparvar {

struct CslaOptions {
  TileShape q_tile{8, 8};   // 64-token query blocks (one wgmma M=64 tile); 8x16 gives 128
  TileShape k_tile{8, 8};   // 64-token key blocks
  int packed_scales = 0;    // layout option (tile_order.h); must be <= sink_scales
  int sink_scales = 6;      // S: 1+4+16+36+64+144 = 265 tokens at Infinity 1M square
  int window_tokens = 2;    // r_j for every earlier scale, in tokens of that scale
  std::vector<int> window_tokens_per_scale;  // optional r_j override by scale index j (< 0 = use default)
  int own_radius_tiles = 1;                  // r_k, in query tiles: 1 = 3x3 tiles
  int64_t dense_below_tokens = 1024;         // scales up to 24x24 at 1M run dense (~6% of the FLOPs)

  int window_for_scale(int j) const {
    return j < static_cast<int>(window_tokens_per_scale.size()) && window_tokens_per_scale[j] >= 0
               ? window_tokens_per_scale[j]
               : window_tokens;
  }
};

// The pattern on given layouts (q: scale k alone; k: scales 0..k), shared across `heads` heads.
BlockPattern build_csla_pattern(const TileLayout& q_layout, const TileLayout& k_layout, const CslaOptions& options,
                                int heads = 1);
// Layouts from options.q_tile / k_tile / packed_scales, pattern, geometry: ready for the kernel.
BlockSparseLayout build_csla(const ScaleSchedule& schedule, int query_scale, const CslaOptions& options,
                             int heads = 1);

}  // namespace sparvar
