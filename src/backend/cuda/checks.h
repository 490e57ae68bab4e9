// Argument validation for the CUDA ops, run on the host before any launch: every failure is a sparvar::Error
// naming the op, the argument and the shapes involved.
#pragma once

#include <string_view>

#include "core/tensor.h"

namespace sparvar::cuda {

// t is defined, on the cuda backend, and F32 or BF16.
void check_compute(const Tensor& t, std::string_view op, std::string_view arg);
// check_compute plus: same dtype as `like` (all float inputs and the output of one call share one dtype).
void check_compute_like(const Tensor& t, const Tensor& like, std::string_view op, std::string_view arg);
// check_compute_like plus an exact shape.
void check_shaped_like(const Tensor& t, const Tensor& like, const Shape& shape, std::string_view op,
                       std::string_view arg);
// The output: dtype of `like`, exact shape.
void check_output(const Tensor& y, const Tensor& like, const Shape& shape, std::string_view op);
// A rope cos / sin table: on the cuda backend and F32 whatever the compute dtype (tables are built in f32).
void check_table(const Tensor& t, const Shape& shape, std::string_view op, std::string_view arg);
// The AdaLN-modulated ops: x [B, N, C]; scale, shift [B, C]; y like x, x itself or disjoint from x.
void check_modulate(const Tensor& x, const Tensor& scale, const Tensor& shift, const Tensor& y, std::string_view op);
// Aliasing: check_disjoint / check_same_or_disjoint (core/tensor.h), shared by both backends.

}  // namespace sparvar::cuda
