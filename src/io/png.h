// 8-bit PNG in and out through libspng. Images are interleaved HWC uint8 with 1 (gray), 3 (RGB) or
// 4 (RGBA) channels.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

namespace sparvar::io {

struct Image {
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t channels = 0;  // 1, 3 or 4
  std::vector<uint8_t> pixels;  // height * width * channels
};

std::vector<uint8_t> encode_png(std::span<const uint8_t> hwc, uint32_t width, uint32_t height, uint32_t channels);
void write_png(const std::filesystem::path& path, std::span<const uint8_t> hwc, uint32_t width, uint32_t height,
               uint32_t channels);
inline void write_png(const std::filesystem::path& path, const Image& image) {
  write_png(path, image.pixels, image.width, image.height, image.channels);
}

// Gray PNGs of up to 8 bits come back with 1 channel; images with alpha or transparency with 4; all others
// (palette, 16-bit) are converted to 3-channel RGB. At most 16384 x 16384 pixels.
Image decode_png(std::span<const uint8_t> bytes, std::string_view label = "<memory>");
Image read_png(const std::filesystem::path& path);

}  // namespace sparvar::io
