// The values a restricted unpickler can build. All values of one load live in a PickleArena and refer to
// each other by raw pointer, so shared or even cyclic references (possible in hostile input) cannot leak.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"

namespace sparvar::io {

// A storage named by a persistent id ('storage', torch.XStorage, key, location, numel).
struct StorageRef {
  std::string key;
  DType dtype = DType::F32;
  int64_t numel = 0;
};

// A tensor view on a storage, from torch._utils._rebuild_tensor(_v2).
struct TensorRef {
  const struct PickleValue* storage = nullptr;  // kind Storage
  int64_t offset = 0;                           // in elements
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
};

struct PickleValue {
  enum class Kind { None, Bool, Int, Float, String, Bytes, Tuple, List, Dict, Global, Storage, Tensor };
  Kind kind = Kind::None;
  int64_t integer = 0;  // Bool and Int
  double real = 0;
  std::string text;  // String, Bytes, Global ("module.name")
  std::vector<PickleValue*> items;                           // Tuple, List
  std::vector<std::pair<PickleValue*, PickleValue*>> entries;  // Dict, in insertion order
  StorageRef storage;
  TensorRef tensor;
};

std::string_view pickle_kind_name(PickleValue::Kind kind);

class PickleArena {
 public:
  PickleValue* make(PickleValue::Kind kind) {
    values_.emplace_back();
    values_.back().kind = kind;
    return &values_.back();
  }
  size_t size() const { return values_.size(); }

 private:
  std::deque<PickleValue> values_;  // deque: stable addresses
};

}  // namespace sparvar::io
