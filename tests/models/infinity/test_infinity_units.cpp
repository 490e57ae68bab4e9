// Infinity units: config inference and validation, strict weight loading (missing / mis-shaped / unknown
// keys), the per-bit sampler rules, Philox sampling, RoPE tables, patchified codes, bad generation inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "backend/backend.h"
#include "core/error.h"
#include "infinity_test_util.h"
#include "io/checkpoint.h"
#include "io/npy.h"
#include "models/infinity/codes.h"
#include "models/infinity/generator.h"
#include "models/infinity/rope_tables.h"
#include "models/infinity/sampler.h"

namespace sparvar::infinity {
namespace {

using test::golden;

io::Checkpoint golden_checkpoint() { return io::open_checkpoint(golden("infinity_tiny.pth")); }

// The golden checkpoint with edits: a key dropped, a key replaced by another shape, a key added.
class EditedSource final : public io::TensorSource {
 public:
  explicit EditedSource(const io::Checkpoint& base) {
    for (const auto& t : base.tensors()) tensors_[t.name] = base.tensor(t.name).to_dtype(DType::F32);
    rebuild();
  }
  void drop(const std::string& name) { tensors_.erase(name), rebuild(); }
  void put(const std::string& name, const Shape& shape) {
    tensors_[name] = Tensor::zeros(shape, DType::F32);
    rebuild();
  }
  const std::vector<io::TensorInfo>& tensors() const override { return infos_; }
  Tensor load(const std::string& name) const override { return tensors_.at(name); }

 private:
  void rebuild() {
    infos_.clear();
    for (const auto& [name, t] : tensors_) infos_.push_back({name, t.dtype(), t.shape(), t.nbytes()});
  }
  std::map<std::string, Tensor> tensors_;
  std::vector<io::TensorInfo> infos_;
};

std::string load_error(const std::shared_ptr<EditedSource>& src, const InfinityConfig* config = nullptr) {
  auto backend = make_cpu_backend(1);
  const io::Checkpoint ckpt("edited.pth", "test", src);
  try {
    load_weights(ckpt, config ? *config : infer_config(ckpt), *backend);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(InfinityConfig, InferredFromCheckpointIsTiny) {
  const InfinityConfig c = infer_config(golden_checkpoint());
  EXPECT_EQ(c.name, "infinity_tiny");
  EXPECT_EQ(c.depth, 2);
  EXPECT_EQ(c.embed_dim, 128);
  EXPECT_EQ(c.num_heads, 2);
  EXPECT_EQ(c.ffn_hidden, 512);
  EXPECT_EQ(c.d_vae(), 32);
  EXPECT_EQ(c.block_chunks, 2);
  EXPECT_EQ(c.pool_heads, 1);
  EXPECT_EQ(c.block_prefix(1), "block_chunks.1.module.0.");
}

TEST(InfinityConfig, NamedConfigsMatchModelsMd) {
  const InfinityConfig b2 = named_config("infinity_2b"), b8 = named_config("infinity_8b");
  EXPECT_EQ(b2.depth, 32);
  EXPECT_EQ(b2.head_dim(), 128);
  EXPECT_EQ(b2.ffn_hidden, 8192);
  EXPECT_EQ(b2.d_vae(), 32);
  EXPECT_EQ(b8.depth, 40);
  EXPECT_EQ(b8.num_heads, 28);
  EXPECT_EQ(b8.head_dim(), 128);
  EXPECT_EQ(b8.d_vae(), 56);
  EXPECT_EQ(b8.ffn_hidden, 14336);
  EXPECT_EQ(b8.block_prefix(39), "block_chunks.7.module.4.");
  for (const auto& n : config_names()) EXPECT_NO_THROW(validate(named_config(n))) << n;
  try {
    named_config("infinity_3b");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("infinity_8b"), std::string::npos) << e.what();
  }
  InfinityConfig bad = b2;
  bad.num_heads = 15;
  EXPECT_THROW(validate(bad), Error);
}

TEST(InfinityWeights, MissingKeyIsNamed) {
  auto src = std::make_shared<EditedSource>(golden_checkpoint());
  src->drop("block_chunks.1.module.0.ffn.fc2.bias");
  const std::string e = load_error(src);
  EXPECT_NE(e.find("block_chunks.1.module.0.ffn.fc2.bias"), std::string::npos) << e;
}

TEST(InfinityWeights, WrongShapeNamesKeyAndBothShapes) {
  auto src = std::make_shared<EditedSource>(golden_checkpoint());
  src->put("block_chunks.0.module.0.sa.mat_qkv.weight", {384, 64});
  InfinityConfig tiny = named_config("infinity_tiny");
  const std::string e = load_error(src, &tiny);
  EXPECT_NE(e.find("block_chunks.0.module.0.sa.mat_qkv.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("384"), std::string::npos) << e;
  EXPECT_NE(e.find("64"), std::string::npos) << e;
  EXPECT_NE(e.find("128"), std::string::npos) << e;
}

TEST(InfinityWeights, UnknownKeyAndOtherConfigAreErrors) {
  auto src = std::make_shared<EditedSource>(golden_checkpoint());
  src->put("head.extra", {3});
  EXPECT_NE(load_error(src).find("head.extra"), std::string::npos);
  auto plain = std::make_shared<EditedSource>(golden_checkpoint());
  InfinityConfig small = named_config("infinity_small");
  const std::string e = load_error(plain, &small);
  EXPECT_NE(e.find("expected"), std::string::npos) << e;
}

TEST(InfinityWeights, ZeroKBiasBuffersMayBeAbsent) {
  auto src = std::make_shared<EditedSource>(golden_checkpoint());
  src->drop("block_chunks.0.module.0.sa.zero_k_bias");
  src->drop("text_proj_for_sos.ca.zero_k_bias");
  EXPECT_EQ(load_error(src), "");
}

TEST(InfinitySampler, TopKTopPAndThresholdRule) {
  SamplingParams none{0, 0.0f};
  EXPECT_NEAR(bit_prob_zero(1.0f, -0.5f, none), 1.0 / (1.0 + std::exp(-1.5)), 1e-6);
  SamplingParams k1{1, 0.0f};
  EXPECT_EQ(bit_prob_zero(0.3f, 0.2f, k1), 1.0f);
  EXPECT_EQ(bit_prob_zero(0.2f, 0.3f, k1), 0.0f);
  EXPECT_EQ(bit_prob_zero(0.25f, 0.25f, k1), 0.5f);  // ties keep both
  SamplingParams p97{900, 0.97f};
  // p(1) = 0.02 <= 0.03: removed; p(1) = 0.05 stays
  EXPECT_EQ(bit_prob_zero(std::log(0.98f), std::log(0.02f), p97), 1.0f);
  EXPECT_NEAR(bit_prob_zero(std::log(0.95f), std::log(0.05f), p97), 0.95, 1e-6);
  EXPECT_EQ(bit_prob_zero(std::log(0.01f), std::log(0.99f), p97), 0.0f);
  const float logits[6] = {0.0f, 0.0f, 5.0f, -5.0f, -5.0f, 5.0f};
  const float u[3] = {0.5f, 0.99f, 0.001f};
  uint8_t bits[3];
  sample_bits(logits, 3, p97, u, bits);
  EXPECT_EQ(bits[0], 1);  // u >= p0 = 0.5
  EXPECT_EQ(bits[1], 0);  // p0 = 1 after top-p
  EXPECT_EQ(bits[2], 1);  // p0 = 0 after top-p
}

TEST(InfinitySampler, PhiloxIsSeededAndSuppliedArraysRunOut) {
  std::vector<float> a(1000), b(1000), c(1000);
  UniformSource::philox(42).draw(3, 1000, a.data());
  UniformSource::philox(42).draw(3, 1000, b.data());
  UniformSource::philox(43).draw(3, 1000, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double mean = 0;
  for (float v : a) mean += v / 1000.0;
  EXPECT_NEAR(mean, 0.5, 0.05);
  UniformSource s = UniformSource::supplied({0.1f, 0.2f, 0.3f});
  float out[2];
  s.draw(0, 2, out);
  EXPECT_EQ(out[1], 0.2f);
  EXPECT_THROW(s.draw(1, 2, out), Error);
}

TEST(InfinityRope, TablesFollowNormalisedPositions) {
  // 0.06M square: last 1M grid 64x64; scale 2x2 -> positions 0 and 32; pair i < 16: rows, else columns.
  const ScaleSchedule s = infinity_schedule(1.0, PixelBudget::M0_06);
  EXPECT_EQ(rope_reference_grid(s), (ScaleGrid{64, 64}));
  const int hd = 64;
  const RopeTables t = build_rope_tables(s, hd);
  ASSERT_EQ(t.cos.shape(), Shape({521, 32}));
  const float* c = t.cos.data_as<float>();
  const float* sn = t.sin.data_as<float>();
  const int64_t tok = s.offset(1) + 1 * 2 + 1;  // scale 1 (2x2), row 1, col 1 -> (32, 32)
  for (int i = 0; i < 32; ++i) {
    const double freq = 1.0 / std::pow(10000.0, 2.0 * (i % 16) / 32.0);
    EXPECT_NEAR(c[tok * 32 + i], std::cos(32 * freq), 2e-5) << i;
    EXPECT_NEAR(sn[tok * 32 + i], std::sin(32 * freq), 2e-5) << i;
  }
  // 6x6 grid: row 1 -> round(64/6 = 10.67) = 11 (rows), col 0 -> 0
  const int64_t t6 = s.offset(3) + 1 * 6 + 0;
  EXPECT_NEAR(sn[t6 * 32 + 1], std::sin(11 / std::pow(10000.0, 2.0 / 32.0)), 2e-5);
  EXPECT_EQ(sn[t6 * 32 + 17], 0.0f);
  // a schedule no template has: normalised to its own last grid
  EXPECT_EQ(rope_reference_grid(ScaleSchedule("custom", {{1, 1}, {2, 3}, {5, 7}})), (ScaleGrid{5, 7}));
}

TEST(InfinityCodes, PatchifiedBitsLandInPixelShuffleOrder) {
  InfinityConfig c = named_config("infinity_tiny_p");  // 14 bits x 2x2
  std::vector<uint8_t> bits(56, 0);
  bits[3 * 4 + 1 * 2 + 0] = 1;  // channel 3, sub-position (i=1, j=0)
  const Tensor codes = bits_to_latent_codes(bits.data(), 1, ScaleGrid{1, 1}, c);
  ASSERT_EQ(codes.shape(), Shape({1, 14, 2, 2}));
  const float* p = codes.data_as<float>();
  const float s = 1.0f / std::sqrt(14.0f);
  for (int ch = 0; ch < 14; ++ch)
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 2; ++x)
        EXPECT_NEAR(p[(ch * 2 + y) * 2 + x], (ch == 3 && y == 1 && x == 0) ? s : -s, 1e-6);
  // and back to tokens through the backend
  auto be = make_cpu_backend(1);
  Tensor tok = be->empty({1, 1, 56}, DType::F32);
  latent_to_tokens(*be, codes, true, tok);
  const float* pt = tok.data_as<float>();
  for (int ch = 0; ch < 56; ++ch) EXPECT_NEAR(pt[ch], bits[static_cast<size_t>(ch)] ? s : -s, 1e-6) << ch;
}

class InfinityBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = make_cpu_backend(2);
    const io::Checkpoint ckpt = golden_checkpoint();
    model_ = std::make_unique<InfinityModel>(*backend_, load_weights(ckpt, infer_config(ckpt), *backend_));
    options_.schedule = ScaleSchedule("short", {{1, 1}, {2, 2}});
    options_.keep_bits = true;
  }
  std::string error_of(const TextInput& text, const GenerateOptions& o) {
    try {
      model_->generate(text, o);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<InfinityModel> model_;
  GenerateOptions options_;
};

TEST_F(InfinityBadInput, EmptyOrMisshapedTextFeatures) {
  EXPECT_NE(error_of({Tensor::zeros({1, 0, 128}, DType::F32), {}}, options_).find("empty"), std::string::npos);
  EXPECT_NE(error_of({Tensor::zeros({1, 4, 96}, DType::F32), {}}, options_).find("128"), std::string::npos);
  EXPECT_NE(error_of({Tensor::zeros({1, 4, 128}, DType::F32), {5}}, options_).find("length"), std::string::npos);
  EXPECT_NE(error_of({Tensor::zeros({1, 65, 128}, DType::F32), {}}, options_).find("64"), std::string::npos);
}

TEST_F(InfinityBadInput, TooManyScalesAndBadForcedBits) {
  const TextInput text{io::read_npy(golden("text_feats.npy")), {7, 4}};
  GenerateOptions o = options_;
  std::vector<ScaleGrid> many(16, ScaleGrid{1, 1});
  o.schedule = ScaleSchedule("long", many);
  EXPECT_NE(error_of(text, o).find("level embeddings"), std::string::npos);
  o = options_;
  o.forced_bits = Tensor::zeros({2, 4, 32}, DType::U8);
  EXPECT_NE(error_of(text, o).find("[2, 5, 32]"), std::string::npos);
  Tensor twos = Tensor::zeros({2, 5, 32}, DType::U8);
  static_cast<uint8_t*>(twos.data())[7] = 2;
  o.forced_bits = twos;
  EXPECT_NE(error_of(text, o).find("only 0 and 1"), std::string::npos);
}

TEST_F(InfinityBadInput, SeedsChangeSamplesAndRepeat) {
  const TextInput text{io::read_npy(golden("text_feats.npy")), {7, 4}};
  GenerateOptions o = options_;
  o.seed = 1;
  const auto a = model_->generate(text, o), b = model_->generate(text, o);
  o.seed = 2;
  const auto c = model_->generate(text, o);
  EXPECT_EQ(a.bits[1].to_floats(), b.bits[1].to_floats());
  EXPECT_NE(a.bits[1].to_floats(), c.bits[1].to_floats());
  EXPECT_EQ(a.summed_codes.shape(), Shape({2, 32, 1, 2, 2}));
}

}  // namespace
}  // namespace sparvar::infinity
