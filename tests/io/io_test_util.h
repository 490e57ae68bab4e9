// Helpers for the io tests: a scratch folder, a zip writer (libzip), and a pickle builder that emits the
// opcodes torch.save uses, so malformed checkpoints can be written byte by byte.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace sparvar::io::test {

// A fresh folder under the system temp dir, removed when the object dies.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

std::filesystem::path fixture(const std::string& name);
std::vector<uint8_t> read_bytes(const std::filesystem::path& path);
void write_text(const std::filesystem::path& path, const std::string& text);

using ZipEntries = std::vector<std::pair<std::string, std::vector<uint8_t>>>;
// Stored (uncompressed) entries, like torch.save.
std::vector<uint8_t> make_zip(const ZipEntries& entries);

class PickleBuilder {
 public:
  PickleBuilder& proto(int version = 2);
  PickleBuilder& op(uint8_t opcode) { bytes_.push_back(opcode); return *this; }
  PickleBuilder& raw(const std::string& text);
  PickleBuilder& str(const std::string& text);  // BINUNICODE
  PickleBuilder& integer(int64_t value);       // BININT or LONG1
  PickleBuilder& global(const std::string& module, const std::string& name);
  PickleBuilder& mark() { return op('('); }
  PickleBuilder& tuple() { return op('t'); }
  PickleBuilder& int_tuple(const std::vector<int64_t>& values);
  PickleBuilder& stop() { return op('.'); }
  // Pushes _rebuild_tensor_v2((persid storage), offset, sizes, strides, False, OrderedDict()).
  PickleBuilder& tensor(const std::string& storage_type, const std::string& key, int64_t storage_numel,
                        int64_t offset, const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides);
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

struct FakeTensor {
  std::string name;
  std::string storage_type = "FloatStorage";
  std::string key = "0";
  int64_t storage_numel = 4;
  int64_t offset = 0;
  std::vector<int64_t> sizes = {4};
  std::vector<int64_t> strides = {1};
};
// A state dict {name: tensor} as torch.save would pickle it.
std::vector<uint8_t> state_dict_pickle(const std::vector<FakeTensor>& tensors);
// A torch zip checkpoint: archive/data.pkl plus archive/data/<key> of the given contents.
std::vector<uint8_t> torch_zip(const std::vector<uint8_t>& pickle,
                               const std::vector<std::pair<std::string, std::vector<uint8_t>>>& storages,
                               const std::string& top = "archive");

}  // namespace sparvar::io::test
