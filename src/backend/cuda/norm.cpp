// Entry points of the normalisations (kernels in norm.cu), gated_residual_norm too: validation, then one launch.
#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/gated_residual_norm.h"

namespace sparvar::cuda {

namespace {
void check_rows(int64_t rows, const char* op) {
  SPARVAR_CHECK(rows <= 0x7fffffff, "{}: {} rows is too many for one launch", op, rows);
}
}  // namespace

void CudaBackend::layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, float eps, Tensor& y) {
  constexpr const char* op = "layer_norm";
  check_compute(x, op, "x");
  SPARVAR_CHECK(x.ndim() >= 1, "{}: x must have at least one dimension", op);
  const int64_t C = x.dim(-1), rows = C == 0 ? 0 : x.numel() / C;
  if (w) check_shaped_like(*w, x, {C}, op, "w");
  if (b) check_shaped_like(*b, x, {C}, op, "b");
  check_output(y, x, x.shape(), op);
  check_same_or_disjoint(x, y, op, "x");
  check_rows(rows, op);
  make_current();
  const RowNormArgs args{rows, C, eps, w ? w->data() : nullptr, b ? b->data() : nullptr, nullptr, 1, 1};
  launch_row_norm(RowNorm::Layer, x.dtype(), x.data(), y.data(), args, stream_);
}

void CudaBackend::layer_norm_modulate(const Tensor& x, const Tensor& scale, const Tensor& shift, float eps, Tensor& y) {
  constexpr const char* op = "layer_norm_modulate";
  check_modulate(x, scale, shift, y, op);
  const int64_t B = x.dim(0), N = x.dim(1), C = x.dim(2);
  check_rows(B * N, op);
  if (N == 0) return;  // rows / tokens below needs tokens > 0
  make_current();
  const RowNormArgs args{B * N, C, eps, scale.data(), shift.data(), nullptr, N, 1};
  launch_row_norm(RowNorm::LayerModulate, x.dtype(), x.data(), y.data(), args, stream_);
}

// The shared checks (gated_residual_norm.h) give every argument x's dtype and device; check_compute makes those ours.
void CudaBackend::gated_residual_norm(Tensor& x, const Tensor& gate, const Tensor& y, const LayerNormSpec& norm,
                                      float eps, Tensor& h) {
  constexpr const char* op = "gated_residual_norm";
  check_compute(x, op, "x");
  const auto [B, N, C] = check_gated_residual_norm(x, gate, y, norm, h, op);
  check_rows(B * N, op);
  const Tensor& w = norm.modulated ? norm.scale : norm.weight;
  const Tensor& b = norm.modulated ? norm.shift : norm.bias;
  make_current();
  // tokens = N: the row's batch item, for the gate (and the modulation) rows.
  const RowNormArgs args{B * N, C, eps, w.defined() ? w.data() : nullptr, b.defined() ? b.data() : nullptr, nullptr,
                         N, 1};
  launch_gated_residual_norm(norm.modulated, x.dtype(), x.data(), gate.data(), y.data(), h.data(), args, stream_);
}

void CudaBackend::rms_norm(const Tensor& x, const Tensor* w, float eps, Tensor& y) {
  constexpr const char* op = "rms_norm";
  check_compute(x, op, "x");
  SPARVAR_CHECK(x.ndim() >= 1, "{}: x must have at least one dimension", op);
  const int64_t C = x.dim(-1), rows = C == 0 ? 0 : x.numel() / C;
  if (w) check_shaped_like(*w, x, {C}, op, "w");
  check_output(y, x, x.shape(), op);
  check_same_or_disjoint(x, y, op, "x");
  check_rows(rows, op);
  make_current();
  const RowNormArgs args{rows, C, eps, w ? w->data() : nullptr, nullptr, nullptr, 1, 1};
  launch_row_norm(RowNorm::Rms, x.dtype(), x.data(), y.data(), args, stream_);
}

void CudaBackend::l2_normalize(const Tensor& x, float eps, const Tensor* head_scale, Tensor& y) {
  constexpr const char* op = "l2_normalize";
  check_compute(x, op, "x");
  SPARVAR_CHECK(x.ndim() == 4, "{}: x must be [B, H, N, D], got {}", op, shape_string(x.shape()));
  const int64_t H = x.dim(1), N = x.dim(2), D = x.dim(3), rows = D == 0 ? 0 : x.numel() / D;
  if (head_scale) check_shaped_like(*head_scale, x, {H}, op, "head_scale");
  check_output(y, x, x.shape(), op);
  check_same_or_disjoint(x, y, op, "x");
  if (head_scale) check_disjoint(*head_scale, y, op, "head_scale");
  check_rows(rows, op);
  make_current();
  const RowNormArgs args{rows, D, eps, nullptr, nullptr, head_scale ? head_scale->data() : nullptr, N, H};
  launch_row_norm(RowNorm::L2, x.dtype(), x.data(), y.data(), args, stream_);
}

void CudaBackend::group_norm(const Tensor& x, int groups, const Tensor* w, const Tensor* b, float eps, Tensor& y) {
  constexpr const char* op = "group_norm";
  check_compute(x, op, "x");
  SPARVAR_CHECK(x.ndim() == 4, "{}: x must be [N, C, H, W], got {}", op, shape_string(x.shape()));
  const int64_t N = x.dim(0), C = x.dim(1), plane = x.dim(2) * x.dim(3);
  SPARVAR_CHECK(groups > 0 && C % groups == 0, "{}: C = {} is not divisible by groups = {} (x {})", op, C, groups,
                shape_string(x.shape()));
  if (w) check_shaped_like(*w, x, {C}, op, "w");
  if (b) check_shaped_like(*b, x, {C}, op, "b");
  check_output(y, x, x.shape(), op);
  check_same_or_disjoint(x, y, op, "x");
  check_rows(N * groups, op);
  make_current();
  launch_group_norm(x.dtype(), x.data(), y.data(), w ? w->data() : nullptr, b ? b->data() : nullptr, N, groups,
                    C / groups * plane, plane, C / groups, eps, stream_);
}

}  // namespace sparvar::cuda
