#include "io/torch_checkpoint.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#include "core/error.h"
#include "io/mapped_file.h"
#include "io/torch_pickle.h"
#include "io/zip_archive.h"

namespace sparvar::io {
namespace {

constexpr uint64_t kMaxPickleBytes = 512ull << 20;

// Finds "<top>/data.pkl" (exactly one, one folder deep) and returns "<top>/".
std::string find_prefix(const ZipArchive& zip) {
  std::string prefix;
  int found = 0;
  for (uint64_t i = 0; i < zip.entry_count(); ++i) {
    const std::string name = zip.entry_name(i);
    if (!name.ends_with("/data.pkl")) continue;
    const std::string top = name.substr(0, name.size() - 8);
    if (top.find('/') != top.size() - 1 || top.size() < 2) continue;
    prefix = top;
    ++found;
  }
  SPARVAR_CHECK(found == 1, "{}: {} (a torch.save checkpoint has exactly one <folder>/data.pkl)", zip.label(),
                found == 0 ? "zip archive has no data.pkl" : "zip archive has several data.pkl");
  return prefix;
}

// Copies a strided view into dense row-major memory, one dimension at a time.
void gather(const uint8_t* src, uint8_t*& dst, const TorchTensorEntry& e, size_t dim, size_t elem) {
  if (dim == e.sizes.size()) {
    std::memcpy(dst, src, elem);
    dst += elem;
    return;
  }
  for (int64_t i = 0; i < e.sizes[dim]; ++i)
    gather(src + static_cast<size_t>(i * e.strides[dim]) * elem, dst, e, dim + 1, elem);
}

}  // namespace

struct TorchCheckpoint::State {
  ZipArchive zip;
  std::string prefix;
  std::vector<TorchTensorEntry> entries;
  std::vector<TensorInfo> infos;
  std::vector<std::string> others;
  std::unordered_map<std::string, size_t> index;
  std::map<std::string, uint64_t> storage_entry;  // storage key -> zip index
  mutable std::mutex mutex;
  mutable std::map<std::string, std::weak_ptr<Storage>> loaded;

  explicit State(ZipArchive z) : zip(std::move(z)) {}

  std::shared_ptr<Storage> storage(const StorageRef& ref) const {
    std::lock_guard lock(mutex);
    if (auto alive = loaded[ref.key].lock()) return alive;
    const size_t bytes = static_cast<size_t>(ref.numel) * dtype_size(ref.dtype);
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    SPARVAR_CHECK(p != nullptr, "{}: out of host memory reading storage '{}' ({} bytes)", zip.label(), ref.key, bytes);
    auto s = std::make_shared<Storage>(p, bytes, Device::CPU, [](void* q) { std::free(q); });
    zip.read(storage_entry.at(ref.key), p, bytes);
    loaded[ref.key] = s;
    return s;
  }
};

TorchCheckpoint TorchCheckpoint::open(const std::filesystem::path& path) {
  auto file = MappedFile::open(path);
  return from_buffer(file->bytes(), file, path.string());
}

TorchCheckpoint TorchCheckpoint::from_buffer(std::span<const uint8_t> bytes, std::shared_ptr<const void> keepalive,
                                             std::string label) {
  const std::string label_for_errors = label;
  try {
    auto state = std::make_shared<State>(ZipArchive::from_buffer(bytes, std::move(keepalive), std::move(label)));
    const ZipArchive& zip = state->zip;
    state->prefix = find_prefix(zip);
    if (auto order = zip.find(state->prefix + "byteorder")) {
      const auto text = zip.read_all(*order, 16);
      SPARVAR_CHECK(std::string(text.begin(), text.end()) == "little",
                    "{}: checkpoint was saved on a big-endian machine; only little-endian is supported", zip.label());
    }
    const auto pickle = zip.read_all(*zip.find(state->prefix + "data.pkl"), kMaxPickleBytes);
    TorchPickleContents contents = parse_torch_pickle(pickle, zip.label() + " (data.pkl)");

    for (const auto& e : contents.tensors) {
      if (state->storage_entry.count(e.storage.key)) continue;
      const std::string entry = state->prefix + "data/" + e.storage.key;
      const auto found = zip.find(entry);
      SPARVAR_CHECK(found.has_value(), "{}: storage '{}' of tensor '{}' is missing (no zip entry {})", zip.label(),
                    e.storage.key, e.name, entry);
      const uint64_t want = static_cast<uint64_t>(e.storage.numel) * dtype_size(e.storage.dtype);
      const uint64_t have = zip.entry_size(*found);
      SPARVAR_CHECK(have == want, "{}: storage '{}' of tensor '{}' has {} bytes, expected {} ({} x {})", zip.label(),
                    e.storage.key, e.name, have, want, e.storage.numel, dtype_name(e.storage.dtype));
      state->storage_entry.emplace(e.storage.key, *found);
    }
    for (auto& e : contents.tensors) {
      const DType dtype = e.storage.dtype;
      const auto bytes_of = static_cast<uint64_t>(shape_numel(e.sizes)) * dtype_size(dtype);
      state->index.emplace(e.name, state->infos.size());
      state->infos.push_back(TensorInfo{e.name, dtype, e.sizes, bytes_of});
    }
    state->entries = std::move(contents.tensors);
    state->others = std::move(contents.other_entries);
    TorchCheckpoint c;
    c.state_ = std::move(state);
    return c;
  } catch (const std::bad_alloc&) {
    fail("{}: out of memory while opening the checkpoint", label_for_errors);
  }
}

const std::string& TorchCheckpoint::label() const { return state_->zip.label(); }
const std::vector<TensorInfo>& TorchCheckpoint::tensors() const { return state_->infos; }
const std::vector<std::string>& TorchCheckpoint::other_entries() const { return state_->others; }
bool TorchCheckpoint::contains(const std::string& name) const { return state_->index.count(name) != 0; }

Tensor TorchCheckpoint::tensor(const std::string& name) const {
  auto it = state_->index.find(name);
  SPARVAR_CHECK(it != state_->index.end(), "{} has no tensor '{}'", label(), name);
  const TorchTensorEntry& e = state_->entries[it->second];
  const size_t elem = dtype_size(e.storage.dtype);
  try {
    std::shared_ptr<Storage> storage = state_->storage(e.storage);
    if (e.contiguous) {
      const size_t offset = shape_numel(e.sizes) == 0 ? 0 : static_cast<size_t>(e.offset) * elem;
      return Tensor(std::move(storage), offset, e.sizes, e.storage.dtype);
    }
    Tensor dense = Tensor::empty(e.sizes, e.storage.dtype);
    uint8_t* dst = static_cast<uint8_t*>(dense.data());
    gather(static_cast<const uint8_t*>(storage->data) + static_cast<size_t>(e.offset) * elem, dst, e, 0, elem);
    return dense;
  } catch (const std::bad_alloc&) {
    fail("{}: out of host memory reading tensor '{}'", label(), name);
  }
}

}  // namespace sparvar::io
