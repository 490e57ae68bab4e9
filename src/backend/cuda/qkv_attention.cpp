// Entry point of qkv_to_attention (kernel in qkv_attention.cu): validation, then one launch.
#include <cstdint>
#include <initializer_list>

#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"

namespace sparvar::cuda {

namespace {
void check_table(const Tensor& t, const Shape& shape, const char* op, const char* arg) {
  SPARVAR_CHECK(t.defined(), "{}: {} is missing (undefined tensor)", op, arg);
  SPARVAR_CHECK(t.device() == Device::CUDA, "{}: {} {} is not on the cuda backend", op, arg, t.describe());
  SPARVAR_CHECK(t.dtype() == DType::F32, "{}: {} {} must be f32 (tables are built in f32)", op, arg, t.describe());
  SPARVAR_CHECK(t.shape() == shape, "{}: {} has shape {}, expected {}", op, arg, shape_string(t.shape()),
                shape_string(shape));
}
}  // namespace

void CudaBackend::qkv_to_attention(const Tensor& qkv, const Tensor* q_scale, const Tensor& cos, const Tensor& sin,
                                   float eps, int64_t offset, Tensor& q, Tensor& k_cache, Tensor& v_cache) {
  constexpr const char* op = "qkv_to_attention";
  check_compute(qkv, op, "qkv");
  check_compute_like(k_cache, qkv, op, "k_cache");
  SPARVAR_CHECK(k_cache.ndim() == 4, "{}: k_cache must be [B, H, capacity, D], got {}", op,
                shape_string(k_cache.shape()));
  const int64_t B = k_cache.dim(0), H = k_cache.dim(1), capacity = k_cache.dim(2), D = k_cache.dim(3);
  SPARVAR_CHECK(qkv.ndim() == 3 && qkv.dim(0) == B && qkv.dim(2) == 3 * H * D,
                "{}: qkv {} must be [{}, N, {}] for the cache {} (3 x {} heads x {})", op, shape_string(qkv.shape()),
                B, 3 * H * D, shape_string(k_cache.shape()), H, D);
  const int64_t N = qkv.dim(1);
  SPARVAR_CHECK(D % 2 == 0, "{}: head dim {} must be even (RoPE pairs)", op, D);
  check_shaped_like(v_cache, qkv, k_cache.shape(), op, "v_cache");
  check_shaped_like(q, qkv, {B, H, N, D}, op, "q");
  check_table(cos, {N, D / 2}, op, "cos");
  check_table(sin, {N, D / 2}, op, "sin");
  if (q_scale) check_shaped_like(*q_scale, qkv, {H}, op, "q_scale");
  SPARVAR_CHECK(offset >= 0 && offset + N <= capacity, "{}: tokens [{}, {}) do not fit the cache's {} tokens", op,
                offset, offset + N, capacity);
  for (const Tensor* out : {&q, &k_cache, &v_cache}) {
    check_disjoint(qkv, *out, op, "qkv");
    check_disjoint(cos, *out, op, "cos");
    check_disjoint(sin, *out, op, "sin");
    if (q_scale) check_disjoint(*q_scale, *out, op, "q_scale");
  }
  check_disjoint(q, k_cache, op, "q");
  check_disjoint(q, v_cache, op, "q");
  check_disjoint(k_cache, v_cache, op, "k_cache");
  const size_t pair_bytes = 2 * dtype_size(qkv.dtype());
  for (const Tensor* t : std::initializer_list<const Tensor*>{&qkv, &q, &k_cache, &v_cache})
    SPARVAR_CHECK(reinterpret_cast<uintptr_t>(t->data()) % pair_bytes == 0,
                  "{}: {} must be aligned to whole (x0, x1) pairs ({} bytes)", op, t->describe(), pair_bytes);
  make_current();
  const QkvArgs args{B, N, H, D, capacity, offset, eps};
  launch_qkv_to_attention(qkv.dtype(), qkv.data(), q_scale ? q_scale->data() : nullptr,
                          static_cast<const float*>(cos.data()), static_cast<const float*>(sin.data()), q.data(),
                          k_cache.data(), v_cache.data(), args, stream_);
}

}  // namespace sparvar::cuda
