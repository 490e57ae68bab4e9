// libFuzzer: the PNG decoder (libspng behind decode_png). Chunk CRCs are recomputed before decoding so that
// mutations reach the chunk parsers and the inflater instead of all dying at the CRC check; whatever
// decode_png accepts must be a well-formed image that our encoder takes back unchanged.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "io/png.h"

namespace {

// A PNG's IHDR sits at a fixed offset; inputs claiming more pixels than this are skipped so the fuzzer
// does not spend its time zero-filling gigabyte buffers (decode_png itself allows up to 16384 x 16384).
constexpr uint64_t kMaxFuzzPixels = uint64_t{1} << 22;

uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

uint32_t crc32(const uint8_t* p, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// Walks the chunks after the 8-byte signature and rewrites each complete chunk's CRC.
void fix_crcs(std::vector<uint8_t>& png) {
  size_t pos = 8;
  while (pos + 12 <= png.size()) {
    const uint64_t len = be32(&png[pos]);
    if (len > png.size() - pos - 12) break;
    const uint32_t crc = crc32(&png[pos + 4], 4 + len);
    uint8_t* out = &png[pos + 8 + len];
    out[0] = static_cast<uint8_t>(crc >> 24);
    out[1] = static_cast<uint8_t>(crc >> 16);
    out[2] = static_cast<uint8_t>(crc >> 8);
    out[3] = static_cast<uint8_t>(crc);
    pos += 12 + len;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size >= 24 && uint64_t{be32(data + 16)} * be32(data + 20) > kMaxFuzzPixels) return 0;
  // An exact-size copy, so ASan sees any read past the end of the input.
  std::vector<uint8_t> png(data, data + size);
  fix_crcs(png);
  sparvar::io::Image image;
  try {
    image = sparvar::io::decode_png(png, "fuzz");
  } catch (const sparvar::Error&) {
    return 0;
  }
  if (image.channels != 1 && image.channels != 3 && image.channels != 4) std::abort();
  if (image.width == 0 || image.height == 0) std::abort();
  if (image.pixels.size() != size_t{image.width} * image.height * image.channels) std::abort();
  const auto encoded = sparvar::io::encode_png(image.pixels, image.width, image.height, image.channels);
  const auto again = sparvar::io::decode_png(encoded, "fuzz re-encoded");
  if (again.channels != image.channels || again.pixels != image.pixels) std::abort();
  return 0;
}
