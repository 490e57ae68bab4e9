// The index of a sharded checkpoint, as written by transformers / safetensors:
//   model.safetensors.index.json or pytorch_model.bin.index.json = {"metadata": {...}, "weight_map": {key: shard}}
// Shard names are resolved relative to the index's folder. Absolute paths, '..' components, empty names
// and missing shard files are rejected; so are duplicate keys. (Symlinked shards are fine: the check is on
// the names written in the index, which is what an attacker controls, so Hugging Face cache layouts work.)
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sparvar::io {

struct ShardIndex {
  std::filesystem::path index_path;
  // key -> index into shards, in the order of the index file.
  std::vector<std::pair<std::string, size_t>> weight_map;
  // Resolved, distinct shard files, in order of first mention.
  std::vector<std::filesystem::path> shards;
};

// Throws Error naming the index file (and the shard or key) on any problem.
ShardIndex read_shard_index(const std::filesystem::path& index_path);

// Same, for index text already in memory that was read from (or stands for) index_path: every check above
// applies, and the shard files are looked up beside index_path. read_shard_index reads the file and calls this.
ShardIndex parse_shard_index(std::string_view text, const std::filesystem::path& index_path);

// True for names such as "model.safetensors.index.json" (any "*.index.json").
bool looks_like_shard_index(const std::filesystem::path& path);

}  // namespace sparvar::io
