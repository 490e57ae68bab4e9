#include "io/png.h"

#include <cstdlib>
#include <memory>
#include <spng.h>

#include "core/error.h"
#include "io/files.h"
#include "io/mapped_file.h"

namespace sparvar::io {
namespace {

constexpr uint32_t kMaxSide = 16384;

using Context = std::unique_ptr<spng_ctx, void (*)(spng_ctx*)>;

Context make_context(int flags) {
  Context ctx(spng_ctx_new(flags), &spng_ctx_free);
  SPARVAR_CHECK(ctx != nullptr, "png: out of memory creating a libspng context");
  return ctx;
}

}  // namespace

std::vector<uint8_t> encode_png(std::span<const uint8_t> hwc, uint32_t width, uint32_t height, uint32_t channels) {
  SPARVAR_CHECK(channels == 1 || channels == 3 || channels == 4, "png: {} channels (expected 1, 3 or 4)", channels);
  SPARVAR_CHECK(width > 0 && height > 0 && width <= kMaxSide && height <= kMaxSide, "png: bad image size {}x{}",
                width, height);
  const size_t expected = size_t{width} * height * channels;
  SPARVAR_CHECK(hwc.size() == expected, "png: {}x{}x{} image needs {} bytes, got {}", height, width, channels, expected,
                hwc.size());
  Context ctx = make_context(SPNG_CTX_ENCODER);
  spng_set_option(ctx.get(), SPNG_ENCODE_TO_BUFFER, 1);
  spng_ihdr ihdr{};
  ihdr.width = width;
  ihdr.height = height;
  ihdr.bit_depth = 8;
  ihdr.color_type = channels == 1 ? SPNG_COLOR_TYPE_GRAYSCALE
                    : channels == 3 ? SPNG_COLOR_TYPE_TRUECOLOR
                                    : SPNG_COLOR_TYPE_TRUECOLOR_ALPHA;
  int rc = spng_set_ihdr(ctx.get(), &ihdr);
  if (rc == 0) rc = spng_encode_image(ctx.get(), hwc.data(), hwc.size(), SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
  SPARVAR_CHECK(rc == 0, "png: encoding failed: {}", spng_strerror(rc));
  size_t size = 0;
  int get_rc = 0;
  void* buffer = spng_get_png_buffer(ctx.get(), &size, &get_rc);
  SPARVAR_CHECK(buffer != nullptr && get_rc == 0, "png: encoding failed: {}", spng_strerror(get_rc));
  std::vector<uint8_t> out(static_cast<uint8_t*>(buffer), static_cast<uint8_t*>(buffer) + size);
  std::free(buffer);  // libspng hands the buffer over, allocated with malloc
  return out;
}

void write_png(const std::filesystem::path& path, std::span<const uint8_t> hwc, uint32_t width, uint32_t height,
               uint32_t channels) {
  write_file(path, encode_png(hwc, width, height, channels));
}

Image decode_png(std::span<const uint8_t> bytes, std::string_view label) {
  Context ctx = make_context(0);
  spng_set_image_limits(ctx.get(), kMaxSide, kMaxSide);
  spng_set_chunk_limits(ctx.get(), 16u << 20, 64u << 20);
  int rc = spng_set_png_buffer(ctx.get(), bytes.data(), bytes.size());
  spng_ihdr ihdr{};
  if (rc == 0) rc = spng_get_ihdr(ctx.get(), &ihdr);
  SPARVAR_CHECK(rc == 0, "{}: not a readable PNG: {}", label, spng_strerror(rc));

  spng_trns trns{};
  const bool has_alpha = ihdr.color_type == SPNG_COLOR_TYPE_TRUECOLOR_ALPHA ||
                         ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA || spng_get_trns(ctx.get(), &trns) == 0;
  Image image;
  int format = SPNG_FMT_RGB8;
  image.channels = 3;
  if (has_alpha) {
    format = SPNG_FMT_RGBA8;
    image.channels = 4;
  } else if (ihdr.color_type == SPNG_COLOR_TYPE_GRAYSCALE && ihdr.bit_depth <= 8) {
    format = SPNG_FMT_G8;
    image.channels = 1;
  }
  size_t size = 0;
  rc = spng_decoded_image_size(ctx.get(), format, &size);
  SPARVAR_CHECK(rc == 0, "{}: cannot decode PNG: {}", label, spng_strerror(rc));
  image.width = ihdr.width;
  image.height = ihdr.height;
  SPARVAR_CHECK(size == size_t{image.width} * image.height * image.channels, "{}: unexpected decoded PNG size", label);
  try {
    image.pixels.resize(size);
  } catch (const std::bad_alloc&) {
    fail("{}: out of memory decoding a {}x{} PNG", label, image.width, image.height);
  }
  rc = spng_decode_image(ctx.get(), image.pixels.data(), size, format, has_alpha ? SPNG_DECODE_TRNS : 0);
  SPARVAR_CHECK(rc == 0, "{}: cannot decode PNG: {}", label, spng_strerror(rc));
  return image;
}

Image read_png(const std::filesystem::path& path) {
  auto file = MappedFile::open(path);
  return decode_png(file->bytes(), path.string());
}

}  // namespace sparvar::io
