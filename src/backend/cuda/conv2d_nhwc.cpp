// Entry point of conv2d_nhwc: validation, then cuDNN's NHWC graphs (cudnn_runner.h: bias and residual fused into
// the graph where cuDNN takes them) or, for small convolutions, SPARVAR_CONV=im2col and whatever cuDNN refuses, our
// own channels-last path: im2col (conv2d_nhwc.cu) and cuBLASLt through linear(), which in NHWC needs no transposes
// (a 1x1 convolution is linear() on x as it lies). That path replaces the "permute to NCHW, conv2d, permute back"
// fallback (Backend's default): same result without moving the tensors twice more.
//
// Channel counts that are not a multiple of 8 (the decoder's conv_in from 14 latent channels, RGB output) leave
// the 16-byte alignment cuDNN's tensor-core kernels want; cuDNN then picks another engine or refuses and we take
// our path. The decoder pads conv_out's 3 output channels to 8 itself (models/bsq_vae/channels_last.cpp).
#include <algorithm>

#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cudnn_runner.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/nhwc_kernels.h"
#include "backend/nhwc_checks.h"

namespace sparvar::cuda {

namespace {
constexpr size_t kColumnBudgetBytes = 256u << 20;  // as conv2d's im2col
}  // namespace

void CudaBackend::conv2d_nhwc(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* residual, int stride,
                              int pad, Tensor& y) {
  constexpr const char* op = "conv2d_nhwc";
  check_compute(x, op, "x");
  check_compute_like(w, x, op, "w");
  if (bias) check_compute_like(*bias, x, op, "bias");
  if (residual) check_compute_like(*residual, x, op, "residual");
  check_compute_like(y, x, op, "output");
  const ConvNhwcDims d = check_conv2d_nhwc(x, w, bias, residual, stride, pad, y, op);
  if (y.numel() == 0) return;
  SPARVAR_CHECK(d.cin > 0, "{}: Cin = 0 (x {}) leaves the output undefined", op, shape_string(x.shape()));
  make_current();

  CudnnConvProblem p;
  p.dtype = x.dtype();
  p.n = d.n;
  p.cin = d.cin;
  p.h = d.h;
  p.w = d.w;
  p.cout = d.cout;
  p.kh = d.kh;
  p.kw = d.kw;
  p.ho = d.ho;
  p.wo = d.wo;
  p.stride = stride;
  p.pad = pad;
  p.bias = bias != nullptr;
  p.residual = residual != nullptr;
  p.channels_last = true;
  CudnnRunner& cudnn = cudnn_runner(cudnn_, device_, stream_);
  if (cudnn.wants_conv(p) &&
      cudnn.conv2d_nhwc(p, x.data(), w.data(), bias ? bias->data() : nullptr, residual ? residual->data() : nullptr,
                        y.data())) {
    return;
  }
  conv2d_nhwc_gemm(x, w, bias, residual, stride, pad, y);
}

void CudaBackend::conv2d_nhwc_gemm(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* residual,
                                   int stride, int pad, Tensor& y) {
  const int64_t N = x.dim(0), Cin = x.dim(3), Cout = w.dim(0), kh = w.dim(1), kw = w.dim(2);
  const int64_t Ho = y.dim(1), Wo = y.dim(2), K = kh * kw * Cin, P = N * Ho * Wo;
  const Tensor w_matrix = w.view({Cout, K});
  Tensor y_matrix = y.view({P, Cout});
  if (kh == 1 && kw == 1 && stride == 1 && pad == 0) {
    linear(x.view({P, Cin}), w_matrix, bias, Activation::None, y_matrix);
  } else {
    const size_t esize = dtype_size(x.dtype());
    // Bands of output pixels whose columns fit the scratch; a multiple of 8 pixels keeps every band's first row
    // of y as aligned as y itself.
    const int64_t budget = static_cast<int64_t>(kColumnBudgetBytes / esize);
    const int64_t band = std::min(P, std::max<int64_t>(8, budget / K / 8 * 8));
    conv_columns_.reserve(static_cast<size_t>(band * K) * esize, "conv2d_nhwc im2col columns");
    const ConvNhwcGeometry g{N, x.dim(1), x.dim(2), Cin, kh, kw, stride, pad, Ho, Wo};
    for (int64_t p0 = 0; p0 < P; p0 += band) {
      const int64_t rows = std::min(band, P - p0);
      launch_im2col_nhwc(x.dtype(), x.data(), conv_columns_.data(), g, p0, rows, stream_);
      const Tensor columns = Tensor::wrap(conv_columns_.data(), {rows, K}, x.dtype(), Device::CUDA);
      Tensor y_band = y_matrix.slice0(p0, p0 + rows);
      linear(columns, w_matrix, bias, Activation::None, y_band);
    }
  }
  if (residual) launch_conv_epilogue_nhwc(x.dtype(), y.data(), nullptr, residual->data(), P, Cout, stream_);
}

}  // namespace sparvar::cuda
