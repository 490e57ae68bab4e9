// The restricted unpickler on hand-written programs: what torch.save emits is accepted, anything else is
// refused with an Error, and nothing hostile runs away.
#include <gtest/gtest.h>

#include "io/torch_pickle.h"
#include "io_test_util.h"

namespace sparvar::io {
namespace {

using test::FakeTensor;
using test::PickleBuilder;

std::string error_of(const std::vector<uint8_t>& pickle) {
  try {
    parse_torch_pickle(pickle, "t.pkl");
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(TorchPickle, ReadsAStateDict) {
  const auto c = parse_torch_pickle(
      test::state_dict_pickle({{"a.weight", "HalfStorage", "0", 6, 0, {2, 3}, {3, 1}},
                               {"a.bias", "LongStorage", "1", 5, 2, {3}, {1}},
                               {"t", "FloatStorage", "2", 6, 0, {3, 2}, {1, 3}}}),
      "t.pkl");
  ASSERT_EQ(c.tensors.size(), 3u);
  EXPECT_EQ(c.tensors[0].name, "a.weight");
  EXPECT_EQ(c.tensors[0].storage.dtype, DType::F16);
  EXPECT_EQ(c.tensors[0].sizes, (Shape{2, 3}));
  EXPECT_TRUE(c.tensors[0].contiguous);
  EXPECT_EQ(c.tensors[1].storage.dtype, DType::I64);
  EXPECT_EQ(c.tensors[1].offset, 2);
  EXPECT_FALSE(c.tensors[2].contiguous);
}

TEST(TorchPickle, SizeOneDimensionsMayHaveAnyStride) {
  const auto c = parse_torch_pickle(test::state_dict_pickle({{"x", "FloatStorage", "0", 4, 0, {1, 4}, {99, 1}}}), "t");
  EXPECT_TRUE(c.tensors[0].contiguous);
}

TEST(TorchPickle, RefusesDisallowedGlobals) {
  for (const auto& [module, name] : std::vector<std::pair<std::string, std::string>>{
           {"os", "system"}, {"builtins", "eval"}, {"numpy.core.multiarray", "_reconstruct"}, {"torch", "load"},
           {"collections", "defaultdict"}}) {
    PickleBuilder p;
    p.proto().global(module, name).mark().str("echo hi").tuple().op('R').stop();
    EXPECT_EQ(error_of(p.bytes()), "t.pkl: disallowed global " + module + "." + name +
                                       " (sparvar reads only tensors and plain containers)");
  }
  PickleBuilder stack_global;
  stack_global.proto(4).op(0x8c).op(8).raw("builtins").op(0x8c).op(4).raw("exec").op(0x93).stop();
  EXPECT_NE(error_of(stack_global.bytes()).find("disallowed global builtins.exec"), std::string::npos);
}

TEST(TorchPickle, RefusesViewsPastTheirStorage) {
  EXPECT_NE(error_of(test::state_dict_pickle({{"x", "FloatStorage", "0", 5, 0, {10}, {1}}})).find("reaches past"),
            std::string::npos);
  EXPECT_NE(error_of(test::state_dict_pickle({{"x", "FloatStorage", "0", 10, 7, {2, 2}, {2, 1}}})).find("reaches past"),
            std::string::npos);
  EXPECT_NE(error_of(test::state_dict_pickle({{"x", "FloatStorage", "0", 10, 0, {2, 2}, {-1, 1}}})).find("negative"),
            std::string::npos);
  EXPECT_NE(error_of(test::state_dict_pickle({{"x", "FloatStorage", "0", 10, 0, {2, 2}, {1}}})).find("strides"),
            std::string::npos);
  EXPECT_NE(error_of(test::state_dict_pickle({{"x", "FloatStorage", "0", 10, 0,
                                               {1 << 30, 1 << 30, 1 << 30}, {0, 0, 0}}})).find("too large"),
            std::string::npos);
}

TEST(TorchPickle, RefusesUnsupportedStoragesAndOddIds) {
  EXPECT_NE(error_of(test::state_dict_pickle({{"x", "DoubleStorage", "0", 4}})).find("not supported"), std::string::npos);
  EXPECT_NE(error_of(test::state_dict_pickle({{"x", "FloatStorage", "../../etc/passwd", 4}})).find("not a plain name"),
            std::string::npos);
  EXPECT_NE(error_of(test::state_dict_pickle({{"x", "FloatStorage", "0", -4}})).find("invalid element count"),
            std::string::npos);
  EXPECT_NE(error_of(test::state_dict_pickle({{"x", "FloatStorage", "0", 4}, {"y", "HalfStorage", "0", 4}}))
                .find("two different types"),
            std::string::npos);
}

TEST(TorchPickle, EveryTruncationFails) {
  const auto bytes = test::state_dict_pickle({{"a", "FloatStorage", "0", 4}, {"b", "BFloat16Storage", "1", 8, 0, {2, 4}, {4, 1}}});
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_THROW(parse_torch_pickle(cut, "t"), Error) << n;
  }
  EXPECT_EQ(parse_torch_pickle(bytes, "t").tensors.size(), 2u);
}

TEST(TorchPickle, BoundsDeepAndSharedStructures) {
  // 70 000 MARKs: more than the mark stack allows.
  PickleBuilder marks;
  marks.proto();
  for (int i = 0; i < 70000; ++i) marks.mark();
  EXPECT_NE(error_of(marks.bytes()).find("MARKs"), std::string::npos);

  // Dicts nested 40 deep.
  PickleBuilder deep;
  deep.proto().op('}');
  for (int i = 0; i < 40; ++i) deep.str("k").op('}');
  for (int i = 0; i < 40; ++i) deep.op('s');
  deep.stop();
  EXPECT_NE(error_of(deep.bytes()).find("nested deeper"), std::string::npos);

  // A dict that contains itself.
  PickleBuilder cycle;
  cycle.proto().op('}').op('q').op(0).str("self").op('h').op(0).op('s').stop();
  const std::string cycle_error = error_of(cycle.bytes());
  EXPECT_TRUE(cycle_error.find("deeper") != std::string::npos || cycle_error.find("too many values") != std::string::npos)
      << cycle_error;

  // Exponential sharing: d[i] = {"a": d[i-1], "b": d[i-1]}, 2^30 paths.
  PickleBuilder bomb;
  bomb.proto().op('}').str("t").tensor("FloatStorage", "0", 1, 0, {1}, {1}).op('s').op('q').op(0).op('0');
  for (int i = 1; i <= 30; ++i)
    bomb.op('}').mark().str("a").op('h').op(static_cast<uint8_t>(i - 1)).str("b").op('h')
        .op(static_cast<uint8_t>(i - 1)).op('u').op('q').op(static_cast<uint8_t>(i)).op('0');
  bomb.op('h').op(30).stop();
  const std::string bomb_error = error_of(bomb.bytes());
  EXPECT_TRUE(bomb_error.find("too many values") != std::string::npos) << bomb_error;
}

TEST(TorchPickle, RefusesMalformedPrograms) {
  EXPECT_NE(error_of({0x80, 0x02, '0', '.'}).find("empty stack"), std::string::npos);  // POP on nothing
  EXPECT_NE(error_of({0x80, 0x02, 'h', 5, '.'}).find("never stored"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x09, '.'}).find("protocol 9"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, 'i', '.'}).find("not supported"), std::string::npos);  // INST
  EXPECT_NE(error_of({0x80, 0x02, ']', ']', '.'}).find("2 values"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, ']', '.'}).find("holds a list"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, 'X', 0xff, 0xff, 0xff, 0x7f, 'a', '.'}).find("truncated"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, 0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, '.'}).find("too large"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, 'K', 1, ')', 'R', '.'}).find("not a callable"), std::string::npos);
  EXPECT_NE(error_of({0x80, 0x02, 'K', 1, 'K', 1, 'b', '.'}).find("BUILD on a int"), std::string::npos);
  PickleBuilder call_storage;
  call_storage.proto().global("torch", "FloatStorage").op(')').op('R').stop();
  EXPECT_NE(error_of(call_storage.bytes()).find("cannot be called"), std::string::npos);
  PickleBuilder bad_pid;
  bad_pid.proto().str("storage").op('Q').stop();
  EXPECT_NE(error_of(bad_pid.bytes()).find("persistent id"), std::string::npos);
}

TEST(TorchPickle, NestedDictsFlattenAndOtherLeavesAreListed) {
  PickleBuilder p;
  p.proto().op('}').mark();
  p.str("model").op('}').mark().str("w").tensor("FloatStorage", "0", 4, 0, {4}, {1});
  p.str("sub").op('}').str("b").tensor("FloatStorage", "1", 2, 0, {2}, {1}).op('s').op('u');
  p.str("epoch").integer(3).op('u').stop();
  const auto c = parse_torch_pickle(p.bytes(), "t");
  ASSERT_EQ(c.tensors.size(), 2u);
  EXPECT_EQ(c.tensors[0].name, "model.w");
  EXPECT_EQ(c.tensors[1].name, "model.sub.b");
  EXPECT_EQ(c.other_entries, std::vector<std::string>{"epoch: int"});
}

}  // namespace
}  // namespace sparvar::io
