// Backend::fold_cross_attention and Backend::folded_cross_attention (backend.h): their checks, shared with the CUDA
// override so both reject the same calls with the same messages, and the default bodies: plain host loops in double
// precision over downloaded copies (the reference the CUDA path is tested against; slow, never on a hot path).
// Inline, so every Backend (the test doubles too) links without another library.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "backend/backend.h"

namespace sparvar {

struct FoldDims {
  int64_t B, H, L, D, C, Lp;
};

inline FoldDims check_fold_cross_attention(const Tensor& k, const Tensor& v, const std::vector<int32_t>& lengths,
                                           const Tensor& wq, const Tensor& bq, const Tensor& wp,
                                           const FoldedText& f, std::string_view op) {
  SPARVAR_CHECK(k.ndim() == 4 && v.shape() == k.shape(), "{}: k {} and v {} must both be [B, H, L, D]", op,
                shape_string(k.shape()), shape_string(v.shape()));
  const int64_t B = k.dim(0), H = k.dim(1), L = k.dim(2), D = k.dim(3);
  SPARVAR_CHECK(static_cast<int64_t>(lengths.size()) == B, "{}: {} lengths for {} text rows", op, lengths.size(), B);
  for (int32_t n : lengths)
    SPARVAR_CHECK(n >= 1 && n <= L, "{}: a text length of {} is outside [1, {}]", op, n, L);
  SPARVAR_CHECK(wq.ndim() == 2 && wq.dim(0) == H * D, "{}: wq {} must be [H * D = {}, C]", op, shape_string(wq.shape()),
                H * D);
  const int64_t C = wq.dim(1);
  SPARVAR_CHECK(bq.shape() == Shape{H * D}, "{}: bq {} must be [{}]", op, shape_string(bq.shape()), H * D);
  SPARVAR_CHECK(wp.shape() == (Shape{C, H * D}), "{}: wp {} must be [{}, {}]", op, shape_string(wp.shape()), C, H * D);
  const int64_t Lp = f.keys;
  SPARVAR_CHECK(f.heads == H && Lp >= L, "{}: the folded text holds {} heads x {} keys, the text {} x {}", op, f.heads,
                Lp, H, L);
  SPARVAR_CHECK(f.kf.shape() == (Shape{B, H * Lp, C}) && f.kf.dtype() == k.dtype(), "{}: kf {} must be {} [{}, {}, {}]",
                op, f.kf.describe(), dtype_name(k.dtype()), B, H * Lp, C);
  SPARVAR_CHECK(f.kb.shape() == (Shape{B, H * Lp}) && f.kb.dtype() == DType::F32, "{}: kb {} must be f32 [{}, {}]", op,
                f.kb.describe(), B, H * Lp);
  SPARVAR_CHECK(f.vf.shape() == (Shape{B, C, H * Lp}) && f.vf.dtype() == k.dtype(), "{}: vf {} must be {} [{}, {}, {}]",
                op, f.vf.describe(), dtype_name(k.dtype()), B, C, H * Lp);
  for (const Tensor* in : {&k, &v, &wq, &bq, &wp}) {
    check_disjoint(*in, f.kf, op, "an input");
    check_disjoint(*in, f.kb, op, "an input");
    check_disjoint(*in, f.vf, op, "an input");
  }
  return {B, H, L, D, C, Lp};
}

struct FoldedAttentionDims {
  int64_t B, N, C, HL;
};

inline FoldedAttentionDims check_folded_cross_attention(const Tensor& h, const FoldedText& f, const Tensor* bias,
                                                        const Tensor& x, const Tensor& scores, const Tensor& probs,
                                                        const Tensor& scratch, std::string_view op) {
  SPARVAR_CHECK(h.ndim() == 3, "{}: h must be [B, N, C], got {}", op, shape_string(h.shape()));
  const int64_t B = h.dim(0), N = h.dim(1), C = h.dim(2), HL = f.heads * f.keys;
  SPARVAR_CHECK(f.heads >= 1 && f.keys >= 1 && f.kf.shape() == (Shape{B, HL, C}) && f.kb.shape() == (Shape{B, HL}) &&
                    f.vf.shape() == (Shape{B, C, HL}),
                "{}: the folded text (kf {}, kb {}, vf {}, {} heads x {} keys) does not match h {}", op,
                shape_string(f.kf.shape()), shape_string(f.kb.shape()), shape_string(f.vf.shape()), f.heads, f.keys,
                shape_string(h.shape()));
  SPARVAR_CHECK(f.kf.dtype() == h.dtype() && f.vf.dtype() == h.dtype() && f.kb.dtype() == DType::F32,
                "{}: kf, vf must have h's dtype {} and kb f32 (kf {}, vf {}, kb {})", op, dtype_name(h.dtype()),
                f.kf.describe(), f.vf.describe(), f.kb.describe());
  SPARVAR_CHECK(x.shape() == h.shape() && x.dtype() == h.dtype(), "{}: x {} must be like h {}", op, x.describe(),
                h.describe());
  if (bias)
    SPARVAR_CHECK(bias->shape() == Shape{C} && bias->dtype() == h.dtype(), "{}: bias {} must be {} [{}]", op,
                  bias->describe(), dtype_name(h.dtype()), C);
  SPARVAR_CHECK(scores.shape() == (Shape{B, N, HL}) && scores.dtype() == DType::F32, "{}: scores {} must be f32 [{}, {}, {}]",
                op, scores.describe(), B, N, HL);
  SPARVAR_CHECK(probs.shape() == (Shape{B, N, HL}) && probs.dtype() == h.dtype(), "{}: probs {} must be {} [{}, {}, {}]",
                op, probs.describe(), dtype_name(h.dtype()), B, N, HL);
  SPARVAR_CHECK(scratch.shape() == h.shape() && scratch.dtype() == h.dtype(), "{}: scratch {} must be like h {}", op,
                scratch.describe(), h.describe());
  const Tensor* ins[] = {&h, &f.kf, &f.kb, &f.vf};
  const Tensor* outs[] = {&x, &scores, &probs, &scratch};
  for (const Tensor* in : ins)
    for (const Tensor* out : outs) check_disjoint(*in, *out, op, "an input");
  if (bias)
    for (const Tensor* out : outs) check_disjoint(*bias, *out, op, "bias");
  check_disjoint(scores, probs, op, "scores");
  check_disjoint(scores, scratch, op, "scores");
  check_disjoint(probs, scratch, op, "probs");
  check_disjoint(x, scores, op, "x");
  check_disjoint(x, probs, op, "x");
  check_disjoint(x, scratch, op, "x");
  return {B, N, C, f.heads * f.keys};
}

inline void Backend::fold_cross_attention(const Tensor& k, const Tensor& v, const std::vector<int32_t>& lengths,
                                          const Tensor& wq, const Tensor& bq, const Tensor& wp, FoldedText& f) {
  const auto [B, H, L, D, C, Lp] = check_fold_cross_attention(k, v, lengths, wq, bq, wp, f, "fold_cross_attention");
  const Tensor hk = download(k), hv = download(v), hwq = download(wq), hbq = download(bq), hwp = download(wp);
  const float *K = hk.data_as<float>(), *V = hv.data_as<float>(), *Wq = hwq.data_as<float>();
  const float *Bq = hbq.data_as<float>(), *Wp = hwp.data_as<float>();
  const int64_t HL = H * Lp;
  Tensor kf = Tensor::zeros({B, HL, C}, DType::F32), kb = Tensor::zeros({B, HL}, DType::F32);
  Tensor vf = Tensor::zeros({B, C, HL}, DType::F32);
  float *KF = kf.data_as<float>(), *KB = kb.data_as<float>(), *VF = vf.data_as<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < Lp; ++j) {
        const int64_t col = h * Lp + j;
        KB[b * HL + col] = -std::numeric_limits<float>::infinity();
        if (j >= L) continue;
        const float* kj = K + ((b * H + h) * L + j) * D;
        const float* vj = V + ((b * H + h) * L + j) * D;
        for (int64_t c = 0; c < C; ++c) {
          double sk = 0.0, sv = 0.0;
          for (int64_t d = 0; d < D; ++d) {
            sk += double(kj[d]) * Wq[(h * D + d) * C + c];
            sv += double(Wp[c * H * D + h * D + d]) * vj[d];
          }
          KF[(b * HL + col) * C + c] = static_cast<float>(sk);
          VF[(b * C + c) * HL + col] = static_cast<float>(sv);
        }
        if (j < lengths[static_cast<size_t>(b)]) {
          double s = 0.0;
          for (int64_t d = 0; d < D; ++d) s += double(kj[d]) * Bq[h * D + d];
          KB[b * HL + col] = static_cast<float>(s);
        }
      }
  write(kf, f.kf);
  write(kb, f.kb);
  write(vf, f.vf);
}

inline void Backend::folded_cross_attention(const Tensor& h, const FoldedText& f, float scale, const Tensor* bias,
                                            Tensor& x, Tensor& scores, Tensor& probs, Tensor& scratch) {
  const auto [B, N, C, HL] = check_folded_cross_attention(h, f, bias, x, scores, probs, scratch,
                                                          "folded_cross_attention");
  const int64_t H = f.heads, Lp = f.keys;
  const Tensor hh = download(h), hkf = download(f.kf), hkb = download(f.kb), hvf = download(f.vf);
  const float *Hs = hh.data_as<float>(), *KF = hkf.data_as<float>(), *KB = hkb.data_as<float>();
  const float* VF = hvf.data_as<float>();
  Tensor s = Tensor::empty({B, N, HL}, DType::F32);
  float* S = s.data_as<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n) {
      const float* hr = Hs + (b * N + n) * C;
      float* sr = S + (b * N + n) * HL;
      for (int64_t col = 0; col < HL; ++col) {
        double acc = 0.0;
        for (int64_t c = 0; c < C; ++c) acc += double(hr[c]) * KF[(b * HL + col) * C + c];
        sr[col] = static_cast<float>(acc);
      }
      for (int64_t hd = 0; hd < H; ++hd) {  // softmax of each head's Lp columns
        float* row = sr + hd * Lp;
        const float* kb = KB + b * HL + hd * Lp;
        double m = -std::numeric_limits<double>::infinity(), sum = 0.0;
        for (int64_t j = 0; j < Lp; ++j) m = std::max(m, double(scale) * (double(row[j]) + kb[j]));
        for (int64_t j = 0; j < Lp; ++j) sum += std::exp(double(scale) * (double(row[j]) + kb[j]) - m);
        for (int64_t j = 0; j < Lp; ++j)
          row[j] = static_cast<float>(std::exp(double(scale) * (double(row[j]) + kb[j]) - m) / sum);
      }
    }
  write(s, probs);  // the products read P rounded to probs' dtype, as a backend that keeps it there does
  const Tensor hp = download(probs);
  const float* P = hp.data_as<float>();
  Tensor hx = download(x);
  float* X = hx.data_as<float>();
  std::vector<float> hb(static_cast<size_t>(C), 0.f);
  if (bias) {
    const Tensor t = download(*bias);
    std::copy(t.data_as<float>(), t.data_as<float>() + C, hb.begin());
  }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        double acc = hb[static_cast<size_t>(c)];
        for (int64_t col = 0; col < HL; ++col) acc += double(P[(b * N + n) * HL + col]) * VF[(b * C + c) * HL + col];
        X[(b * N + n) * C + c] += static_cast<float>(acc);
      }
  write(hx, x);
  (void)scores;
  (void)scratch;
}

}  // namespace sparvar
