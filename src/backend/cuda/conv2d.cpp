// Entry point of conv2d: validation, then cuDNN (cudnn_runner.h: NCHW graphs cached per shape) or, for what cuDNN
// refuses and with SPARVAR_CONV=im2col, im2col (conv2d.cu) and cuBLASLt GEMMs; see conv2d.cu for that scheme.
#include <algorithm>

#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cudnn_runner.h"
#include "backend/cuda/kernels.h"

namespace sparvar::cuda {

namespace {
constexpr size_t kColumnBudgetBytes = 256u << 20;

}  // namespace

void CudaBackend::conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, int stride, int pad, Tensor& y) {
  constexpr const char* op = "conv2d";
  check_compute(x, op, "x");
  SPARVAR_CHECK(x.ndim() == 4, "{}: x must be [N, Cin, H, W], got {}", op, shape_string(x.shape()));
  check_compute_like(w, x, op, "w");
  SPARVAR_CHECK(w.ndim() == 4 && w.dim(1) == x.dim(1), "{}: w {} must be [Cout, Cin, kh, kw] with Cin = {} (x {})",
                op, shape_string(w.shape()), x.dim(1), shape_string(x.shape()));
  SPARVAR_CHECK(stride >= 1 && pad >= 0, "{}: stride {} must be >= 1 and pad {} >= 0", op, stride, pad);
  const int64_t N = x.dim(0), Cin = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t Cout = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  SPARVAR_CHECK(kh >= 1 && kw >= 1 && H + 2 * pad >= kh && W + 2 * pad >= kw,
                "{}: kernel {}x{} does not fit the padded input {} (pad {})", op, kh, kw, shape_string(x.shape()), pad);
  const int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
  if (bias) check_shaped_like(*bias, x, {Cout}, op, "bias");
  check_output(y, x, {N, Cout, Ho, Wo}, op);
  check_disjoint(x, y, op, "x");
  check_disjoint(w, y, op, "w");
  if (bias) check_disjoint(*bias, y, op, "bias");
  const int64_t K = Cin * kh * kw, P = Ho * Wo;
  if (y.numel() == 0) return;
  SPARVAR_CHECK(K > 0, "{}: Cin = 0 (x {}) leaves the output undefined", op, shape_string(x.shape()));
  make_current();

  CudnnConvProblem problem;
  problem.dtype = x.dtype();
  problem.n = N;
  problem.cin = Cin;
  problem.h = H;
  problem.w = W;
  problem.cout = Cout;
  problem.kh = kh;
  problem.kw = kw;
  problem.ho = Ho;
  problem.wo = Wo;
  problem.stride = stride;
  problem.pad = pad;
  problem.bias = bias != nullptr;
  CudnnRunner& cudnn = cudnn_runner(cudnn_, device_, stream_);
  if (cudnn.wants_conv(problem) &&
      cudnn.conv2d(problem, x.data(), w.data(), bias ? bias->data() : nullptr, y.data())) {
    return;
  }

  const size_t esize = dtype_size(x.dtype());
  const auto* xb = static_cast<const char*>(x.data());
  auto* yb = static_cast<char*>(y.data());
  GemmShape s;
  s.n = Cout;
  s.k = K;
  s.ldb = K;
  s.ldc = P;
  s.dtype = x.dtype();
  s.stride_c = Cout * P;

  auto gemm = [&](const void* a, int64_t rows, int64_t lda, int batch, int64_t stride_a, void* d) {
    s.m = rows;
    s.lda = lda;
    s.batch = batch;
    s.stride_a = stride_a;
    s.alignment = std::min({pointer_alignment(a), pointer_alignment(w.data()), pointer_alignment(d)});
    gemm_->run(s, a, w.data(), d, nullptr);
  };

  if (kh == 1 && kw == 1 && stride == 1 && pad == 0) {
    gemm(x.data(), P, P, static_cast<int>(N), Cin * P, y.data());
  } else {
    const int64_t budget = static_cast<int64_t>(kColumnBudgetBytes / esize);
    const ConvGeometry g{Cin, H, W, kh, kw, stride, pad, Ho, Wo};
    const int64_t per_image = K * P;
    if (per_image <= budget) {
      const int64_t imgs_per_chunk = std::min<int64_t>({N, budget / per_image, 65535});
      conv_columns_.reserve(static_cast<size_t>(imgs_per_chunk * per_image) * esize, "conv2d im2col columns");
      for (int64_t n0 = 0; n0 < N; n0 += imgs_per_chunk) {
        const int64_t imgs = std::min(imgs_per_chunk, N - n0);
        launch_im2col(x.dtype(), xb + static_cast<size_t>(n0 * Cin * H * W) * esize, conv_columns_.data(), g, imgs, 0, P,
                      stream_);
        gemm(conv_columns_.data(), P, P, static_cast<int>(imgs), per_image, yb + static_cast<size_t>(n0 * Cout * P) * esize);
      }
    } else {
      // One image's columns exceed the scratch: slabs of output pixels (a multiple of 8 keeps 16-byte rows).
      const int64_t slab = std::max<int64_t>(8, budget / K / 8 * 8);
      conv_columns_.reserve(static_cast<size_t>(slab * K) * esize, "conv2d im2col columns");
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t p0 = 0; p0 < P; p0 += slab) {
          const int64_t rows = std::min(slab, P - p0);
          launch_im2col(x.dtype(), xb + static_cast<size_t>(n * Cin * H * W) * esize, conv_columns_.data(), g, 1, p0,
                        rows, stream_);
          gemm(conv_columns_.data(), rows, rows, 1, 0, yb + static_cast<size_t>(n * Cout * P + p0) * esize);
        }
      }
    }
  }
  if (bias) launch_channel_bias(y.dtype(), y.data(), bias->data(), N, Cout, P, stream_);
}

}  // namespace sparvar::cuda
