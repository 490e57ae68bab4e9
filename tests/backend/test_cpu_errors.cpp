// Bad inputs: every op rejects wrong shapes, dtypes, devices and forbidden aliasing with sparvar::Error,
// before touching the output.
#include <cmath>

#include "test_cpu_util.h"

using namespace sparvar;
using namespace sparvar::test;

namespace {

// Expects an Error whose message contains every fragment; checks the output stayed poisoned (no work done).
template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> fragments, const Tensor* untouched = nullptr) {
  expect_error_message(fn, fragments);
  if (untouched) {
    for (float v : untouched->to_floats()) ASSERT_TRUE(std::isnan(v)) << "output written before validation";
  }
}

Tensor bf16(const Shape& s) { return Tensor::zeros(s, DType::BF16); }
// A tensor that claims to live on the GPU; validation must reject it before any access.
Tensor fake_cuda(const Shape& s) {
  static float dummy[64];
  return Tensor::wrap(dummy, s, DType::F32, Device::CUDA);
}

}  // namespace

TEST_F(CpuBackendTest, MemoryErrors) {
  expect_error([&] { be->upload(Tensor::zeros({2}, DType::F32), DType::BF16); }, {"upload", "f32"});
  expect_error([&] { be->empty({2, 3}, DType::BF16); }, {"empty", "f32"});
  expect_error([&] { be->upload(fake_cuda({2}), DType::F32); }, {"upload", "host"});
  Tensor a = randn({6}, 1), b = poisoned({5});
  expect_error([&] { be->copy(a, b); }, {"copy", "[6]", "[5]"});
  Tensor big = randn({8}, 2);
  Tensor overlapping = big.view({2, 4}).slice0(1, 2).view({4});
  Tensor head = big.view({2, 4}).slice0(0, 1).view({4});
  Tensor shifted = Tensor(big.storage(), 4, {4}, DType::F32);  // starts one element into head
  EXPECT_NO_THROW(be->copy(head, overlapping));                 // disjoint halves
  expect_error([&] { be->copy(head, shifted); }, {"copy", "overlaps"});
}

TEST_F(CpuBackendTest, LinearErrors) {
  Tensor x = randn({3, 1024}, 1), w = randn({2048, 512}, 2), y = poisoned({3, 2048});
  expect_error([&] { be->linear(x, w, nullptr, Activation::None, y); },
               {"linear", "weight [2048,512] does not match input [..., 1024]"}, &y);
  Tensor w2 = randn({8, 1024}, 3), y_bad = poisoned({3, 9}), y2 = poisoned({3, 8});
  expect_error([&] { be->linear(x, w2, nullptr, Activation::None, y_bad); }, {"linear", "[3,9]", "[3,8]"}, &y_bad);
  Tensor bias_bad = randn({7}, 4);
  expect_error([&] { be->linear(x, w2, &bias_bad, Activation::None, y2); }, {"linear", "bias", "[7]", "[8]"}, &y2);
  Tensor xb = bf16({3, 1024});
  expect_error([&] { be->linear(xb, w2, nullptr, Activation::None, y2); }, {"linear", "input", "bf16"}, &y2);
  expect_error([&] { be->linear(fake_cuda({3, 1024}), w2, nullptr, Activation::None, y2); }, {"linear", "cuda"}, &y2);
  Tensor sq = randn({4, 4}, 5), wsq = randn({4, 4}, 6);
  expect_error([&] { be->linear(sq, wsq, nullptr, Activation::None, sq); }, {"linear", "in place"});
}

TEST_F(CpuBackendTest, ElementwiseErrors) {
  Tensor x = randn({2, 3, 4}, 1), y = poisoned({2, 3, 5});
  expect_error([&] { be->activation(x, Activation::Silu, y); }, {"activation", "[2,3,5]", "[2,3,4]"}, &y);
  Tensor y4 = poisoned({2, 3, 4});
  expect_error([&] { be->activation(bf16({2, 3, 4}), Activation::Silu, y4); }, {"activation", "bf16"}, &y4);
  expect_error([&] { be->add(x, randn({3, 5}, 2), y4); }, {"add", "[3,5]", "[2,3,4]"}, &y4);
  expect_error([&] { be->mul(x, randn({2, 3}, 2), y4); }, {"mul", "suffix"}, &y4);
  expect_error([&] { be->mul(x, bf16({4}), y4); }, {"mul", "bf16"}, &y4);
  expect_error([&] { be->softmax(x, y); }, {"softmax", "[2,3,5]"}, &y);
  // In place is the same tensor, not a shifted view of it.
  Tensor big = randn({2, 3, 5}, 3);
  Tensor shifted = Tensor(big.storage(), 4, {2, 3, 4}, DType::F32);
  Tensor head = Tensor(big.storage(), 0, {2, 3, 4}, DType::F32);
  expect_error([&] { be->activation(head, Activation::Silu, shifted); }, {"activation", "overlaps"});
}

TEST_F(CpuBackendTest, NormErrors) {
  Tensor x = randn({2, 3, 8}, 1), y = poisoned({2, 3, 8}), w7 = randn({7}, 2), w8 = randn({8}, 3);
  expect_error([&] { be->layer_norm(x, &w7, &w8, 1e-5f, y); }, {"layer_norm", "weight [7]", "[..., 8]"}, &y);
  expect_error([&] { be->layer_norm(x, &w8, &w7, 1e-5f, y); }, {"layer_norm", "bias [7]"}, &y);
  expect_error([&] { be->rms_norm(x, &w7, 1e-5f, y); }, {"rms_norm", "weight [7]"}, &y);
  expect_error([&] { be->rms_norm(bf16({2, 3, 8}), nullptr, 1e-5f, y); }, {"rms_norm", "bf16"}, &y);
  Tensor scale = randn({2, 8}, 4), shift_bad = randn({3, 8}, 5);
  expect_error([&] { be->adaln_modulate(x, scale, shift_bad, y); }, {"adaln_modulate", "shift [3,8]", "[2,3,8]"}, &y);
  expect_error([&] { be->adaln_modulate(randn({6, 8}, 6), scale, scale, y); }, {"adaln_modulate", "[B, N, C]"}, &y);
  Tensor q = randn({2, 3, 4, 8}, 7), qy = poisoned({2, 3, 4, 8});
  expect_error([&] { be->l2_normalize(q, 1e-6f, &w7, qy); }, {"l2_normalize", "head_scale [7]", "[2,3,4,8]"}, &qy);
  expect_error([&] { be->l2_normalize(x, 1e-6f, nullptr, y); }, {"l2_normalize", "[B, H, N, D]"}, &y);
  Tensor img = randn({1, 6, 2, 2}, 8), img_y = poisoned({1, 6, 2, 2});
  expect_error([&] { be->group_norm(img, 4, nullptr, nullptr, 1e-6f, img_y); }, {"group_norm", "4 groups"}, &img_y);
  expect_error([&] { be->group_norm(img, 0, nullptr, nullptr, 1e-6f, img_y); }, {"group_norm", "0 groups"}, &img_y);
  expect_error([&] { be->group_norm(img, 3, &w8, nullptr, 1e-6f, img_y); }, {"group_norm", "weight [8]"}, &img_y);
}

TEST_F(CpuBackendTest, RopeAndPermuteErrors) {
  Tensor x = randn({1, 2, 5, 8}, 1), y = poisoned({1, 2, 5, 8});
  Tensor c = randn({5, 4}, 2), c_bad = randn({5, 8}, 3);
  expect_error([&] { be->rope(x, c_bad, c, y); }, {"rope", "cos [5,8]", "[1,2,5,8]"}, &y);
  expect_error([&] { be->rope(x, c, c_bad, y); }, {"rope", "sin [5,8]"}, &y);
  Tensor odd = randn({1, 2, 5, 7}, 4), odd_y = poisoned({1, 2, 5, 7});
  expect_error([&] { be->rope(odd, c, c, odd_y); }, {"rope", "even"}, &odd_y);
  Tensor p = poisoned({8, 5, 2, 1});
  expect_error([&] { be->permute(x, {3, 2, 1, 1}, p); }, {"permute", "not a permutation"}, &p);
  expect_error([&] { be->permute(x, {3, 2, 1}, p); }, {"permute", "3 entries"}, &p);
  Tensor p_bad = poisoned({8, 5, 1, 2});
  expect_error([&] { be->permute(x, {3, 2, 1, 0}, p_bad); }, {"permute", "[8,5,1,2]", "[8,5,2,1]"}, &p_bad);
  Tensor seven = randn({1, 1, 1, 1, 1, 1, 2}, 5), seven_y = poisoned({1, 1, 1, 1, 1, 1, 2});
  expect_error([&] { be->permute(seven, {0, 1, 2, 3, 4, 5, 6}, seven_y); }, {"permute", "6 dimensions"}, &seven_y);
  Tensor sq = randn({3, 3}, 6);
  expect_error([&] { be->permute(sq, {1, 0}, sq); }, {"permute", "in place"});
}

TEST_F(CpuBackendTest, AttentionErrors) {
  Tensor q = randn({2, 2, 6, 8}, 1), k = randn({2, 2, 6, 8}, 2), v = randn({2, 2, 6, 8}, 3), out = poisoned({2, 2, 6, 8});
  AttentionParams p;
  expect_error([&] { be->attention(q, randn({2, 2, 6, 4}, 4), v, p, out); }, {"attention", "k [2,2,6,4]", "q [2,2,6,8]"}, &out);
  expect_error([&] { be->attention(q, k, randn({2, 2, 5, 8}, 5), p, out); }, {"attention", "v [2,2,5,8]"}, &out);
  expect_error([&] { be->attention(q, k, bf16({2, 2, 6, 8}), p, out); }, {"attention", "bf16"}, &out);
  expect_error([&] { be->attention(q, k, v, p, q); }, {"attention", "in place"});
  p.mask = {{2, 6}, {0, 6}};  // rows 0..1 see no key
  expect_error([&] { be->attention(q, k, v, p, out); }, {"attention", "see no key"}, &out);
  p.mask = {{2, 5}, {2, 6}};  // does not cover row 5
  expect_error([&] { be->attention(q, k, v, p, out); }, {"attention", "Nq = 6"}, &out);
  p.mask = {{2, 6}, {2, 7}};
  expect_error([&] { be->attention(q, k, v, p, out); }, {"attention", "k_ends[1] = 7"}, &out);
  p.mask = {{2, 6}, {2}};
  expect_error([&] { be->attention(q, k, v, p, out); }, {"attention", "q_ends", "k_ends"}, &out);
  p.mask = {};
  p.kv_lengths = {3, 0};
  expect_error([&] { be->attention(q, k, v, p, out); }, {"attention", "kv_lengths[1] = 0"}, &out);
  p.kv_lengths = {3};
  expect_error([&] { be->attention(q, k, v, p, out); }, {"attention", "batch size 2"}, &out);
}

TEST_F(CpuBackendTest, ImageErrors) {
  Tensor x = randn({1, 3, 8, 8}, 1), w = randn({4, 2, 3, 3}, 2), y = poisoned({1, 4, 8, 8});
  expect_error([&] { be->conv2d(x, w, nullptr, 1, 1, y); }, {"conv2d", "weight [4,2,3,3]", "input [1,3,8,8]"}, &y);
  Tensor w3 = randn({4, 3, 3, 3}, 3), y_bad = poisoned({1, 4, 7, 8});
  expect_error([&] { be->conv2d(x, w3, nullptr, 1, 1, y_bad); }, {"conv2d", "[1,4,7,8]", "[1,4,8,8]"}, &y_bad);
  Tensor b5 = randn({5}, 4);
  expect_error([&] { be->conv2d(x, w3, &b5, 1, 1, y); }, {"conv2d", "bias", "[5]"}, &y);
  expect_error([&] { be->conv2d(x, w3, nullptr, 0, 1, y); }, {"conv2d", "stride 0"}, &y);
  Tensor big_w = randn({4, 3, 11, 11}, 5);
  expect_error([&] { be->conv2d(x, big_w, nullptr, 1, 1, y); }, {"conv2d", "does not fit"}, &y);
  Tensor r = poisoned({1, 2, 4, 4});
  expect_error([&] { be->resample(x, ResampleMode::Bilinear, r); }, {"resample", "[1,2,4,4]", "[1,3,8,8]"}, &r);
  expect_error([&] { be->resample(randn({3, 8, 8}, 6), ResampleMode::Area, r); }, {"resample", "[N, C, H, W]"}, &r);
  Tensor same = randn({1, 1, 4, 4}, 7);
  expect_error([&] { be->resample(same, ResampleMode::Nearest, same); }, {"resample", "in place"});
}

TEST_F(CpuBackendTest, NhwcImageErrors) {
  Tensor x = randn({1, 8, 8, 3}, 1), w = randn({4, 3, 3, 2}, 2), y = poisoned({1, 8, 8, 4});
  expect_error([&] { be->conv2d_nhwc(x, w, nullptr, nullptr, 1, 1, y); },
               {"conv2d_nhwc", "w [4,3,3,2]", "Cin = 3", "x [1,8,8,3]"}, &y);
  Tensor w3 = randn({4, 3, 3, 3}, 3), r5 = randn({1, 8, 8, 5}, 4);
  expect_error([&] { be->conv2d_nhwc(x, w3, nullptr, &r5, 1, 1, y); },
               {"conv2d_nhwc", "residual", "[1,8,8,5]", "[1,8,8,4]"}, &y);
  Tensor y_bad = poisoned({1, 7, 8, 4});
  expect_error([&] { be->conv2d_nhwc(x, w3, nullptr, nullptr, 1, 1, y_bad); },
               {"conv2d_nhwc", "[1,7,8,4]", "[1,8,8,4]"}, &y_bad);
  Tensor b5 = randn({5}, 5);
  expect_error([&] { be->conv2d_nhwc(x, w3, &b5, nullptr, 1, 1, y); }, {"conv2d_nhwc", "bias", "[5]"}, &y);
  expect_error([&] { be->conv2d_nhwc(x, w3, nullptr, &y, 1, 1, y); }, {"conv2d_nhwc", "residual", "in place"});
  expect_error([&] { be->conv2d_nhwc(bf16({1, 8, 8, 3}), w3, nullptr, nullptr, 1, 1, y); }, {"conv2d_nhwc", "f32"}, &y);

  Tensor g = randn({1, 4, 4, 6}, 6), gy = poisoned({1, 4, 4, 6}), w5 = randn({5}, 7);
  expect_error([&] { be->group_norm_nhwc(g, 4, nullptr, nullptr, 1e-6f, Activation::Silu, gy); },
               {"group_norm_nhwc", "4 groups"}, &gy);
  expect_error([&] { be->group_norm_nhwc(g, 3, &w5, nullptr, 1e-6f, Activation::Silu, gy); },
               {"group_norm_nhwc", "w", "[5]", "[6]"}, &gy);
  Tensor gy_bad = poisoned({1, 4, 6, 4});
  expect_error([&] { be->group_norm_nhwc(g, 3, nullptr, nullptr, 1e-6f, Activation::None, gy_bad); },
               {"group_norm_nhwc", "[1,4,6,4]", "[1,4,4,6]"}, &gy_bad);

  Tensor u = poisoned({1, 12, 16, 3});
  expect_error([&] { be->upsample_nearest_nhwc(x, u); }, {"upsample_nearest_nhwc", "[1,12,16,3]", "whole factors"}, &u);
  Tensor u_c = poisoned({1, 16, 16, 4});
  expect_error([&] { be->upsample_nearest_nhwc(x, u_c); }, {"upsample_nearest_nhwc", "[1,16,16,4]"}, &u_c);
  expect_error([&] { be->upsample_nearest_nhwc(randn({1, 0, 4, 3}, 8), u); }, {"upsample_nearest_nhwc", "empty"}, &u);
}
