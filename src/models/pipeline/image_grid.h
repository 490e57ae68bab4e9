// Images side by side: rows x cols tiles of equal-size uint8 RGB images with a white gap, for `compare`.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "io/png.h"

namespace sparvar::pipeline {

// tiles[r][c]: host U8 [H, W, 3] each, all the same size.
io::Image image_grid(const std::vector<std::vector<Tensor>>& tiles, int gap = 4);

}  // namespace sparvar::pipeline
