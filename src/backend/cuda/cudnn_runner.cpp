// CudnnRunner: conv2d and dense attention as cuDNN frontend graphs (see cudnn_runner.h).
//
// Layouts. conv2d describes the NCHW tensors to cuDNN exactly as they are (strides [C*H*W, H*W, W, 1]). cuDNN's
// fast bf16 convolutions are NHWC tensor-core kernels; given NCHW it transposes the input into its workspace and the
// result back itself ("The cuDNN library may use padding, folding, and NCHW-to-NHWC transformations to call the
// Tensor Core operations", cuDNN developer guide, legacy API / tensor transformations). cuDNN 9.19's heuristics
// for sm_90, queried off-line for [1,128,256,256] x [128,128,3,3] bf16, rank the same engine first for NCHW and
// for NHWC strides (eng45), with a workspace of exactly size(x) + size(y) for NCHW and none for NHWC: the
// transposes are the whole difference. Transposing ourselves around an NHWC graph would move the same bytes and
// could not be merged into the neighbouring GroupNorm / SiLU / upsampling (NCHW kernels), so we let cuDNN do it,
// as torch does for NCHW (contiguous_format) tensors. The real saving is an NHWC decoder end to end: conv2d_nhwc
// describes channels-last x [n, h, w, cin], KRSC w and y with their real strides (no transposes), and adds the bias
// and the decoder's residual as pointwise nodes after the convolution, so that cuDNN's epilogue writes the block's
// output in one pass (SPARVAR_CONV_NHWC_FUSE, cudnn_runner.h).
// A conv + bias pointwise graph goes to another engine (eng10, same workspace), whose speed against eng45 we have
// not measured; by default the bias is therefore our channel-bias pass after the convolution (torch splits it the
// same way), SPARVAR_CONV=cudnn-fused asks for the fused graph.
//
// Numerics. BF16: fp32 compute and intermediates (tensor cores, fp32 accumulation); F32: engines that would use
// TF32 tensor cores, down-convert the inputs, FFT or Winograd are deselected, so F32 stays fp32 math like the
// cuBLASLt path (cuDNN's heuristics otherwise rank TF32 engines first for F32 convolutions).
//
// Attention. SDPA forward (no stats), bf16 in and out, fp32 softmax; K and V as described in cudnn_runner.h.
//
// Graphs are built once per problem signature (shapes, dtype, stride/pad, bias fusion, pointer alignment; for
// SDPA: shapes, key count, K/V row stride, padding mask, scale) and kept for the life of the backend; a
// signature cuDNN refuses is remembered as refused. Building costs milliseconds (and for SDPA on Hopper an NVRTC
// compilation: cuDNN 9.19's sm_90 SDPA engines are runtime-compiled), running costs nothing extra.
#include "backend/cuda/cudnn_runner.h"

#include <cudnn.h>
#include <cudnn_frontend.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cudnn_kernels.h"
#include "backend/cuda/gemm_cublaslt.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/nhwc_kernels.h"
#include "core/error.h"

namespace fe = cudnn_frontend;

namespace sparvar::cuda {

struct CudnnRunner::Graph {
  std::shared_ptr<fe::graph::Graph> graph;  // null: cuDNN refused the problem
  bool bias_fused = false;
  bool residual_fused = false;
  bool needs_tuning = false;  // SPARVAR_CUDNN_AUTOTUNE: every candidate built, time them on the first run
  int64_t workspace = 0;
  std::string plan;
  std::string what;  // the problem, for messages
};

namespace {

// Tensor uids of the graphs.
constexpr int64_t kConvX = 1, kConvW = 2, kConvBias = 3, kConvY = 4, kConvResidual = 5;
constexpr int64_t kQ = 1, kK = 2, kV = 3, kO = 4, kSeqQ = 5, kSeqKv = 6;

using Clock = std::chrono::steady_clock;

fe::DataType_t fe_type(DType d) {
  switch (d) {
    case DType::F32: return fe::DataType_t::FLOAT;
    case DType::BF16: return fe::DataType_t::BFLOAT16;
    default: fail("cuDNN: dtype {} is not supported (f32 or bf16)", dtype_name(d));
  }
}

const char* env_value(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

std::string conv_string(const CudnnConvProblem& p) {
  if (p.channels_last) {
    return fmt::format("{} NHWC x [{},{},{},{}] w [{},{},{},{}] stride {} pad {}{}{}", dtype_name(p.dtype), p.n, p.h,
                       p.w, p.cin, p.cout, p.kh, p.kw, p.cin, p.stride, p.pad, p.bias ? " bias" : "",
                       p.residual ? " residual" : "");
  }
  return fmt::format("{} x [{},{},{},{}] w [{},{},{},{}] stride {} pad {}{}", dtype_name(p.dtype), p.n, p.cin, p.h,
                     p.w, p.cout, p.cin, p.kh, p.kw, p.stride, p.pad, p.bias ? " bias" : "");
}

std::string cudnn_status_string(cudnnStatus_t status) {
  char detail[512] = {};
  cudnnGetLastErrorString(detail, sizeof(detail));
  std::string s = cudnnGetErrorString(status);
  if (detail[0]) s += std::string(": ") + detail;
  return s;
}

// Lowers a described graph and builds its plan(s): the frontend's validate / build_operation_graph /
// create_execution_plans / check_support / build_plans, with the engines carrying a barred numerical note removed
// from the candidates. Returns "" on success, else the step that failed and the frontend's message.
std::string build_graph(fe::graph::Graph& g, cudnnHandle_t handle, const std::vector<fe::HeurMode_t>& modes,
                        const std::vector<fe::NumericalNote_t>& barred, bool all_plans) {
  auto status = g.validate();
  if (status.is_bad()) return "validate: " + status.get_message();
  status = g.build_operation_graph(handle);
  if (status.is_bad()) return "build_operation_graph: " + status.get_message();
  status = g.create_execution_plans(modes);
  if (status.is_bad()) return "heuristics: " + status.get_message();
  if (!barred.empty()) g.deselect_numeric_notes(barred);  // must follow create_execution_plans
  status = g.check_support();
  if (status.is_bad()) return "check_support: " + status.get_message();
  status = g.build_plans(all_plans ? fe::BuildPlanPolicy_t::ALL : fe::BuildPlanPolicy_t::HEURISTICS_CHOICE);
  if (status.is_bad()) return "build_plans: " + status.get_message();
  return {};
}

// Keeps the frontend's multi-line messages on one log line.
std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  if (s.size() > 600) s = s.substr(0, 600) + "...";
  return s;
}

// Fills in the plan name and workspace of a built graph; "" on success, else why the frontend could not.
std::string describe_plan(CudnnRunner::Graph& entry) {
  auto status = entry.graph->get_workspace_size(entry.workspace);
  if (status.is_bad()) return "get_workspace_size: " + status.get_message();
  status = entry.graph->get_plan_name(entry.plan);
  if (status.is_bad()) entry.plan = "?";
  return {};
}

// Strides of a tensor with cuDNN's dims [n, c, h, w]: NCHW, or channels-last memory [n, h, w, c] (for the weights:
// KRSC, [k, r, s, c]).
std::vector<int64_t> conv_strides(bool channels_last, int64_t c, int64_t h, int64_t w) {
  if (channels_last) return {h * w * c, 1, w * c, c};
  return {c * h * w, h * w, w, 1};
}

// The conv graph of a problem: x, w, y as they lie in memory (NCHW or channels-last; see the top of this file),
// optionally the residual and the bias adds as pointwise nodes after it (the residual first: cuDNN's fused
// conv + z + bias pattern). Every tensor declared `alignment`-byte aligned (the least of the pointers').
std::shared_ptr<fe::graph::Graph> describe_conv(const CudnnConvProblem& p, bool fuse_bias, bool fuse_residual,
                                                uint32_t alignment) {
  auto g = std::make_shared<fe::graph::Graph>();
  const fe::DataType_t io = fe_type(p.dtype);
  g->set_io_data_type(io).set_intermediate_data_type(fe::DataType_t::FLOAT).set_compute_data_type(
      fe::DataType_t::FLOAT);
  const auto align = static_cast<int64_t>(alignment);
  auto x = g->tensor(fe::graph::Tensor_attributes()
                         .set_name("x")
                         .set_uid(kConvX)
                         .set_dim({p.n, p.cin, p.h, p.w})
                         .set_stride(conv_strides(p.channels_last, p.cin, p.h, p.w))
                         .set_alignment(align));
  auto w = g->tensor(fe::graph::Tensor_attributes()
                         .set_name("w")
                         .set_uid(kConvW)
                         .set_dim({p.cout, p.cin, p.kh, p.kw})
                         .set_stride(conv_strides(p.channels_last, p.cin, p.kh, p.kw))
                         .set_alignment(align));
  auto y = g->conv_fprop(x, w,
                         fe::graph::Conv_fprop_attributes()
                             .set_name("conv")
                             .set_padding({p.pad, p.pad})
                             .set_stride({p.stride, p.stride})
                             .set_dilation({1, 1}));
  const std::vector<int64_t> y_stride = conv_strides(p.channels_last, p.cout, p.ho, p.wo);
  if (fuse_residual) {
    auto residual = g->tensor(fe::graph::Tensor_attributes()
                                  .set_name("residual")
                                  .set_uid(kConvResidual)
                                  .set_dim({p.n, p.cout, p.ho, p.wo})
                                  .set_stride(y_stride)
                                  .set_data_type(io)
                                  .set_alignment(align));
    y = g->pointwise(y, residual,
                     fe::graph::Pointwise_attributes()
                         .set_name("residual_add")
                         .set_mode(fe::PointwiseMode_t::ADD)
                         .set_compute_data_type(fe::DataType_t::FLOAT));
  }
  if (fuse_bias) {
    auto bias = g->tensor(fe::graph::Tensor_attributes()
                              .set_name("bias")
                              .set_uid(kConvBias)
                              .set_dim({1, p.cout, 1, 1})
                              .set_stride(p.channels_last ? std::vector<int64_t>{p.cout, 1, p.cout, p.cout}
                                                          : std::vector<int64_t>{p.cout, 1, 1, 1})
                              .set_data_type(io)
                              .set_alignment(align));
    y = g->pointwise(y, bias,
                     fe::graph::Pointwise_attributes()
                         .set_name("bias_add")
                         .set_mode(fe::PointwiseMode_t::ADD)
                         .set_compute_data_type(fe::DataType_t::FLOAT));
  }
  y->set_output(true)
      .set_uid(kConvY)
      .set_dim({p.n, p.cout, p.ho, p.wo})
      .set_stride(y_stride)
      .set_data_type(io)
      .set_alignment(align);
  return g;
}

// Engines conv2d must not use: for BF16 those that would reduce in or convert to lower precision; for F32 also
// TF32 tensor cores, FFT and Winograd (F32 stays fp32 math, like the cuBLASLt path).
std::vector<fe::NumericalNote_t> conv_barred_notes(DType dtype) {
  std::vector<fe::NumericalNote_t> barred = {fe::NumericalNote_t::DOWN_CONVERT_INPUTS,
                                             fe::NumericalNote_t::REDUCED_PRECISION_REDUCTION};
  if (dtype == DType::F32) {
    barred.insert(barred.end(), {fe::NumericalNote_t::TENSOR_CORE, fe::NumericalNote_t::FFT,
                                 fe::NumericalNote_t::WINOGRAD, fe::NumericalNote_t::WINOGRAD_TILE_4x4,
                                 fe::NumericalNote_t::WINOGRAD_TILE_6x6, fe::NumericalNote_t::WINOGRAD_TILE_13x13});
  }
  return barred;
}

// The SDPA graph: q, out [b, heads, nq, d] contiguous (each may be [b, nq, heads, d]: tokens-major); k, v [b, heads, keys, d] with `row_stride` rows between
// heads; with `mask`, cuDNN's padding mask over int32 [b, 1, 1, 1] seq_len_q / seq_len_kv inputs.
// With a kernel cache (SPARVAR_SDPA_KERNEL_CACHE): a dynamic-shape graph on the composite implementation, whose
// compiled kernels later graphs of other shapes reuse from the cache.
std::shared_ptr<fe::graph::Graph> describe_attention(const CudnnAttentionProblem& p, int64_t keys, int64_t row_stride,
                                                     bool mask,
                                                     const std::shared_ptr<fe::KernelCache>& kernel_cache = nullptr) {
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  if (kernel_cache) g->set_dynamic_shape_enabled(true).set_kernel_cache(kernel_cache);
  const int64_t B = p.b, H = p.heads, D = p.d;
  auto rows_stride = [&](bool tokens_major) {
    return tokens_major ? std::vector<int64_t>{p.nq * H * D, D, H * D, 1} : std::vector<int64_t>{H * p.nq * D, p.nq * D, D, 1};
  };
  const std::vector<int64_t> q_stride = rows_stride(p.q_tokens_major), o_stride = rows_stride(p.out_tokens_major);
  const std::vector<int64_t> kv_stride = {H * row_stride * D, row_stride * D, D, 1};
  auto q = g->tensor(
      fe::graph::Tensor_attributes().set_name("q").set_uid(kQ).set_dim({B, H, p.nq, D}).set_stride(q_stride));
  auto k = g->tensor(
      fe::graph::Tensor_attributes().set_name("k").set_uid(kK).set_dim({B, H, keys, D}).set_stride(kv_stride));
  auto v = g->tensor(
      fe::graph::Tensor_attributes().set_name("v").set_uid(kV).set_dim({B, H, keys, D}).set_stride(kv_stride));
  auto options = fe::graph::SDPA_attributes().set_name("sdpa").set_generate_stats(false).set_attn_scale(p.scale);
  if (kernel_cache) options.set_implementation(fe::AttentionImplementation_t::COMPOSITE);  // UNIFIED: no dynamic shapes
  if (mask) {
    auto seq_q = g->tensor(fe::graph::Tensor_attributes()
                               .set_name("seq_len_q")
                               .set_uid(kSeqQ)
                               .set_dim({B, 1, 1, 1})
                               .set_stride({1, 1, 1, 1})
                               .set_data_type(fe::DataType_t::INT32));
    auto seq_kv = g->tensor(fe::graph::Tensor_attributes()
                                .set_name("seq_len_kv")
                                .set_uid(kSeqKv)
                                .set_dim({B, 1, 1, 1})
                                .set_stride({1, 1, 1, 1})
                                .set_data_type(fe::DataType_t::INT32));
    options.set_padding_mask(true).set_seq_len_q(seq_q).set_seq_len_kv(seq_kv);
  }
  auto outputs = g->sdpa(q, k, v, options);
  outputs[0]->set_output(true).set_uid(kO).set_dim({B, H, p.nq, D}).set_stride(o_stride);
  return g;
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

}  // namespace

CudnnRunner::CudnnRunner(int device, cudaStream_t stream) : device_(device), stream_(stream) {
  if (const char* v = env_value("SPARVAR_CONV")) {
    const std::string_view s(v);
    if (s == "auto") conv_mode_ = ConvMode::Cudnn;
    else if (s == "cudnn") conv_mode_ = ConvMode::Cudnn, conv_forced_ = true;
    else if (s == "cudnn-fused") conv_mode_ = ConvMode::CudnnFused, conv_forced_ = true;
    else if (s == "im2col") conv_mode_ = ConvMode::Im2col;
    else fail("SPARVAR_CONV={}: expected auto, cudnn, cudnn-fused or im2col", s);
  }
  if (const char* v = env_value("SPARVAR_CONV_NHWC_FUSE")) {
    const std::string_view s(v);
    if (s == "all") nhwc_fuse_ = NhwcFuse::All;
    else if (s == "bias") nhwc_fuse_ = NhwcFuse::Bias;
    else if (s == "none") nhwc_fuse_ = NhwcFuse::None;
    else fail("SPARVAR_CONV_NHWC_FUSE={}: expected all, bias or none", s);
  }
  if (const char* v = env_value("SPARVAR_ATTENTION")) {
    const std::string_view s(v);
    if (s == "auto") attention_mode_ = AttentionMode::Auto;
    else if (s == "cudnn") attention_mode_ = AttentionMode::Cudnn;
    else if (s == "ours") attention_mode_ = AttentionMode::Ours;
    else fail("SPARVAR_ATTENTION={}: expected auto, cudnn or ours", s);
  }
  if (const char* v = env_value("SPARVAR_CUDNN_AUTOTUNE")) autotune_ = std::string_view(v) != "0";
  if (const char* v = env_value("SPARVAR_SDPA_SANITIZE")) sanitize_ = std::string_view(v) != "0";
  if (const char* v = env_value("SPARVAR_SDPA_KERNEL_CACHE")) sdpa_kernel_cache_ = std::string_view(v) != "0";
  if (const char* v = env_value("SPARVAR_CUDNN_LOG")) log_info_ = std::string_view(v) != "0";
}

CudnnRunner::~CudnnRunner() {
  // Plans before the handle they were built with. The backend's stream may already be gone: detach it first.
  conv_graphs_.clear();
  attention_graphs_.clear();
  kernel_caches_.clear();
  if (handle_) {
    (void)cudaSetDevice(device_);
    auto* h = static_cast<cudnnHandle_t>(handle_);
    (void)cudnnSetStream(h, nullptr);
    (void)cudnnDestroy(h);
    (void)cudaGetLastError();
  }
}

CudnnRunner& cudnn_runner(std::shared_ptr<CudnnRunner>& slot, int device, cudaStream_t stream) {
  if (!slot) slot = std::make_shared<CudnnRunner>(device, stream);
  return *slot;
}

void CudnnRunner::ensure_handle() {
  if (handle_) return;
  cudnnHandle_t h = nullptr;
  const cudnnStatus_t status = cudnnCreate(&h);
  SPARVAR_CHECK(status == CUDNN_STATUS_SUCCESS,
                "cuDNN: cudnnCreate failed on device {} (cuDNN {}): {} (SPARVAR_CONV=im2col SPARVAR_ATTENTION=ours "
                "run without cuDNN)",
                device_, cudnnGetVersion(), cudnn_status_string(status));
  const cudnnStatus_t bound = cudnnSetStream(h, stream_);
  if (bound != CUDNN_STATUS_SUCCESS) {
    (void)cudnnDestroy(h);
    fail("cuDNN: cudnnSetStream failed on device {}: {}", device_, cudnn_status_string(bound));
  }
  handle_ = h;
}

void* CudnnRunner::workspace(int64_t bytes) {
  if (bytes > 0) workspace_.reserve(static_cast<size_t>(bytes), "cuDNN workspace");
  return workspace_.data();
}

void CudnnRunner::log(const std::string& message) const {
  spdlog::log(log_info_ ? spdlog::level::info : spdlog::level::debug, "{}", message);
}

void CudnnRunner::run(Graph& entry, std::unordered_map<int64_t, void*>& pack, const char* op) {
  const std::string& what = entry.what;
  auto* handle = static_cast<cudnnHandle_t>(handle_);
  if (entry.needs_tuning) {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(stream_, &capture));
    if (capture == cudaStreamCaptureStatusNone) {  // tuning synchronises: never inside a CUDA graph capture
      entry.needs_tuning = false;
      const Clock::time_point t0 = Clock::now();
      void* ws = workspace(entry.graph->get_autotune_workspace_size());
      auto status = entry.graph->autotune(handle, pack, ws);
      if (status.is_bad()) {
        log(fmt::format("cuDNN {} {}: autotuning failed, keeping the heuristic's choice: {}", op, what,
                        one_line(status.get_message())));
      }
      const std::string why = describe_plan(entry);
      SPARVAR_CHECK(why.empty(), "{}: cuDNN graph for {}: {}", op, what, why);
      log(fmt::format("cuDNN {} {}: autotuned to plan {} (workspace {} bytes) in {:.1f} ms", op, what, entry.plan,
                      entry.workspace, ms_since(t0)));
    }
  }
  void* ws = workspace(entry.workspace);
  auto status = entry.graph->execute(handle, pack, ws);
  SPARVAR_CHECK(status.is_good(), "{}: cuDNN failed to run its graph for {} (plan {}): {}", op, what, entry.plan,
                one_line(status.get_message()));
}

CudnnRunner::Graph* CudnnRunner::conv_graph(const CudnnConvProblem& p, bool fuse_bias, bool fuse_residual,
                                            uint32_t alignment, const char* fallback) {
  const ConvKey key{static_cast<int>(p.dtype), p.n, p.cin, p.h, p.w, p.cout, p.kh, p.kw, p.stride, p.pad,
                    fuse_bias, fuse_residual, p.channels_last, alignment};
  if (auto it = conv_graphs_.find(key); it != conv_graphs_.end()) return it->second.get();
  ensure_handle();
  const Clock::time_point t0 = Clock::now();
  auto entry = std::make_unique<Graph>();
  std::shared_ptr<fe::graph::Graph> g = describe_conv(p, fuse_bias, fuse_residual, alignment);
  const char* fused = fuse_bias && fuse_residual ? " (residual and bias fused)"
                      : fuse_bias               ? " (bias fused)"
                      : fuse_residual           ? " (residual fused)"
                                                : "";
  entry->what = conv_string(p) + fused +
                (alignment < 16 ? fmt::format(" (pointers {}-byte aligned)", alignment) : "");
  const std::string& what = entry->what;
  std::string why = build_graph(*g, static_cast<cudnnHandle_t>(handle_),
                                {fe::HeurMode_t::A, fe::HeurMode_t::FALLBACK}, conv_barred_notes(p.dtype), autotune_);
  if (why.empty()) {
    entry->graph = std::move(g);
    why = describe_plan(*entry);
    if (!why.empty()) entry->graph.reset();
  }
  if (entry->graph) {
    entry->bias_fused = fuse_bias;
    entry->residual_fused = fuse_residual;
    entry->needs_tuning = autotune_;
    log(fmt::format("cuDNN conv2d {}: plan {}, workspace {} bytes, built in {:.1f} ms", what, entry->plan,
                    entry->workspace, ms_since(t0)));
  } else {
    log(fmt::format("cuDNN conv2d {}: refused ({}), using {}", what, one_line(why), fallback));
  }
  return conv_graphs_.emplace(key, std::move(entry)).first->second.get();
}

bool CudnnRunner::conv2d(const CudnnConvProblem& p, const void* x, const void* w, const void* bias, void* y) {
  SPARVAR_CHECK(!p.channels_last && !p.residual, "cuDNN conv2d: channels-last problems go to conv2d_nhwc");
  if (conv_mode_ == ConvMode::Im2col) return false;
  if (p.dtype != DType::BF16 && p.dtype != DType::F32) return false;
  uint32_t alignment = std::min({pointer_alignment(x), pointer_alignment(w), pointer_alignment(y)});
  if (p.bias) alignment = std::min(alignment, pointer_alignment(bias));
  Graph* entry = nullptr;
  if (p.bias && conv_mode_ == ConvMode::CudnnFused) {
    entry = conv_graph(p, true, false, alignment, "the unfused graph");
    if (!entry->graph) entry = nullptr;
  }
  if (!entry) {
    entry = conv_graph(p, false, false, alignment, "im2col + cuBLASLt");
    if (!entry->graph) return false;
  }
  std::unordered_map<int64_t, void*> pack = {
      {kConvX, const_cast<void*>(x)}, {kConvW, const_cast<void*>(w)}, {kConvY, y}};
  if (entry->bias_fused) pack[kConvBias] = const_cast<void*>(bias);
  run(*entry, pack, "conv2d");
  if (p.bias && !entry->bias_fused) launch_channel_bias(p.dtype, y, bias, p.n, p.cout, p.ho * p.wo, stream_);
  return true;
}

bool CudnnRunner::conv2d_nhwc(const CudnnConvProblem& p, const void* x, const void* w, const void* bias,
                              const void* residual, void* y) {
  if (conv_mode_ == ConvMode::Im2col || !p.channels_last) return false;
  if (p.dtype != DType::BF16 && p.dtype != DType::F32) return false;
  uint32_t alignment = std::min({pointer_alignment(x), pointer_alignment(w), pointer_alignment(y)});
  if (p.bias) alignment = std::min(alignment, pointer_alignment(bias));
  if (p.residual) alignment = std::min(alignment, pointer_alignment(residual));
  // Most fused first; each refusal is cached, so later calls of this signature go straight to the graph that built.
  struct Fusion {
    bool bias, residual;
    const char* fallback;
  };
  std::vector<Fusion> tries;
  if (p.residual && nhwc_fuse_ == NhwcFuse::All) {
    tries.push_back({p.bias, true, p.bias ? "the graph with the bias only" : "the plain graph"});
  }
  if (p.bias && nhwc_fuse_ != NhwcFuse::None) tries.push_back({true, false, "the plain graph"});
  tries.push_back({false, false, "im2col + cuBLASLt"});
  for (const Fusion& f : tries) {
    Graph* entry = conv_graph(p, f.bias, f.residual, alignment, f.fallback);
    if (!entry->graph) continue;
    std::unordered_map<int64_t, void*> pack = {
        {kConvX, const_cast<void*>(x)}, {kConvW, const_cast<void*>(w)}, {kConvY, y}};
    if (entry->bias_fused) pack[kConvBias] = const_cast<void*>(bias);
    if (entry->residual_fused) pack[kConvResidual] = const_cast<void*>(residual);
    try {
      run(*entry, pack, "conv2d_nhwc");
    } catch (const Error& e) {
      // A graph cuDNN built but cannot execute (not seen; the frontend checks support first) is treated as refused
      // from now on, and this call moves down the list. Nothing was written to y that the next try will not rewrite.
      spdlog::warn("cuDNN conv2d {}: failed to run ({}), refusing it from now on and using {}", entry->what,
                   one_line(e.what()), f.fallback);
      entry->graph.reset();
      continue;
    }
    // What the graph did not add: one pass of our epilogue.
    const void* rest_bias = p.bias && !entry->bias_fused ? bias : nullptr;
    const void* rest_residual = p.residual && !entry->residual_fused ? residual : nullptr;
    launch_conv_epilogue_nhwc(p.dtype, y, rest_bias, rest_residual, p.n * p.ho * p.wo, p.cout, stream_);
    return true;
  }
  return false;
}

CudnnRunner::Graph* CudnnRunner::attention_graph(const CudnnAttentionProblem& p, int64_t keys, int64_t row_stride,
                                                 bool mask) {
  uint32_t scale_bits = 0;
  std::memcpy(&scale_bits, &p.scale, sizeof(scale_bits));
  const AttentionKey key{p.b, p.heads, p.nq, keys, p.d, row_stride, mask, scale_bits, p.q_tokens_major,
                         p.out_tokens_major};
  if (auto it = attention_graphs_.find(key); it != attention_graphs_.end()) return it->second.get();
  ensure_handle();
  const Clock::time_point t0 = Clock::now();
  auto entry = std::make_unique<Graph>();
  std::shared_ptr<fe::KernelCache> kernel_cache;
  if (sdpa_kernel_cache_) {
    std::shared_ptr<void>& slot = kernel_caches_[{mask, p.d}];
    if (!slot) slot = std::make_shared<fe::KernelCache>();
    kernel_cache = std::static_pointer_cast<fe::KernelCache>(slot);
  }
  std::shared_ptr<fe::graph::Graph> g = describe_attention(p, keys, row_stride, mask, kernel_cache);
  const int64_t B = p.b, H = p.heads, D = p.d;
  entry->what = fmt::format("q [{},{},{},{}] k,v [{},{},{},{}] (row stride {}){}{}{}{} scale {}", B, H, p.nq, D, B,
                             H, keys, D, row_stride, mask ? " padding mask" : "", kernel_cache ? " dynamic-shape" : "",
                             p.q_tokens_major ? " q tokens-major" : "", p.out_tokens_major ? " out tokens-major" : "",
                             p.scale);
  const std::string& what = entry->what;
  std::string why = build_graph(*g, static_cast<cudnnHandle_t>(handle_), {fe::HeurMode_t::A}, {}, false);
  if (why.empty()) {
    entry->graph = std::move(g);
    why = describe_plan(*entry);
    if (!why.empty()) entry->graph.reset();
  }
  if (entry->graph) {
    log(fmt::format("cuDNN attention {}: plan {}, workspace {} bytes, built in {:.1f} ms", what, entry->plan,
                    entry->workspace, ms_since(t0)));
  } else {
    log(fmt::format("cuDNN attention {}: refused ({}), using our kernel", what, one_line(why)));
  }
  return attention_graphs_.emplace(key, std::move(entry)).first->second.get();
}

bool CudnnRunner::attention(const CudnnAttentionProblem& p, const void* q, const void* k, const void* v, void* out) {
  if (attention_mode_ == AttentionMode::Ours) return false;
  // What cuDNN's SDPA takes (bf16, head dim a multiple of 8 up to 256, 16-byte aligned tensors), else ours.
  if (p.d % 8 != 0 || p.d > 256 || p.nq < 1 || p.nk < 1 || p.nq > INT32_MAX) return false;
  for (const void* ptr : {q, k, v, static_cast<const void*>(out)}) {
    if (pointer_alignment(ptr) < 16) return false;
  }
  int64_t keys = p.nk;
  bool mask = false;
  if (!p.kv_lengths.empty()) {
    if (static_cast<int64_t>(p.kv_lengths.size()) != p.b || p.b > kMaxKvBatch) return false;
    const auto [lo, hi] = std::minmax_element(p.kv_lengths.begin(), p.kv_lengths.end());
    keys = *hi;
    mask = *lo != *hi;
  }
  const bool copy = mask && sanitize_;
  Graph* entry = attention_graph(p, keys, copy ? keys : p.nk, mask);
  if (!entry->graph) return false;

  const void* k_read = k;
  const void* v_read = v;
  std::unordered_map<int64_t, void*> pack;
  if (mask) {
    if (!seq_lengths_.data()) {
      seq_lengths_ = DeviceBuffer(2 * kMaxKvBatch * sizeof(int32_t), "cuDNN SDPA sequence lengths");
    }
    SdpaPrepareArgs prep;
    prep.batch = p.b;
    prep.heads = p.heads;
    prep.rows = keys;
    prep.src_rows = p.nk;
    prep.d = p.d;
    prep.nq = static_cast<int32_t>(p.nq);
    prep.seq_q = seq_lengths_.as<int32_t>();
    prep.seq_kv = seq_lengths_.as<int32_t>() + kMaxKvBatch;
    std::copy(p.kv_lengths.begin(), p.kv_lengths.end(), prep.lengths);
    if (copy) {
      const size_t bytes = static_cast<size_t>(p.b * p.heads * keys * p.d) * sizeof(uint16_t);  // bf16
      kv_scratch_.reserve(2 * bytes, "cuDNN SDPA zero-padded K/V");
      prep.k = k;
      prep.v = v;
      prep.k_out = kv_scratch_.data();
      prep.v_out = static_cast<char*>(kv_scratch_.data()) + bytes;
      k_read = prep.k_out;
      v_read = prep.v_out;
    }
    launch_sdpa_prepare(prep, stream_);
    pack[kSeqQ] = prep.seq_q;
    pack[kSeqKv] = prep.seq_kv;
  }
  pack[kQ] = const_cast<void*>(q);
  pack[kK] = const_cast<void*>(k_read);
  pack[kV] = const_cast<void*>(v_read);
  pack[kO] = out;
  run(*entry, pack, "attention");
  return true;
}

}  // namespace sparvar::cuda
