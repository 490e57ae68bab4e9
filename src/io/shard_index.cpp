#include "io/shard_index.h"

#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "io/strict_json.h"

namespace sparvar::io {
namespace {

constexpr uintmax_t kMaxIndexBytes = 64ull << 20;

// A shard name must stay inside the index's folder: relative, no '..', no empty or odd characters.
void check_shard_name(const std::string& name, const std::string& key, const std::string& index) {
  SPARVAR_CHECK(!name.empty() && name.size() <= 4096, "{}: key '{}' maps to an empty or overlong shard name", index,
                key);
  SPARVAR_CHECK(name.find('\0') == std::string::npos && name.find('\\') == std::string::npos,
                "{}: shard name '{}' contains a NUL or backslash", index, name);
  const std::filesystem::path p(name);
  SPARVAR_CHECK(!p.is_absolute() && !p.has_root_name() && !p.has_root_directory(),
                "{}: shard name '{}' is an absolute path; shards must lie beside the index", index, name);
  for (const auto& part : p)
    SPARVAR_CHECK(part != ".." && part != ".", "{}: shard name '{}' leaves the index's folder", index, name);
}

}  // namespace

bool looks_like_shard_index(const std::filesystem::path& path) {
  const std::string name = path.filename().string();
  return name.size() > 11 && name.ends_with(".index.json");
}

ShardIndex read_shard_index(const std::filesystem::path& index_path) {
  const std::string label = index_path.string();
  std::error_code ec;
  const auto size = std::filesystem::file_size(index_path, ec);
  SPARVAR_CHECK(!ec, "cannot read {}: {}", label, ec.message());
  SPARVAR_CHECK(size <= kMaxIndexBytes, "{}: {} bytes is too large for a shard index", label, size);
  std::ifstream in(index_path, std::ios::binary);
  SPARVAR_CHECK(in.good(), "cannot open {}", label);
  std::ostringstream text;
  text << in.rdbuf();
  return parse_shard_index(text.str(), index_path);
}

ShardIndex parse_shard_index(std::string_view text, const std::filesystem::path& index_path) {
  const std::string label = index_path.string();
  SPARVAR_CHECK(text.size() <= kMaxIndexBytes, "{}: {} bytes is too large for a shard index", label, text.size());
  std::error_code ec;
  const auto json = parse_strict_json(text, fmt::format("shard index {}", label));
  SPARVAR_CHECK(json.is_object(), "{}: a shard index must be a JSON object", label);
  SPARVAR_CHECK(json.contains("weight_map") && json["weight_map"].is_object(),
                "{}: shard index has no \"weight_map\" object", label);

  ShardIndex index;
  index.index_path = index_path;
  const auto folder = index_path.parent_path();
  std::map<std::string, size_t> shard_numbers;
  for (const auto& [key, value] : json["weight_map"].items()) {
    SPARVAR_CHECK(value.is_string(), "{}: weight_map value of '{}' is not a file name", label, key);
    const auto& shard = value.get_ref<const std::string&>();
    check_shard_name(shard, key, label);
    auto [it, inserted] = shard_numbers.emplace(shard, index.shards.size());
    if (inserted) {
      auto path = folder / shard;
      SPARVAR_CHECK(std::filesystem::is_regular_file(path, ec), "{}: shard '{}' (for key '{}') does not exist", label,
                    path.string(), key);
      index.shards.push_back(std::move(path));
    }
    index.weight_map.emplace_back(key, it->second);
  }
  SPARVAR_CHECK(!index.weight_map.empty(), "{}: weight_map is empty", label);
  return index;
}

}  // namespace sparvar::io
