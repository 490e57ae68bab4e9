// Entry points of the elementwise ops (kernels in elementwise.cu): validation, then one launch.
#include <algorithm>

#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/op_helpers.h"

namespace sparvar::cuda {

namespace {
// b's shape must be a suffix of a's shape.
void check_suffix(const Tensor& a, const Tensor& b, const char* op) {
  const bool suffix = b.ndim() <= a.ndim() && std::equal(b.shape().begin(), b.shape().end(), a.shape().end() - b.ndim());
  SPARVAR_CHECK(suffix, "{}: b {} must equal a suffix of a's shape {}", op, shape_string(b.shape()),
                shape_string(a.shape()));
}

void check_binary(const Tensor& a, const Tensor& b, const Tensor& y, const char* op) {
  check_compute(a, op, "a");
  check_compute_like(b, a, op, "b");
  check_suffix(a, b, op);
  check_output(y, a, a.shape(), op);
  check_same_or_disjoint(a, y, op, "a");
  check_same_or_disjoint(b, y, op, "b");
}
}  // namespace

void CudaBackend::activation(const Tensor& x, Activation act, Tensor& y) {
  constexpr const char* op = "activation";
  check_compute(x, op, "x");
  check_output(y, x, x.shape(), op);
  check_same_or_disjoint(x, y, op, "x");
  make_current();
  launch_activation(x.dtype(), x.data(), y.data(), x.numel(), kernel_act(act), stream_);
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& y) {
  check_binary(a, b, y, "add");
  make_current();
  launch_broadcast(a.dtype(), false, a.data(), b.data(), y.data(), a.numel(), b.numel(), stream_);
}

void CudaBackend::mul(const Tensor& a, const Tensor& b, Tensor& y) {
  check_binary(a, b, y, "mul");
  make_current();
  launch_broadcast(a.dtype(), true, a.data(), b.data(), y.data(), a.numel(), b.numel(), stream_);
}

void CudaBackend::adaln_modulate(const Tensor& x, const Tensor& scale, const Tensor& shift, Tensor& y) {
  check_modulate(x, scale, shift, y, "adaln_modulate");
  const int64_t N = x.dim(1), C = x.dim(2);
  make_current();
  launch_adaln(x.dtype(), x.data(), scale.data(), shift.data(), y.data(), x.numel(), N, C, stream_);
}

void CudaBackend::gated_residual(Tensor& x, const Tensor& gate, const Tensor& y) {
  constexpr const char* op = "gated_residual";
  check_compute(x, op, "x");
  SPARVAR_CHECK(x.ndim() == 3, "{}: x must be [B, N, C], got {}", op, shape_string(x.shape()));
  const int64_t B = x.dim(0), N = x.dim(1), C = x.dim(2);
  check_shaped_like(gate, x, {B, C}, op, "gate");
  check_shaped_like(y, x, x.shape(), op, "y");
  check_same_or_disjoint(y, x, op, "y");
  check_disjoint(gate, x, op, "gate");
  make_current();
  launch_gated_residual(x.dtype(), x.data(), gate.data(), y.data(), x.numel(), N, C, stream_);
}

}  // namespace sparvar::cuda
