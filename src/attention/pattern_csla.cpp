#include "attention/pattern_csla.h"

#include "attention/block_set.h"
#include "attention/region.h"
#include "core/error.h"

namespace sparvar {

BlockPattern build_csla_pattern(const TileLayout& q_layout, const TileLayout& k_layout, const CslaOptions& o,
                                int heads) {
  const int k = q_layout.first_scale();
  SPARVAR_CHECK(q_layout.last_scale() == k && k_layout.first_scale() == 0 && k_layout.last_scale() == k,
                "CSLA: query layout must hold scale {} alone and key layout scales 0..{}", k, k);
  SPARVAR_CHECK(o.sink_scales >= 0 && o.own_radius_tiles >= 0 && o.window_tokens >= 0,
                "CSLA: sink_scales, own_radius_tiles and window_tokens must be >= 0 (got {}, {}, {})", o.sink_scales,
                o.own_radius_tiles, o.window_tokens);
  SPARVAR_CHECK(o.packed_scales <= o.sink_scales, "CSLA: packed_scales ({}) must not exceed sink_scales ({})",
                o.packed_scales, o.sink_scales);
  const ScaleBlocks& qs = q_layout.scale(k);
  if (k < o.sink_scales || qs.grid.tokens() < o.dense_below_tokens || qs.packed)
    return dense_pattern(q_layout.num_blocks(), k_layout.num_blocks(), heads);

  BlockPattern p;
  p.num_q_blocks = q_layout.num_blocks();
  p.num_k_blocks = k_layout.num_blocks();
  p.heads = heads;
  p.shared_across_heads = true;
  p.row_offsets.push_back(0);
  const int sink_blocks = k_layout.blocks_below(o.sink_scales);
  const TileShape qt = q_layout.tile(), kt = k_layout.tile();
  BlockSet row(p.num_k_blocks);
  for (const BlockInfo& qb : q_layout.blocks()) {
    row.clear();
    row.set_range(0, sink_blocks);
    for (int j = o.sink_scales; j < k; ++j) {
      const ScaleBlocks& ks = k_layout.scale(j);
      const int r = o.window_for_scale(j);
      add_covering_tiles(ks, kt, map_rect(qb.rect, qs.grid, ks.grid, r, r), row);
    }
    const int ry = o.own_radius_tiles * qt.h, rx = o.own_radius_tiles * qt.w;
    add_covering_tiles(k_layout.scale(k), kt, map_rect(qb.rect, qs.grid, qs.grid, ry, rx), row);
    row.append_to(p.col_blocks);
    p.row_offsets.push_back(static_cast<int32_t>(p.col_blocks.size()));
  }
  return p;
}

BlockSparseLayout build_csla(const ScaleSchedule& schedule, int query_scale, const CslaOptions& o, int heads) {
  ScaleLayouts l = make_scale_layouts(schedule, query_scale, o.q_tile, o.k_tile, o.packed_scales);
  return make_block_sparse_layout(build_csla_pattern(l.q, l.k, o, heads), l.q, l.k);
}

}  // namespace sparvar
