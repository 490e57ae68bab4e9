#include <gtest/gtest.h>

#include "core/error.h"
#include "io/png.h"
#include "io_test_util.h"

namespace sparvar::io {
namespace {

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 37 + 11);
  return v;
}

TEST(Png, RoundTripsGrayRgbRgba) {
  test::ScratchDir dir;
  for (uint32_t channels : {1u, 3u, 4u}) {
    const uint32_t w = 7, h = 5;
    const auto pixels = pattern(size_t{w} * h * channels);
    const auto path = dir.path() / fmt::format("i{}.png", channels);
    write_png(path, pixels, w, h, channels);
    const Image image = read_png(path);
    EXPECT_EQ(image.width, w);
    EXPECT_EQ(image.height, h);
    EXPECT_EQ(image.channels, channels);
    EXPECT_EQ(image.pixels, pixels) << channels;
  }
}

TEST(Png, EncodedBytesStartWithTheSignature) {
  const auto png = encode_png(pattern(12), 2, 2, 3);
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(std::vector<uint8_t>(png.begin(), png.begin() + 8),
            (std::vector<uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}));
}

TEST(Png, ClearErrors) {
  EXPECT_THROW(encode_png(pattern(11), 2, 2, 3), Error);
  EXPECT_THROW(encode_png(pattern(8), 2, 2, 2), Error);
  EXPECT_THROW(encode_png({}, 0, 0, 3), Error);
  EXPECT_THROW(decode_png(pattern(100)), Error);
  EXPECT_THROW(decode_png({}), Error);
  const auto png = encode_png(pattern(300), 10, 10, 3);
  // Any cut inside the image data fails (libspng stops reading once the pixels are complete, so the last
  // IDAT CRC and the 12-byte IEND chunk are not needed).
  for (size_t n = 0; n + 16 < png.size(); n += 3)
    EXPECT_THROW(decode_png(std::span(png.data(), n)), Error) << n;
  EXPECT_THROW(read_png("/nonexistent/x.png"), Error);
}

}  // namespace
}  // namespace sparvar::io
