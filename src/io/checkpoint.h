// One door to every checkpoint format sparvar reads. open_checkpoint() sniffs the content, not the name:
//   safetensors                 (8-byte header length + JSON)
//   PyTorch zip (.pth / .bin)   (torch.save's default since 1.6)
//   *.index.json                (sharded: transformers' weight_map, shards in safetensors or PyTorch zip)
//   a folder                    (holding model.safetensors.index.json, pytorch_model.bin.index.json, another
//                                single *.index.json, model.safetensors or pytorch_model.bin)
// Legacy (non-zip) torch files, empty, truncated and unknown files end in one Error line naming the path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "io/tensor_info.h"

namespace sparvar::io {

// A source of named tensors: one safetensors file, one torch zip, or a set of shards.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual const std::vector<TensorInfo>& tensors() const = 0;
  virtual Tensor load(const std::string& name) const = 0;
};

class Checkpoint {
 public:
  Checkpoint(std::string path, std::string format, std::shared_ptr<const TensorSource> source);

  const std::string& path() const { return path_; }
  // "safetensors", "pytorch-zip", "sharded (3 safetensors shards)".
  const std::string& format() const { return format_; }
  const std::vector<TensorInfo>& tensors() const { return source_->tensors(); }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // Throws "checkpoint P has no tensor 'K'; did you mean 'L'?" when missing.
  const TensorInfo& info(const std::string& name) const;
  // Host tensor (may view an mmap: read-only, clone() before writing).
  Tensor tensor(const std::string& name) const;
  // As tensor(), after checking "key K: expected [a,b], checkpoint has [c,d]".
  Tensor tensor(const std::string& name, const Shape& expected) const;
  void expect_shape(const std::string& name, const Shape& expected) const;

  // Totals over all tensors.
  uint64_t parameter_count() const;
  uint64_t total_bytes() const;
  std::map<DType, uint64_t> bytes_by_dtype() const;

 private:
  std::string path_;
  std::string format_;
  std::shared_ptr<const TensorSource> source_;
  std::unordered_map<std::string, size_t> index_;
};

Checkpoint open_checkpoint(const std::filesystem::path& path);

// The closest name by edit distance, or "" if nothing is reasonably close (for "did you mean").
std::string closest_name(const std::string& wanted, const std::vector<TensorInfo>& tensors);

}  // namespace sparvar::io
