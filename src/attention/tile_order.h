// Tile order: how the tokens of a range of scales are laid out for block-sparse attention.
//
// Each scale's h x w grid is cut into tiles of tile.h x tile.w tokens (edge tiles may be partial); tiles go
// row-major over the grid, tokens row-major inside a tile's true extent. One tile = one block. The PADDED
// layout gives every block exactly tile.h * tile.w slots, and a block's valid tokens are always a PREFIX of
// its slots (a 3x5 edge tile fills slots 0..14 of its block), so "slot s of block b is a token" is simply
// s < block_valid[b]: the kernel sees fixed-size blocks plus one valid length per block.
// The COMPACT view is the same order with the padding slots dropped (no gaps).
//
// Optionally the first `packed_scales` scales (the tiny, always-attended sink scales) are not tiled: their
// tokens, row-major, scale after scale, fill blocks from slot 0 densely, and only the last of those blocks
// is partial. That saves blocks (1x1, 2x2, 4x4, ... would each waste a whole block) and costs nothing,
// because sink blocks are always listed whole. Such blocks have no image region.
//
// Rows are row-major token indices RELATIVE to the first scale of the layout (scale after scale, as in the
// schedule). A layout of scales 0..k is a prefix of the layout of 0..K-1 (same blocks, same slots), so a KV
// cache stored in the full layout serves every scale k by taking its first num_blocks() blocks. Valid
// lengths agree too, except that while k is inside the packed prefix the last packed block of the
// shorter layout is only partly valid (later scales' tokens are not there yet): always take the valid
// lengths from the layout of 0..k.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "attention/schedule.h"

namespace sparvar {

struct TileShape {
  int h = 8;
  int w = 8;
  int size() const { return h * w; }
  bool operator==(const TileShape&) const = default;
};

// A token rectangle [y0, y1) x [x0, x1) of one scale's grid.
struct TokenRect {
  int y0 = 0, y1 = 0, x0 = 0, x1 = 0;
};

// One block of a layout.
struct BlockInfo {
  int scale = 0;      // scale of its tokens (for a packed block: the scale of its first token)
  bool packed = false;
  int tile_y = 0, tile_x = 0;  // tile coordinates in its scale (tiled blocks)
  TokenRect rect;              // tokens it holds (tiled blocks)
  int valid = 0;               // valid tokens, at slots [0, valid) of the block
};

// Where one scale sits in a layout.
struct ScaleBlocks {
  int scale = 0;
  ScaleGrid grid;
  bool packed = false;
  int tiles_y = 0, tiles_x = 0;       // tiled scales: tile grid
  int first_block = 0, num_blocks = 0;  // tiled scales: its blocks; packed: blocks holding any of its tokens
  int64_t first_row = 0;              // row-major index of its first token (relative to the layout)
  // Block of tile (ty, tx) of a tiled scale.
  int block_of_tile(int ty, int tx) const { return first_block + ty * tiles_x + tx; }
};

class TileLayout {
 public:
  TileLayout() = default;
  // Scales first..last of `schedule`; scales below `packed_scales` (absolute index) are packed, and must
  // form a prefix of the layout (first == 0 or first >= packed_scales), or be the only scale (a query
  // layout of a packed scale: its tokens row-major in consecutive blocks).
  static TileLayout build(const ScaleSchedule& schedule, int first_scale, int last_scale, TileShape tile,
                          int packed_scales = 0);

  TileShape tile() const { return tile_; }
  int block_size() const { return tile_.size(); }
  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  int64_t num_rows() const { return static_cast<int64_t>(slot_of_row_.size()); }   // real tokens
  int64_t num_slots() const { return int64_t{num_blocks()} * block_size(); }       // padded length
  int first_scale() const { return scales_.front().scale; }
  int last_scale() const { return scales_.back().scale; }
  const std::vector<ScaleBlocks>& scales() const { return scales_; }
  // Scale by absolute index (first_scale() <= k <= last_scale()).
  const ScaleBlocks& scale(int k) const;
  const std::vector<BlockInfo>& blocks() const { return blocks_; }
  const std::vector<int32_t>& block_valid() const { return block_valid_; }
  // Number of leading blocks that hold every token of the scales below k (k absolute, up to
  // last_scale()+1, which gives num_blocks()). For a tiled scale k this is its first block.
  int blocks_below(int k) const;

  // Permutations. slot_of_row: row-major token -> padded slot. row_of_slot: padded slot -> token or -1.
  const std::vector<int32_t>& slot_of_row() const { return slot_of_row_; }
  const std::vector<int32_t>& row_of_slot() const { return row_of_slot_; }
  // Compact (unpadded tile order) index of a padded slot that holds a token.
  int64_t compact_of_slot(int64_t slot) const;
  int64_t compact_block_start(int block) const { return compact_start_[block]; }

 private:
  TileShape tile_;
  std::vector<ScaleBlocks> scales_;
  std::vector<BlockInfo> blocks_;
  std::vector<int32_t> block_valid_;
  std::vector<int64_t> compact_start_;  // num_blocks + 1
  std::vector<int32_t> slot_of_row_;
  std::vector<int32_t> row_of_slot_;
};

// Apply / undo the permutation on [rows, D] float buffers (one head, one batch item; loop outside for more).
// to_padded writes pad_value into every padding slot, so every element of `padded` is written.
void rows_to_padded(const TileLayout& layout, std::span<const float> rowmajor, std::span<float> padded,
                    int64_t dim, float pad_value = 0.0f);
void padded_to_rows(const TileLayout& layout, std::span<const float> padded, std::span<float> rowmajor,
                    int64_t dim);
void rows_to_compact(const TileLayout& layout, std::span<const float> rowmajor, std::span<float> compact,
                     int64_t dim);
void compact_to_rows(const TileLayout& layout, std::span<const float> compact, std::span<float> rowmajor,
                     int64_t dim);

}  // namespace sparvar
