// A contiguous n-dimensional array on one device. Storage is shared (views share it); the data of a
// tensor is storage->data + offset_bytes, row-major, no strides: every op sees dense memory.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace sparvar {

enum class Device : uint8_t { CPU, CUDA };
std::string_view device_name(Device device);

using Shape = std::vector<int64_t>;
std::string shape_string(const Shape& shape);
int64_t shape_numel(const Shape& shape);

// A block of memory owned through a release function (cudaFree, munmap, free) or borrowed (release empty).
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  std::function<void(void*)> release;

  Storage() = default;
  Storage(void* data, size_t bytes, Device device, std::function<void(void*)> release)
      : data(data), bytes(bytes), device(device), release(std::move(release)) {}
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (release && data) release(data);
  }
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<Storage> storage, size_t offset_bytes, Shape shape, DType dtype);

  // Host tensor, 64-byte aligned, uninitialised.
  static Tensor empty(const Shape& shape, DType dtype);
  static Tensor zeros(const Shape& shape, DType dtype);
  // Host tensor copied from values (converted to dtype).
  static Tensor from_floats(const Shape& shape, const std::vector<float>& values, DType dtype = DType::F32);
  // Wraps memory owned elsewhere; keepalive holds whatever keeps it valid (may be null).
  static Tensor wrap(void* data, const Shape& shape, DType dtype, Device device,
                     std::shared_ptr<void> keepalive = nullptr);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  // Size of dimension i; negative i counts from the end.
  int64_t dim(int i) const;
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device : Device::CPU; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  void* data() const { return static_cast<char*>(storage_->data) + offset_; }
  // Typed access; checks that T matches dtype.
  template <typename T> T* data_as() const;

  // Same data, new shape (one -1 is inferred). Throws if the element count differs.
  Tensor view(Shape shape) const;
  // Rows [begin, end) of dimension 0: still contiguous.
  Tensor slice0(int64_t begin, int64_t end) const;
  // Host copies only: deep copy / dtype conversion.
  Tensor clone() const;
  Tensor to_dtype(DType dtype) const;
  std::vector<float> to_floats() const;  // host only, any float or int dtype

  // "bf16[2,16,4096,128] on cuda"
  std::string describe() const;

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;
  Shape shape_;
  DType dtype_ = DType::F32;
};

// Throws Error naming `what` unless t has exactly this shape.
void expect_shape(const Tensor& t, const Shape& shape, std::string_view what);
void expect_dtype(const Tensor& t, DType dtype, std::string_view what);
// Aliasing rules of the ops (backend.h), checked before any work: `out` shares no byte with `in` ...
void check_disjoint(const Tensor& in, const Tensor& out, std::string_view op, std::string_view in_arg);
// ... or, for elementwise ops, is exactly `in` (same bytes) or disjoint from it, never partially overlapping.
void check_same_or_disjoint(const Tensor& in, const Tensor& out, std::string_view op, std::string_view in_arg);

}  // namespace sparvar
