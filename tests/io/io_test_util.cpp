#include "io_test_util.h"

#include <fstream>
#include <random>
#include <stdexcept>
#include <zip.h>

namespace sparvar::io::test {

ScratchDir::ScratchDir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() / ("sparvar-io-test-" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path fixture(const std::string& name) { return std::filesystem::path(SPARVAR_IO_FIXTURES) / name; }

std::vector<uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("test: cannot read " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::vector<uint8_t> make_zip(const ZipEntries& entries) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* buffer = zip_source_buffer_create(nullptr, 0, 0, &error);
  zip_t* archive = zip_open_from_source(buffer, ZIP_TRUNCATE, &error);
  if (archive == nullptr) throw std::runtime_error("test: zip_open_from_source failed");
  zip_source_keep(buffer);
  for (const auto& [name, data] : entries) {
    zip_source_t* s = zip_source_buffer(archive, data.data(), data.size(), 0);
    const zip_int64_t i = zip_file_add(archive, name.c_str(), s, ZIP_FL_OVERWRITE);
    if (i < 0) throw std::runtime_error("test: zip_file_add failed");
    zip_set_file_compression(archive, static_cast<zip_uint64_t>(i), ZIP_CM_STORE, 0);
  }
  if (zip_close(archive) != 0) throw std::runtime_error("test: zip_close failed");
  std::vector<uint8_t> out;
  zip_stat_t st;
  if (zip_source_open(buffer) != 0 || zip_source_stat(buffer, &st) != 0) throw std::runtime_error("test: zip stat");
  out.resize(st.size);
  if (zip_source_read(buffer, out.data(), st.size) != static_cast<zip_int64_t>(st.size))
    throw std::runtime_error("test: zip read");
  zip_source_close(buffer);
  zip_source_free(buffer);
  zip_error_fini(&error);
  return out;
}

PickleBuilder& PickleBuilder::proto(int version) {
  op(0x80);
  return op(static_cast<uint8_t>(version));
}

PickleBuilder& PickleBuilder::raw(const std::string& text) {
  bytes_.insert(bytes_.end(), text.begin(), text.end());
  return *this;
}

PickleBuilder& PickleBuilder::str(const std::string& text) {
  op('X');
  for (int i = 0; i < 4; ++i) op(static_cast<uint8_t>(text.size() >> (8 * i)));
  return raw(text);
}

PickleBuilder& PickleBuilder::integer(int64_t value) {
  if (value >= INT32_MIN && value <= INT32_MAX) {
    op('J');
    for (int i = 0; i < 4; ++i) op(static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i)));
    return *this;
  }
  op(0x8a).op(8);
  for (int i = 0; i < 8; ++i) op(static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i)));
  return *this;
}

PickleBuilder& PickleBuilder::global(const std::string& module, const std::string& name) {
  return op('c').raw(module + "\n" + name + "\n");
}

PickleBuilder& PickleBuilder::int_tuple(const std::vector<int64_t>& values) {
  mark();
  for (int64_t v : values) integer(v);
  return tuple();
}

PickleBuilder& PickleBuilder::tensor(const std::string& storage_type, const std::string& key, int64_t storage_numel,
                                     int64_t offset, const std::vector<int64_t>& sizes,
                                     const std::vector<int64_t>& strides) {
  global("torch._utils", "_rebuild_tensor_v2").mark();
  mark().str("storage").global("torch", storage_type).str(key).str("cpu").integer(storage_numel).tuple().op('Q');
  integer(offset).int_tuple(sizes).int_tuple(strides).op(0x89);           // NEWFALSE: requires_grad
  global("collections", "OrderedDict").op(')').op('R');                    // backward hooks
  return tuple().op('R');
}

std::vector<uint8_t> state_dict_pickle(const std::vector<FakeTensor>& tensors) {
  PickleBuilder p;
  p.proto().global("collections", "OrderedDict").op(')').op('R').mark();
  for (const auto& t : tensors) p.str(t.name).tensor(t.storage_type, t.key, t.storage_numel, t.offset, t.sizes, t.strides);
  p.op('u').stop();
  return p.bytes();
}

std::vector<uint8_t> torch_zip(const std::vector<uint8_t>& pickle,
                               const std::vector<std::pair<std::string, std::vector<uint8_t>>>& storages,
                               const std::string& top) {
  ZipEntries entries{{top + "/data.pkl", pickle}};
  for (const auto& [key, data] : storages) entries.emplace_back(top + "/data/" + key, data);
  entries.emplace_back(top + "/version", std::vector<uint8_t>{'3', '\n'});
  return make_zip(entries);
}

}  // namespace sparvar::io::test
