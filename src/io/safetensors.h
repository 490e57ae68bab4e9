// Reader (zero copy, over an mmap or a caller's buffer) and writer of the safetensors format:
//   [u64 little-endian N][N bytes of JSON header][data section]
// The header maps names to {dtype, shape, data_offsets:[begin,end]} (offsets relative to the data
// section) plus an optional "__metadata__" string map. Every field is validated before any tensor is made:
// a header within the file and at most 100 MB, no duplicate keys, known dtypes, non-negative shapes whose
// byte size does not overflow and equals end-begin, offsets inside the data section and not overlapping.
// Gaps between tensors are tolerated. Supported dtypes: F32 F16 BF16 I32 I64 U8 BOOL; F64, I8, I16, U16,
// U32, U64 and F8_* are rejected by name (sparvar has no use for them).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/tensor_info.h"

namespace sparvar::io {

inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);
  // Parses bytes in place; keepalive (may be null) keeps them valid as long as any returned tensor lives.
  // `label` names the source in error messages.
  static SafetensorsFile from_buffer(std::span<const uint8_t> bytes, std::shared_ptr<const void> keepalive,
                                     std::string label = "<memory>");

  const std::string& label() const { return label_; }
  // In the order of their data offsets.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // A read-only CPU tensor viewing the file's bytes (clone() before writing). Throws Error if missing.
  Tensor tensor(const std::string& name) const;

 private:
  std::string label_;
  std::span<const uint8_t> data_section_;
  std::shared_ptr<const void> keepalive_;
  std::vector<TensorInfo> tensors_;
  std::vector<uint64_t> begins_;  // offset in the data section, parallel to tensors_
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Serialises tensors (host, any supported dtype) in the given order; the header is padded with spaces to a
// multiple of 8 bytes so that data is aligned, as the reference writer does.
std::vector<uint8_t> encode_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                        const std::map<std::string, std::string>& metadata = {});
void write_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// "F32" <-> DType in safetensors spelling.
std::string_view safetensors_dtype_name(DType dtype);

}  // namespace sparvar::io
