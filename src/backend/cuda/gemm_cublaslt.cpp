// cuBLASLt GEMMs and the linear ops (linear, linear_residual; BF16 products of a few rows go to the skinny kernel
// first, gemm_skinny.h, SPARVAR_SKINNY_GEMM=0 keeps them here). A plan (matmul descriptor, matrix layouts,
// algorithm) is built once per shape and cached; the first run of a shape (outside graph capture) times cuBLASLt's
// top heuristic candidates and keeps the fastest. One 32 MiB workspace serves every call (Hopper's recommended size).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <utility>
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

// Products the caller can compose otherwise when cuBLASLt has no algorithm for them (run() returns false).
bool refusable(const GemmShape& s) { return s.epilogue != GemmEpilogue::None || s.accumulate; }

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
  if (const char* env = std::getenv("SPARVAR_FUSED_RESIDUAL")) fuse_residuals_ = std::string_view(env) != "0";
  candidates_ = kCandidates;
  if (const char* env = std::getenv("SPARVAR_GEMM_CANDIDATES")) {
    const int n = std::atoi(env);
    SPARVAR_CHECK(n >= 1 && n <= 64, "SPARVAR_GEMM_CANDIDATES={}: expected a count from 1 to 64", env);
    candidates_ = n;
  }
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
  plan->d = make_layout(s.f32_out ? CUDA_R_32F : type, s.m, s.n, s.ldc, s.batch, s.stride_c);

  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = workspace_.bytes();
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  // Tell cuBLASLt how aligned our pointers really are (views may start mid-allocation).
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &s.alignment, sizeof(s.alignment)));
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<size_t>(candidates_));
  int returned = 0;
  // SPARVAR_FUSED_RESIDUAL=0: residual products get no algorithm, so their callers compose them (for measuring).
  const bool offered = fuse_residuals_ || !s.accumulate;
  const cublasStatus_t status =
      offered ? cublasLtMatmulAlgoGetHeuristic(handle_, plan->desc, plan->a, plan->b, plan->d, plan->d, pref,
                                               candidates_, results.data(), &returned)
              : CUBLAS_STATUS_NOT_SUPPORTED;
  cublasLtMatmulPreferenceDestroy(pref);
  if (status != CUBLAS_STATUS_NOT_SUPPORTED) CUBLAS_CHECK(status);
  for (int i = 0; i < returned && status == CUBLAS_STATUS_SUCCESS; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS) plan->candidates.push_back(results[i]);
  const double flops = 2.0 * static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k) * s.batch;
  const double weight_bytes =
      s.a_is_weight ? static_cast<double>(s.m) * static_cast<double>(s.k) * dtype_size(s.dtype) : 0.0;
  plan->tuned = plan->candidates.size() <= 1 || !autotune_ || (flops < kTuneMinFlops && weight_bytes < kTuneMinWeightBytes);
  if (plan->candidates.empty() && s.accumulate)
    spdlog::debug("gemm: no cuBLASLt algorithm for the residual product m={} n={} k={} batch={} ({}){}; composed "
                  "instead", s.m, s.n, s.k, s.batch, dtype_name(s.dtype), offered ? "" : " (SPARVAR_FUSED_RESIDUAL=0)");
  slot = std::move(plan);
  return slot.get();
}

cublasStatus_t GemmRunner::matmul(const Plan& plan, const GemmShape& s, const GemmOperands& o, void* d,
                                  const cublasLtMatmulAlgo_t& algo) {
  const float one = 1.0f, zero = 0.0f;
  return cublasLtMatmul(handle_, plan.desc, &one, o.a, plan.a, o.b, plan.b, s.accumulate ? &one : &zero,
                        s.accumulate ? o.c : d, plan.d, d, plan.d, &algo, workspace_.data(), workspace_.bytes(),
                        stream_);
}

void GemmRunner::tune(Plan& plan, const GemmShape& s, const GemmOperands& o) {
  plan.tuned = true;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream_, &capture));
  if (capture != cudaStreamCaptureStatusNone) return;  // keep the heuristic's first choice inside a graph
  // An in-place accumulation is timed into tune_d (C still read from c, left intact); without one, not timed.
  const bool in_place = s.accumulate && o.c == o.d;
  if (in_place && !o.tune_d) return;
  void* d = in_place ? o.tune_d : o.d;
  cudaEvent_t start = nullptr, stop = nullptr;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  flush_.reserve(kL2FlushBytes, "GEMM tuning L2 flush");  // kept: one allocation for every shape tuned
  float best_ms = 0.0f;
  bool found = false;
  for (size_t i = 0; i < plan.candidates.size(); ++i) {
    auto launch = [&] { return matmul(plan, s, o, d, plan.candidates[i].algo); };
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
  if (!found) plan.candidates.clear();  // every candidate refused to run: as if cuBLASLt had offered none
}

bool GemmRunner::run(const GemmShape& s, const GemmOperands& o) {
  if (s.m == 0 || s.n == 0) return true;
  Plan* plan = plan_for(s);
  if (has_bias(s.epilogue) && !plan->candidates.empty())
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &o.bias, sizeof(o.bias)));
  if (!plan->tuned) tune(*plan, s, o);
  if (!plan->candidates.empty()) {
    const cublasStatus_t status = matmul(*plan, s, o, o.d, plan->candidates[plan->chosen].algo);
    if (status != CUBLAS_STATUS_NOT_SUPPORTED || !refusable(s)) {
      CUBLAS_CHECK(status);
      return true;
    }
    plan->candidates.clear();  // refused at launch: compose this shape from now on
  }
  SPARVAR_CHECK(refusable(s), "gemm: cuBLASLt has no algorithm for m={} n={} k={} ({})", s.m, s.n, s.k,
                dtype_name(s.dtype));
  return false;
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
  // A few bf16 rows: the skinny kernel (built to stream the weight at HBM speed); it declines what it cannot take.
  const SkinnyGemmArgs skinny{x.data(), w.data(), bias ? bias->data() : nullptr, y.data(), M, N, K, kernel_act(act),
                              false};
  if (x.dtype() == DType::BF16 && skinny_->run(skinny, stream_)) return;

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

void CudaBackend::linear_residual(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* gate, Tensor& y,
                                  Tensor& scratch) {
  constexpr const char* op = "linear_residual";
  check_compute(x, op, "x");
  const std::pair<const Tensor*, const char*> args[] = {
      {&w, "w"}, {bias, "bias"}, {gate, "gate"}, {&y, "y"}, {&scratch, "scratch"}};
  for (const auto& [t, name] : args)
    if (t) check_compute_like(*t, x, op, name);
  const LinearResidualDims d = check_linear_residual(x, w, bias, gate, y, scratch, op);
  SPARVAR_CHECK(d.K > 0 || y.numel() == 0, "{}: K = 0 (x {}) leaves the product undefined", op,
                shape_string(x.shape()));
  if (y.numel() == 0) return;
  // A gate would need per-(batch item, output feature) alpha vectors: cuBLASLt 13.1 on the H100 offers no bf16 or f32
  // algorithm for them (CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_*: int8 kernels only, probed in session 4), so
  // gated calls are composed; only ungated ones (the cross-attention projection) fuse.
  if (gate) {
    Backend::linear_residual(x, w, bias, gate, y, scratch);
    return;
  }
  make_current();
  // A few bf16 rows: the skinny kernel, adding into y in place (scratch unused).
  const SkinnyGemmArgs skinny{x.data(), w.data(), bias ? bias->data() : nullptr, y.data(), d.B * d.N, d.Nout, d.K,
                              KernelAct::None, true};
  if (x.dtype() == DType::BF16 && skinny_->run(skinny, stream_)) return;
  // linear's column-major product (y^T = w^T x^T) with C = D = y. scratch is where tuning writes its trial products
  // (GemmOperands::tune_d), so its alignment counts too.
  GemmShape s;
  s.trans_a = true;
  s.a_is_weight = true;
  s.m = d.Nout;
  s.n = d.B * d.N;
  s.k = d.K;
  s.lda = d.K;
  s.ldb = d.K;
  s.ldc = d.Nout;
  s.dtype = y.dtype();
  s.epilogue = bias ? GemmEpilogue::Bias : GemmEpilogue::None;
  s.accumulate = true;
  s.alignment = std::min({pointer_alignment(x.data()), pointer_alignment(w.data()), pointer_alignment(y.data()),
                          pointer_alignment(scratch.data()), bias ? pointer_alignment(bias->data()) : 16u});
  const GemmOperands o{w.data(), x.data(), y.data(), y.data(), bias ? bias->data() : nullptr, scratch.data()};
  if (!gemm_->run(s, o)) Backend::linear_residual(x, w, bias, gate, y, scratch);  // no algorithm: composed
}

}  // namespace sparvar::cuda
