// BSQ-VAE decoder parity against our PyTorch reference (golden/, made by make_golden.sh) on the CPU backend
// (fp32, rel err ~1e-5) and, when a GPU is present, the CUDA backend (fp32 ~1e-5, bf16 a few percent), in both
// activation layouts (NCHW and channels-last, layout.h); the two layouts against each other; plus config and
// bad-input checks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>

#include "backend/backend.h"
#include "../compare.h"
#include "io/checkpoint.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "models/bsq_vae/decoder.h"
#include "models/bsq_vae/keys.h"
#include "random_codes.h"

using namespace sparvar;
using namespace sparvar::bsq_vae;
using sparvar::test::random_codes;

namespace {

const std::filesystem::path kGolden = SPARVAR_BSQ_VAE_GOLDEN;

Tensor golden(const std::string& name) { return io::read_npy(kGolden / name); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A temp folder removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("sparvar_vae_" + std::to_string(std::random_device{}()) + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// All tensors of a checkpoint, optionally edited, written to a safetensors file.
std::filesystem::path rewrite(const std::filesystem::path& src, const std::filesystem::path& dst,
                              const std::function<bool(std::string&, Tensor&)>& edit) {
  const io::Checkpoint ck = io::open_checkpoint(src);
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& info : ck.tensors()) {
    std::string name = info.name;
    Tensor t = ck.tensor(name).clone();
    if (edit(name, t)) out.emplace_back(name, t);
  }
  io::write_safetensors(dst, out);
  return dst;
}

struct Case {
  const char* name;
  double fp32_tol;
};

void check_uint8(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const auto* a = got.data_as<uint8_t>();
  const auto* b = want.data_as<uint8_t>();
  int64_t off_by_one = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const int d = std::abs(int(a[i]) - int(b[i]));
    ASSERT_LE(d, 1) << what << " pixel " << i;  // truncation can flip on rounding noise only
    off_by_one += d;
  }
  EXPECT_LE(off_by_one, got.numel() / 100) << what;
}

void decode_and_compare(Backend& be, DType dtype, const std::string& name, double tol,
                        VaeLayout layout = VaeLayout::Auto) {
  BsqVaeDecoder dec = BsqVaeDecoder::load(kGolden / (name + ".pth"), be, dtype, name, layout);
  const Tensor codes = golden(name + "_codes.npy");
  const Tensor want = golden(name + "_image.npy");
  const Tensor img = dec.decode(codes);
  ASSERT_EQ(img.shape(), want.shape());
  const test::Diff d = test::compare(img, want);
  std::printf("[%s %s %s] image %s: rel L2 %.3g, max abs %.3g\n", be.name().c_str(),
              std::string(dtype_name(dtype)).c_str(), std::string(vae_layout_name(dec.layout())).c_str(), name.c_str(),
              d.rel_l2, d.max_abs);
  EXPECT_LT(d.rel_l2, tol) << name << " " << vae_layout_name(dec.layout());
  if (dtype == DType::F32) check_uint8(to_uint8_rgb(img), golden(name + "_uint8.npy"), name);
}

// Sets an environment variable for the scope (restoring the previous value), so layout tests do not leak into
// each other.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    value ? setenv(name, value, 1) : unsetenv(name);
  }
  ~ScopedEnv() { old_ ? setenv(name_, old_->c_str(), 1) : unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// The same decoder (one set of weights) in both layouts on `be`: relative L2 and max abs difference of the images.
test::Diff layouts_differ(Backend& be, DType dtype, const VaeConfig& cfg, const DecoderWeights& w,
                          const Tensor& codes) {
  BsqVaeDecoder nchw = BsqVaeDecoder::from_weights(cfg, w, be, dtype, VaeLayout::Nchw);
  BsqVaeDecoder nhwc = BsqVaeDecoder::from_weights(cfg, w, be, dtype, VaeLayout::Nhwc);
  EXPECT_EQ(nchw.layout(), VaeLayout::Nchw);
  EXPECT_EQ(nhwc.layout(), VaeLayout::Nhwc);
  const Tensor a = nhwc.decode(codes), b = nchw.decode(codes);
  EXPECT_EQ(a.shape(), b.shape());
  return test::compare(a, b);
}

}  // namespace

TEST(BsqVae, PresetsMatchReference) {
  EXPECT_EQ(vae_preset("d32").ch_mult, (std::vector<int>{1, 2, 4, 4, 4}));
  EXPECT_EQ(vae_preset("vae_d32").patch_size, 16);
  EXPECT_EQ(vae_preset("vae_d56").codebook_dim, 14);
  EXPECT_EQ(vae_preset("vae_d56").patch_size, 8);
  EXPECT_TRUE(vae_preset("vae_d56").patchify());
  EXPECT_FALSE(vae_preset("vae_d32").patchify());
  for (const auto& n : vae_preset_names()) EXPECT_NO_THROW(vae_preset(n).validate()) << n;
  EXPECT_NE(error_of([] { vae_preset("d64"); }).find("vae_d32"), std::string::npos);
  EXPECT_EQ(norm_groups(24), 24);
  EXPECT_EQ(norm_groups(512), 32);
}

TEST(BsqVae, ConfigInferredFromShapes) {
  for (const char* name : {"vae_tiny_d32", "vae_tiny_d56"}) {
    const io::Checkpoint ck = io::open_checkpoint(kGolden / (std::string(name) + ".pth"));
    const KeyResolver keys(ck);
    EXPECT_EQ(keys.prefix(), "vae.");
    EXPECT_EQ(infer_vae_config(ck, keys), vae_preset(name)) << infer_vae_config(ck, keys).describe();
  }
}

TEST(BsqVae, CpuParityD32) {
  auto be = make_cpu_backend(2);
  decode_and_compare(*be, DType::F32, "vae_tiny_d32", 1e-4);
}

TEST(BsqVae, CpuParityD56UnwrappedKeys) {
  auto be = make_cpu_backend(2);
  decode_and_compare(*be, DType::F32, "vae_tiny_d56", 1e-4);
}

TEST(BsqVae, CpuNhwcMatchesGoldenAndNchw) {
  auto be = make_cpu_backend(2);
  for (const char* name : {"vae_tiny_d32", "vae_tiny_d56"}) {
    decode_and_compare(*be, DType::F32, name, 1e-4, VaeLayout::Nhwc);
    const io::Checkpoint ck = io::open_checkpoint(kGolden / (std::string(name) + ".pth"));
    const VaeConfig cfg = vae_preset(name);
    const DecoderWeights w = load_decoder_weights(ck, cfg, *be, DType::F32);
    const test::Diff d = layouts_differ(*be, DType::F32, cfg, w, golden(std::string(name) + "_codes.npy"));
    std::printf("[cpu] %s nhwc vs nchw: rel L2 %.3g, max abs %.3g\n", name, d.rel_l2, d.max_abs);
    // Only the summation order of the convolutions differs (~4e-6 seen); a layout bug gives O(1).
    EXPECT_LT(d.rel_l2, 2e-5) << name;
    EXPECT_LT(d.max_abs, 1e-4) << name;
  }
}

TEST(BsqVae, CpuNhwcMatchesNchwRandomWeights) {
  // Random weights (a deterministic function of the seed), batch 2, a non-square latent.
  auto be = make_cpu_backend(2);
  for (const char* name : {"vae_tiny_d32", "vae_tiny_d56"}) {
    const VaeConfig cfg = vae_preset(name);
    const DecoderWeights w = random_decoder_weights(cfg, *be, DType::F32, 7);
    EXPECT_EQ(random_decoder_weights(cfg, *be, DType::F32, 7).conv_out.w.to_floats(), w.conv_out.w.to_floats());
    const test::Diff d = layouts_differ(*be, DType::F32, cfg, w, random_codes({2, cfg.codebook_dim, 3, 5}, 11));
    std::printf("[cpu] %s random weights nhwc vs nchw: rel L2 %.3g, max abs %.3g\n", name, d.rel_l2, d.max_abs);
    EXPECT_LT(d.rel_l2, 2e-5) << name;
  }
}

TEST(BsqVae, LayoutChoice) {
  {
    ScopedEnv unset("SPARVAR_VAE_LAYOUT", nullptr);
    EXPECT_EQ(resolve_vae_layout(VaeLayout::Auto, Device::CPU), VaeLayout::Nchw);
    EXPECT_EQ(resolve_vae_layout(VaeLayout::Auto, Device::CUDA), VaeLayout::Nhwc);
    EXPECT_EQ(resolve_vae_layout(VaeLayout::Nhwc, Device::CPU), VaeLayout::Nhwc);
  }
  {
    ScopedEnv nhwc("SPARVAR_VAE_LAYOUT", "nhwc");
    EXPECT_EQ(resolve_vae_layout(VaeLayout::Auto, Device::CPU), VaeLayout::Nhwc);
    EXPECT_EQ(resolve_vae_layout(VaeLayout::Nchw, Device::CPU), VaeLayout::Nchw);  // explicit wins
    auto be = make_cpu_backend(1);
    EXPECT_EQ(BsqVaeDecoder::load(kGolden / "vae_tiny_d32.pth", *be).layout(), VaeLayout::Nhwc);
  }
  {
    ScopedEnv nchw("SPARVAR_VAE_LAYOUT", "nchw");
    EXPECT_EQ(resolve_vae_layout(VaeLayout::Auto, Device::CUDA), VaeLayout::Nchw);
  }
  {
    ScopedEnv bad("SPARVAR_VAE_LAYOUT", "nhcw");
    const std::string msg = error_of([] { resolve_vae_layout(VaeLayout::Auto, Device::CPU); });
    EXPECT_NE(msg.find("SPARVAR_VAE_LAYOUT=nhcw"), std::string::npos) << msg;
  }
  EXPECT_EQ(vae_layout_from_name("nhwc"), VaeLayout::Nhwc);
  EXPECT_NE(error_of([] { vae_layout_from_name("chw"); }).find("nchw, nhwc or auto"), std::string::npos);
}

TEST(BsqVae, UnpatchifyIsPixelShuffle) {
  auto be = make_cpu_backend(2);
  const Tensor tokens = golden("vae_tiny_d56_tokens.npy");  // pixel_unshuffle(latent codes, 2) in torch
  const Tensor latent = unpatchify_codes(*be, tokens);
  const Tensor want = golden("vae_tiny_d56_codes.npy");
  ASSERT_EQ(latent.shape(), want.shape());
  EXPECT_EQ(latent.to_floats(), want.to_floats());
}

TEST(BsqVae, Uint8Conversion) {
  const Tensor img = Tensor::from_floats({1, 3, 1, 2}, {-1.0f, 1.0f, 0.0f, 0.5f, -0.999f, 0.2f});
  const Tensor u8 = to_uint8_rgb(img);
  ASSERT_EQ(u8.shape(), (Shape{1, 1, 2, 3}));
  const auto* p = u8.data_as<uint8_t>();
  // pixel 0 = (R, G, B) = (-1, 0, -0.999), pixel 1 = (1, 0.5, 0.2)
  EXPECT_EQ(std::vector<int>(p, p + 6), (std::vector<int>{0, 127, 0, 255, 191, 153}));
}

TEST(BsqVae, PresetMismatchIsNamed) {
  auto be = make_cpu_backend(1);
  const std::string msg =
      error_of([&] { BsqVaeDecoder::load(kGolden / "vae_tiny_d32.pth", *be, DType::F32, "vae_tiny_d56"); });
  EXPECT_NE(msg.find("vae_tiny_d56"), std::string::npos) << msg;
  EXPECT_NE(msg.find("codebook_dim 32"), std::string::npos) << msg;
}

TEST(BsqVae, MissingKeyIsNamed) {
  auto be = make_cpu_backend(1);
  TempDir tmp;
  const auto path = rewrite(kGolden / "vae_tiny_d32.pth", tmp.path / "missing.safetensors",
                            [](std::string& n, Tensor&) { return n != "vae.decoder.up.2.block.1.conv2.conv.bias"; });
  const std::string msg = error_of([&] { BsqVaeDecoder::load(path, *be); });
  EXPECT_NE(msg.find("decoder.up.2.block.1.conv2.conv.bias"), std::string::npos) << msg;
}

TEST(BsqVae, MismatchedShapeNamesKeyAndBothShapes) {
  auto be = make_cpu_backend(1);
  TempDir tmp;
  const auto path = rewrite(kGolden / "vae_tiny_d32.pth", tmp.path / "bad_shape.safetensors",
                            [](std::string& n, Tensor& t) {
                              if (n == "vae.decoder.mid.block_1.norm2.norm.weight") t = Tensor::zeros({47}, DType::F32);
                              return true;
                            });
  const std::string msg = error_of([&] { BsqVaeDecoder::load(path, *be); });
  EXPECT_NE(msg.find("decoder.mid.block_1.norm2.norm.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("48"), std::string::npos) << msg;
  EXPECT_NE(msg.find("47"), std::string::npos) << msg;
}

TEST(BsqVae, UnexpectedDecoderKeyIsRejected) {
  auto be = make_cpu_backend(1);
  TempDir tmp;
  // A bare state dict (no 'vae.' prefix) with an attention block the official decoder does not have.
  const auto path = rewrite(kGolden / "vae_tiny_d32.pth", tmp.path / "extra.safetensors",
                            [&](std::string& n, Tensor&) {
                              n = n.substr(4);  // drop "vae."
                              return true;
                            });
  {
    const io::Checkpoint ck = io::open_checkpoint(path);
    std::vector<std::pair<std::string, Tensor>> all;
    for (const auto& i : ck.tensors()) all.emplace_back(i.name, ck.tensor(i.name).clone());
    // Encoder keys (official files hold the whole VAE) are ignored...
    all.emplace_back("encoder.conv_in.conv.weight", Tensor::zeros({24, 3, 3, 3}, DType::F32));
    io::write_safetensors(tmp.path / "with_encoder.safetensors", all);
    // ...unknown decoder keys are not.
    all.emplace_back("decoder.mid.attn_1.q.weight", Tensor::zeros({48, 48, 1, 1}, DType::F32));
    io::write_safetensors(tmp.path / "extra2.safetensors", all);
  }
  EXPECT_NO_THROW(BsqVaeDecoder::load(path, *be));  // the bare layout itself loads
  EXPECT_NO_THROW(BsqVaeDecoder::load(tmp.path / "with_encoder.safetensors", *be, DType::F32, "vae_tiny_d32"));
  const std::string msg = error_of([&] { BsqVaeDecoder::load(tmp.path / "extra2.safetensors", *be); });
  EXPECT_NE(msg.find("decoder.mid.attn_1.q.weight"), std::string::npos) << msg;
}

TEST(BsqVae, BadCodesShape) {
  auto be = make_cpu_backend(1);
  BsqVaeDecoder dec = BsqVaeDecoder::load(kGolden / "vae_tiny_d56.pth", *be);
  const std::string msg = error_of([&] { dec.decode(Tensor::zeros({1, 56, 2, 2}, DType::F32)); });
  EXPECT_NE(msg.find("unpatchify_codes"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { dec.decode(Tensor::zeros({14, 2, 2}, DType::F32)); }).find("[B, 14, h, w]"),
            std::string::npos);
}

TEST(BsqVae, NotAVaeCheckpoint) {
  auto be = make_cpu_backend(1);
  TempDir tmp;
  io::write_safetensors(tmp.path / "x.safetensors", {{"encoder.conv_in.weight", Tensor::zeros({2}, DType::F32)}});
  const std::string msg = error_of([&] { BsqVaeDecoder::load(tmp.path / "x.safetensors", *be); });
  EXPECT_NE(msg.find("no BSQ-VAE decoder"), std::string::npos) << msg;
}

TEST(BsqVae, CudaParityF32AndBf16) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  auto be = make_cuda_backend();
  // fp32 on the GPU checks the graph tightly; bf16 (activations rounded to 8 bits of mantissa after each of ~25
  // convs and norms of a random-weight net) lands at a few percent, a wrong graph at 0.5 or more.
  for (const char* name : {"vae_tiny_d32", "vae_tiny_d56"}) {
    for (VaeLayout layout : {VaeLayout::Nhwc, VaeLayout::Nchw}) {
      decode_and_compare(*be, DType::F32, name, 1e-3, layout);
      decode_and_compare(*be, DType::BF16, name, 8e-2, layout);
    }
  }
  const Tensor tokens = be->upload(golden("vae_tiny_d56_tokens.npy"), DType::F32);
  EXPECT_EQ(be->download(unpatchify_codes(*be, tokens)).to_floats(), golden("vae_tiny_d56_codes.npy").to_floats());
}

TEST(BsqVae, CudaNhwcMatchesCpuNchw) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  auto cpu = make_cpu_backend(2);
  auto gpu = make_cuda_backend();
  for (const char* name : {"vae_tiny_d32", "vae_tiny_d56"}) {
    const VaeConfig cfg = vae_preset(name);
    const Tensor codes = random_codes({2, cfg.codebook_dim, 5, 3}, 13);
    const Tensor want = BsqVaeDecoder::from_weights(cfg, random_decoder_weights(cfg, *cpu, DType::F32, 3), *cpu,
                                                    DType::F32, VaeLayout::Nchw)
                            .decode(codes);
    for (auto [dtype, tol] : {std::pair{DType::F32, 1e-3}, std::pair{DType::BF16, 8e-2}}) {
      BsqVaeDecoder dec = BsqVaeDecoder::from_weights(cfg, random_decoder_weights(cfg, *gpu, dtype, 3), *gpu, dtype);
      EXPECT_EQ(dec.layout(), VaeLayout::Nhwc);  // the default on CUDA
      const test::Diff d = test::compare(dec.decode(codes), want);
      std::printf("[cuda %s nhwc vs cpu nchw] %s: rel L2 %.3g, max abs %.3g\n",
                  std::string(dtype_name(dtype)).c_str(), name, d.rel_l2, d.max_abs);
      EXPECT_LT(d.rel_l2, tol) << name << " " << dtype_name(dtype);
    }
  }
}
