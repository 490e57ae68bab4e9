// Output images of the CLI: names for a batch (out.png -> out_0.png, out_1.png, ...) and a check, before
// any work, that the folder exists and takes a new file (a temp file is created and removed).
#pragma once

#include <filesystem>
#include <vector>

#include "core/tensor.h"

namespace sparvar::pipeline {

std::vector<std::filesystem::path> numbered_outputs(const std::filesystem::path& out, int count);

// Throws a one-line Error unless `out` ends in .png and its folder exists and is writable.
void require_writable_png(const std::filesystem::path& out);

// images: host U8 [N, H, W, 3]; writes image i to paths[i].
void write_pngs(const Tensor& images, const std::vector<std::filesystem::path>& paths);

}  // namespace sparvar::pipeline
