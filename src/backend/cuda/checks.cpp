#include "backend/cuda/checks.h"

namespace sparvar::cuda {

void check_compute(const Tensor& t, std::string_view op, std::string_view arg) {
  SPARVAR_CHECK(t.defined(), "{}: {} is missing (undefined tensor)", op, arg);
  SPARVAR_CHECK(t.device() == Device::CUDA, "{}: {} {} is not on the cuda backend", op, arg, t.describe());
  SPARVAR_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16,
                "{}: {} {} must be f32 or bf16 on the cuda backend", op, arg, t.describe());
}

void check_compute_like(const Tensor& t, const Tensor& like, std::string_view op, std::string_view arg) {
  check_compute(t, op, arg);
  SPARVAR_CHECK(t.dtype() == like.dtype(), "{}: {} {} must have the dtype of the input {}", op, arg, t.describe(),
                like.describe());
}

void check_shaped_like(const Tensor& t, const Tensor& like, const Shape& shape, std::string_view op,
                       std::string_view arg) {
  check_compute_like(t, like, op, arg);
  SPARVAR_CHECK(t.shape() == shape, "{}: {} has shape {}, expected {}", op, arg, shape_string(t.shape()),
                shape_string(shape));
}

void check_output(const Tensor& y, const Tensor& like, const Shape& shape, std::string_view op) {
  check_compute_like(y, like, op, "output");
  SPARVAR_CHECK(y.shape() == shape, "{}: output has shape {}, expected {} (input {})", op, shape_string(y.shape()),
                shape_string(shape), shape_string(like.shape()));
}

void check_table(const Tensor& t, const Shape& shape, std::string_view op, std::string_view arg) {
  SPARVAR_CHECK(t.defined(), "{}: {} is missing (undefined tensor)", op, arg);
  SPARVAR_CHECK(t.device() == Device::CUDA, "{}: {} {} is not on the cuda backend", op, arg, t.describe());
  SPARVAR_CHECK(t.dtype() == DType::F32, "{}: {} {} must be f32 (tables are built in f32)", op, arg, t.describe());
  SPARVAR_CHECK(t.shape() == shape, "{}: {} has shape {}, expected {}", op, arg, shape_string(t.shape()),
                shape_string(shape));
}

void check_modulate(const Tensor& x, const Tensor& scale, const Tensor& shift, const Tensor& y, std::string_view op) {
  check_compute(x, op, "x");
  SPARVAR_CHECK(x.ndim() == 3, "{}: x must be [B, N, C], got {}", op, shape_string(x.shape()));
  const int64_t B = x.dim(0), C = x.dim(2);
  check_shaped_like(scale, x, {B, C}, op, "scale");
  check_shaped_like(shift, x, {B, C}, op, "shift");
  check_output(y, x, x.shape(), op);
  check_same_or_disjoint(x, y, op, "x");
  check_disjoint(scale, y, op, "scale");
  check_disjoint(shift, y, op, "shift");
}

}  // namespace sparvar::cuda
