// conv2d as im2col + cuBLASLt GEMM. For each image, columns[k][p] (k = (ci * kh + ky) * kw + kx, p an output
// pixel) hold the input tap or 0 in the padding; then y_n[Cout][P] = W[Cout][K] columns[K][P], which in
// cuBLAS's column-major terms is D (P x Cout, ld Ho*Wo) = A (P x K) B (K x Cout). Images are batched through
// the strided-batch GEMM while their columns fit a 256 MiB scratch; a larger image is done in pixel slabs.
// A 1x1, stride-1, unpadded convolution needs no columns: the input already is A. Bias is one pass after.
#include "backend/cuda/device_math.cuh"

namespace sparvar::cuda {

namespace {

// columns[img][k][p - p0] for images [0, imgs) of x (already offset) and pixels [p0, p0 + slab).
template <typename T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ columns, ConvGeometry g, int64_t imgs,
                              int64_t p0, int64_t slab) {
  const int64_t K = g.cin * g.kh * g.kw;
  const int64_t n = imgs * K * slab;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = p0 + i % slab;
    const int64_t k = (i / slab) % K;
    const int64_t img = i / (slab * K);
    const int64_t kx = k % g.kw, ky = (k / g.kw) % g.kh, ci = k / (g.kw * g.kh);
    const int64_t ox = p % g.out_w, oy = p / g.out_w;
    const int64_t iy = oy * g.stride - g.pad + ky, ix = ox * g.stride - g.pad + kx;
    const bool inside = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
    columns[i] = inside ? x[((img * g.cin + ci) * g.h + iy) * g.w + ix] : from_float<T>(0.0f);
  }
}

}  // namespace

void launch_im2col(DType dtype, const void* x, void* columns, const ConvGeometry& g, int64_t imgs, int64_t p0,
                   int64_t slab, cudaStream_t stream) {
  const int64_t n = imgs * g.cin * g.kh * g.kw * slab;
  if (n == 0) return;
  dispatch_float(dtype, "conv2d im2col", [&](auto tag) {
    using T = typename decltype(tag)::type;
    im2col_kernel<T><<<grid_for(n, 256), 256, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(columns), g, imgs,
                                                            p0, slab);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sparvar::cuda
