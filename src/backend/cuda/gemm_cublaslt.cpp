// cuBLASLt GEMMs and the linear op. A plan (matmul descriptor, matrix layouts, algorithm) is built once per
// shape and cached; the first run of a shape (outside graph capture) times cuBLASLt's top heuristic
// candidates and keeps the fastest. One 32 MiB workspace serves every call (Hopper's recommended size).
#include <algorithm>
#include <cstdlib>
#include <vector>

#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm_cublaslt.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/op_helpers.h"

namespace sparvar::cuda {

namespace {
constexpr size_t kWorkspaceBytes = 32u << 20;
constexpr int kCandidates = 8;   // heuristic results timed on a shape's first run
constexpr int kTuneReps = 3;
// Timing candidates costs ~(1 + kTuneReps) x kCandidates runs plus a sync on a shape's first call. It pays for
// the large GEMMs of Infinity 2B/8B (tens to hundreds of GFLOP, where cuBLASLt's first choice can be 5-20%
// off); below this size the heuristic's first choice is kept, so a small model's first image is not slowed
// by tuning dozens of small shapes (at 4 GFLOP the shipped model's decoder tuned its 11 GFLOP upsampling conv:
// +120 ms on the first image, measured on the H100). Products with a large weight are tuned whatever their row count: at
// Infinity's first scales (2-128 rows) they only stream the weight, and the heuristic's first choice there runs
// a 8 MiB weight at ~1/3 of the memory bandwidth (8 us instead of ~3, measured with ncu on the H100).
constexpr double kTuneMinFlops = 16e9;
constexpr double kTuneMinWeightBytes = 8u << 20;
// Each timed run starts with the L2 cache rewritten, as in a model where every layer's weights evict the
// last's; otherwise candidates are ranked on a weight that sits in the 50 MB L2 after the first repetition.
constexpr size_t kL2FlushBytes = 64u << 20;

cudaDataType_t cuda_type(DType d) {
  switch (d) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    default: fail("gemm: dtype {} is not supported (f32 or bf16)", dtype_name(d));
  }
}

cublasLtEpilogue_t lt_epilogue(GemmEpilogue e) {
  switch (e) {
    case GemmEpilogue::Bias: return CUBLASLT_EPILOGUE_BIAS;
    case GemmEpilogue::Gelu: return CUBLASLT_EPILOGUE_GELU;
    case GemmEpilogue::GeluBias: return CUBLASLT_EPILOGUE_GELU_BIAS;
    default: return CUBLASLT_EPILOGUE_DEFAULT;
  }
}

bool has_bias(GemmEpilogue e) { return e == GemmEpilogue::Bias || e == GemmEpilogue::GeluBias; }

cublasLtMatrixLayout_t make_layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int batch,
                                   int64_t stride) {
  cublasLtMatrixLayout_t layout = nullptr;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof(batch)));
    CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                  sizeof(stride)));
  }
  return layout;
}
}  // namespace

struct GemmRunner::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  std::vector<cublasLtMatmulHeuristicResult_t> candidates;  // best first
  int chosen = 0;
  bool tuned = false;

  ~Plan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

GemmRunner::GemmRunner(cudaStream_t stream) : stream_(stream), workspace_(kWorkspaceBytes, "cuBLASLt workspace") {
  CUBLAS_CHECK(cublasLtCreate(&handle_));
  if (const char* env = std::getenv("SPARVAR_GEMM_AUTOTUNE")) autotune_ = std::string_view(env) != "0";
}

GemmRunner::~GemmRunner() {
  plans_.clear();
  if (handle_) cublasLtDestroy(handle_);
}

GemmRunner::Plan* GemmRunner::plan_for(const GemmShape& s) {
  auto& slot = plans_[s.key()];
  if (slot) return slot.get();
  auto plan = std::make_unique<Plan>();
  const cudaDataType_t type = cuda_type(s.dtype);
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  const cublasLtEpilogue_t epilogue = lt_epilogue(s.epilogue);
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  if (has_bias(s.epilogue))
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &type, sizeof(type)));
  plan->a = make_layout(type, s.trans_a ? s.k : s.m, s.trans_a ? s.m : s.k, s.lda, s.batch, s.stride_a);
  plan->b = make_layout(type, s.trans_b ? s.n : s.k, s.trans_b ? s.k : s.n, s.ldb, s.batch, s.stride_b);
  plan->d = make_layout(type, s.m, s.n, s.ldc, s.batch, s.stride_c);

  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = workspace_.bytes();
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  // Tell cuBLASLt how aligned our pointers really are (views may start mid-allocation).
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &s.alignment, sizeof(s.alignment)));
  std::vector<cublasLtMatmulHeuristicResult_t> results(kCandidates);
  int returned = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle_, plan->desc, plan->a, plan->b, plan->d, plan->d,
                                                               pref, kCandidates, results.data(), &returned);
  cublasLtMatmulPreferenceDestroy(pref);
  if (status != CUBLAS_STATUS_NOT_SUPPORTED) CUBLAS_CHECK(status);
  for (int i = 0; i < returned && status == CUBLAS_STATUS_SUCCESS; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS) plan->candidates.push_back(results[i]);
  const double flops = 2.0 * static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k) * s.batch;
  const double weight_bytes =
      s.a_is_weight ? static_cast<double>(s.m) * static_cast<double>(s.k) * dtype_size(s.dtype) : 0.0;
  plan->tuned = plan->candidates.size() <= 1 || !autotune_ || (flops < kTuneMinFlops && weight_bytes < kTuneMinWeightBytes);
  slot = std::move(plan);
  return slot.get();
}

void GemmRunner::tune(Plan& plan, const GemmShape& s, const void* a, const void* b, void* d, const void* bias) {
  plan.tuned = true;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream_, &capture));
  if (capture != cudaStreamCaptureStatusNone) return;  // keep the heuristic's first choice inside a graph
  cudaEvent_t start = nullptr, stop = nullptr;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  flush_.reserve(kL2FlushBytes, "GEMM tuning L2 flush");  // kept: one allocation for every shape tuned
  const float alpha = 1.0f, beta = 0.0f;
  float best_ms = 0.0f;
  bool found = false;
  for (size_t i = 0; i < plan.candidates.size(); ++i) {
    const auto& algo = plan.candidates[i].algo;
    auto launch = [&] {
      return cublasLtMatmul(handle_, plan.desc, &alpha, a, plan.a, b, plan.b, &beta, d, plan.d, d, plan.d, &algo,
                            workspace_.data(), workspace_.bytes(), stream_);
    };
    if (launch() != CUBLAS_STATUS_SUCCESS) continue;  // warm-up; a candidate that refuses is skipped
    float ms = 0.0f;
    for (int r = 0; r < kTuneReps; ++r) {
      CUDA_CHECK(cudaMemsetAsync(flush_.data(), r, flush_.bytes(), stream_));
      CUDA_CHECK(cudaEventRecord(start, stream_));
      CUBLAS_CHECK(launch());
      CUDA_CHECK(cudaEventRecord(stop, stream_));
      CUDA_CHECK(cudaEventSynchronize(stop));
      float one = 0.0f;
      CUDA_CHECK(cudaEventElapsedTime(&one, start, stop));
      ms += one;
    }
    if (!found || ms < best_ms) {
      found = true;
      best_ms = ms;
      plan.chosen = static_cast<int>(i);
    }
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  (void)bias;
}

bool GemmRunner::run(GemmShape s, const void* a, const void* b, void* d, const void* bias) {
  if (s.m == 0 || s.n == 0) return true;
  Plan* plan = plan_for(s);
  if (plan->candidates.empty()) {
    SPARVAR_CHECK(s.epilogue != GemmEpilogue::None, "gemm: cuBLASLt has no algorithm for m={} n={} k={} ({})", s.m,
                  s.n, s.k, dtype_name(s.dtype));
    return false;
  }
  if (has_bias(s.epilogue))
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  if (!plan->tuned) tune(*plan, s, a, b, d, bias);
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_CHECK(cublasLtMatmul(handle_, plan->desc, &alpha, a, plan->a, b, plan->b, &beta, d, plan->d, d, plan->d,
                              &plan->candidates[plan->chosen].algo, workspace_.data(), workspace_.bytes(), stream_));
  return true;
}

void CudaBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act, Tensor& y) {
  constexpr const char* op = "linear";
  check_compute(x, op, "x");
  SPARVAR_CHECK(x.ndim() >= 1, "{}: x must have at least one dimension, got {}", op, shape_string(x.shape()));
  check_compute_like(w, x, op, "w");
  SPARVAR_CHECK(w.ndim() == 2 && w.dim(1) == x.dim(-1), "{}: w {} must be [N, K] with K = x's last dim {} (x {})", op,
                shape_string(w.shape()), x.dim(-1), shape_string(x.shape()));
  const int64_t K = x.dim(-1), N = w.dim(0), M = K == 0 ? 0 : x.numel() / K;
  if (bias) check_shaped_like(*bias, x, {N}, op, "bias");
  Shape out_shape = x.shape();
  out_shape.back() = N;
  check_output(y, x, out_shape, op);
  check_disjoint(x, y, op, "x");
  check_disjoint(w, y, op, "w");
  if (bias) check_disjoint(*bias, y, op, "bias");
  SPARVAR_CHECK(K > 0 || y.numel() == 0, "{}: K = 0 (x {}) leaves the output undefined", op, shape_string(x.shape()));
  if (y.numel() == 0) return;
  make_current();

  // Row-major y[M,N] = x[M,K] w[N,K]^T is column-major y^T[N,M] = w^T[N,K] (A = w, transposed) x^T[K,M].
  GemmShape s;
  s.trans_a = true;
  s.a_is_weight = true;
  s.m = N;
  s.n = M;
  s.k = K;
  s.lda = K;
  s.ldb = K;
  s.ldc = N;
  s.dtype = x.dtype();
  s.alignment = std::min({pointer_alignment(x.data()), pointer_alignment(w.data()), pointer_alignment(y.data()),
                          bias ? pointer_alignment(bias->data()) : 16u});
  const bool gelu = act == Activation::GeluTanh;
  s.epilogue = bias ? (gelu ? GemmEpilogue::GeluBias : GemmEpilogue::Bias) : (gelu ? GemmEpilogue::Gelu : GemmEpilogue::None);
  const void* bias_ptr = bias ? bias->data() : nullptr;
  if (gemm_->run(s, w.data(), x.data(), y.data(), bias_ptr)) {
    // SiLU has no cuBLASLt epilogue: one fused pass over the output.
    if (act == Activation::Silu) launch_bias_activation(y.dtype(), y.data(), nullptr, M, N, KernelAct::Silu, stream_);
    return;
  }
  s.epilogue = GemmEpilogue::None;  // no algorithm with that epilogue: plain product, then bias + activation
  gemm_->run(s, w.data(), x.data(), y.data(), nullptr);
  launch_bias_activation(y.dtype(), y.data(), bias_ptr, M, N, kernel_act(act), stream_);
}

}  // namespace sparvar::cuda
