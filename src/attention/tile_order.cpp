#include "attention/tile_order.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace sparvar {

namespace {
int ceil_div(int a, int b) { return (a + b - 1) / b; }
}  // namespace

TileLayout TileLayout::build(const ScaleSchedule& schedule, int first_scale, int last_scale, TileShape tile,
                             int packed_scales) {
  SPARVAR_CHECK(tile.h >= 1 && tile.w >= 1, "tile shape {}x{} must be at least 1x1", tile.h, tile.w);
  SPARVAR_CHECK(0 <= first_scale && first_scale <= last_scale && last_scale < schedule.num_scales(),
                "scale range {}..{} invalid for schedule '{}' ({} scales)", first_scale, last_scale,
                schedule.name(), schedule.num_scales());
  SPARVAR_CHECK(packed_scales >= 0, "packed_scales must be >= 0, got {}", packed_scales);
  SPARVAR_CHECK(first_scale == 0 || first_scale >= packed_scales || first_scale == last_scale,
                "a layout of scales {}..{} would split the packed prefix of {} scales", first_scale, last_scale,
                packed_scales);
  const int64_t rows = schedule.offset(last_scale + 1) - schedule.offset(first_scale);
  SPARVAR_CHECK(rows < std::numeric_limits<int32_t>::max() / 4, "too many tokens for a layout: {}", rows);

  TileLayout L;
  L.tile_ = tile;
  const int bs = tile.size();
  L.slot_of_row_.assign(rows, -1);
  const int64_t row_base = schedule.offset(first_scale);

  // Packed prefix: row-major tokens fill blocks densely.
  int64_t next_slot = 0;
  int k = first_scale;
  for (; k <= last_scale && k < packed_scales; ++k) {
    ScaleBlocks s;
    s.scale = k;
    s.grid = schedule.grid(k);
    s.packed = true;
    s.first_row = schedule.offset(k) - row_base;
    s.first_block = static_cast<int>(next_slot / bs);
    for (int64_t t = 0; t < s.grid.tokens(); ++t) L.slot_of_row_[s.first_row + t] = static_cast<int32_t>(next_slot++);
    s.num_blocks = static_cast<int>((next_slot - 1) / bs) - s.first_block + 1;
    L.scales_.push_back(s);
  }
  const int packed_blocks = ceil_div(static_cast<int>(next_slot), bs);
  for (int b = 0; b < packed_blocks; ++b) {
    BlockInfo info;
    info.packed = true;
    info.valid = static_cast<int>(std::min<int64_t>(bs, next_slot - int64_t{b} * bs));
    // Scale of the block's first token.
    for (const ScaleBlocks& s : L.scales_)
      if (L.slot_of_row_[s.first_row] <= int64_t{b} * bs) info.scale = s.scale;
    L.blocks_.push_back(info);
  }

  // Tiled scales.
  for (; k <= last_scale; ++k) {
    ScaleBlocks s;
    s.scale = k;
    s.grid = schedule.grid(k);
    s.tiles_y = ceil_div(s.grid.h, tile.h);
    s.tiles_x = ceil_div(s.grid.w, tile.w);
    s.first_block = L.num_blocks();
    s.num_blocks = s.tiles_y * s.tiles_x;
    s.first_row = schedule.offset(k) - row_base;
    for (int ty = 0; ty < s.tiles_y; ++ty) {
      for (int tx = 0; tx < s.tiles_x; ++tx) {
        BlockInfo info;
        info.scale = k;
        info.tile_y = ty;
        info.tile_x = tx;
        info.rect = {ty * tile.h, std::min(s.grid.h, (ty + 1) * tile.h), tx * tile.w,
                     std::min(s.grid.w, (tx + 1) * tile.w)};
        const int rw = info.rect.x1 - info.rect.x0;
        info.valid = (info.rect.y1 - info.rect.y0) * rw;
        const int64_t base = int64_t{L.num_blocks()} * bs;
        for (int y = info.rect.y0; y < info.rect.y1; ++y)
          for (int x = info.rect.x0; x < info.rect.x1; ++x)
            L.slot_of_row_[s.first_row + int64_t{y} * s.grid.w + x] =
                static_cast<int32_t>(base + (y - info.rect.y0) * rw + (x - info.rect.x0));
        L.blocks_.push_back(info);
      }
    }
    L.scales_.push_back(s);
  }

  L.row_of_slot_.assign(L.num_slots(), -1);
  for (int64_t r = 0; r < rows; ++r) L.row_of_slot_[L.slot_of_row_[r]] = static_cast<int32_t>(r);
  L.compact_start_.assign(L.num_blocks() + 1, 0);
  for (int b = 0; b < L.num_blocks(); ++b) {
    L.block_valid_.push_back(L.blocks_[b].valid);
    L.compact_start_[b + 1] = L.compact_start_[b] + L.blocks_[b].valid;
  }
  return L;
}

const ScaleBlocks& TileLayout::scale(int k) const {
  SPARVAR_CHECK(!scales_.empty() && k >= first_scale() && k <= last_scale(),
                "scale {} is not in this layout (scales {}..{})", k, scales_.empty() ? 0 : first_scale(),
                scales_.empty() ? -1 : last_scale());
  return scales_[k - first_scale()];
}

int TileLayout::blocks_below(int k) const {
  if (k > last_scale()) return num_blocks();
  const ScaleBlocks& s = scale(k);
  if (!s.packed) return s.first_block;
  // Packed scales share blocks: round the first slot of scale k up to a whole block.
  return static_cast<int>((slot_of_row_[s.first_row] + block_size() - 1) / block_size());
}

int64_t TileLayout::compact_of_slot(int64_t slot) const {
  SPARVAR_CHECK(slot >= 0 && slot < num_slots() && row_of_slot_[slot] >= 0, "slot {} holds no token", slot);
  const int b = static_cast<int>(slot / block_size());
  return compact_start_[b] + (slot - int64_t{b} * block_size());
}

namespace {
void check_buffers(const TileLayout& L, size_t rowmajor, size_t other, int64_t other_rows, int64_t dim,
                   const char* what) {
  SPARVAR_CHECK(dim >= 1, "{}: dim must be >= 1, got {}", what, dim);
  SPARVAR_CHECK(rowmajor == static_cast<size_t>(L.num_rows() * dim),
                "{}: row-major buffer has {} floats, expected {} rows x {}", what, rowmajor, L.num_rows(), dim);
  SPARVAR_CHECK(other == static_cast<size_t>(other_rows * dim), "{}: tile-ordered buffer has {} floats, expected {} x {}",
                what, other, other_rows, dim);
}
}  // namespace

void rows_to_padded(const TileLayout& L, std::span<const float> rowmajor, std::span<float> padded, int64_t dim,
                    float pad_value) {
  check_buffers(L, rowmajor.size(), padded.size(), L.num_slots(), dim, "rows_to_padded");
  const auto& src = L.row_of_slot();
  for (int64_t s = 0; s < L.num_slots(); ++s) {
    float* d = padded.data() + s * dim;
    if (src[s] < 0) std::fill(d, d + dim, pad_value);
    else std::memcpy(d, rowmajor.data() + int64_t{src[s]} * dim, dim * sizeof(float));
  }
}

void padded_to_rows(const TileLayout& L, std::span<const float> padded, std::span<float> rowmajor, int64_t dim) {
  check_buffers(L, rowmajor.size(), padded.size(), L.num_slots(), dim, "padded_to_rows");
  const auto& slot = L.slot_of_row();
  for (int64_t r = 0; r < L.num_rows(); ++r)
    std::memcpy(rowmajor.data() + r * dim, padded.data() + int64_t{slot[r]} * dim, dim * sizeof(float));
}

void rows_to_compact(const TileLayout& L, std::span<const float> rowmajor, std::span<float> compact, int64_t dim) {
  check_buffers(L, rowmajor.size(), compact.size(), L.num_rows(), dim, "rows_to_compact");
  const auto& slot = L.slot_of_row();
  for (int64_t r = 0; r < L.num_rows(); ++r)
    std::memcpy(compact.data() + L.compact_of_slot(slot[r]) * dim, rowmajor.data() + r * dim, dim * sizeof(float));
}

void compact_to_rows(const TileLayout& L, std::span<const float> compact, std::span<float> rowmajor, int64_t dim) {
  check_buffers(L, rowmajor.size(), compact.size(), L.num_rows(), dim, "compact_to_rows");
  const auto& slot = L.slot_of_row();
  for (int64_t r = 0; r < L.num_rows(); ++r)
    std::memcpy(rowmajor.data() + r * dim, compact.data() + L.compact_of_slot(slot[r]) * dim, dim * sizeof(float));
}

}  // namespace sparvar
