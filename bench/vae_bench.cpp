// vae_bench: the BSQ-VAE decoder's time per image with NCHW activations against channels-last (NHWC), on one set
// of weights and one latent. Default: vae_d32 ([1, 32, 64, 64] latent) and vae_d56 ([1, 14, 128, 128]), 1024x1024
// images, bf16 on the GPU, random weights made in-process (no files); --vae FILE decodes with an official checkpoint
// instead. Each variant gets a fresh backend (NHWC once per SPARVAR_CONV_NHWC_FUSE setting: all, bias, none; see
// src/backend/cuda/cudnn_runner.h), warm-up decodes (cuDNN graphs, GEMM plans), then --repeat timed decodes; the
// time is the wall clock of decode() on a latent already on the device, up to the host F32 image (download and clamp
// included; the pipeline itself finishes an 8-bit image on the device instead, decode_rgb8). Prints best and median
// ms, speedup over NCHW, the first decode (which builds the cuDNN graphs and GEMM plans: a cold start pays it), peak
// GPU memory, and how far each image is from the NCHW one (max |a - b| / max |b|, relative L2).
// SPARVAR_CUDNN_LOG=1 shows which cuDNN graph (fused or not) every convolution got.
//   vae_bench [--preset vae_d32,vae_d56] [--vae FILE] [--size 1024] [--batch 1] [--warmup 2] [--repeat 5]
//             [--fuse all,bias,none] [--device cuda|cpu] [--dtype bf16|f32] [--seed 1]
// (--device cpu with a tiny preset and size is a smoke test: vae_bench --device cpu --preset vae_tiny_d32 --size 64)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "models/bsq_vae/decoder.h"
#include "models/bsq_vae/keys.h"

using namespace sparvar;
using namespace sparvar::bsq_vae;

namespace {

struct Options {
  std::vector<std::string> presets{"vae_d32", "vae_d56"};
  std::string vae;
  int64_t size = 1024, batch = 1;
  int warmup = 2, repeat = 5;
  std::vector<std::string> fuse{"all", "bias", "none"};
  std::string device = "cuda", dtype;
  uint64_t seed = 1;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

constexpr const char* kUsage =
    "vae_bench: BSQ-VAE decode time, NCHW against channels-last (NHWC), on the same weights and latent\n"
    "  --preset P[,P]      decoder shapes: vae_d32, vae_d56, vae_tiny_d32, vae_tiny_d56 (default vae_d32,vae_d56)\n"
    "  --vae FILE          an official decoder checkpoint instead of random weights\n"
    "  --size N            output image side in pixels (default 1024)\n"
    "  --batch N           images per decode (default 1)\n"
    "  --warmup N          untimed decodes first (default 2)\n"
    "  --repeat N          timed decodes (default 5): best and median are printed\n"
    "  --fuse F[,F]        NHWC cuDNN fusion settings to time: all, bias, none (default all,bias,none)\n"
    "  --device cuda|cpu   (default cuda)\n"
    "  --dtype bf16|f32    (default bf16 on cuda, f32 on cpu)\n"
    "  --seed N            weights and latent (default 1)\n"
    "SPARVAR_CUDNN_LOG=1 logs the cuDNN graph every convolution got.\n";

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    auto value = [&]() -> std::string {
      SPARVAR_CHECK(i + 1 < argc, "{} needs a value", a);
      return argv[++i];
    };
    if (a == "--preset") o.presets = split(value());
    else if (a == "--vae") o.vae = value();
    else if (a == "--size") o.size = std::stoll(value());
    else if (a == "--batch") o.batch = std::stoll(value());
    else if (a == "--warmup") o.warmup = std::stoi(value());
    else if (a == "--repeat") o.repeat = std::stoi(value());
    else if (a == "--fuse") o.fuse = split(value());
    else if (a == "--device") o.device = value();
    else if (a == "--dtype") o.dtype = value();
    else if (a == "--seed") o.seed = std::stoull(value());
    else fail("unknown argument '{}' (vae_bench --help lists the options)", a);
  }
  SPARVAR_CHECK(o.device == "cuda" || o.device == "cpu", "--device {}: expected cuda or cpu", o.device);
  SPARVAR_CHECK(o.repeat >= 1 && o.warmup >= 0 && o.batch >= 1 && o.size >= 1,
                "--repeat, --batch, --size must be >= 1 and --warmup >= 0");
  for (const std::string& f : o.fuse)
    SPARVAR_CHECK(f == "all" || f == "bias" || f == "none", "--fuse {}: expected all, bias or none", f);
  return o;
}

struct Variant {
  std::string name;
  VaeLayout layout;
  std::string fuse;  // SPARVAR_CONV_NHWC_FUSE for its backend ("" for NCHW)
};

struct Result {
  double best_ms = 0, median_ms = 0, first_ms = 0;
  size_t peak_bytes = 0;
  Tensor image;
};

Tensor random_latent(const Shape& shape, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = normal(gen);
  return Tensor::from_floats(shape, v);
}

double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

Result run_variant(const Options& o, const VaeConfig& cfg, const std::string& preset, const Variant& v,
                   const Tensor& latent, DType dtype) {
  if (!v.fuse.empty()) setenv("SPARVAR_CONV_NHWC_FUSE", v.fuse.c_str(), 1);  // read by the new backend's cuDNN runner
  auto backend = o.device == "cpu" ? make_cpu_backend() : make_cuda_backend(0);
  BsqVaeDecoder decoder =
      o.vae.empty()
          ? BsqVaeDecoder::from_weights(cfg, random_decoder_weights(cfg, *backend, dtype, o.seed), *backend, dtype,
                                        v.layout)
          : BsqVaeDecoder::load(o.vae, *backend, dtype, preset, v.layout);
  const Tensor codes = backend->upload(latent, dtype);
  backend->synchronize();
  reset_gpu_memory_peak();
  Result r;
  for (int i = 0; i < o.warmup; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    r.image = decoder.decode(codes);
    if (i == 0) r.first_ms = ms_between(t0, std::chrono::steady_clock::now());
  }
  std::vector<double> ms;
  for (int i = 0; i < o.repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    r.image = decoder.decode(codes);
    ms.push_back(ms_between(t0, std::chrono::steady_clock::now()));
    if (o.warmup == 0 && i == 0) r.first_ms = ms.back();
  }
  std::sort(ms.begin(), ms.end());
  r.best_ms = ms.front();
  r.median_ms = ms[ms.size() / 2];
  r.peak_bytes = gpu_memory_stats().peak;
  return r;
}

// max |a - b| / max |b| and ||a - b|| / ||b||.
std::pair<double, double> difference(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_floats(), y = b.to_floats();
  if (x.size() != y.size()) return {INFINITY, INFINITY};
  double max_diff = 0, max_ref = 0, diff = 0, ref = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = std::fabs(double(x[i]) - y[i]);
    if (!std::isfinite(d)) return {INFINITY, INFINITY};
    max_diff = std::max(max_diff, d);
    max_ref = std::max(max_ref, std::fabs(double(y[i])));
    diff += d * d;
    ref += double(y[i]) * y[i];
  }
  return {max_diff / std::max(max_ref, 1e-30), std::sqrt(diff / std::max(ref, 1e-30))};
}

void bench_preset(const Options& o, const std::string& preset) {
  // A checkpoint's own config, read from its shapes (a preset, when given, must match it: load() checks).
  const VaeConfig cfg = o.vae.empty() ? vae_preset(preset) : [&] {
    const io::Checkpoint ckpt = io::open_checkpoint(o.vae);
    return infer_vae_config(ckpt, KeyResolver(ckpt));
  }();
  SPARVAR_CHECK(o.size % cfg.patch_size == 0, "--size {} is not a multiple of the patch size {}", o.size,
                cfg.patch_size);
  const DType dtype = !o.dtype.empty() ? dtype_from_name(o.dtype) : o.device == "cpu" ? DType::F32 : DType::BF16;
  const int64_t side = o.size / cfg.patch_size;
  const Shape latent_shape{o.batch, cfg.codebook_dim, side, side};
  const Tensor latent = random_latent(latent_shape, o.seed + 1);

  std::vector<Variant> variants{{"nchw", VaeLayout::Nchw, ""}};
  if (o.device == "cpu") {
    variants.push_back({"nhwc", VaeLayout::Nhwc, ""});  // no cuDNN: the fuse settings would all run the same code
  } else {
    for (const std::string& f : o.fuse) variants.push_back({"nhwc (fuse=" + f + ")", VaeLayout::Nhwc, f});
  }

  std::printf("\n%s (%s): latent %s -> %lldx%lld image, %s on %s, %s weights, %d warm-up + best of %d\n",
              preset.empty() ? "checkpoint" : preset.c_str(), cfg.describe().c_str(),
              shape_string(latent_shape).c_str(), static_cast<long long>(o.size), static_cast<long long>(o.size),
              std::string(dtype_name(dtype)).c_str(), o.device.c_str(), o.vae.empty() ? "random" : o.vae.c_str(),
              o.warmup, o.repeat);
  std::printf("%-18s %9s %10s %8s %10s %10s %14s %12s\n", "layout", "best ms", "median ms", "speedup", "first ms",
              "peak MiB", "max rel diff", "rel L2");
  std::fflush(stdout);
  Result baseline;
  for (size_t i = 0; i < variants.size(); ++i) {
    const Result r = run_variant(o, cfg, preset, variants[i], latent, dtype);
    if (i == 0) baseline = r;
    const auto [max_rel, rel_l2] = difference(r.image, baseline.image);
    std::printf("%-18s %9.2f %10.2f %7.2fx %10.1f %10.0f %14.3e %12.3e\n", variants[i].name.c_str(), r.best_ms,
                r.median_ms, baseline.best_ms / r.best_ms, r.first_ms, static_cast<double>(r.peak_bytes) / (1 << 20),
                max_rel, rel_l2);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    if (o.device == "cuda" && !cuda_available()) {
      std::printf("skipped: no CUDA device (--device cpu runs the CPU backend)\n");
      return 0;
    }
    if (!o.vae.empty()) {
      bench_preset(o, o.presets.size() == 1 ? o.presets[0] : "");
    } else {
      for (const std::string& preset : o.presets) bench_preset(o, preset);
    }
    std::printf("\n(SPARVAR_CUDNN_LOG=1 logs the cuDNN graph each convolution got: fused, bias only, plain or "
                "refused)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
