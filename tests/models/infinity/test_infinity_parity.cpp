// Parity with our PyTorch reference (python/sparvar_ref, golden/make_golden.sh): infinity_tiny with
// randomised weights, 2 text rows of lengths 7 and 4, the 0.06M square schedule (7 scales, 521 tokens),
// CFG 3, tau 0.8, top-k 900, top-p 0.97, supplied uniforms. The CPU backend (fp32) must match logits to
// ~1e-4 relative and reproduce every sampled bit and the summed codes; the CUDA backend (bf16) runs the same
// with bf16 tolerances when a GPU is present.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "infinity_test_util.h"
#include "io/checkpoint.h"
#include "io/npy.h"
#include "models/infinity/generator.h"

namespace sparvar::infinity {
namespace {

using test::golden;
using test::rel_err;

struct Golden {
  nlohmann::json meta;
  Tensor text, mask, logits, bits, teacher, summed, uniforms;
  ScaleSchedule schedule;
  std::vector<int32_t> lengths;
};

const Golden& load_golden() {
  static const Golden g = [] {
    Golden g;
    std::ifstream in(golden("meta.json"));
    g.meta = nlohmann::json::parse(in);
    g.text = io::read_npy(golden("text_feats.npy"));
    g.logits = io::read_npy(golden("logits_all.npy"));
    g.bits = io::read_npy(golden("bits_all.npy"));
    g.teacher = io::read_npy(golden("teacher_logits_all.npy"));
    g.summed = io::read_npy(golden("summed_codes.npy"));
    g.uniforms = io::read_npy(golden("uniforms.npy"));
    std::vector<ScaleGrid> grids;
    for (const auto& s : g.meta["schedule"]) grids.push_back({s[1].get<int>(), s[2].get<int>()});
    g.schedule = ScaleSchedule("golden", grids);
    for (const auto& l : g.meta["text_lens"]) g.lengths.push_back(l.get<int32_t>());
    return g;
  }();
  return g;
}

// Scale k's slice [B, n, last] of a [B, L, last] array.
std::vector<float> scale_slice(const Tensor& all, const ScaleSchedule& s, int k) {
  const std::vector<float> v = all.to_floats();
  const int64_t B = all.dim(0), L = all.dim(1), last = all.dim(2), n = s.tokens(k), off = s.offset(k);
  std::vector<float> out;
  for (int64_t b = 0; b < B; ++b)
    out.insert(out.end(), v.begin() + (b * L + off) * last, v.begin() + (b * L + off + n) * last);
  return out;
}

struct Tolerances {
  double logits;       // per-scale max relative error of logits
  double codes;        // summed codes, relative
  double bit_mismatch; // fraction of sampled bits allowed to differ
};

class InfinityParity : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (std::string(GetParam()) == "cuda") {
      if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
      backend_ = make_cuda_backend();
      // bf16 activations, and CFG 3 amplifies the cond - uncond difference 3x: logits measured at 1.1e-2 to
      // 3.5e-2 relative on an H100 (2026-11-24), so 5e-2; codes and bits as measured there, with margin.
      tol_ = {5e-2, 3e-2, 2e-2};
    } else {
      backend_ = make_cpu_backend(2, /*poison_allocations=*/true);  // a read before a write gives NaN
      tol_ = {2e-4, 1e-5, 0.0};
    }
    const io::Checkpoint ckpt = io::open_checkpoint(golden("infinity_tiny.pth"));
    model_ = std::make_unique<InfinityModel>(*backend_, load_weights(ckpt, infer_config(ckpt), *backend_));
  }

  GenerateOptions options(const Golden& g) const {
    GenerateOptions o;
    o.schedule = g.schedule;
    o.cfg = g.meta["cfg"].get<float>();
    o.tau = g.meta["tau"].get<float>();
    o.sampling.top_k = g.meta["top_k"].get<int>();
    o.sampling.top_p = g.meta["top_p"].get<float>();
    o.keep_inputs = true;
    o.keep_logits = true;
    o.keep_bits = true;
    return o;
  }

  void expect_logits(const GenerateResult& r, const Tensor& want, double tol) {
    const Golden& g = load_golden();
    for (int k = 0; k < g.schedule.num_scales(); ++k) {
      const double e = rel_err(r.logits[static_cast<size_t>(k)].to_floats(), scale_slice(want, g.schedule, k));
      EXPECT_LE(e, tol) << "scale " << k;
      std::printf("[parity %s] scale %d logits rel err %.3g\n", GetParam(), k, e);
    }
  }

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<InfinityModel> model_;
  Tolerances tol_;
};

TEST_P(InfinityParity, ForcedBitsGiveReferenceLogitsInputsAndCodes) {
  const Golden& g = load_golden();
  GenerateOptions o = options(g);
  o.forced_bits = g.bits;
  const GenerateResult r = model_->generate({g.text, g.lengths}, o);
  ASSERT_EQ(r.logits.size(), 7u);
  expect_logits(r, g.logits, tol_.logits);
  for (int k = 1; k < g.schedule.num_scales(); ++k) {
    const Tensor want = io::read_npy(golden(fmt::format("scale_{:02d}_input.npy", k)));
    EXPECT_LE(rel_err(r.inputs[static_cast<size_t>(k - 1)].to_floats(), want.to_floats()), tol_.codes) << k;
  }
  ASSERT_EQ(r.summed_codes.shape(), g.summed.shape());
  const double e = rel_err(r.summed_codes.to_floats(), g.summed.to_floats());
  std::printf("[parity %s] summed codes rel err %.3g\n", GetParam(), e);
  EXPECT_LE(e, tol_.codes);
}

TEST_P(InfinityParity, SuppliedUniformsReproduceSampledBits) {
  const Golden& g = load_golden();
  GenerateOptions o = options(g);
  o.uniforms = g.uniforms.to_floats();
  const GenerateResult r = model_->generate({g.text, g.lengths}, o);
  int64_t total = 0, differ = 0;
  for (int k = 0; k < g.schedule.num_scales(); ++k) {
    const std::vector<float> want = scale_slice(g.bits, g.schedule, k);
    const std::vector<float> got = r.bits[static_cast<size_t>(k)].to_floats();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) differ += got[i] != want[i];
    total += static_cast<int64_t>(got.size());
  }
  std::printf("[parity %s] sampled bits: %lld of %lld differ\n", GetParam(), static_cast<long long>(differ),
              static_cast<long long>(total));
  EXPECT_LE(static_cast<double>(differ), tol_.bit_mismatch * static_cast<double>(total));
  if (differ == 0) {
    expect_logits(r, g.logits, tol_.logits);
    EXPECT_LE(rel_err(r.summed_codes.to_floats(), g.summed.to_floats()), tol_.codes);
  }
}

TEST_P(InfinityParity, NoGuidanceMatchesTeacherForcedLogits) {
  // teacher_logits_all: the reference's whole-sequence (block-causal) forward on the same bits, conditional
  // rows, tau 1 == our cached generation with cfg 1 and the bits forced.
  const Golden& g = load_golden();
  GenerateOptions o = options(g);
  o.cfg = 1.0f;
  o.tau = 1.0f;
  o.forced_bits = g.bits;
  const GenerateResult r = model_->generate({g.text, g.lengths}, o);
  expect_logits(r, g.teacher, tol_.logits);
}

INSTANTIATE_TEST_SUITE_P(Backends, InfinityParity, ::testing::Values("cpu", "cuda"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace sparvar::infinity
