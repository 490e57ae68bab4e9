// Whole-file writes that report failures as sparvar::Error.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>

namespace sparvar::io {

// Writes bytes to path (truncating), naming the path in any error.
void write_file(const std::filesystem::path& path, std::span<const uint8_t> bytes);

}  // namespace sparvar::io
