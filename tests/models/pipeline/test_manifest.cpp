// manifest.json parsing: the golden tiny model folder parses; broken manifests fail with an Error naming
// the problem (unknown field, missing file, bad value, config the files contradict).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backend/backend.h"
#include "core/error.h"
#include "models/pipeline/image_sizes.h"
#include "models/pipeline/manifest.h"
#include "models/pipeline/model_bundle.h"

namespace sparvar::pipeline {
namespace {

namespace fs = std::filesystem;
const fs::path kModel = fs::path(SPARVAR_PIPELINE_GOLDEN_DIR) / "model";

nlohmann::json golden_json() {
  std::ifstream in(kModel / "manifest.json");
  return nlohmann::json::parse(in);
}

// Parses an edited manifest (paths still resolve inside the golden folder); returns the error text or "".
std::string error_of(const nlohmann::json& j) {
  try {
    parse_manifest(j.dump(), kModel);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Manifest, GoldenParses) {
  const ModelManifest m = read_manifest(kModel);
  EXPECT_EQ(m.name, "pipeline-tiny");
  EXPECT_EQ(m.infinity.depth, 1);
  EXPECT_EQ(m.infinity.embed_dim, 64);
  EXPECT_EQ(m.infinity.ffn_hidden, 256);
  EXPECT_EQ(m.infinity.pool_heads, 1);
  EXPECT_EQ(m.vae.patch_size, 4);
  EXPECT_EQ(m.schedule.describe(), ScaleSchedule("x", {{1, 1}, {2, 2}, {4, 4}, {6, 6}}).describe());
  EXPECT_EQ(m.image_h, 24);
  EXPECT_EQ(m.max_tokens, 16);
  EXPECT_FLOAT_EQ(m.sampling.cfg, 3.0f);
  EXPECT_FLOAT_EQ(m.sampling.tau, 0.9f);
  EXPECT_TRUE(m.lowercase);
  EXPECT_EQ(m.tokenizer, kModel / "t5" / "spiece.model");
}

TEST(Manifest, BrokenManifestsSayWhy) {
  auto j = golden_json();
  j["colour"] = "red";
  EXPECT_NE(error_of(j).find("unknown field 'colour'"), std::string::npos) << error_of(j);

  j = golden_json();
  j["infinity"]["config"]["depht"] = 3;
  EXPECT_NE(error_of(j).find("'infinity.config.depht'"), std::string::npos) << error_of(j);

  j = golden_json();
  j["vae"]["path"] = "nope.pth";
  EXPECT_NE(error_of(j).find("does not exist"), std::string::npos) << error_of(j);

  j = golden_json();
  j["t5"].erase("tokenizer");
  EXPECT_NE(error_of(j).find("'t5.tokenizer' is missing"), std::string::npos) << error_of(j);

  j = golden_json();
  j["image_size"] = {32, 32};
  EXPECT_NE(error_of(j).find("image_size"), std::string::npos) << error_of(j);

  j = golden_json();
  j["infinity"]["config"]["depth"] = "one";
  EXPECT_NE(error_of(j).find("must be an integer"), std::string::npos) << error_of(j);

  j = golden_json();
  j["infinity"]["config"]["num_heads"] = 3;  // 64 / 3
  EXPECT_NE(error_of(j).find("not a valid Infinity config"), std::string::npos) << error_of(j);

  j = golden_json();
  j["vae"]["config"]["codebook_dim"] = 16;  // transformer predicts 8 bits
  EXPECT_NE(error_of(j).find("bits"), std::string::npos) << error_of(j);

  EXPECT_NE(error_of(nlohmann::json::array()).find("must be an object"), std::string::npos);
  EXPECT_THROW(parse_manifest("{\"name\": ", kModel), Error);
  EXPECT_THROW(read_manifest(kModel / "no-such-folder"), Error);
}

// Found by fuzz_manifest: values that used to crash (a division by zero in the error message for zero heads),
// overflow int (UB) in derived sizes, or wrap from huge unsigned JSON integers into accepted small ones.
TEST(Manifest, FuzzFoundValuesAreErrors) {
  auto expect_error = [](const nlohmann::json& j, const std::string& what) {
    const std::string e = error_of(j);
    EXPECT_NE(e.find(what), std::string::npos) << j.dump() << "\n -> " << (e.empty() ? "accepted" : e);
  };
  auto j = golden_json();
  j["infinity"]["config"]["num_heads"] = 0;  // was: SIGFPE in InfinityConfig::head_dim() while reporting
  expect_error(j, "'infinity.config.num_heads' = 0 must be in [1, 1048576]");

  j = golden_json();
  j["infinity"]["config"]["embed_dim"] = 1 << 30;  // was: round(embed_dim * mlp_ratio) overflowed int
  expect_error(j, "'infinity.config.embed_dim' = 1073741824 must be in");

  j = golden_json();
  j["vae"]["config"]["base_ch"] = 1 << 30;  // was: base_ch * ch_mult overflowed int in VaeConfig::validate
  expect_error(j, "'vae.config.base_ch' = 1073741824 must be in");

  j = golden_json();
  j["vae"]["config"]["patch_size"] = 1 << 30;  // was: patch_size * 2 * grid overflowed int
  expect_error(j, "'vae.config.patch_size' = 1073741824 must be in [2, 1024]");

  j = golden_json();
  j["image_size"] = {(uint64_t{1} << 32) + 24, 24};  // was: read through get<int>() as 24 and accepted
  expect_error(j, "'image_size' 4294967320x24 does not match");

  j = golden_json();
  j["sampling_defaults"]["top_k"] = std::numeric_limits<uint64_t>::max();  // was: wrapped to -1 and accepted
  expect_error(j, "'sampling_defaults.top_k' = 18446744073709551615 is out of range");

  j = golden_json();
  j["t5"]["max_tokens"] = std::numeric_limits<uint64_t>::max() - 14;  // wrapped to -15: an error, but a wrong one
  expect_error(j, "'t5.max_tokens' = 18446744073709551601 is out of range");

  j = golden_json();
  j["vae"]["path"] = std::string(300, 'v');  // was: filesystem_error ("File name too long") out of the parser
  expect_error(j, "'vae.path' names");

  j = golden_json();
  j["vae"]["config"]["num_res_blocks"] = 0;  // zero stays allowed where it was
  EXPECT_EQ(error_of(j), "");
}

TEST(Manifest, ConfigTheFileContradictsFailsOnLoad) {
  const fs::path dir = fs::temp_directory_path() / "sparvar_pipeline_bad_manifest";
  fs::remove_all(dir);
  fs::copy(kModel, dir, fs::copy_options::recursive);
  auto j = golden_json();
  j["infinity"]["config"]["depth"] = 2;
  j["infinity"]["config"]["block_chunks"] = 2;
  std::ofstream(dir / "manifest.json") << j.dump();
  auto be = make_cpu_backend(1);
  try {
    ModelBundle::load(dir, *be);
    ADD_FAILURE() << "loaded a manifest whose depth contradicts the file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("depth 2 (manifest) vs 1 (file)"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Sizes, SupportedAndImpossible) {
  const ModelManifest m = read_manifest(kModel);
  EXPECT_EQ(size_from_text(m, "24x24").schedule.num_scales(), 4);
  EXPECT_EQ(size_from_text(m, "16").schedule.num_scales(), 3);  // the 1,2,4 prefix
  try {
    size_from_text(m, "25x25");
    ADD_FAILURE() << "25x25 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("24x24"), std::string::npos) << e.what();
  }
  EXPECT_THROW(size_from_text(m, "big"), Error);
  EXPECT_EQ(size_from_aspect(m, 1.0).height, 24);
}

}  // namespace
}  // namespace sparvar::pipeline
