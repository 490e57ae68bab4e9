// open_checkpoint: format sniffing, sharded indexes, folders, and the messages a user sees.
#include <gtest/gtest.h>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "io_test_util.h"

namespace sparvar::io {
namespace {

using test::fixture;
using test::ScratchDir;

std::string error_of(const std::filesystem::path& path) {
  try {
    open_checkpoint(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

void write_shards(const ScratchDir& dir) {
  write_safetensors(dir / "s1.safetensors", {{"blocks.0.attn.w", Tensor::from_floats({2, 2}, {1, 2, 3, 4})},
                                              {"blocks.0.attn.b", Tensor::from_floats({2}, {5, 6})}});
  write_safetensors(dir / "s2.safetensors", {{"head.w", Tensor::from_floats({3}, {7, 8, 9}, DType::BF16)}});
}

std::string index_json(const std::string& weight_map) { return R"({"metadata":{},"weight_map":{)" + weight_map + "}}"; }
const char* kGoodMap =
    R"("blocks.0.attn.w":"s1.safetensors","blocks.0.attn.b":"s1.safetensors","head.w":"s2.safetensors")";

TEST(Checkpoint, OpensEachFormat) {
  ScratchDir dir;
  write_safetensors(dir / "m.safetensors", {{"x", Tensor::from_floats({2}, {1, 2})}});
  const auto st = open_checkpoint(dir / "m.safetensors");
  EXPECT_EQ(st.format(), "safetensors");
  EXPECT_EQ(st.tensor("x").to_floats(), (std::vector<float>{1, 2}));
  EXPECT_EQ(open_checkpoint(fixture("plain.pth")).format(), "pytorch-zip");
  const auto bin = open_checkpoint(fixture("sharded_bin"));
  EXPECT_EQ(bin.format(), "sharded (2 shards)");
  EXPECT_EQ(bin.tensor("c").to_floats(), (std::vector<float>{0, 1, 2, 3, 4}));
  EXPECT_EQ(bin.tensor("b").to_floats(), (std::vector<float>{2, 2, 2, 2}));
}

// Header lengths whose first byte is '{' (123) or 0x80 0x02 (640) must not look like JSON or a pickle.
TEST(Checkpoint, SniffsSafetensorsWhateverItsHeaderLength) {
  ScratchDir dir;
  for (size_t length : {123u, 640u, 0x7b7bu}) {
    std::string header = R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
    header.resize(length, ' ');
    std::string file(8, '\0');
    for (int i = 0; i < 8; ++i) file[static_cast<size_t>(i)] = static_cast<char>(uint64_t{length} >> (8 * i));
    test::write_text(dir / "h.safetensors", file + header + "\x07");
    const auto c = open_checkpoint(dir / "h.safetensors");
    EXPECT_EQ(c.format(), "safetensors") << length;
    EXPECT_EQ(c.tensor("x").data_as<uint8_t>()[0], 7) << length;
  }
}

TEST(Checkpoint, ShardedSafetensorsInAFolder) {
  ScratchDir dir;
  write_shards(dir);
  test::write_text(dir / "model.safetensors.index.json", index_json(kGoodMap));
  const auto c = open_checkpoint(dir.path());
  ASSERT_EQ(c.tensors().size(), 3u);
  EXPECT_EQ(c.tensors()[2].name, "head.w");
  EXPECT_EQ(c.tensor("head.w").dtype(), DType::BF16);
  EXPECT_EQ(c.parameter_count(), 9u);
  EXPECT_EQ(c.total_bytes(), 4u * 6 + 2 * 3);
  EXPECT_EQ(c.bytes_by_dtype().at(DType::BF16), 6u);
}

TEST(Checkpoint, ShardIndexProblemsAreRefused) {
  ScratchDir dir;
  write_shards(dir);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"("a":"../s1.safetensors")", "leaves the index's folder"},
      {R"("a":"/etc/passwd")", "absolute path"},
      {R"("a":"")", "empty"},
      {R"("a":"missing.safetensors")", "does not exist"},
      {R"("a":"s1.safetensors","a":"s2.safetensors")", "duplicate key"},
      {R"("a":3)", "not a file name"},
      {R"("blocks.0.attn.w":"s1.safetensors","head.w":"s2.safetensors")", "does not list"},
      {R"("blocks.0.attn.w":"s2.safetensors","blocks.0.attn.b":"s1.safetensors","head.w":"s2.safetensors")",
       "listed in shard"},
  };
  for (const auto& [map, fragment] : cases) {
    test::write_text(dir / "x.index.json", index_json(map));
    const std::string e = error_of(dir / "x.index.json");
    EXPECT_NE(e.find(fragment), std::string::npos) << map << " -> " << e;
  }
  test::write_text(dir / "x.index.json", R"({"metadata":{}})");
  EXPECT_NE(error_of(dir / "x.index.json").find("no \"weight_map\""), std::string::npos);
  test::write_text(dir / "x.index.json", R"({"weight_map":{"a":)");
  EXPECT_NE(error_of(dir / "x.index.json").find("not valid JSON"), std::string::npos);
  // A key listed but absent from its shard.
  test::write_text(dir / "x.index.json", index_json(std::string(kGoodMap) + R"(,"ghost":"s2.safetensors")"));
  EXPECT_NE(error_of(dir / "x.index.json").find("has no tensor 'ghost'"), std::string::npos);
}

TEST(Checkpoint, BadFilesGiveOneClearLine) {
  ScratchDir dir;
  test::write_text(dir / "empty.pth", "");
  EXPECT_EQ(error_of(dir / "empty.pth"), (dir / "empty.pth").string() + " is empty");
  test::write_text(dir / "text.bin", "hello world, not a checkpoint");
  EXPECT_NE(error_of(dir / "text.bin").find("is not a checkpoint sparvar can read"), std::string::npos);
  EXPECT_NE(error_of(fixture("legacy.pth")).find("legacy"), std::string::npos);
  EXPECT_NE(error_of(dir / "nothing_here").find("does not exist"), std::string::npos);
  EXPECT_NE(error_of(dir.path()).find("holds no checkpoint"), std::string::npos);
  const auto plain = test::read_bytes(fixture("plain.pth"));
  test::write_text(dir / "cut.pth", std::string(plain.begin(), plain.begin() + 1000));
  EXPECT_NE(error_of(dir / "cut.pth").find("not a valid zip"), std::string::npos);
  for (const std::string& e : {error_of(dir / "empty.pth"), error_of(dir / "cut.pth"), error_of(dir / "text.bin")})
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

TEST(Checkpoint, MissingKeySuggestsANameAndShapesAreChecked) {
  const auto c = open_checkpoint(fixture("nested.pth"));
  try {
    c.tensor("encoder.weight");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has no tensor 'encoder.weight'; did you mean 'model.encoder.weight'?"),
              std::string::npos) << e.what();
  }
  try {
    c.tensor("model.decoder.bais");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'model.decoder.bias'?"), std::string::npos) << e.what();
  }
  EXPECT_EQ(c.tensor("model.encoder.weight", {2, 2}).numel(), 4);
  try {
    c.expect_shape("model.encoder.weight", {4, 1});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("key model.encoder.weight: expected [4,1], checkpoint"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("has [2,2]"), std::string::npos);
  }
}

}  // namespace
}  // namespace sparvar::io
