// A PyTorch checkpoint in the zip format of torch.save (>= 1.6): <top>/data.pkl describes the state dict,
// <top>/data/<key> holds each storage's raw little-endian bytes. The top folder's name varies (the file's
// stem at save time), so it is found from data.pkl. Opening reads only data.pkl and checks that every
// storage exists with the declared size; tensor() reads the storage (once, shared by its views) into
// 64-byte-aligned host memory. Non-contiguous views come back as contiguous copies.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/tensor_info.h"

namespace sparvar::io {

class TorchCheckpoint {
 public:
  static TorchCheckpoint open(const std::filesystem::path& path);
  static TorchCheckpoint from_buffer(std::span<const uint8_t> bytes, std::shared_ptr<const void> keepalive,
                                     std::string label = "<memory>");

  const std::string& label() const;
  // Flattened names ('.'-joined for nested dicts), in pickle order.
  const std::vector<TensorInfo>& tensors() const;
  // Non-tensor leaves, "name: type", e.g. "epoch: int".
  const std::vector<std::string>& other_entries() const;
  bool contains(const std::string& name) const;
  // Thread-safe. Throws Error if the name is missing or the data cannot be read.
  Tensor tensor(const std::string& name) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace sparvar::io
