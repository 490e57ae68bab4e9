// Read-only access to a zip archive in memory (an mmap or a caller's buffer) through libzip, with its
// errors turned into sparvar::Error. Used for PyTorch checkpoints, whose entries are stored uncompressed.
// Not thread-safe: callers serialise access.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

struct zip;

namespace sparvar::io {

class ZipArchive {
 public:
  static ZipArchive open(const std::filesystem::path& path);
  // bytes must stay valid while the archive lives; keepalive (may be null) holds them.
  static ZipArchive from_buffer(std::span<const uint8_t> bytes, std::shared_ptr<const void> keepalive,
                                std::string label = "<memory>");
  ZipArchive(ZipArchive&&) noexcept;
  ZipArchive& operator=(ZipArchive&&) noexcept;
  ~ZipArchive();

  const std::string& label() const { return label_; }
  uint64_t entry_count() const;
  std::string entry_name(uint64_t index) const;
  std::optional<uint64_t> find(const std::string& name) const;
  // Uncompressed size as recorded in the archive. Throws if it is implausible for the compressed size
  // (a stored entry must be as long as its data; deflate expands at most ~1032x), so a forged size
  // cannot make callers allocate gigabytes.
  uint64_t entry_size(uint64_t index) const;
  // Reads exactly `bytes` bytes of the entry (which must have that size) into dst.
  void read(uint64_t index, void* dst, uint64_t bytes) const;
  // Reads a whole entry of at most max_bytes.
  std::vector<uint8_t> read_all(uint64_t index, uint64_t max_bytes) const;

 private:
  ZipArchive() = default;
  std::string label_;
  std::shared_ptr<const void> keepalive_;
  uint64_t archive_bytes_ = 0;
  ::zip* archive_ = nullptr;
};

}  // namespace sparvar::io
