// CPU ops against values computed by PyTorch (golden/*.txt, made by golden/make_golden.py), plus small
// resample cases whose expected values were derived by hand from torch's formulas.
#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "test_cpu_util.h"

using namespace sparvar;
using namespace sparvar::test;

namespace {

// Reads "<name> <ndim> <dims...>" / "<values...>" line pairs; '#' lines are comments.
std::map<std::string, Tensor> load_golden(const std::string& file) {
  const std::string path = std::string(SPARVAR_GOLDEN_DIR) + "/" + file;
  std::ifstream in(path);
  if (!in) throw Error("cannot open golden file " + path);
  std::map<std::string, Tensor> tensors;
  std::string header, values;
  while (std::getline(in, header)) {
    if (header.empty() || header[0] == '#') continue;
    std::istringstream hs(header);
    std::string name;
    int ndim = 0;
    hs >> name >> ndim;
    Shape shape(static_cast<size_t>(ndim));
    for (auto& d : shape) hs >> d;
    if (!std::getline(in, values)) throw Error("golden file " + path + ": no values for " + name);
    std::istringstream vs(values);
    std::vector<float> data;
    for (double v; vs >> v;) data.push_back(static_cast<float>(v));
    tensors.emplace(name, Tensor::from_floats(shape, data));
  }
  return tensors;
}

std::vector<double> doubles(const Tensor& t) { return as_doubles(t); }

class CpuGoldenTest : public CpuBackendTest {
 protected:
  const Tensor& get(const std::map<std::string, Tensor>& g, const std::string& name) {
    auto it = g.find(name);
    if (it == g.end()) throw Error("golden tensor " + name + " missing");
    return it->second;
  }
};

}  // namespace

TEST_F(CpuGoldenTest, ResampleHandChecked) {
  // 2x2 -> 4x4. Bilinear: source rows/cols are clamp(0.5 * (d + 0.5) - 0.5, 0) = 0, 0.25, 0.75, 1.25 -> taps
  // (0|1.0), (0,1|0.75,0.25), (0,1|0.25,0.75), (1|1.0).
  Tensor x = Tensor::from_floats({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor y = poisoned({1, 1, 4, 4});
  be->resample(x, ResampleMode::Bilinear, y);
  EXPECT_EQ(y.to_floats(), (std::vector<float>{1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f, 3.25f,
                                               3.5f, 3, 3.25f, 3.75f, 4}));
  // Bicubic, output (0,0): source -0.25 -> floor -1, t = 0.75; Keys weights (A = -0.75) for distances
  // 1.75, 0.75, 0.25, 1.25 are -0.03515625, 0.26171875, 0.87890625, -0.10546875; taps -2..1 clamp to 0,0,0,1,
  // so each axis weighs index 0 by 1.10546875 and index 1 by -0.10546875:
  // rows: 1.10546875*1 - 0.10546875*2 = 0.89453125, 1.10546875*3 - 0.10546875*4 = 2.89453125;
  // then 1.10546875*0.89453125 - 0.10546875*2.89453125 = 0.68359375 (overshoot below the minimum, as torch).
  be->resample(x, ResampleMode::Bicubic, y);
  EXPECT_NEAR(y.to_floats()[0], 0.68359375f, 1e-6f);
  // By symmetry the opposite corner overshoots above the maximum: 5 - 0.68359375.
  EXPECT_NEAR(y.to_floats()[15], 4.31640625f, 1e-6f);
  be->resample(x, ResampleMode::Nearest, y);
  EXPECT_EQ(y.to_floats(), (std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}));
  // Area 5x5 -> 3x3: windows [floor(i*5/3), ceil((i+1)*5/3)) = [0,2), [1,4), [3,5) on each axis.
  std::vector<float> ramp(25);
  for (int i = 0; i < 25; ++i) ramp[static_cast<size_t>(i)] = static_cast<float>(i);
  Tensor r = Tensor::from_floats({1, 1, 5, 5}, ramp);
  Tensor a = poisoned({1, 1, 3, 3});
  be->resample(r, ResampleMode::Area, a);
  // (0,0): mean(0,1,5,6) = 3; (0,1): mean(1,2,3,6,7,8) = 4.5; (1,1): mean of rows 1..3, cols 1..3 = 12.
  const std::vector<float> area_expected{3, 4.5f, 6, 10.5f, 12, 13.5f, 18, 19.5f, 21};
  for (size_t i = 0; i < area_expected.size(); ++i) EXPECT_NEAR(a.to_floats()[i], area_expected[i], 1e-5f) << i;
}

TEST_F(CpuGoldenTest, ResampleMatchesTorch) {
  const auto g = load_golden("resample.txt");
  int checked = 0;
  for (const auto& [name, expected] : g) {
    const auto us = name.find('_');
    if (us == std::string::npos) continue;  // an input
    const Tensor& x = get(g, name.substr(0, us));
    const std::string rest = name.substr(us + 1);
    const std::string mode_name = rest.substr(0, rest.find('_'));
    const ResampleMode mode = mode_name == "nearest"    ? ResampleMode::Nearest
                              : mode_name == "bilinear" ? ResampleMode::Bilinear
                              : mode_name == "bicubic"  ? ResampleMode::Bicubic
                                                        : ResampleMode::Area;
    ASSERT_TRUE(mode_name == "area" || mode != ResampleMode::Area) << name;
    Tensor y = poisoned(expected.shape());
    be->resample(x, mode, y);
    EXPECT_CLOSE(y, doubles(expected)) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 4 + 3 * 4 + 2);
}

TEST_F(CpuGoldenTest, NearestUsesTorchFloatIndex) {
  // torch picks floorf(dst * float(in / out)): for 26 -> 22, output 11 reads input 12, where the exact
  // integer floor(11 * 26 / 22) would be 13.
  std::vector<float> ramp(26);
  for (int i = 0; i < 26; ++i) ramp[static_cast<size_t>(i)] = static_cast<float>(i);
  Tensor x = Tensor::from_floats({1, 1, 1, 26}, ramp);
  Tensor y = poisoned({1, 1, 1, 22});
  be->resample(x, ResampleMode::Nearest, y);
  EXPECT_EQ(y.to_floats()[11], 12.0f);
}

TEST_F(CpuGoldenTest, ActivationsAndSoftmax) {
  const auto g = load_golden("elementwise.txt");
  const Tensor& x = get(g, "x");
  Tensor y = poisoned(x.shape());
  be->activation(x, Activation::GeluTanh, y);
  EXPECT_CLOSE(y, doubles(get(g, "gelu_tanh")));
  be->activation(x, Activation::Silu, y);
  EXPECT_CLOSE(y, doubles(get(g, "silu")));
  be->softmax(x, y);
  EXPECT_CLOSE(y, doubles(get(g, "softmax")));
}

TEST_F(CpuGoldenTest, Norms) {
  const auto g = load_golden("norm.txt");
  const Tensor& x = get(g, "x");
  Tensor y = poisoned(x.shape());
  be->layer_norm(x, &get(g, "w"), &get(g, "b"), 1e-6f, y);
  EXPECT_CLOSE(y, doubles(get(g, "layer_norm")));
  be->layer_norm(x, nullptr, nullptr, 1e-5f, y);
  EXPECT_CLOSE(y, doubles(get(g, "layer_norm_plain")));
  const Tensor& gx = get(g, "g");
  Tensor gy = poisoned(gx.shape());
  be->group_norm(gx, 4, &get(g, "gw"), &get(g, "gb"), 1e-6f, gy);
  EXPECT_CLOSE(gy, doubles(get(g, "group_norm")));
  be->group_norm(gx, 2, nullptr, nullptr, 1e-5f, gy);
  EXPECT_CLOSE(gy, doubles(get(g, "group_norm_plain")));
  const Tensor& q = get(g, "q");
  Tensor qy = poisoned(q.shape());
  be->l2_normalize(q, 1e-12f, &get(g, "head_scale"), qy);
  EXPECT_CLOSE(qy, doubles(get(g, "l2_normalize")));
}

TEST_F(CpuGoldenTest, Conv2d) {
  const auto g = load_golden("conv2d.txt");
  const Tensor& x = get(g, "x");
  struct Case {
    const char* name;
    int stride, pad;
    bool bias;
  };
  for (const Case& c : {Case{"k3s2p1", 2, 1, true}, Case{"k1s1p0", 1, 0, true}, Case{"k3s1p0", 1, 0, false},
                        Case{"k4x2s3p2", 3, 2, true}}) {
    const std::string n = c.name;
    const Tensor& expected = get(g, n + "_y");
    Tensor y = poisoned(expected.shape());
    be->conv2d(x, get(g, n + "_w"), c.bias ? &get(g, n + "_b") : nullptr, c.stride, c.pad, y);
    EXPECT_CLOSE(y, doubles(expected)) << n;
  }
}

TEST_F(CpuGoldenTest, RopeInfinityFormula) {
  const auto g = load_golden("rope.txt");
  const Tensor& x = get(g, "x");
  Tensor y = poisoned(x.shape());
  be->rope(x, get(g, "cos"), get(g, "sin"), y);
  EXPECT_CLOSE(y, doubles(get(g, "y")));
}
