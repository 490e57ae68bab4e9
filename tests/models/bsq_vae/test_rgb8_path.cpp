// The decoder's 8-bit path (Backend::image_to_rgb8 on the decoder's last activation, downloaded as U8) against the
// float path it replaced in generate and bench, to_uint8_rgb(image_to_host(image)): bit for bit, for the op alone
// (F32, BF16 and F16 images, both layouts, values far outside [-1, 1]) and for whole decodes in both layouts.
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>

#include "../../backend/rgb8_test_util.h"
#include "backend/backend.h"
#include "models/bsq_vae/decoder.h"
#include "random_codes.h"

using namespace sparvar;
using namespace sparvar::bsq_vae;
using test::bytes_of;
using test::random_codes;

namespace {

BsqVaeDecoder tiny_decoder(Backend& be, DType dtype, const char* preset, VaeLayout layout) {
  const VaeConfig cfg = vae_preset(preset);
  return BsqVaeDecoder::from_weights(cfg, random_decoder_weights(cfg, be, dtype, 5), be, dtype, layout);
}

// An image whose bytes take many values (a decode that saturates or goes flat would make equality trivial).
void expect_varied(const Tensor& rgb, const std::string& what) {
  const std::vector<int> b = bytes_of(rgb);
  EXPECT_GT(std::set<int>(b.begin(), b.end()).size(), 20u) << what;
}

}  // namespace

TEST(BsqVaeRgb8, OpEqualsHostPathBitForBit) {
  auto be = make_cpu_backend(2);
  const BsqVaeDecoder dec = tiny_decoder(*be, DType::F32, "vae_tiny_d32", VaeLayout::Nchw);  // for image_to_host
  const Tensor values = test::rgb8_test_values({2, 3, 16, 24}, 21);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    const Tensor image = values.to_dtype(dtype);  // a host tensor: the CPU op and download take it as it is
    const Tensor want = to_uint8_rgb(dec.image_to_host(image));
    expect_varied(want, "reference");
    Tensor nchw = be->empty({2, 16, 24, 3}, DType::U8);
    be->image_to_rgb8(image, ImageLayout::Nchw, nchw);
    EXPECT_EQ(bytes_of(nchw), bytes_of(want)) << "nchw " << dtype_name(dtype);
    // The channels-last image as conv_out leaves it, padded to 8 channels (padding 0.75, so reading it shows).
    const Tensor nhwc_image = test::nchw_to_padded_nhwc(values, 8, 0.75f).to_dtype(dtype);
    Tensor nhwc = be->empty({2, 16, 24, 3}, DType::U8);
    be->image_to_rgb8(nhwc_image, ImageLayout::Nhwc, nhwc);
    EXPECT_EQ(bytes_of(nhwc), bytes_of(want)) << "nhwc " << dtype_name(dtype);
  }
}

TEST(BsqVaeRgb8, DecodeRgb8EqualsFloatPath) {
  auto be = make_cpu_backend(2);
  for (const char* preset : {"vae_tiny_d32", "vae_tiny_d56"}) {
    for (VaeLayout layout : {VaeLayout::Nchw, VaeLayout::Nhwc}) {
      BsqVaeDecoder dec = tiny_decoder(*be, DType::F32, preset, layout);
      const Tensor codes = random_codes({2, dec.config().codebook_dim, 3, 5}, 17);
      const std::string what = std::string(preset) + " " + std::string(vae_layout_name(layout));
      const Tensor want = to_uint8_rgb(dec.decode(codes));
      const Tensor got = dec.decode_rgb8(codes);
      ASSERT_EQ(got.shape(), want.shape()) << what;
      EXPECT_EQ(got.dtype(), DType::U8) << what;
      EXPECT_EQ(bytes_of(got), bytes_of(want)) << what;
      expect_varied(got, what);
    }
  }
}

TEST(BsqVaeRgb8, QueuedHoldsWhatWasAskedFor) {
  auto be = make_cpu_backend(2);
  BsqVaeDecoder dec = tiny_decoder(*be, DType::F32, "vae_tiny_d32", VaeLayout::Nhwc);
  const Tensor codes = random_codes({1, 32, 2, 3}, 3);
  const int64_t H = 2 * dec.config().patch_size, W = 3 * dec.config().patch_size;
  const BsqVaeDecoder::Queued f = dec.decode_queued(codes);
  EXPECT_TRUE(f.image.defined());
  EXPECT_FALSE(f.rgb8.defined());
  EXPECT_EQ(f.image.shape(), Shape({1, 3, H, W}));  // NCHW, the padded channels dropped
  const BsqVaeDecoder::Queued q = dec.decode_queued(codes, BsqVaeDecoder::Output::Rgb8);
  EXPECT_FALSE(q.image.defined());
  ASSERT_TRUE(q.rgb8.defined());
  EXPECT_EQ(q.rgb8.shape(), Shape({1, H, W, 3}));
  EXPECT_EQ(q.rgb8.dtype(), DType::U8);
  EXPECT_GE(q.device_ms(), 0.0);
  EXPECT_EQ(bytes_of(dec.rgb8_to_host(q.rgb8)), bytes_of(to_uint8_rgb(dec.image_to_host(f.image))));
  try {
    dec.rgb8_to_host(f.image);
    ADD_FAILURE() << "rgb8_to_host took a float image";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rgb8_to_host"), std::string::npos) << e.what();
  }
}

TEST(BsqVaeRgb8, CudaDecodeRgb8EqualsFloatPath) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  auto gpu = make_cuda_backend();
  for (DType dtype : {DType::BF16, DType::F32}) {
    for (VaeLayout layout : {VaeLayout::Nhwc, VaeLayout::Nchw}) {
      BsqVaeDecoder dec = tiny_decoder(*gpu, dtype, "vae_tiny_d32", layout);
      const Tensor codes = random_codes({2, 32, 5, 3}, 19);
      const std::string what = std::string(dtype_name(dtype)) + " " + std::string(vae_layout_name(layout));
      (void)dec.decode(codes);  // first calls pick GEMM / cuDNN plans; the two decodes below then run the same ones
      const Tensor want = to_uint8_rgb(dec.decode(codes));
      const Tensor got = dec.decode_rgb8(codes);
      ASSERT_EQ(got.shape(), want.shape()) << what;
      EXPECT_EQ(bytes_of(got), bytes_of(want)) << what;
      expect_varied(got, what);
    }
  }
}
