// Backend::record / RecordedWork, Backend::write and BitSampling::seed_tensor:
//  - CPU (the fallback): record() performs nothing, every replay() runs the body again;
//  - write() fills an existing tensor (converting the dtype) and sample_bits reads the seed tensor;
//  - CUDA (skipped without a GPU): a replay performs the captured ops on whatever their buffers hold at that
//    moment (values written between replays are seen), record() itself performs nothing, the seed comes from
//    device memory at every replay, and a body that cannot be captured (it synchronises) throws and leaves
//    the stream usable.
#include <gtest/gtest.h>

#include <cstring>

#include "backend/backend.h"
#include "core/error.h"
#include "core/philox.h"

namespace sparvar {
namespace {

Tensor host_floats(const Shape& shape, uint64_t stream, float scale = 1.0f) {
  Tensor t = Tensor::empty(shape, DType::F32);
  PhiloxStream(3, stream).fill_normal(t.data_as<float>(), static_cast<uint64_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] *= scale;
  return t;
}

Tensor seed_bytes(uint64_t seed) {
  Tensor t = Tensor::empty({8}, DType::U8);
  std::memcpy(t.data(), &seed, sizeof(seed));
  return t;
}

TEST(RecordedWorkCpu, RecordPerformsNothingAndEveryReplayRunsTheBody) {
  auto be = make_cpu_backend(1);
  int runs = 0;
  const auto work = be->record([&] { ++runs; });
  EXPECT_EQ(runs, 0);
  EXPECT_TRUE(work->valid());
  EXPECT_FALSE(work->is_graph());
  work->replay();
  work->replay();
  EXPECT_EQ(runs, 2);
}

TEST(RecordedWorkCpu, WriteFillsAnExistingTensor) {
  auto be = make_cpu_backend(1);
  Tensor dst = be->empty({2, 3}, DType::F32);
  const Tensor src = host_floats({6}, 1);
  be->write(src, dst);
  EXPECT_EQ(dst.to_floats(), src.to_floats());
  Tensor bits = be->empty({4}, DType::U8);
  be->write(Tensor::from_floats({4}, {0, 1, 1, 0}), bits);  // converted to u8
  EXPECT_EQ(bits.to_floats(), (std::vector<float>{0, 1, 1, 0}));
  EXPECT_THROW(be->write(host_floats({5}, 2), dst), Error);
}

TEST(RecordedWorkCpu, SampleBitsReadsTheSeedTensor) {
  auto be = make_cpu_backend(1);
  const Tensor raw = be->upload(host_floats({4, 16, 8}, 4, 3.0f), DType::F32);  // CFG: 2 x 2 rows
  BitSampling p;
  p.cfg = 2.0f;
  p.seed = 99;
  p.stream = 5;
  Tensor want = be->empty({2, 16, 4}, DType::U8), got = be->empty({2, 16, 4}, DType::U8);
  be->sample_bits(raw, p, nullptr, &want, nullptr);
  Tensor seed = be->empty({8}, DType::U8);
  be->write(seed_bytes(99), seed);
  p.seed = 1;  // ignored: the tensor holds the seed
  p.seed_tensor = &seed;
  be->sample_bits(raw, p, nullptr, &got, nullptr);
  EXPECT_EQ(got.to_floats(), want.to_floats());
  Tensor wrong = be->empty({4}, DType::U8);
  p.seed_tensor = &wrong;
  EXPECT_THROW(be->sample_bits(raw, p, nullptr, &got, nullptr), Error);
}

TEST(RecordedWorkCuda, ReplayPerformsTheCapturedOpsOnCurrentContents) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  auto be = make_cuda_backend();
  const Tensor a1 = host_floats({64, 32}, 10), a2 = host_floats({64, 32}, 11), b = host_floats({32}, 12);
  Tensor a = be->empty({64, 32}, DType::F32), y = be->empty({64, 32}, DType::F32);
  const Tensor bd = be->upload(b, DType::F32);
  be->write(a1, a);
  be->write(host_floats({64, 32}, 13), y);
  const Tensor before = be->download(y);
  const auto work = be->record([&] {
    be->add(a, bd, y);
    be->activation(y, Activation::Silu, y);
  });
  ASSERT_TRUE(work->is_graph());
  EXPECT_TRUE(work->valid());
  EXPECT_EQ(be->download(y).to_floats(), before.to_floats()) << "record() must not perform the work";
  for (const Tensor* input : {&a1, &a2, &a1}) {
    be->write(*input, a);
    work->replay();
    Tensor want = be->empty({64, 32}, DType::F32);
    be->add(a, bd, want);
    be->activation(want, Activation::Silu, want);
    EXPECT_EQ(be->download(y).to_floats(), be->download(want).to_floats());
  }
}

TEST(RecordedWorkCuda, SampleBitsTakesTheSeedWrittenBeforeEachReplay) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  auto be = make_cuda_backend();
  const Tensor raw = be->upload(host_floats({4, 64, 16}, 20, 3.0f), DType::BF16);
  Tensor seed = be->empty({8}, DType::U8), bits = be->empty({2, 64, 8}, DType::U8);
  BitSampling p;
  p.cfg = 3.0f;
  p.top_k = 1;
  p.stream = 2;
  p.seed_tensor = &seed;
  const auto work = be->record([&] { be->sample_bits(raw, p, nullptr, &bits, nullptr); });
  for (uint64_t s : {7u, 8u, 7u}) {
    be->write(seed_bytes(s), seed);
    work->replay();
    BitSampling direct = p;
    direct.seed_tensor = nullptr;
    direct.seed = s;
    Tensor want = be->empty({2, 64, 8}, DType::U8);
    be->sample_bits(raw, direct, nullptr, &want, nullptr);
    EXPECT_EQ(be->download(bits).to_floats(), be->download(want).to_floats()) << "seed " << s;
  }
}

TEST(RecordedWorkCuda, UncapturableBodyThrowsAndLeavesTheStreamUsable) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  auto be = make_cuda_backend();
  Tensor x = be->upload(host_floats({8}, 30), DType::F32);
  EXPECT_THROW(be->record([&] {
    be->activation(x, Activation::Silu, x);
    be->synchronize();  // waits on the capturing stream: not capturable
  }),
               Error);
  Tensor y = be->empty({8}, DType::F32);
  be->activation(x, Activation::None, y);
  EXPECT_EQ(be->download(y).to_floats(), be->download(x).to_floats());
  const auto work = be->record([&] { be->activation(x, Activation::None, y); });
  work->replay();
  be->synchronize();
}

}  // namespace
}  // namespace sparvar
