// test_backend_ops, part 4: image_to_rgb8 on CUDA against the CPU backend, bit for bit, and download_raw.
//
// Both backends get the same bytes: the image is made on the host in the dtype under test (F32, BF16, F16) and handed
// to the CPU op as it is (a host tensor) and to CUDA by an upload in the same dtype. The values (rgb8_test_util.h) are
// a decoded image's and worse, NaN included (both backends define it as 0). U8 outputs have no invalid value to
// poison with, so CUDA runs twice, into an output filled with 0x00 and with 0xFF: a byte it leaves unwritten
// differs between the two runs, so it cannot match the CPU's in both.
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backend_ops_util.h"
#include "core/error.h"
#include "rgb8_test_util.h"

namespace sparvar::backend_ops {
namespace {

using test::filled_u8;

struct Rgb8Case {
  Shape shape;
  ImageLayout layout;
};

Shape rgb_shape(const Rgb8Case& c) {
  const Shape& s = c.shape;
  return c.layout == ImageLayout::Nhwc ? Shape{s[0], s[1], s[2], 3} : Shape{s[0], s[2], s[3], 3};
}

// The op on `be` into an output filled with `fill`; the output as host U8.
Tensor run_rgb8(Backend& be, const Tensor& image, ImageLayout layout, const Shape& out, uint8_t fill) {
  Tensor rgb = be.upload(filled_u8(out, fill), DType::U8);
  be.image_to_rgb8(image, layout, rgb);
  return be.download_raw(rgb);
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

int64_t bytes_differing(const Tensor& a, const Tensor& b) {
  if (a.nbytes() != b.nbytes()) return -1;
  const auto* pa = static_cast<const uint8_t*>(a.data());
  const auto* pb = static_cast<const uint8_t*>(b.data());
  int64_t n = 0;
  for (size_t i = 0; i < a.nbytes(); ++i) n += pa[i] != pb[i];
  return n;
}

void print_result(const std::string& desc, DType dtype, bool ok, const std::string& note) {
  std::printf("%-15s %-58s %-5s %-10s %s (exact)%s\n", "image_to_rgb8", desc.c_str(),
              std::string(dtype_name(dtype)).c_str(), "-", ok ? "OK  " : "FAIL", note.c_str());
}

void run_case(Backend& cpu, Backend& gpu, const Rgb8Case& c, uint32_t seed, Tally& tally) {
  const Tensor values = test::rgb8_test_values(c.shape, seed, /*with_nan=*/true);
  const std::string desc = fmt::format("{} {}", c.layout == ImageLayout::Nhwc ? "nhwc" : "nchw", shape_string(c.shape));
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    bool ok = false;
    std::string note;
    try {
      const Tensor host = values.to_dtype(dtype);
      const Tensor want = run_rgb8(cpu, host, c.layout, rgb_shape(c), 0x00);
      const Tensor on_gpu = gpu.upload(host, dtype);
      const Tensor got0 = run_rgb8(gpu, on_gpu, c.layout, rgb_shape(c), 0x00);
      const Tensor got1 = run_rgb8(gpu, on_gpu, c.layout, rgb_shape(c), 0xFF);
      ok = same_bytes(got0, want) && same_bytes(got1, want);
      if (!ok)
        note = fmt::format(" ({} / {} of {} bytes differ)", bytes_differing(got0, want), bytes_differing(got1, want),
                           want.nbytes());
    } catch (const Error& e) {
      note = std::string(" (threw: ") + e.what() + ")";
    }
    print_result(desc, dtype, ok, note);
    tally.record(ok);
  }
}

// download_raw keeps the dtype and the bytes; download still converts to F32.
void check_download_raw(Backend& gpu, Tally& tally) {
  bool ok = true;
  std::string note;
  const Tensor values = test::rgb8_test_values({3, 5, 7}, 5);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    const Tensor host = values.to_dtype(dtype);
    const Tensor back = gpu.download_raw(gpu.upload(host, dtype));
    if (!same_bytes(back, host)) {
      ok = false;
      note += fmt::format(" {} changed", dtype_name(dtype));
    }
  }
  Tensor bytes = Tensor::empty({2, 129}, DType::U8);
  for (int64_t i = 0; i < bytes.numel(); ++i) bytes.data_as<uint8_t>()[i] = static_cast<uint8_t>(i * 37 + 11);
  const Tensor on_gpu = gpu.upload(bytes, DType::U8);
  if (!same_bytes(gpu.download_raw(on_gpu), bytes)) {
    ok = false;
    note += " u8 changed";
  }
  const Tensor as_f32 = gpu.download(on_gpu);
  if (as_f32.dtype() != DType::F32 || as_f32.to_floats() != bytes.to_floats()) {
    ok = false;
    note += " download(u8) is not the f32 values";
  }
  if (gpu.download_raw(gpu.empty({0, 4}, DType::U8)).shape() != Shape({0, 4})) {
    ok = false;
    note += " empty tensor";
  }
  std::printf("%-15s %-58s %-5s %-10s %s (exact)%s\n", "download_raw", "f32, bf16, f16, u8 bytes kept", "all", "-",
              ok ? "OK  " : "FAIL", note.c_str());
  tally.record(ok);
}

// Each must throw sparvar::Error before any launch: the output (filled with 0xA5) stays untouched.
void check_bad_inputs(Backend& gpu, Tally& tally) {
  auto dev = [&](Shape s, DType d = DType::BF16) { return gpu.upload(test::rgb8_test_values(s, 3), d); };
  const Tensor nchw = dev({1, 3, 4, 6}), nhwc = dev({1, 4, 6, 8});
  const Tensor host_image = test::rgb8_test_values({1, 3, 4, 6}, 3);
  struct Bad { const char* what; std::function<void(Tensor&)> call; Shape out; };
  const std::vector<Bad> bads = {
      {"u8 image", [&](Tensor& y) { gpu.image_to_rgb8(gpu.upload(filled_u8({1, 3, 4, 6}, 1), DType::U8),
                                                      ImageLayout::Nchw, y); }, {1, 4, 6, 3}},
      {"nchw with 4 channels", [&](Tensor& y) { gpu.image_to_rgb8(dev({1, 4, 4, 6}), ImageLayout::Nchw, y); },
       {1, 4, 6, 3}},
      {"nhwc with 2 channels", [&](Tensor& y) { gpu.image_to_rgb8(dev({1, 4, 6, 2}), ImageLayout::Nhwc, y); },
       {1, 4, 6, 3}},
      {"rank 3 image", [&](Tensor& y) { gpu.image_to_rgb8(dev({3, 4, 6}), ImageLayout::Nchw, y); }, {1, 4, 6, 3}},
      {"output shape (H, W swapped)", [&](Tensor& y) { gpu.image_to_rgb8(nchw, ImageLayout::Nchw, y); },
       {1, 6, 4, 3}},
      {"output batch", [&](Tensor& y) { gpu.image_to_rgb8(nhwc, ImageLayout::Nhwc, y); }, {2, 4, 6, 3}},
      {"nchw image called nhwc", [&](Tensor& y) { gpu.image_to_rgb8(nchw, ImageLayout::Nhwc, y); }, {1, 4, 6, 3}},
      {"host image", [&](Tensor& y) { gpu.image_to_rgb8(host_image, ImageLayout::Nchw, y); }, {1, 4, 6, 3}},
  };
  auto report = [&](const char* what, bool ok, const std::string& outcome) {
    std::printf("%-15s %-58s %-5s %-10s %s (%s)\n", "bad-input", what, "bf16", "-", ok ? "OK  " : "FAIL",
                outcome.c_str());
    tally.record(ok);
  };
  for (const Bad& bad : bads) {
    const Tensor fill = filled_u8(bad.out, 0xA5);
    Tensor y = gpu.upload(fill, DType::U8);
    std::string outcome = "no error thrown";
    bool ok = false;
    try {
      bad.call(y);
    } catch (const Error& e) {
      ok = same_bytes(gpu.download_raw(y), fill);
      outcome = ok ? e.what() : "threw, but the output was written";
    }
    report(bad.what, ok, outcome);
  }
  // Outputs that are not a u8 tensor on the GPU: nothing to inspect afterwards but the error.
  for (const auto& [what, out] : std::vector<std::pair<const char*, Tensor>>{
           {"f32 output", gpu.upload(Tensor::zeros({1, 4, 6, 3}, DType::F32), DType::F32)},
           {"host output", filled_u8({1, 4, 6, 3}, 0xA5)}}) {
    Tensor y = out;
    std::string outcome = "no error thrown";
    try {
      gpu.image_to_rgb8(nchw, ImageLayout::Nchw, y);
    } catch (const Error& e) {
      outcome = e.what();
    }
    report(what, outcome != "no error thrown", outcome);
  }
}

}  // namespace

void run_rgb8_cases(Backend& cpu, Backend& gpu, const Options& options, Tally& tally) {
  const int64_t side = options.small ? 64 : 1024;
  const std::vector<Rgb8Case> cases = {
      {{1, 3, side, side}, ImageLayout::Nchw},       // the decoded image, NCHW
      {{1, side, side, 8}, ImageLayout::Nhwc},       // conv_out's channels-last output, padded to 8
      {{2, 3, 5, 7}, ImageLayout::Nchw},             // batch, odd sizes
      {{2, 7, 5, 3}, ImageLayout::Nhwc},
      {{3, 9, 11, 4}, ImageLayout::Nhwc},
      {{1, 3, 1, 1}, ImageLayout::Nchw},
  };
  uint32_t seed = 100;
  for (const Rgb8Case& c : cases) {
    const std::string name = fmt::format("image_to_rgb8 {}", shape_string(c.shape));
    if (selected(options, name)) run_case(cpu, gpu, c, seed, tally);
    ++seed;
  }
  if (selected(options, "download_raw")) check_download_raw(gpu, tally);
  if (options.filter.empty() || std::string("bad-input").find(options.filter) != std::string::npos)
    check_bad_inputs(gpu, tally);
}

}  // namespace sparvar::backend_ops
