#include "backend/cpu/checks.h"

namespace sparvar::cpu {

void check_f32(const Tensor& t, std::string_view op, std::string_view arg) {
  SPARVAR_CHECK(t.defined(), "{}: {} is missing (undefined tensor)", op, arg);
  SPARVAR_CHECK(t.device() == Device::CPU, "{}: {} {} is not on the cpu backend", op, arg, t.describe());
  SPARVAR_CHECK(t.dtype() == DType::F32, "{}: {} {} must be f32 on the cpu backend", op, arg, t.describe());
}

void check_f32_shape(const Tensor& t, const Shape& shape, std::string_view op, std::string_view arg) {
  check_f32(t, op, arg);
  SPARVAR_CHECK(t.shape() == shape, "{}: {} has shape {}, expected {}", op, arg, shape_string(t.shape()),
                shape_string(shape));
}

void check_output(const Tensor& y, const Shape& shape, std::string_view op) {
  check_f32(y, op, "output");
  SPARVAR_CHECK(y.shape() == shape, "{}: output has shape {}, expected {}", op, shape_string(y.shape()),
                shape_string(shape));
}

}  // namespace sparvar::cpu
