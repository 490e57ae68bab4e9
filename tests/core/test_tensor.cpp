#include <gtest/gtest.h>

#include "core/tensor.h"

using namespace sparvar;

TEST(Tensor, EmptyViewSlice) {
  Tensor t = Tensor::from_floats({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_EQ(t.dim(-1), 3);
  EXPECT_THROW(t.dim(2), Error);
  Tensor v = t.view({3, -1});
  EXPECT_EQ(v.shape(), (Shape{3, 2}));
  EXPECT_EQ(v.data(), t.data());
  EXPECT_THROW(t.view({4, 2}), Error);
  Tensor row = t.slice0(1, 2);
  EXPECT_EQ(row.shape(), (Shape{1, 3}));
  EXPECT_EQ(row.data_as<float>()[0], 4.0f);
  EXPECT_THROW(t.slice0(1, 3), Error);
  EXPECT_THROW(t.data_as<int32_t>(), Error);
}

TEST(Tensor, CloneAndConvert) {
  Tensor t = Tensor::from_floats({4}, {0.5f, -1.0f, 2.0f, 1e-3f});
  Tensor b = t.to_dtype(DType::BF16);
  EXPECT_EQ(b.dtype(), DType::BF16);
  std::vector<float> back = b.to_floats();
  EXPECT_EQ(back[0], 0.5f);
  EXPECT_NEAR(back[3], 1e-3f, 1e-5f);
  Tensor c = t.clone();
  EXPECT_NE(c.data(), t.data());
  EXPECT_EQ(c.to_floats(), t.to_floats());
}

TEST(Tensor, Describe) {
  Tensor t = Tensor::empty({2, 16, 8}, DType::BF16);
  EXPECT_EQ(t.describe(), "bf16[2,16,8] on cpu");
  try {
    expect_shape(t, {2, 16, 9}, "linear weight");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2,16,9]"), std::string::npos);
  }
}

TEST(Tensor, WrapKeepsOwnerAlive) {
  auto owner = std::make_shared<std::vector<float>>(8, 1.0f);
  Tensor t = Tensor::wrap(owner->data(), {8}, DType::F32, Device::CPU, owner);
  std::weak_ptr<std::vector<float>> weak = owner;
  owner.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(t.to_floats()[7], 1.0f);
  t = Tensor();
  EXPECT_TRUE(weak.expired());
}
