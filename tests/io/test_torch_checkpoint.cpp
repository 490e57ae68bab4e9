// PyTorch zip checkpoints: genuine torch.save files (fixtures/, made by make_fixtures.py) and zips built
// here with one thing wrong each.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "io/torch_checkpoint.h"
#include "io_test_util.h"

namespace sparvar::io {
namespace {

using test::fixture;

std::vector<uint8_t> f32_bytes(std::vector<float> v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

std::string open_error(const std::vector<uint8_t>& zip) {
  try {
    TorchCheckpoint::from_buffer(zip, nullptr, "t.pth");
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

// Every tensor of every fixture equals what torch printed into expected.json.
TEST(TorchCheckpoint, FixturesMatchTorchValues) {
  const auto expected = nlohmann::json::parse(test::read_bytes(fixture("expected.json")));
  int checked = 0;
  for (const auto& [file, tensors] : expected.items()) {
    const auto ckpt = TorchCheckpoint::open(fixture(file));
    EXPECT_EQ(ckpt.tensors().size(), tensors.size()) << file;
    for (const auto& [name, want] : tensors.items()) {
      const Tensor t = ckpt.tensor(name);
      EXPECT_EQ(t.shape(), want["shape"].get<Shape>()) << file << " " << name;
      const auto values = t.to_floats();
      const auto want_values = want["values"].get<std::vector<double>>();
      ASSERT_EQ(values.size(), want_values.size()) << file << " " << name;
      for (size_t i = 0; i < values.size(); ++i)
        EXPECT_EQ(values[i], static_cast<float>(want_values[i])) << file << " " << name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 9 + 2 + 5);
}

TEST(TorchCheckpoint, DTypesAndNonTensorLeaves) {
  const auto plain = TorchCheckpoint::open(fixture("plain.pth"));
  EXPECT_EQ(plain.tensor("w_bf16").dtype(), DType::BF16);
  EXPECT_EQ(plain.tensor("w_f16").dtype(), DType::F16);
  EXPECT_EQ(plain.tensor("mask_bool").dtype(), DType::Bool);
  EXPECT_EQ(plain.tensor("idx_i64").data_as<int64_t>()[2], int64_t{1} << 40);  // exact, beyond float range
  EXPECT_EQ(reinterpret_cast<uintptr_t>(plain.tensor("w_f32").data()) % 64, 0u);
  const auto nested = TorchCheckpoint::open(fixture("nested.pth"));
  EXPECT_EQ(nested.other_entries(), std::vector<std::string>{"epoch: int"});
}

TEST(TorchCheckpoint, ViewsShareOneStorageRead) {
  const auto c = TorchCheckpoint::open(fixture("views.pth"));
  const Tensor base = c.tensor("base");
  const Tensor rows = c.tensor("rows");
  EXPECT_EQ(base.storage(), rows.storage());
  EXPECT_EQ(static_cast<const float*>(rows.data()) - static_cast<const float*>(base.data()), 6);
  EXPECT_NE(c.tensor("transposed").storage(), base.storage());  // non-contiguous: a dense copy
}

TEST(TorchCheckpoint, DisallowedGlobalAndLegacyFilesFail) {
  try {
    TorchCheckpoint::open(fixture("evil.pth"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("disallowed global __builtin__.eval"), std::string::npos) << e.what();
  }
  EXPECT_THROW(TorchCheckpoint::open(fixture("legacy.pth")), Error);
}

TEST(TorchCheckpoint, BuiltZipRoundTrip) {
  const auto pickle = test::state_dict_pickle({{"w", "FloatStorage", "0", 4, 0, {2, 2}, {2, 1}}});
  const auto zip = test::torch_zip(pickle, {{"0", f32_bytes({1, 2, 3, 4})}}, "any_folder_name");
  const auto c = TorchCheckpoint::from_buffer(zip, nullptr);
  EXPECT_EQ(c.tensor("w").to_floats(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_THROW(c.tensor("v"), Error);
}

TEST(TorchCheckpoint, StructuralProblemsAreNamed) {
  const auto pickle = test::state_dict_pickle({{"w", "FloatStorage", "0", 4}});
  EXPECT_NE(open_error(test::make_zip({{"archive/data/0", f32_bytes({1, 2, 3, 4})}})).find("no data.pkl"),
            std::string::npos);
  EXPECT_NE(open_error(test::make_zip({{"a/data.pkl", pickle}, {"b/data.pkl", pickle}})).find("several data.pkl"),
            std::string::npos);
  EXPECT_NE(open_error(test::make_zip({{"data.pkl", pickle}})).find("no data.pkl"), std::string::npos);
  EXPECT_NE(open_error(test::torch_zip(pickle, {})).find("is missing"), std::string::npos);
  EXPECT_NE(open_error(test::torch_zip(pickle, {{"0", f32_bytes({1, 2, 3})}})).find("has 12 bytes, expected 16"),
            std::string::npos);
  auto big_endian = test::make_zip({{"archive/data.pkl", pickle}, {"archive/data/0", f32_bytes({1, 2, 3, 4})},
                                    {"archive/byteorder", {'b', 'i', 'g'}}});
  EXPECT_NE(open_error(big_endian).find("big-endian"), std::string::npos);
  EXPECT_NE(open_error({}).find("no data.pkl"), std::string::npos);  // libzip reads 0 bytes as an empty zip
  EXPECT_NE(open_error({1, 2, 3}).find("not a valid zip"), std::string::npos);
}

TEST(TorchCheckpoint, EveryTruncationOfARealFileFails) {
  const auto bytes = test::read_bytes(fixture("views.pth"));
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW(TorchCheckpoint::from_buffer(cut, nullptr), Error) << n;
  }
}

TEST(TorchCheckpoint, CorruptedBytesFailOrReadButNeverCrash) {
  const auto bytes = test::read_bytes(fixture("plain.pth"));
  std::mt19937 rng(7);
  int failed = 0;
  for (int trial = 0; trial < 1000; ++trial) {
    auto copy = bytes;
    for (int k = 0; k < 4; ++k) copy[rng() % copy.size()] = static_cast<uint8_t>(rng());
    try {
      const auto c = TorchCheckpoint::from_buffer(copy, nullptr);
      for (const auto& info : c.tensors()) (void)c.tensor(info.name);
    } catch (const Error&) {
      ++failed;
    }
  }
  EXPECT_GT(failed, 0);  // CRC and structure checks catch many flips
}

}  // namespace
}  // namespace sparvar::io
