// Normalised-region geometry shared by the pattern builders: a token rectangle of one scale seen at
// another scale's resolution, and the tiles that cover a rectangle.
#pragma once

#include <algorithm>
#include <cstdint>

#include "attention/block_set.h"
#include "attention/tile_order.h"

namespace sparvar {

// The tokens of grid `to` whose cells intersect (with positive area) the normalised region of `rect` in
// grid `from`, grown by grow_y / grow_x tokens of `to` on each side and clipped to the grid.
inline TokenRect map_rect(const TokenRect& rect, ScaleGrid from, ScaleGrid to, int grow_y, int grow_x) {
  auto lo = [](int v, int num, int den) { return static_cast<int>(int64_t{v} * num / den); };
  auto hi = [](int v, int num, int den) { return static_cast<int>((int64_t{v} * num + den - 1) / den); };
  return {std::max(0, lo(rect.y0, to.h, from.h) - grow_y), std::min(to.h, hi(rect.y1, to.h, from.h) + grow_y),
          std::max(0, lo(rect.x0, to.w, from.w) - grow_x), std::min(to.w, hi(rect.x1, to.w, from.w) + grow_x)};
}

// Adds the blocks of tiled scale `s` (tile shape `tile`) whose tiles intersect `rect` (tokens of s).
inline void add_covering_tiles(const ScaleBlocks& s, TileShape tile, const TokenRect& rect, BlockSet& out) {
  if (rect.y0 >= rect.y1 || rect.x0 >= rect.x1) return;
  const int tx0 = rect.x0 / tile.w, tx1 = (rect.x1 - 1) / tile.w;
  for (int ty = rect.y0 / tile.h; ty <= (rect.y1 - 1) / tile.h; ++ty)
    out.set_range(s.block_of_tile(ty, tx0), s.block_of_tile(ty, tx1) + 1);
}

}  // namespace sparvar
