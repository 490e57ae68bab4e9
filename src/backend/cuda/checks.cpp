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

}  // namespace sparvar::cuda
