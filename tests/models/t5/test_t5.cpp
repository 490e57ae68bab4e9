// Flan-T5 tokenizer + encoder parity against Python sentencepiece and our PyTorch reference (golden/, made by
// make_golden.sh): token ids equal, features rel err ~1e-6 on the CPU backend (fp32) and within bf16 tolerance
// on the CUDA backend when a GPU is present; plus bucket values and bad-input checks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "backend/backend.h"
#include "../compare.h"
#include "io/checkpoint.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "models/t5/encoder.h"
#include "models/t5/relative_position.h"
#include "models/t5/tokenizer.h"

using namespace sparvar;
using namespace sparvar::t5;

namespace {

const std::filesystem::path kDir = SPARVAR_T5_TEST_DIR;
const std::filesystem::path kGolden = kDir / "golden";
const std::filesystem::path kSpiece = kDir / "data" / "tiny_spiece.model";

Tensor golden(const std::string& name) { return io::read_npy(kGolden / name); }

std::vector<std::string> golden_prompts() {
  std::ifstream in(kGolden / "prompts.json");
  return nlohmann::json::parse(in).get<std::vector<std::string>>();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("sparvar_t5_" + std::to_string(std::random_device{}()) + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// Valid rows of the features only: padded positions are not part of the contract.
Tensor valid_rows(const Tensor& feats, const std::vector<int32_t>& lengths) {
  const int64_t B = feats.dim(0), L = feats.dim(1), d = feats.dim(2);
  std::vector<float> all = feats.to_floats(), out;
  for (int64_t b = 0; b < B; ++b) {
    out.insert(out.end(), all.begin() + b * L * d, all.begin() + (b * L + lengths[static_cast<size_t>(b)]) * d);
  }
  return Tensor::from_floats({static_cast<int64_t>(out.size())}, out);
}

void encode_and_compare(Backend& be, DType dtype, const std::filesystem::path& weights, double tol) {
  T5Tokenizer tok(kSpiece);
  T5Encoder enc = T5Encoder::load(weights, be, dtype, "t5-tiny");
  const TokenBatch batch = tok.encode_batch(golden_prompts());
  const T5Output out = enc.encode(batch);
  const Tensor feats = be.download(out.features);
  const Tensor want = golden("features.npy");
  ASSERT_EQ(feats.shape(), want.shape());
  const test::Diff d = test::compare(valid_rows(feats, out.lengths), valid_rows(want, out.lengths));
  const test::Diff all = test::compare(feats, want);  // padded rows too: we compute them as transformers does
  std::printf("[%s %s] %s: valid rel L2 %.3g (max abs %.3g); all rows rel L2 %.3g\n", be.name().c_str(),
              std::string(dtype_name(dtype)).c_str(), weights.filename().c_str(), d.rel_l2, d.max_abs, all.rel_l2);
  EXPECT_LT(d.rel_l2, tol);
  EXPECT_LT(all.rel_l2, tol);
}

}  // namespace

TEST(T5Tokenizer, IdsEqualPythonSentencepiece) {
  T5Tokenizer tok(kSpiece);
  EXPECT_EQ(tok.vocab_size(), 190);
  const TokenBatch batch = tok.encode_batch(golden_prompts());
  const Tensor want = golden("token_ids.npy");
  const std::vector<float> want_lens = golden("token_lens.npy").to_floats();
  ASSERT_EQ(batch.ids.shape(), want.shape());
  EXPECT_EQ(batch.ids.to_floats(), want.to_floats());
  ASSERT_EQ(batch.lengths.size(), want_lens.size());
  for (size_t i = 0; i < want_lens.size(); ++i) EXPECT_EQ(batch.lengths[i], static_cast<int32_t>(want_lens[i]));
  // EOS closes every row; the golden rows differ in length, so padding is exercised.
  for (size_t b = 0; b < batch.lengths.size(); ++b) {
    EXPECT_EQ(batch.ids.data_as<int32_t>()[b * batch.ids.dim(1) + batch.lengths[b] - 1], T5Tokenizer::kEosId);
  }
  EXPECT_NE(batch.lengths[0], batch.lengths[1]);
}

TEST(T5Tokenizer, TruncatesTo512WithEos) {
  T5Tokenizer tok(kSpiece);
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += "a photo of a cat sitting on a red sofa ";
  const std::vector<int32_t> full = T5Tokenizer(kSpiece, 100000).encode(long_prompt);
  ASSERT_GT(full.size(), 512u);
  const std::vector<int32_t> ids = tok.encode(long_prompt);
  ASSERT_EQ(ids.size(), 512u);
  EXPECT_EQ(ids.back(), T5Tokenizer::kEosId);
  EXPECT_TRUE(std::equal(ids.begin(), ids.end() - 1, full.begin()));
}

TEST(T5Tokenizer, EmptyPromptIsAnError) {
  T5Tokenizer tok(kSpiece);
  EXPECT_NE(error_of([&] { tok.encode(""); }).find("empty"), std::string::npos);
  EXPECT_NE(error_of([&] { tok.encode("   "); }).find("whitespace"), std::string::npos);
  EXPECT_NE(error_of([&] { tok.encode_batch({"a cat", ""}); }).find("prompt 1 of 2"), std::string::npos);
  EXPECT_NE(error_of([&] { tok.encode_batch({}); }).find("no prompts"), std::string::npos);
}

TEST(T5Tokenizer, BadModelFile) {
  EXPECT_NE(error_of([] { T5Tokenizer("/nonexistent/spiece.model"); }).find("/nonexistent/spiece.model"),
            std::string::npos);
  TempDir tmp;
  std::ofstream(tmp.path / "junk.model") << "not a sentencepiece model";
  EXPECT_NE(error_of([&] { T5Tokenizer(tmp.path / "junk.model"); }).find("junk.model"), std::string::npos);
}

TEST(T5RelativePosition, BucketsEqualReference) {
  const std::vector<float> want = golden("buckets.npy").to_floats();  // rel = -700 .. 700
  ASSERT_EQ(want.size(), 1401u);
  for (int64_t r = -700; r <= 700; ++r) {
    EXPECT_EQ(relative_bucket(r, 32, 128), static_cast<int64_t>(want[static_cast<size_t>(r + 700)])) << "rel " << r;
  }
}

TEST(T5RelativePosition, BiasTableLayout) {
  // 32 buckets x 2 heads, value = bucket * 10 + head.
  std::vector<float> table;
  for (int b = 0; b < 32; ++b) table.insert(table.end(), {b * 10.0f, b * 10.0f + 1});
  const Tensor bias = position_bias(Tensor::from_floats({32, 2}, table), 5, 128);
  ASSERT_EQ(bias.shape(), (Shape{2, 5, 5}));
  const float* p = bias.data_as<float>();
  EXPECT_EQ(p[0 * 25 + 1 * 5 + 3], relative_bucket(2, 32, 128) * 10.0f);      // head 0, i 1, j 3
  EXPECT_EQ(p[1 * 25 + 4 * 5 + 0], relative_bucket(-4, 32, 128) * 10.0f + 1);  // head 1, i 4, j 0
}

TEST(T5Encoder, ConfigFromShapesAndJson) {
  const io::Checkpoint ck = io::open_checkpoint(kGolden / "t5_sharded");
  T5Config cfg = infer_t5_config(ck);
  apply_config_json(kGolden / "t5_sharded", cfg);
  EXPECT_EQ(cfg, t5_preset("t5-tiny")) << cfg.describe();
  EXPECT_EQ(t5_preset("flan-t5-xl").d_model, 2048);
  EXPECT_EQ(t5_preset("flan-t5-xl").d_ff, 5120);
}

TEST(T5Encoder, CpuParityShardedSafetensors) {
  auto be = make_cpu_backend(2);
  encode_and_compare(*be, DType::F32, kGolden / "t5_sharded", 1e-4);
}

TEST(T5Encoder, CpuParityTorchBin) {
  auto be = make_cpu_backend(2);
  encode_and_compare(*be, DType::F32, kGolden / "t5_bin", 1e-4);
  encode_and_compare(*be, DType::F32, kGolden / "t5_bin" / "pytorch_model.bin", 1e-4);
}

TEST(T5Encoder, PaddingDoesNotChangeValidTokens) {
  auto be = make_cpu_backend(2);
  T5Tokenizer tok(kSpiece);
  T5Encoder enc = T5Encoder::load(kGolden / "t5_sharded", *be);
  const auto prompts = golden_prompts();
  const T5Output alone = enc.encode(tok.encode_batch({prompts[0]}));
  const T5Output padded = enc.encode(tok.encode_batch({prompts[0], prompts[1]}));
  const Tensor a = be->download(alone.features);
  const Tensor b = be->download(padded.features).slice0(0, 1);
  const int64_t len = alone.lengths[0], d = a.dim(2);
  const std::vector<float> fa = a.to_floats(), fb = b.to_floats();
  double worst = 0;
  for (int64_t i = 0; i < len * d; ++i) worst = std::max(worst, std::abs(double(fa[i]) - fb[i]));
  EXPECT_LT(worst, 1e-4);
}

TEST(T5Encoder, MissingKeyIsNamed) {
  auto be = make_cpu_backend(1);
  TempDir tmp;
  const io::Checkpoint ck = io::open_checkpoint(kGolden / "t5_sharded");
  std::vector<std::pair<std::string, Tensor>> kept, reshaped;
  for (const auto& i : ck.tensors()) {
    Tensor t = ck.tensor(i.name).clone();
    if (i.name != "encoder.block.1.layer.1.DenseReluDense.wi_1.weight") kept.emplace_back(i.name, t);
    reshaped.emplace_back(i.name, i.name == "encoder.block.1.layer.0.SelfAttention.o.weight"
                                      ? Tensor::zeros({128, 96}, DType::F32)
                                      : t);
  }
  io::write_safetensors(tmp.path / "missing.safetensors", kept);
  io::write_safetensors(tmp.path / "reshaped.safetensors", reshaped);
  const std::string missing = error_of([&] { T5Encoder::load(tmp.path / "missing.safetensors", *be); });
  EXPECT_NE(missing.find("encoder.block.1.layer.1.DenseReluDense.wi_1.weight"), std::string::npos) << missing;
  const std::string shape = error_of([&] { T5Encoder::load(tmp.path / "reshaped.safetensors", *be); });
  EXPECT_NE(shape.find("encoder.block.1.layer.0.SelfAttention.o.weight"), std::string::npos) << shape;
  EXPECT_NE(shape.find("128"), std::string::npos) << shape;
  EXPECT_NE(shape.find("96"), std::string::npos) << shape;
}

TEST(T5Encoder, PresetMismatchAndBadIds) {
  auto be = make_cpu_backend(1);
  const std::string msg = error_of([&] { T5Encoder::load(kGolden / "t5_sharded", *be, DType::F32, "flan-t5-xl"); });
  EXPECT_NE(msg.find("flan-t5-xl"), std::string::npos) << msg;
  T5Encoder enc = T5Encoder::load(kGolden / "t5_sharded", *be);
  TokenBatch bad;
  bad.ids = Tensor::from_floats({1, 2}, {5, 300}, DType::I32);
  bad.lengths = {2};
  EXPECT_NE(error_of([&] { enc.encode(bad); }).find("token id 300"), std::string::npos);
  bad.ids = Tensor::from_floats({1, 2}, {5, 1}, DType::I32);
  bad.lengths = {0};
  EXPECT_NE(error_of([&] { enc.encode(bad); }).find("length 0"), std::string::npos);
}

TEST(T5Encoder, CudaParityF32AndBf16) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  auto be = make_cuda_backend();
  encode_and_compare(*be, DType::BF16, kGolden / "t5_sharded", 3e-2);
  encode_and_compare(*be, DType::F32, kGolden / "t5_sharded", 1e-3);
}
