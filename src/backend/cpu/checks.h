// Argument validation shared by the CPU ops: every check throws sparvar::Error naming the op and argument.
#pragma once

#include <string_view>

#include "core/tensor.h"

namespace sparvar::cpu {

// t is defined, on the CPU and F32.
void check_f32(const Tensor& t, std::string_view op, std::string_view arg);
// check_f32 plus an exact shape.
void check_f32_shape(const Tensor& t, const Shape& shape, std::string_view op, std::string_view arg);
// Output y must have exactly the shape `shape`; the message shows the input it was derived from.
void check_output(const Tensor& y, const Shape& shape, std::string_view op);
// Aliasing: check_disjoint / check_same_or_disjoint (core/tensor.h), shared by both backends.

}  // namespace sparvar::cpu
