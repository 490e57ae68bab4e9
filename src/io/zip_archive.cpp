#include "io/zip_archive.h"

#include <zip.h>

#include "core/error.h"
#include "io/mapped_file.h"

namespace sparvar::io {

ZipArchive ZipArchive::open(const std::filesystem::path& path) {
  auto file = MappedFile::open(path);
  return from_buffer(file->bytes(), file, path.string());
}

ZipArchive ZipArchive::from_buffer(std::span<const uint8_t> bytes, std::shared_ptr<const void> keepalive,
                                   std::string label) {
  ZipArchive z;
  z.label_ = std::move(label);
  z.keepalive_ = std::move(keepalive);
  z.archive_bytes_ = bytes.size();
  zip_error_t error;
  zip_error_init(&error);
  static const uint8_t empty = 0;
  zip_source_t* source = zip_source_buffer_create(bytes.empty() ? &empty : bytes.data(), bytes.size(), 0, &error);
  if (source == nullptr) {
    std::string message = zip_error_strerror(&error);
    zip_error_fini(&error);
    fail("{}: cannot read as zip: {}", z.label_, message);
  }
  z.archive_ = zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error);
  if (z.archive_ == nullptr) {
    zip_source_free(source);
    std::string message = zip_error_strerror(&error);
    zip_error_fini(&error);
    fail("{}: not a valid zip archive: {}", z.label_, message);
  }
  zip_error_fini(&error);
  return z;
}

ZipArchive::ZipArchive(ZipArchive&& other) noexcept
    : label_(std::move(other.label_)),
      keepalive_(std::move(other.keepalive_)),
      archive_bytes_(other.archive_bytes_),
      archive_(other.archive_) {
  other.archive_ = nullptr;
}

ZipArchive& ZipArchive::operator=(ZipArchive&& other) noexcept {
  if (this != &other) {
    if (archive_ != nullptr) zip_discard(archive_);
    label_ = std::move(other.label_);
    keepalive_ = std::move(other.keepalive_);
    archive_bytes_ = other.archive_bytes_;
    archive_ = other.archive_;
    other.archive_ = nullptr;
  }
  return *this;
}

ZipArchive::~ZipArchive() {
  if (archive_ != nullptr) zip_discard(archive_);
}

uint64_t ZipArchive::entry_count() const {
  const zip_int64_t n = zip_get_num_entries(archive_, 0);
  return n < 0 ? 0 : static_cast<uint64_t>(n);
}

std::string ZipArchive::entry_name(uint64_t index) const {
  const char* name = zip_get_name(archive_, index, ZIP_FL_ENC_RAW);
  SPARVAR_CHECK(name != nullptr, "{}: cannot read the name of zip entry {}: {}", label_, index,
                zip_strerror(archive_));
  return name;
}

std::optional<uint64_t> ZipArchive::find(const std::string& name) const {
  const zip_int64_t i = zip_name_locate(archive_, name.c_str(), ZIP_FL_ENC_RAW);
  if (i < 0) return std::nullopt;
  return static_cast<uint64_t>(i);
}

uint64_t ZipArchive::entry_size(uint64_t index) const {
  zip_stat_t st;
  zip_stat_init(&st);
  const uint64_t needed = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
  SPARVAR_CHECK(zip_stat_index(archive_, index, 0, &st) == 0 && (st.valid & needed) == needed,
                "{}: cannot stat zip entry {}: {}", label_, index, zip_strerror(archive_));
  const bool stored = st.comp_method == ZIP_CM_STORE;
  const bool plausible = st.comp_size <= archive_bytes_ &&
                         (stored ? st.size == st.comp_size : st.size / 1100 <= st.comp_size + 1);
  SPARVAR_CHECK(plausible, "{}: zip entry {} claims {} bytes from {} stored bytes: the archive is corrupt", label_,
                index, st.size, st.comp_size);
  return st.size;
}

void ZipArchive::read(uint64_t index, void* dst, uint64_t bytes) const {
  const std::string name = entry_name(index);
  const uint64_t size = entry_size(index);
  SPARVAR_CHECK(size == bytes, "{}: zip entry '{}' has {} bytes, expected {}", label_, name, size, bytes);
  zip_file_t* file = zip_fopen_index(archive_, index, 0);
  SPARVAR_CHECK(file != nullptr, "{}: cannot open zip entry '{}': {}", label_, name, zip_strerror(archive_));
  uint64_t done = 0;
  while (done < bytes) {
    const zip_int64_t n = zip_fread(file, static_cast<char*>(dst) + done, bytes - done);
    if (n <= 0) {
      std::string message = n < 0 ? zip_error_strerror(zip_file_get_error(file)) : "unexpected end of data";
      zip_fclose(file);
      fail("{}: cannot read zip entry '{}': {}", label_, name, message);
    }
    done += static_cast<uint64_t>(n);
  }
  // One more read must find the end: catches entries longer than their recorded size.
  char extra;
  const zip_int64_t tail = zip_fread(file, &extra, 1);
  const int close_status = zip_fclose(file);  // also verifies the CRC
  SPARVAR_CHECK(tail == 0 && close_status == 0, "{}: zip entry '{}' is corrupt (size or CRC mismatch)", label_, name);
}

std::vector<uint8_t> ZipArchive::read_all(uint64_t index, uint64_t max_bytes) const {
  const uint64_t size = entry_size(index);
  SPARVAR_CHECK(size <= max_bytes, "{}: zip entry '{}' has {} bytes, more than the {} allowed", label_,
                entry_name(index), size, max_bytes);
  std::vector<uint8_t> out;
  try {
    out.resize(size);
  } catch (const std::bad_alloc&) {
    fail("{}: out of memory reading zip entry '{}' ({} bytes)", label_, entry_name(index), size);
  }
  read(index, out.data(), size);
  return out;
}

}  // namespace sparvar::io
