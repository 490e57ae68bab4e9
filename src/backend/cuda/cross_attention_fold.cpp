// Entry points of fold_cross_attention and folded_cross_attention (backend.h; kernels in cross_attention_fold.cu).
// Every product is one cuBLASLt call batched over the heads (folding) or the text rows (scores), in cuBLAS's
// column-major terms: a row-major [R, C] matrix is a column-major [C, R] one with leading dimension C.
#include <algorithm>
#include <initializer_list>

#include "backend/cuda/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"

namespace sparvar::cuda {
namespace {

// The alignment cuBLASLt may assume: every operand's base and every batch step (bytes, <= 16).
uint32_t gemm_alignment(std::initializer_list<const void*> pointers, std::initializer_list<int64_t> step_bytes) {
  uint32_t a = 16;
  for (const void* p : pointers) a = std::min(a, pointer_alignment(p));
  for (int64_t s : step_bytes) a = std::min(a, pointer_alignment(reinterpret_cast<const void*>(s)));
  return a;
}

const char* at(const Tensor& t, int64_t elements) {
  return static_cast<const char*>(t.data()) + elements * static_cast<int64_t>(dtype_size(t.dtype()));
}

}  // namespace

void CudaBackend::fold_cross_attention(const Tensor& k, const Tensor& v, const std::vector<int32_t>& lengths,
                                       const Tensor& wq, const Tensor& bq, const Tensor& wp, FoldedText& f) {
  constexpr const char* op = "fold_cross_attention";
  check_compute(k, op, "k");
  for (const auto& [t, name] : {std::pair{&v, "v"}, {&wq, "wq"}, {&bq, "bq"}, {&wp, "wp"}, {&f.kf, "kf"}, {&f.vf, "vf"}})
    check_compute_like(*t, k, op, name);
  SPARVAR_CHECK(f.kb.defined() && f.kb.device() == Device::CUDA, "{}: kb must be on the cuda backend", op);
  const auto [B, H, L, D, C, Lp] = check_fold_cross_attention(k, v, lengths, wq, bq, wp, f, op);
  make_current();
  const int64_t HL = H * Lp, es = static_cast<int64_t>(dtype_size(k.dtype()));
  if (Lp > L) {  // the padding keys' rows / columns, which no product writes
    CUDA_CHECK(cudaMemsetAsync(f.kf.data(), 0, f.kf.nbytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(f.vf.data(), 0, f.vf.nbytes(), stream_));
  }
  for (int64_t b = 0; b < B; ++b) {
    const char* kb_src = at(k, b * H * L * D);
    const char* vb_src = at(v, b * H * L * D);
    void* kf = const_cast<char*>(at(f.kf, b * HL * C));
    void* vf = const_cast<char*>(at(f.vf, b * C * HL));
    // kf_h^T [C, L] = wq_h^T [C, D] k_h^T [D, L], per head h (wq_h: rows h*D.. of wq).
    GemmShape s;
    s.m = C;
    s.n = L;
    s.k = D;
    s.lda = C;
    s.ldb = D;
    s.ldc = C;
    s.batch = static_cast<int>(H);
    s.stride_a = D * C;
    s.stride_b = L * D;
    s.stride_c = Lp * C;
    s.dtype = k.dtype();
    s.alignment = gemm_alignment({wq.data(), kb_src, kf}, {s.stride_a * es, s.stride_b * es, s.stride_c * es});
    gemm_->run(s, wq.data(), kb_src, kf, nullptr);
    // vf_h^T [L, C] (columns h*Lp.. of vf [C, H*Lp]) = v_h [L, D] wp_h^T [D, C] (wp_h: columns h*D.. of wp).
    GemmShape t;
    t.trans_a = true;
    t.m = L;
    t.n = C;
    t.k = D;
    t.lda = D;
    t.ldb = H * D;
    t.ldc = HL;
    t.batch = static_cast<int>(H);
    t.stride_a = L * D;
    t.stride_b = D;
    t.stride_c = Lp;
    t.dtype = k.dtype();
    t.alignment = gemm_alignment({vb_src, wp.data(), vf}, {t.stride_a * es, t.stride_b * es, t.stride_c * es});
    gemm_->run(t, vb_src, wp.data(), vf, nullptr);
    launch_fold_key_bias(k.dtype(), kb_src, bq.data(), f.kb.data_as<float>() + b * HL, static_cast<int>(H),
                         static_cast<int>(L), static_cast<int>(Lp), static_cast<int>(D),
                         lengths[static_cast<size_t>(b)], stream_);
  }
}

void CudaBackend::folded_cross_attention(const Tensor& h, const FoldedText& f, float scale, const Tensor* bias,
                                         Tensor& x, Tensor& scores, Tensor& probs, Tensor& scratch) {
  constexpr const char* op = "folded_cross_attention";
  check_compute(h, op, "h");
  for (const auto& [t, name] : {std::pair{&f.kf, "kf"}, {&f.vf, "vf"}, {&x, "x"}, {&probs, "probs"},
                                {&scratch, "scratch"}})
    check_compute_like(*t, h, op, name);
  if (bias) check_compute_like(*bias, h, op, "bias");
  for (const auto& [t, name] : {std::pair{&f.kb, "kb"}, {&scores, "scores"}})
    SPARVAR_CHECK(t->defined() && t->device() == Device::CUDA, "{}: {} must be on the cuda backend", op, name);
  const auto [B, N, C, HL] = check_folded_cross_attention(h, f, bias, x, scores, probs, scratch, op);
  if (N == 0) return;
  make_current();
  const int64_t es = static_cast<int64_t>(dtype_size(h.dtype()));
  // scores_b^T [HL, N] = kf_b [HL, C] h_b^T [C, N], fp32, batched over the text rows b.
  GemmShape s;
  s.trans_a = true;
  s.a_is_weight = true;
  s.m = HL;
  s.n = N;
  s.k = C;
  s.lda = C;
  s.ldb = C;
  s.ldc = HL;
  s.batch = static_cast<int>(B);
  s.stride_a = HL * C;
  s.stride_b = N * C;
  s.stride_c = N * HL;
  s.dtype = h.dtype();
  s.f32_out = true;
  s.alignment = gemm_alignment({f.kf.data(), h.data(), scores.data()}, {s.stride_a * es, s.stride_b * es, s.stride_c * 4});
  gemm_->run(s, f.kf.data(), h.data(), scores.data(), nullptr);
  launch_head_softmax(h.dtype(), scores.data_as<float>(), f.kb.data_as<float>(), probs.data(), B * N, N,
                      static_cast<int>(f.heads), static_cast<int>(f.keys), scale, stream_);
  // x_b += probs_b vf_b^T + bias: the residual product of linear_residual, per text row.
  for (int64_t b = 0; b < B; ++b) {
    const Tensor p = probs.slice0(b, b + 1), w = f.vf.slice0(b, b + 1).view({C, HL});
    Tensor xb = x.slice0(b, b + 1), sb = scratch.slice0(b, b + 1);
    linear_residual(p, w, bias, nullptr, xb, sb);
  }
}

}  // namespace sparvar::cuda
