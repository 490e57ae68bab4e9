// Entry point of qkv_to_attention (kernel in qkv_attention.cu): validation, then one launch.
#include <cstdint>
#include <initializer_list>

#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/qkv_checks.h"

namespace sparvar::cuda {

namespace {
const int32_t* map_data(const Tensor* map) { return map ? static_cast<const int32_t*>(map->data()) : nullptr; }
}  // namespace

void CudaBackend::qkv_to_attention(const Tensor& qkv, const Tensor* q_scale, const Tensor& cos, const Tensor& sin,
                                   float eps, int64_t offset, Tensor& q, Tensor& k_cache, Tensor& v_cache,
                                   const QkvRowMap* rows) {
  constexpr const char* op = "qkv_to_attention";
  check_compute(qkv, op, "qkv");
  check_compute_like(k_cache, qkv, op, "k_cache");
  const QkvDims dims = check_qkv_dims(qkv, k_cache, rows, Device::CUDA, op);
  const int64_t B = dims.B, N = dims.N, H = dims.H, D = dims.D;
  check_shaped_like(v_cache, qkv, k_cache.shape(), op, "v_cache");
  check_shaped_like(q, qkv, {B, H, dims.q_rows, D}, op, "q");
  check_table(cos, {N, D / 2}, op, "cos");
  check_table(sin, {N, D / 2}, op, "sin");
  if (q_scale) check_shaped_like(*q_scale, qkv, {H}, op, "q_scale");
  check_qkv_targets(qkv, q_scale, cos, sin, offset, dims, q, k_cache, v_cache, rows, op);
  const size_t pair_bytes = 2 * dtype_size(qkv.dtype());
  for (const Tensor* t : std::initializer_list<const Tensor*>{&qkv, &q, &k_cache, &v_cache})
    SPARVAR_CHECK(reinterpret_cast<uintptr_t>(t->data()) % pair_bytes == 0,
                  "{}: {} must be aligned to whole (x0, x1) pairs ({} bytes)", op, t->describe(), pair_bytes);
  // The kernel indexes rows with 32 bits (64-bit divisions per row would cost more than the row's traffic).
  constexpr int64_t kMaxRows = (int64_t{1} << 31) - 1;
  const int64_t written = B * H * (dims.q_rows + 2 * dims.kv_rows);
  SPARVAR_CHECK(N <= kMaxRows && written <= kMaxRows, "{}: {} tokens and {} head vectors written: at most {} each",
                op, N, written, kMaxRows);
  make_current();
  QkvArgs args{B, N, H, D, dims.capacity, offset, eps};
  if (rows) {
    args.q_src = map_data(rows->q_src);
    args.kv_src = map_data(rows->kv_src);
  }
  args.q_rows = dims.q_rows;
  args.kv_rows = dims.kv_rows;
  launch_qkv_to_attention(qkv.dtype(), qkv.data(), q_scale ? q_scale->data() : nullptr,
                          static_cast<const float*>(cos.data()), static_cast<const float*>(sin.data()), q.data(),
                          k_cache.data(), v_cache.data(), args, stream_);
}

}  // namespace sparvar::cuda
