// Infinity-2B / 8B shapes on the GPU against the CPU reference, layer by layer: the same random-weight
// checkpoint (python/tools/make_random_checkpoint.py, official layout) loaded on both backends, the same random
// inputs (text, block input, the KV-cache prefix of the earlier scales), one transformer block at a time at the
// first, a middle and the last scale of the 1024x1024 schedule, then the head. bf16 on the GPU, fp32 on the CPU.
//
// Needs the checkpoint folder in SPARVAR_LARGE_CKPT (e.g. /tmp/ckpt_8b: bench/infinity_e2e/run_device.sh writes
// it) and a CUDA device; skipped otherwise (CI). The CPU side of an 8B layer at the last scale is ~3 TFLOP.
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <filesystem>

#include "attention/schedule.h"
#include "backend/backend.h"
#include "core/philox.h"
#include "infinity_test_util.h"
#include "io/checkpoint.h"
#include "models/infinity/attention_runner.h"
#include "models/infinity/block.h"
#include "models/infinity/conditioning.h"
#include "models/infinity/config.h"
#include "models/infinity/kv_cache.h"
#include "models/infinity/rope_tables.h"
#include "models/infinity/sparse_attention_runner.h"
#include "models/infinity/weights.h"
#include "models/infinity/workspace.h"

namespace sparvar::infinity {
namespace {

namespace fs = std::filesystem;
using test::rel_err;

// Uniform [-scale, scale) from Philox stream `stream`: inputs are random, never zeros.
Tensor random_host(const Shape& shape, uint64_t stream, float scale = 1.0f) {
  Tensor t = Tensor::empty(shape, DType::F32);
  float* p = t.data_as<float>();
  PhiloxStream(2024, stream).fill_uniform(p, static_cast<uint64_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = scale * (2.0f * p[i] - 1.0f);
  return t;
}

std::vector<float> slice_tokens(const Tensor& host_cache, int64_t bh, int64_t total, int64_t off, int64_t n, int64_t hd) {
  std::vector<float> out;
  const float* p = host_cache.data_as<float>();
  for (int64_t r = 0; r < bh; ++r)
    out.insert(out.end(), p + (r * total + off) * hd, p + (r * total + off + n) * hd);
  return out;
}

// Everything one backend needs to run single blocks of the model.
struct Side {
  std::unique_ptr<Backend> be;
  InfinityWeights w;
  std::unique_ptr<Conditioning> cond;
  Tensor cos, sin;
  std::unique_ptr<KvCache> cache;
  std::unique_ptr<Workspace> ws;
};

class LargeShapes : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("SPARVAR_LARGE_CKPT");
    if (!dir || !*dir) GTEST_SKIP() << "set SPARVAR_LARGE_CKPT to a 2B/8B random-weight checkpoint folder";
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
    fs::path p = dir;
    p = fs::exists(p / "infinity.pth") ? p / "infinity.pth" : p / "infinity_weights";
    const io::Checkpoint ckpt = io::open_checkpoint(p);
    config_ = infer_config(ckpt);
    cpu_.be = make_cpu_backend();
    gpu_.be = make_cuda_backend();
    cpu_.w = load_weights(ckpt, config_, *cpu_.be);
    gpu_.w = load_weights(ckpt, config_, *gpu_.be);
    schedule_ = infinity_schedule(1.0, PixelBudget::M1);
    const int64_t B = 2, Lt = 32, hd = config_.head_dim();
    // [cond, uncond] rows of different lengths; zeros past each length, as encode_text expects.
    Tensor text = random_host({B, Lt, config_.text_channels}, 1);
    const int32_t short_len = 20;
    float* row1 = text.data_as<float>() + Lt * config_.text_channels;
    std::fill(row1 + short_len * config_.text_channels, row1 + Lt * config_.text_channels, 0.0f);
    const RopeTables rope = build_rope_tables(schedule_, static_cast<int>(hd));
    int64_t max_n = 0;
    for (const auto& g : schedule_.grids()) max_n = std::max(max_n, g.tokens());
    for (Side* s : {&cpu_, &gpu_}) {
      s->cond = std::make_unique<Conditioning>(encode_text(*s->be, s->w, text, {static_cast<int32_t>(Lt), short_len}));
      if (s == &gpu_)  // which cross-attention the GPU side runs (SPARVAR_FOLD_XATTN=0 measures the other)
        std::printf("%s GPU cross-attention: %s\n", config_.name.c_str(),
                    s->cond->folded.empty() ? "attention" : "folded into the projections");
      s->cos = s->be->upload(rope.cos, DType::F32);
      s->sin = s->be->upload(rope.sin, DType::F32);
      s->cache = std::make_unique<KvCache>(*s->be, config_.depth, B, config_.num_heads, schedule_.total_tokens(), hd,
                                           s->w.dtype);
      s->ws = std::make_unique<Workspace>(*s->be, s->w.dtype);
      reserve_block_workspace(*s->ws, config_, B, max_n);
    }
  }

  // One block at (layer, scale) on both sides from the same input and cache prefix; returns the outputs'
  // relative errors {x, keys, values} of the GPU against the CPU.
  std::array<double, 3> compare_block(int layer, int scale, AttentionRunner& cpu_runner, AttentionRunner& gpu_runner,
                                      Tensor* x_cpu_out = nullptr, Tensor* x_gpu_out = nullptr) {
    const int64_t B = 2, H = config_.num_heads, hd = config_.head_dim(), C = config_.embed_dim;
    const int64_t n = schedule_.tokens(scale), off = schedule_.offset(scale), total = schedule_.total_tokens();
    const Tensor x_host = random_host({B, n, C}, 100 + static_cast<uint64_t>(scale), 2.0f);
    const Tensor k_prefix = off > 0 ? random_host({B, H, off, hd}, 200 + static_cast<uint64_t>(scale)) : Tensor();
    const Tensor v_prefix = off > 0 ? random_host({B, H, off, hd}, 300 + static_cast<uint64_t>(scale)) : Tensor();
    std::array<Tensor, 2> x_out;
    std::array<Tensor, 2> k_out, v_out;
    int i = 0;
    for (Side* s : {&cpu_, &gpu_}) {
      Backend& be = *s->be;
      if (off > 0) s->cache->write(layer, be.upload(k_prefix, s->w.dtype), be.upload(v_prefix, s->w.dtype), 0);
      Tensor x = s->ws->take("x", {B, n, C});
      be.copy(be.upload(x_host, s->w.dtype), x);
      ScaleStep step{scale, &schedule_, n, off, s->cos.slice0(off, off + n), s->sin.slice0(off, off + n)};
      const LayerNormSpec next = layer + 1 < config_.depth ? block_input_norm(*s->cond, layer + 1)
                                                            : head_input_norm(*s->cond);
      run_block(be, s->w, layer, *s->cond, step, *s->cache, i == 0 ? cpu_runner : gpu_runner, *s->ws, x,
                InputNorm::Compute, next);
      x_out[i] = be.download(x);
      k_out[i] = be.download(s->cache->keys(layer));
      v_out[i] = be.download(s->cache->values(layer));
      if (i == 0 && x_cpu_out) *x_cpu_out = x_out[i];
      if (i == 1 && x_gpu_out) *x_gpu_out = x_out[i];
      ++i;
    }
    return {rel_err(x_out[1].to_floats(), x_out[0].to_floats()),
            rel_err(slice_tokens(k_out[1], B * H, total, off, n, hd), slice_tokens(k_out[0], B * H, total, off, n, hd)),
            rel_err(slice_tokens(v_out[1], B * H, total, off, n, hd), slice_tokens(v_out[0], B * H, total, off, n, hd))};
  }

  InfinityConfig config_;
  ScaleSchedule schedule_;
  Side cpu_, gpu_;
};

// bf16 activations and weights on the GPU against fp32 on the CPU, after one block: ~1e-2 of the largest value.
constexpr double kBlockTol = 3e-2;

TEST_F(LargeShapes, DenseBlocksAndHead) {
  const int K = schedule_.num_scales(), L = config_.depth;
  DenseAttentionRunner dense;
  for (int scale : {0, K / 2, K - 1}) {
    for (int layer : {0, L / 2, L - 1}) {
      Tensor x_cpu, x_gpu;
      const auto e = compare_block(layer, scale, dense, dense, &x_cpu, &x_gpu);
      std::printf("%s scale %2d layer %2d: rel err x %.2e, k %.2e, v %.2e\n", config_.name.c_str(), scale, layer, e[0],
                  e[1], e[2]);
      EXPECT_LT(e[0], kBlockTol) << "x, scale " << scale << " layer " << layer;
      EXPECT_LT(e[1], kBlockTol) << "keys, scale " << scale << " layer " << layer;
      EXPECT_LT(e[2], kBlockTol) << "values, scale " << scale << " layer " << layer;
      if (layer == L - 1) {  // the head on the same (CPU) block output on both sides
        std::array<std::vector<float>, 2> logits;
        int i = 0;
        for (Side* s : {&cpu_, &gpu_}) {
          Tensor x = s->ws->take("x", x_cpu.shape());
          s->be->copy(s->be->upload(x_cpu, s->w.dtype), x);
          logits[i++] = s->be->download(run_head(*s->be, s->w, *s->cond, *s->ws, x, InputNorm::Compute)).to_floats();
        }
        const double el = rel_err(logits[1], logits[0]);
        std::printf("%s scale %2d head: rel err logits %.2e\n", config_.name.c_str(), scale, el);
        EXPECT_LT(el, 5e-2) << "head logits, scale " << scale;
      }
    }
  }
}

TEST_F(LargeShapes, SparseBlocksAtTheLastScales) {
  const int K = schedule_.num_scales();
  for (AttentionMode mode : {AttentionMode::Csla}) {
    SparseAttentionOptions o;
    auto cpu_runner = make_attention_runner(*cpu_.be, mode, o, schedule_, config_.num_heads, config_.head_dim());
    auto gpu_runner = make_attention_runner(*gpu_.be, mode, o, schedule_, config_.num_heads, config_.head_dim());
    for (int scale : {K - 2, K - 1}) {
      const auto e = compare_block(0, scale, *cpu_runner, *gpu_runner);
      std::printf("%s %s scale %2d layer 0: rel err x %.2e, k %.2e, v %.2e\n", config_.name.c_str(),
                  std::string(attention_mode_name(mode)).c_str(), scale, e[0], e[1], e[2]);
      EXPECT_LT(e[0], kBlockTol) << attention_mode_name(mode) << " x, scale " << scale;
    }
  }
}

}  // namespace
}  // namespace sparvar::infinity
