// image_to_rgb8 and download_raw on the CPU backend: known bytes, both layouts, bf16 / f16 host images, every byte
// written, bad inputs. (Bit-equality with the decoder's host path, to_uint8_rgb: tests/models/bsq_vae.)
#include <cstring>
#include <functional>
#include <limits>

#include "rgb8_test_util.h"
#include "test_cpu_util.h"

using namespace sparvar;
using namespace sparvar::test;

namespace {

// The op into an output filled with `fill`.
Tensor to_rgb8(Backend& be, const Tensor& image, ImageLayout layout, const Shape& out, uint8_t fill = 0xA5) {
  Tensor rgb = filled_u8(out, fill);
  be.image_to_rgb8(image, layout, rgb);
  return rgb;
}

// Expects an Error naming every fragment; an `untouched` output must keep its bytes (checked before any work).
template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> fragments, const Tensor* untouched = nullptr) {
  const std::vector<int> before = untouched ? bytes_of(*untouched) : std::vector<int>{};
  expect_error_message(fn, fragments);
  if (untouched) {
    EXPECT_EQ(bytes_of(*untouched), before) << "output written before validation";
  }
}

}  // namespace

TEST_F(CpuBackendTest, Rgb8KnownBytes) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  // Pixels (R, G, B): (-1, 0, -0.999), (1, 0.5, 0.2), (1.5, -7, inf), (-inf, NaN, 0.9999).
  const Tensor img = Tensor::from_floats({1, 3, 1, 4}, {-1.0f, 1.0f, 1.5f, -inf,        //
                                                        0.0f, 0.5f, -7.0f, nan,         //
                                                        -0.999f, 0.2f, inf, 0.9999f});
  const Tensor rgb = to_rgb8(*be, img, ImageLayout::Nchw, {1, 1, 4, 3});
  EXPECT_EQ(bytes_of(rgb), (std::vector<int>{0, 127, 0, 255, 191, 153, 255, 0, 255, 0, 0, 254}));
}

TEST_F(CpuBackendTest, Rgb8ChannelsLastReadsTheFirstThreeChannels) {
  const Tensor nchw = rgb8_test_values({2, 3, 5, 7}, 1);
  const Tensor want = to_rgb8(*be, nchw, ImageLayout::Nchw, {2, 5, 7, 3});
  for (int64_t C : {3, 4, 8}) {
    // The padding channels hold values that would show if they were read (conv_out pads with zeros).
    const Tensor got = to_rgb8(*be, nchw_to_padded_nhwc(nchw, C, 0.25f), ImageLayout::Nhwc, {2, 5, 7, 3});
    EXPECT_EQ(bytes_of(got), bytes_of(want)) << "C = " << C;
  }
}

TEST_F(CpuBackendTest, Rgb8EveryByteWritten) {
  for (ImageLayout layout : {ImageLayout::Nchw, ImageLayout::Nhwc}) {
    const Tensor img = rgb8_test_values({3, 3, 4, 5}, 2, true);  // as NHWC: [3, 3, 4, C = 5]
    const Shape out = layout == ImageLayout::Nchw ? Shape{3, 4, 5, 3} : Shape{3, 3, 4, 3};
    EXPECT_EQ(bytes_of(to_rgb8(*be, img, layout, out, 0x00)), bytes_of(to_rgb8(*be, img, layout, out, 0xFF)));
  }
}

TEST_F(CpuBackendTest, Rgb8TakesHalfPrecisionHostImages) {
  // The CPU backend stores no bf16 / f16 tensors, but converts host images of them (values widened exactly).
  const Tensor values = rgb8_test_values({2, 3, 6, 4}, 3, true);
  for (DType dtype : {DType::BF16, DType::F16}) {
    const Tensor half = values.to_dtype(dtype);
    const Tensor got = to_rgb8(*be, half, ImageLayout::Nchw, {2, 6, 4, 3});
    const Tensor want = to_rgb8(*be, half.to_dtype(DType::F32), ImageLayout::Nchw, {2, 6, 4, 3});
    EXPECT_EQ(bytes_of(got), bytes_of(want)) << dtype_name(dtype);
    if (dtype == DType::BF16) {  // 8 bits of mantissa move many bytes: the case does test a different input
      EXPECT_NE(bytes_of(got), bytes_of(to_rgb8(*be, values, ImageLayout::Nchw, {2, 6, 4, 3})));
    }
  }
}

TEST_F(CpuBackendTest, Rgb8Errors) {
  const Tensor img = rgb8_test_values({1, 3, 4, 6}, 4);
  Tensor out = filled_u8({1, 4, 6, 3}, 0xA5);
  expect_error([&] { be->image_to_rgb8(Tensor::zeros({1, 3, 4, 6}, DType::U8), ImageLayout::Nchw, out); },
               {"image_to_rgb8", "image", "u8", "f32, bf16 or f16"}, &out);
  expect_error([&] { be->image_to_rgb8(rgb8_test_values({1, 4, 4, 6}, 5), ImageLayout::Nchw, out); },
               {"image_to_rgb8", "[1,4,4,6]", "[B, 3, H, W]"}, &out);
  expect_error([&] { be->image_to_rgb8(rgb8_test_values({1, 4, 6, 2}, 5), ImageLayout::Nhwc, out); },
               {"image_to_rgb8", "[1,4,6,2]", "C >= 3"}, &out);
  expect_error([&] { be->image_to_rgb8(rgb8_test_values({3, 4, 6}, 5), ImageLayout::Nchw, out); },
               {"image_to_rgb8", "[3,4,6]"}, &out);
  Tensor swapped = filled_u8({1, 6, 4, 3}, 0xA5);
  expect_error([&] { be->image_to_rgb8(img, ImageLayout::Nchw, swapped); },
               {"image_to_rgb8", "output", "[1,6,4,3]", "[1, 4, 6, 3]"}, &swapped);
  // An NCHW image called channels-last is [B, H = 3, W = 4, C = 6]: the output must then be [1, 3, 4, 3].
  expect_error([&] { be->image_to_rgb8(img, ImageLayout::Nhwc, out); }, {"output", "[1, 3, 4, 3]"}, &out);
  Tensor f32_out = Tensor::zeros({1, 4, 6, 3}, DType::F32);
  expect_error([&] { be->image_to_rgb8(img, ImageLayout::Nchw, f32_out); }, {"output", "u8"});
  static float device_floats[72];
  const Tensor on_gpu = Tensor::wrap(device_floats, {1, 3, 4, 6}, DType::F32, Device::CUDA);
  expect_error([&] { be->image_to_rgb8(on_gpu, ImageLayout::Nchw, out); }, {"image", "not on the cpu backend"}, &out);
  Tensor overlap = Tensor(img.storage(), 0, {1, 4, 6, 3}, DType::U8);  // the image's own first bytes
  expect_error([&] { be->image_to_rgb8(img, ImageLayout::Nchw, overlap); }, {"image_to_rgb8", "overlaps image"});
}

TEST_F(CpuBackendTest, DownloadRawKeepsDtypeAndBytes) {
  Tensor bytes = Tensor::empty({2, 9}, DType::U8);
  for (int64_t i = 0; i < bytes.numel(); ++i) bytes.data_as<uint8_t>()[i] = static_cast<uint8_t>(i * 29 + 3);
  const Tensor raw = be->download_raw(bytes);
  EXPECT_EQ(raw.dtype(), DType::U8);
  EXPECT_EQ(bytes_of(raw), bytes_of(bytes));
  EXPECT_NE(raw.data(), bytes.data());  // a copy, like download()'s
  const Tensor f = rgb8_test_values({4, 5}, 7);
  const Tensor raw_f = be->download_raw(f);
  EXPECT_EQ(raw_f.dtype(), DType::F32);
  EXPECT_EQ(std::memcmp(raw_f.data(), f.data(), f.nbytes()), 0);
  EXPECT_EQ(be->download(bytes).dtype(), DType::F32);  // download() still converts
  expect_error([&] { be->download_raw(Tensor()); }, {"download_raw", "missing"});
}
