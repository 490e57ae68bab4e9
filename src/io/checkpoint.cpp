#include "io/checkpoint.h"

#include <algorithm>
#include <fstream>
#include <unordered_set>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/shard_index.h"
#include "io/torch_checkpoint.h"

namespace sparvar::io {
namespace {

namespace fs = std::filesystem;

class SafetensorsSource : public TensorSource {
 public:
  explicit SafetensorsSource(SafetensorsFile file) : file_(std::move(file)) {}
  const std::vector<TensorInfo>& tensors() const override { return file_.tensors(); }
  Tensor load(const std::string& name) const override { return file_.tensor(name); }

 private:
  SafetensorsFile file_;
};

class TorchSource : public TensorSource {
 public:
  explicit TorchSource(TorchCheckpoint file) : file_(std::move(file)) {}
  const std::vector<TensorInfo>& tensors() const override { return file_.tensors(); }
  Tensor load(const std::string& name) const override { return file_.tensor(name); }

 private:
  TorchCheckpoint file_;
};

enum class Format { Safetensors, TorchZip, ShardIndex };

// Decides from the first bytes; every unreadable case becomes one Error naming the path.
Format sniff(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  SPARVAR_CHECK(in.good(), "cannot open {}", path.string());
  unsigned char head[16] = {};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  const auto got = static_cast<size_t>(in.gcount());
  SPARVAR_CHECK(got > 0, "{} is empty", path.string());
  // safetensors first: its little-endian header length may begin with any byte, even '{' or 0x80. The
  // length is capped at 100 MB, so bytes 4..7 are zero, which no JSON or zip file has.
  if (got >= 9 && head[8] == '{' && head[4] == 0 && head[5] == 0 && head[6] == 0 && head[7] == 0)
    return Format::Safetensors;
  if (got >= 4 && head[0] == 'P' && head[1] == 'K' && (head[2] == 3 || head[2] == 5)) return Format::TorchZip;
  // Legacy torch.save: a pickle (PROTO 2) whose first value is the LONG1 magic number 0x1950a86a20f9469cfc6c.
  if (got >= 4 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5 && head[2] == 0x8a && head[3] == 0x0a)
    fail("{} is a legacy (pre-1.6, non-zip) PyTorch file; re-save it with torch.save() from PyTorch >= 1.6 or "
         "convert it to safetensors",
         path.string());
  size_t i = 0;
  while (i < got && (head[i] == ' ' || head[i] == '\n' || head[i] == '\r' || head[i] == '\t')) ++i;
  if (i < got && head[i] == '{') return Format::ShardIndex;
  if (got >= 9 && head[8] == '{') return Format::Safetensors;  // a header length over the cap: the reader says so
  fail("{} is not a checkpoint sparvar can read (expected safetensors, a PyTorch zip .pth/.bin, or a *.index.json; "
       "{} bytes, starting {:02x})",
       path.string(), fs::file_size(path), fmt::join(head, head + std::min<size_t>(got, 8), " "));
}

std::shared_ptr<const TensorSource> open_single(const fs::path& path, Format format) {
  if (format == Format::Safetensors) return std::make_shared<SafetensorsSource>(SafetensorsFile::open(path));
  return std::make_shared<TorchSource>(TorchCheckpoint::open(path));
}

class ShardedSource : public TensorSource {
 public:
  explicit ShardedSource(const ShardIndex& index) {
    const std::string label = index.index_path.string();
    for (const auto& shard : index.shards) {
      const Format f = sniff(shard);
      SPARVAR_CHECK(f != Format::ShardIndex, "{}: shard {} is itself an index", label, shard.string());
      shards_.push_back(open_single(shard, f));
    }
    // name -> shard, checked against what each shard really holds.
    std::unordered_map<std::string, size_t> listed;
    for (const auto& [key, shard] : index.weight_map) listed.emplace(key, shard);
    std::vector<std::unordered_map<std::string, const TensorInfo*>> held(shards_.size());
    for (size_t s = 0; s < shards_.size(); ++s)
      for (const auto& info : shards_[s]->tensors()) {
        auto it = listed.find(info.name);
        SPARVAR_CHECK(it != listed.end(), "{}: shard {} holds '{}', which the index does not list", label,
                      index.shards[s].string(), info.name);
        SPARVAR_CHECK(it->second == s, "{}: '{}' is listed in shard {} but found in {}", label, info.name,
                      index.shards[it->second].string(), index.shards[s].string());
        held[s].emplace(info.name, &info);
      }
    for (const auto& [key, shard] : index.weight_map) {
      auto it = held[shard].find(key);
      SPARVAR_CHECK(it != held[shard].end(), "{}: shard {} has no tensor '{}' listed for it", label,
                    index.shards[shard].string(), key);
      shard_of_.emplace(key, shard);
      infos_.push_back(*it->second);
    }
  }
  const std::vector<TensorInfo>& tensors() const override { return infos_; }
  Tensor load(const std::string& name) const override { return shards_[shard_of_.at(name)]->load(name); }
  size_t shard_count() const { return shards_.size(); }

 private:
  std::vector<std::shared_ptr<const TensorSource>> shards_;
  std::vector<TensorInfo> infos_;
  std::unordered_map<std::string, size_t> shard_of_;
};

Checkpoint open_index(const fs::path& path) {
  auto sharded = std::make_shared<ShardedSource>(read_shard_index(path));
  const std::string format = fmt::format("sharded ({} shard{})", sharded->shard_count(),
                                         sharded->shard_count() == 1 ? "" : "s");
  return Checkpoint(path.string(), format, std::move(sharded));
}

// The file a folder stands for: a known index, the only *.index.json, or a single-file checkpoint.
fs::path resolve_folder(const fs::path& folder) {
  for (const char* name : {"model.safetensors.index.json", "pytorch_model.bin.index.json"})
    if (fs::is_regular_file(folder / name)) return folder / name;
  std::vector<fs::path> indexes;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec))
    if (entry.is_regular_file() && looks_like_shard_index(entry.path())) indexes.push_back(entry.path());
  SPARVAR_CHECK(indexes.size() <= 1, "folder {} holds several *.index.json files; name one", folder.string());
  if (indexes.size() == 1) return indexes[0];
  for (const char* name : {"model.safetensors", "pytorch_model.bin"})
    if (fs::is_regular_file(folder / name)) return folder / name;
  fail("folder {} holds no checkpoint (looked for *.index.json, model.safetensors, pytorch_model.bin)",
       folder.string());
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string closest_name(const std::string& wanted, const std::vector<TensorInfo>& tensors) {
  // A missing or extra prefix ("module.", "model.") is the most common mismatch.
  for (const auto& t : tensors)
    if (t.name.ends_with("." + wanted) || wanted.ends_with("." + t.name)) return t.name;
  std::string best;
  size_t best_distance = std::max<size_t>(2, wanted.size() / 4) + 1;
  for (const auto& t : tensors) {
    const size_t gap = t.name.size() > wanted.size() ? t.name.size() - wanted.size() : wanted.size() - t.name.size();
    if (gap >= best_distance || wanted.size() > 512 || t.name.size() > 512) continue;
    const size_t d = edit_distance(wanted, t.name);
    if (d < best_distance) best_distance = d, best = t.name;
  }
  return best;
}

Checkpoint::Checkpoint(std::string path, std::string format, std::shared_ptr<const TensorSource> source)
    : path_(std::move(path)), format_(std::move(format)), source_(std::move(source)) {
  const auto& infos = source_->tensors();
  for (size_t i = 0; i < infos.size(); ++i) index_.emplace(infos[i].name, i);
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    const std::string near = closest_name(name, tensors());
    fail("checkpoint {} has no tensor '{}'{}", path_, name, near.empty() ? "" : "; did you mean '" + near + "'?");
  }
  return tensors()[it->second];
}

Tensor Checkpoint::tensor(const std::string& name) const {
  info(name);
  return source_->load(name);
}

Tensor Checkpoint::tensor(const std::string& name, const Shape& expected) const {
  expect_shape(name, expected);
  return source_->load(name);
}

void Checkpoint::expect_shape(const std::string& name, const Shape& expected) const {
  const TensorInfo& i = info(name);
  SPARVAR_CHECK(i.shape == expected, "key {}: expected {}, checkpoint {} has {}", name, shape_string(expected), path_,
                shape_string(i.shape));
}

uint64_t Checkpoint::parameter_count() const {
  uint64_t n = 0;
  for (const auto& t : tensors()) n += t.bytes / dtype_size(t.dtype);
  return n;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors()) n += t.bytes;
  return n;
}

std::map<DType, uint64_t> Checkpoint::bytes_by_dtype() const {
  std::map<DType, uint64_t> m;
  for (const auto& t : tensors()) m[t.dtype] += t.bytes;
  return m;
}

Checkpoint open_checkpoint(const fs::path& path) {
  std::error_code ec;
  SPARVAR_CHECK(fs::exists(path, ec), "{} does not exist", path.string());
  const fs::path file = fs::is_directory(path, ec) ? resolve_folder(path) : path;
  switch (sniff(file)) {
    case Format::ShardIndex: return open_index(file);
    case Format::Safetensors: return Checkpoint(file.string(), "safetensors", open_single(file, Format::Safetensors));
    case Format::TorchZip: return Checkpoint(file.string(), "pytorch-zip", open_single(file, Format::TorchZip));
  }
  fail("{}: unknown format", file.string());
}

}  // namespace sparvar::io
