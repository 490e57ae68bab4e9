#include "models/t5/attention.h"

namespace sparvar::t5 {
namespace {

// The [rows, cols] matrix number i of a [n, rows, cols] tensor (a contiguous view).
Tensor matrix(const Tensor& t, int64_t i, int64_t rows, int64_t cols) {
  return t.view({-1, rows, cols}).slice0(i, i + 1).view({rows, cols});
}

}  // namespace

Tensor biased_attention(Backend& be, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                        const Tensor& key_mask) {
  const int64_t B = q.dim(0), H = q.dim(1), L = q.dim(2), dk = q.dim(3);
  const DType dt = q.dtype();
  Tensor v_t = be.empty({B, H, dk, L}, dt);
  be.permute(v, {0, 1, 3, 2}, v_t);

  Tensor scores = be.empty({B, H, L, L}, dt);
  for (int64_t i = 0; i < B * H; ++i) {
    Tensor s = matrix(scores, i, L, L);
    be.linear(matrix(q, i, L, dk), matrix(k, i, L, dk), nullptr, Activation::None, s);  // q k^T
  }
  be.add(scores, bias, scores);  // [H, L, L] broadcast over the batch
  if (key_mask.defined()) {
    for (int64_t b = 0; b < B; ++b) {
      Tensor sb = scores.slice0(b, b + 1);
      be.add(sb, key_mask.slice0(b, b + 1).view({L}), sb);  // [L] broadcast over (head, query)
    }
  }
  be.softmax(scores, scores);

  Tensor ctx = be.empty({B, H, L, dk}, dt);
  for (int64_t i = 0; i < B * H; ++i) {
    Tensor c = matrix(ctx, i, L, dk);
    be.linear(matrix(scores, i, L, L), matrix(v_t, i, dk, L), nullptr, Activation::None, c);  // P v
  }
  return ctx;
}

}  // namespace sparvar::t5
