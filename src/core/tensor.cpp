#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <limits>

namespace sparvar {

std::string_view device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

std::string shape_string(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ",")); }

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    SPARVAR_CHECK(d >= 0, "negative dimension in shape {}", shape_string(shape));
    SPARVAR_CHECK(d == 0 || n <= std::numeric_limits<int64_t>::max() / d, "shape {} is too large", shape_string(shape));
    n *= d;
  }
  return n;
}

Tensor::Tensor(std::shared_ptr<Storage> storage, size_t offset_bytes, Shape shape, DType dtype)
    : storage_(std::move(storage)), offset_(offset_bytes), shape_(std::move(shape)), dtype_(dtype) {
  SPARVAR_CHECK(storage_ != nullptr, "tensor without storage");
  SPARVAR_CHECK(offset_ + nbytes() <= storage_->bytes, "tensor {} at offset {} exceeds its storage of {} bytes",
                shape_string(shape_), offset_, storage_->bytes);
}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  SPARVAR_CHECK(p != nullptr, "out of host memory allocating {} bytes for {}", bytes, shape_string(shape));
  return Tensor(std::make_shared<Storage>(p, bytes, Device::CPU, [](void* q) { std::free(q); }), 0, shape, dtype);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::from_floats(const Shape& shape, const std::vector<float>& values, DType dtype) {
  SPARVAR_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "{} values given for shape {}",
                values.size(), shape_string(shape));
  Tensor t = empty(shape, dtype);
  convert_elements(values.data(), DType::F32, t.data(), dtype, values.size());
  return t;
}

Tensor Tensor::wrap(void* data, const Shape& shape, DType dtype, Device device, std::shared_ptr<void> keepalive) {
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  auto storage = std::make_shared<Storage>(data, bytes, device,
                                           keepalive ? std::function<void(void*)>([keepalive](void*) {}) : nullptr);
  return Tensor(std::move(storage), 0, shape, dtype);
}

int64_t Tensor::dim(int i) const {
  const int n = ndim();
  const int j = i < 0 ? i + n : i;
  SPARVAR_CHECK(j >= 0 && j < n, "dimension {} out of range for tensor {}", i, describe());
  return shape_[static_cast<size_t>(j)];
}

template <typename T>
static constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::F32;
  else if constexpr (std::is_same_v<T, f16_t>) return DType::F16;
  else if constexpr (std::is_same_v<T, bf16_t>) return DType::BF16;
  else if constexpr (std::is_same_v<T, int32_t>) return DType::I32;
  else if constexpr (std::is_same_v<T, int64_t>) return DType::I64;
  else if constexpr (std::is_same_v<T, uint8_t>) return DType::U8;
  else static_assert(sizeof(T) == 0, "unsupported element type");
}

template <typename T>
T* Tensor::data_as() const {
  SPARVAR_CHECK(dtype_ == dtype_of<T>() || (dtype_ == DType::Bool && dtype_of<T>() == DType::U8),
                "tensor {} accessed as {}", describe(), dtype_name(dtype_of<T>()));
  return static_cast<T*>(data());
}
template float* Tensor::data_as<float>() const;
template f16_t* Tensor::data_as<f16_t>() const;
template bf16_t* Tensor::data_as<bf16_t>() const;
template int32_t* Tensor::data_as<int32_t>() const;
template int64_t* Tensor::data_as<int64_t>() const;
template uint8_t* Tensor::data_as<uint8_t>() const;

Tensor Tensor::view(Shape shape) const {
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      SPARVAR_CHECK(infer < 0, "view {} has more than one -1", shape_string(shape));
      infer = static_cast<int>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    SPARVAR_CHECK(known > 0 && numel() % known == 0, "cannot view {} as {}", describe(), shape_string(shape));
    shape[static_cast<size_t>(infer)] = numel() / known;
  }
  SPARVAR_CHECK(shape_numel(shape) == numel(), "cannot view {} as {}", describe(), shape_string(shape));
  return Tensor(storage_, offset_, std::move(shape), dtype_);
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  SPARVAR_CHECK(ndim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "slice [{}, {}) out of range for {}",
                begin, end, describe());
  Shape s = shape_;
  s[0] = end - begin;
  const size_t row_bytes = shape_[0] == 0 ? 0 : nbytes() / static_cast<size_t>(shape_[0]);
  return Tensor(storage_, offset_ + static_cast<size_t>(begin) * row_bytes, std::move(s), dtype_);
}

Tensor Tensor::clone() const {
  SPARVAR_CHECK(device() == Device::CPU, "clone() of {} needs a backend (device tensor)", describe());
  Tensor t = empty(shape_, dtype_);
  std::memcpy(t.data(), data(), nbytes());
  return t;
}

Tensor Tensor::to_dtype(DType dtype) const {
  SPARVAR_CHECK(device() == Device::CPU, "to_dtype() of {} needs a backend (device tensor)", describe());
  Tensor t = empty(shape_, dtype);
  convert_elements(data(), dtype_, t.data(), dtype, static_cast<size_t>(numel()));
  return t;
}

std::vector<float> Tensor::to_floats() const {
  SPARVAR_CHECK(device() == Device::CPU, "to_floats() of {} needs a host tensor", describe());
  std::vector<float> out(static_cast<size_t>(numel()));
  convert_elements(data(), dtype_, out.data(), DType::F32, out.size());
  return out;
}

std::string Tensor::describe() const {
  if (!defined()) return "<undefined tensor>";
  return fmt::format("{}{} on {}", dtype_name(dtype_), shape_string(shape_), device_name(device()));
}

void expect_shape(const Tensor& t, const Shape& shape, std::string_view what) {
  SPARVAR_CHECK(t.defined(), "{}: tensor is missing", what);
  SPARVAR_CHECK(t.shape() == shape, "{}: expected shape {}, got {}", what, shape_string(shape), shape_string(t.shape()));
}

void expect_dtype(const Tensor& t, DType dtype, std::string_view what) {
  SPARVAR_CHECK(t.dtype() == dtype, "{}: expected dtype {}, got {}", what, dtype_name(dtype), dtype_name(t.dtype()));
}

static bool overlaps(const Tensor& a, const Tensor& b) {
  const auto* a0 = static_cast<const char*>(a.data());
  const auto* b0 = static_cast<const char*>(b.data());
  return a.nbytes() > 0 && b.nbytes() > 0 && a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

void check_disjoint(const Tensor& in, const Tensor& out, std::string_view op, std::string_view in_arg) {
  SPARVAR_CHECK(!overlaps(in, out), "{}: output {} overlaps {} {}; this op cannot work in place", op,
                shape_string(out.shape()), in_arg, shape_string(in.shape()));
}

void check_same_or_disjoint(const Tensor& in, const Tensor& out, std::string_view op, std::string_view in_arg) {
  const bool same = in.data() == out.data() && in.nbytes() == out.nbytes();
  SPARVAR_CHECK(same || !overlaps(in, out),
                "{}: output {} partially overlaps {} {}; in place needs the very same tensor", op,
                shape_string(out.shape()), in_arg, shape_string(in.shape()));
}

}  // namespace sparvar
