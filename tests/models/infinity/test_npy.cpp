// .npy reader/writer: round trips for every supported dtype, numpy's own bytes, strict header checks.
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "infinity_test_util.h"
#include "io/npy.h"

namespace sparvar::io {
namespace {

std::string header_bytes(const std::string& dict, const std::string& data) {
  std::string h = dict;
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(h.size() & 0xff));
  out.push_back(static_cast<char>(h.size() >> 8));
  return out + h + data;
}

TEST(Npy, RoundTripEveryDtype) {
  for (DType dt : {DType::F32, DType::F16, DType::I32, DType::I64, DType::U8, DType::Bool}) {
    Tensor t = Tensor::empty({2, 3, 5}, dt);
    auto* p = static_cast<uint8_t*>(t.data());
    for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(dt == DType::Bool ? (i * 7) % 2 : i * 37 + 11);
    const Tensor back = parse_npy(serialize_npy(t), "mem");
    ASSERT_EQ(back.dtype(), dt);
    ASSERT_EQ(back.shape(), t.shape());
    EXPECT_EQ(std::memcmp(back.data(), t.data(), t.nbytes()), 0) << dtype_name(dt);
  }
}

TEST(Npy, ScalarsAndOneDimension) {
  Tensor one = Tensor::from_floats({4}, {1.5f, -2.f, 3.25f, 7.f});
  const std::string bytes = serialize_npy(one);
  EXPECT_NE(bytes.find("'shape': (4,)"), std::string::npos);
  EXPECT_EQ((bytes.size() - one.nbytes()) % 64, 0u);  // data aligned like numpy's
  EXPECT_EQ(parse_npy(bytes, "mem").to_floats(), one.to_floats());
  Tensor scalar = Tensor::from_floats({}, {2.5f});
  EXPECT_EQ(parse_npy(serialize_npy(scalar), "mem").to_floats(), std::vector<float>{2.5f});
}

TEST(Npy, ReadsNumpyWrittenGolden) {
  // text_mask.npy was written by numpy: bool [2, 7], rows of lengths 7 and 4.
  const Tensor m = read_npy(infinity::test::golden("text_mask.npy"));
  ASSERT_EQ(m.dtype(), DType::Bool);
  ASSERT_EQ(m.shape(), Shape({2, 7}));
  const auto* p = static_cast<const uint8_t*>(m.data());
  EXPECT_EQ(std::count(p, p + 7, 1), 7);
  EXPECT_EQ(std::count(p + 7, p + 14, 1), 4);
}

TEST(Npy, RejectsMalformed) {
  const std::string four(16, '\0');
  EXPECT_NO_THROW(parse_npy(header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", four), "m"));
  auto rejects = [&](const std::string& bytes, const std::string& needle) {
    try {
      parse_npy(bytes, "bad.npy");
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("bad.npy"), std::string::npos) << e.what();
    }
  };
  rejects("not numpy at all", "magic");
  rejects(header_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", four), "dtype");
  rejects(header_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", four), "dtype");
  rejects(header_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (4,), }", four), "Fortran");
  rejects(header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", four), "needs 20");
  rejects(header_bytes("{'descr': '<f4', 'shape': (4,), }", four), "needs descr");
  rejects(header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", four), "unknown key");
  rejects(header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }", four), "dimension");
  rejects(header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), } junk", four), "after the header");
  rejects(header_bytes("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", std::string("\x01\x02", 2)), "bool");
  std::string truncated = header_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", four);
  rejects(truncated.substr(0, 30), "truncated");
}

}  // namespace
}  // namespace sparvar::io
