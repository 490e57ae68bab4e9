// End to end on the CPU: the golden tiny model folder, prompts ["Red Apple", ""] (the second unconditional),
// the reference's uniforms -> the reference's uint8 images (make_golden.py), with every scale and with the
// last scale skipped. fp32 arithmetic on both sides: every pixel within 1 level (nearly all exact). The
// backend poisons its allocations with NaN, so any read-before-write fails these tests on every run.
#include <gtest/gtest.h>

#include <filesystem>

#include "backend/backend.h"
#include "core/error.h"
#include "io/npy.h"
#include "models/pipeline/text_to_image.h"

namespace sparvar::pipeline {
namespace {

namespace fs = std::filesystem;
const fs::path kGolden = fs::path(SPARVAR_PIPELINE_GOLDEN_DIR);

struct Diff {
  int64_t max = 0, off = 0;
};

Diff compare(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(shape_string(got.shape()), shape_string(want.shape()));
  const std::vector<float> g = got.to_floats(), w = want.to_floats();
  Diff d;
  for (size_t i = 0; i < std::min(g.size(), w.size()); ++i) {
    const auto e = static_cast<int64_t>(std::abs(g[i] - w[i]));
    d.max = std::max(d.max, e);
    d.off += e != 0;
  }
  return d;
}

class TextToImageGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    // Every backend buffer (KV cache, workspaces, op outputs) starts as NaN: an element read before it is
    // written poisons the image deterministically instead of depending on what malloc left there.
    backend = make_cpu_backend(2, /*poison_allocations=*/true);
    bundle = ModelBundle::load(kGolden / "model", *backend);
    options.uniforms = io::read_npy(kGolden / "uniforms.npy").to_floats();
  }
  std::unique_ptr<Backend> backend;
  std::unique_ptr<ModelBundle> bundle;
  TextToImageOptions options;
  const std::vector<std::string> prompts{"Red Apple", ""};
};

TEST_F(TextToImageGolden, MatchesReferenceImage) {
  std::vector<int> scales_seen;
  options.on_progress = [&](const Progress& p) {
    if (p.phase == Progress::Phase::Scale) scales_seen.push_back(p.scale);
  };
  const TextToImageResult r = TextToImage(*bundle).generate(prompts, options);
  const Diff d = compare(r.images, io::read_npy(kGolden / "image_full.npy"));
  EXPECT_LE(d.max, 1);
  EXPECT_LE(d.off, r.images.numel() / 100) << "pixels off by one";
  EXPECT_EQ(scales_seen, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(r.timings.scale_ms.size(), 4u);
  EXPECT_GT(r.timings.vae_ms, 0.0);
  EXPECT_FLOAT_EQ(r.cfg, 3.0f);  // manifest default
}

TEST_F(TextToImageGolden, SkipLastDecodesThePartialSum) {
  options.skip_last = 1;
  const TextToImageResult r = TextToImage(*bundle).generate(prompts, options);
  EXPECT_EQ(r.timings.scale_ms.size(), 3u);
  EXPECT_EQ(r.images.dim(1), 24);  // still the final grid's image size
  const Diff d = compare(r.images, io::read_npy(kGolden / "image_skip1.npy"));
  EXPECT_LE(d.max, 1);
  EXPECT_GT(compare(r.images, io::read_npy(kGolden / "image_full.npy")).max, 1);  // and not the full image
}

TEST_F(TextToImageGolden, SeedsAndBatches) {
  TextToImageOptions o;
  o.seed = 5;
  o.images_per_prompt = 2;
  const TextToImageResult a = TextToImage(*bundle).generate({"red apple"}, o);
  ASSERT_EQ(a.images.dim(0), 2);
  const TextToImageResult b = TextToImage(*bundle).generate({"  RED apple "}, o);  // same after normalising
  EXPECT_EQ(compare(a.images, b.images).max, 0);
  o.seed = 6;
  EXPECT_GT(compare(a.images, TextToImage(*bundle).generate({"red apple"}, o).images).off, 0);
}

TEST_F(TextToImageGolden, UnconditionalTurnsCfgOff) {
  TextToImageOptions o;
  const TextToImageResult r = TextToImage(*bundle).generate({""}, o);
  EXPECT_FLOAT_EQ(r.cfg, 1.0f);
  EXPECT_EQ(r.images.dim(0), 1);
  EXPECT_EQ(normalise_prompt("  Dog FACE\n", true), "dog face");
  EXPECT_EQ(normalise_prompt("Dog", false), "Dog");
}

TEST_F(TextToImageGolden, BadOptions) {
  TextToImageOptions o;
  o.skip_last = 4;  // all four scales
  EXPECT_THROW(TextToImage(*bundle).generate({"x"}, o), Error);
  EXPECT_THROW(TextToImage(*bundle).generate({}, TextToImageOptions{}), Error);
}

}  // namespace
}  // namespace sparvar::pipeline
