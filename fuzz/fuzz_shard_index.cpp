// libFuzzer: the sharded-checkpoint index (*.index.json). The index "lives" in a scratch folder that holds
// a few empty shard files under the names the seeds use, so valid-looking indexes get past the existence
// check; the names it accepts must all resolve inside that folder.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "core/error.h"
#include "scratch_dir.h"
#include "io/shard_index.h"

namespace {
namespace fs = std::filesystem;
fs::path g_dir;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = sparvar::fuzz::make_scratch_dir(
      "sparvar_fuzz_shard_index", {"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
                                   "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "a", "sub/b"});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sparvar::io::ShardIndex index;
  try {
    index = sparvar::io::parse_shard_index(std::string_view(reinterpret_cast<const char*>(data), size),
                                           g_dir / "model.safetensors.index.json");
  } catch (const sparvar::Error&) {
    return 0;
  }
  // Invariants of an accepted index: non-empty, every key points at a listed shard, every shard is a file
  // inside the index's folder (lexically: no '..', no absolute path escaped the checks).
  if (index.weight_map.empty() || index.shards.empty()) std::abort();
  for (const auto& [key, shard] : index.weight_map)
    if (shard >= index.shards.size()) std::abort();
  for (const auto& shard : index.shards) {
    const fs::path rel = shard.lexically_relative(g_dir);
    if (rel.empty() || *rel.begin() == ".." || rel.is_absolute()) std::abort();
    if (!fs::is_regular_file(shard)) std::abort();
  }
  return 0;
}
