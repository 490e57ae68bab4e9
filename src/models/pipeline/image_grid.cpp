#include "models/pipeline/image_grid.h"

#include <cstring>

#include "core/error.h"

namespace sparvar::pipeline {

io::Image image_grid(const std::vector<std::vector<Tensor>>& tiles, int gap) {
  SPARVAR_CHECK(!tiles.empty() && !tiles[0].empty(), "image grid: no images");
  const Tensor& first = tiles[0][0];
  const int64_t H = first.dim(0), W = first.dim(1);
  const size_t rows = tiles.size(), cols = tiles[0].size();
  io::Image img;
  img.channels = 3;
  img.width = static_cast<uint32_t>(cols * W + (cols - 1) * gap);
  img.height = static_cast<uint32_t>(rows * H + (rows - 1) * gap);
  img.pixels.assign(static_cast<size_t>(img.width) * img.height * 3, 255);
  for (size_t r = 0; r < rows; ++r) {
    SPARVAR_CHECK(tiles[r].size() == cols, "image grid: row {} has {} images, row 0 has {}", r, tiles[r].size(), cols);
    for (size_t c = 0; c < cols; ++c) {
      const Tensor& t = tiles[r][c];
      SPARVAR_CHECK(t.shape() == first.shape() && t.dtype() == DType::U8, "image grid: tile {} {} is {}, want {}", r,
                    c, t.describe(), first.describe());
      const uint8_t* src = t.data_as<uint8_t>();
      for (int64_t y = 0; y < H; ++y) {
        const size_t dy = r * (H + gap) + static_cast<size_t>(y), dx = c * (W + gap);
        std::memcpy(img.pixels.data() + (dy * img.width + dx) * 3, src + y * W * 3, static_cast<size_t>(W * 3));
      }
    }
  }
  return img;
}

}  // namespace sparvar::pipeline
