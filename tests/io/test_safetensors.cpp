#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "io/safetensors.h"
#include "io_test_util.h"

namespace sparvar::io {
namespace {

using test::ScratchDir;

std::vector<std::pair<std::string, Tensor>> sample_tensors() {
  std::vector<std::pair<std::string, Tensor>> t;
  t.emplace_back("w", Tensor::from_floats({2, 3}, {1, 2, 3, 4, 5, 6}, DType::F32));
  t.emplace_back("h", Tensor::from_floats({3}, {0.5f, -1, 2}, DType::F16));
  t.emplace_back("b", Tensor::from_floats({2, 2}, {1, 2, 3, 4}, DType::BF16));
  t.emplace_back("i", Tensor::from_floats({2}, {7, -9}, DType::I64));
  t.emplace_back("empty", Tensor::zeros({0, 5}, DType::F32));
  return t;
}

// Builds a file from a literal header and a data section of n bytes.
std::vector<uint8_t> with_header(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

void expect_error(const std::vector<uint8_t>& bytes, const std::string& fragment) {
  try {
    SafetensorsFile::from_buffer(bytes, nullptr, "t.safetensors");
    FAIL() << "accepted a file that should fail with '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Safetensors, RoundTripThroughFileKeepsValuesAndMetadata) {
  ScratchDir dir;
  const auto tensors = sample_tensors();
  write_safetensors(dir / "m.safetensors", tensors, {{"format", "pt"}});
  Tensor w;
  {
    const auto f = SafetensorsFile::open(dir / "m.safetensors");
    EXPECT_EQ(f.metadata().at("format"), "pt");
    ASSERT_EQ(f.tensors().size(), tensors.size());
    for (const auto& [name, t] : tensors) {
      const Tensor r = f.tensor(name);
      EXPECT_EQ(r.shape(), t.shape()) << name;
      EXPECT_EQ(r.dtype(), t.dtype()) << name;
      EXPECT_EQ(r.to_floats(), t.to_floats()) << name;
    }
    w = f.tensor("w");
  }
  // The tensor keeps the mapping alive after the file object is gone.
  EXPECT_EQ(w.to_floats(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

// Written by fuzz/corpus/make_safetensors_seeds.py, not by our writer.
TEST(Safetensors, ReadsAFileFromAnIndependentWriter) {
  const auto f = SafetensorsFile::open(test::fixture("python_written.safetensors"));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.tensor("w").to_floats(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(f.tensor("b").dtype(), DType::BF16);
  EXPECT_EQ(f.tensor("b").to_floats(), (std::vector<float>{1, 1, 1}));
}

TEST(Safetensors, DataIsAlignedAndZeroCopy) {
  const auto bytes = encode_safetensors(sample_tensors());
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  const auto f = SafetensorsFile::from_buffer(bytes, nullptr);
  EXPECT_GE(static_cast<const uint8_t*>(f.tensor("w").data()), bytes.data());
  EXPECT_LT(static_cast<const uint8_t*>(f.tensor("w").data()), bytes.data() + bytes.size());
}

TEST(Safetensors, EveryTruncationFails) {
  const auto bytes = encode_safetensors(sample_tensors());
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW(SafetensorsFile::from_buffer(cut, nullptr), Error) << "length " << n;
  }
  EXPECT_NO_THROW(SafetensorsFile::from_buffer(bytes, nullptr));
}

TEST(Safetensors, RejectsHugeHeaderLength) {
  std::vector<uint8_t> bytes(64, 0);
  bytes[7] = 0x7f;
  expect_error(bytes, "exceeds the 100 MB cap");
  std::vector<uint8_t> near(64, 0);
  near[0] = 100;  // within the cap but past the end
  expect_error(near, "truncated");
}

TEST(Safetensors, RejectsBadHeaders) {
  expect_error(with_header("[1,2]", 0), "does not start with '{'");
  expect_error(with_header("{\"a\":", 0), "not valid JSON");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
               "duplicate key");
  expect_error(with_header(R"({"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})", 4), "unknown dtype 'Q7'");
  expect_error(with_header(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8), "does not read");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "non-negative");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4), "non-negative");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "needs 12 bytes");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})", 4),
               "too large");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8), "outside the data section");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), "outside the data section");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[2]}})", 8), "lacks");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 8), "unknown field");
  expect_error(with_header(R"({"a":[]})", 8), "not an object");
  expect_error(with_header(R"({"__metadata__":{"k":1}})", 0), "not a string");
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[[[[[[[[[[1]]]]]]]]]],"data_offsets":[0,4]}})", 4),
               "nested deeper");
}

TEST(Safetensors, RejectsOverlappingTensors) {
  expect_error(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
               "overlap");
  // Touching is fine; so are empty tensors anywhere and gaps.
  const auto ok = with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[10,12]}})", 12);
  const auto f = SafetensorsFile::from_buffer(ok, nullptr);
  EXPECT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensor("b").nbytes(), 2u);
}

TEST(Safetensors, MissingTensorNamesKey) {
  const auto f = SafetensorsFile::from_buffer(encode_safetensors(sample_tensors()), nullptr, "x.safetensors");
  try {
    f.tensor("nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "x.safetensors has no tensor 'nope'");
  }
}

TEST(Safetensors, RandomBytesNeverCrash) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<uint8_t> bytes(rng() % 200);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    if (bytes.size() >= 9 && trial % 2) {  // plausible header length so the JSON path is reached
      std::memset(bytes.data(), 0, 8);
      bytes[0] = static_cast<uint8_t>(bytes.size() - 8);
      bytes[8] = '{';
    }
    EXPECT_THROW(SafetensorsFile::from_buffer(bytes, nullptr), Error);
  }
}

}  // namespace
}  // namespace sparvar::io
