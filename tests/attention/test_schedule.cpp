#include <gtest/gtest.h>

#include <cmath>

#include "attention/schedule.h"
#include "core/error.h"

using namespace sparvar;

namespace {
std::vector<int> sides(const ScaleSchedule& s, bool heights) {
  std::vector<int> out;
  for (const ScaleGrid& g : s.grids()) out.push_back(heights ? g.h : g.w);
  return out;
}
}  // namespace

TEST(Schedule, InfinitySquare1M) {
  ScaleSchedule s = infinity_schedule(1.0, PixelBudget::M1);
  EXPECT_EQ(sides(s, true), (std::vector<int>{1, 2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64}));
  EXPECT_EQ(sides(s, false), sides(s, true));
  EXPECT_EQ(s.total_tokens(), 10521);
  EXPECT_EQ(s.offset(0), 0);
  EXPECT_EQ(s.offset(12), 10521 - 4096);
  EXPECT_EQ(s.offset(13), 10521);
  EXPECT_EQ(s.describe().substr(0, 11), "1x1 2x2 4x4");
  EXPECT_THROW(s.grid(13), Error);
  EXPECT_THROW(s.offset(14), Error);
}

TEST(Schedule, BudgetsArePrefixesOfTheLadder) {
  for (double r : infinity_aspect_ratios()) {
    ScaleSchedule full = infinity_schedule(r, PixelBudget::M1);
    ASSERT_EQ(full.num_scales(), 13);
    const int lengths[] = {7, 10, 12};
    const PixelBudget budgets[] = {PixelBudget::M0_06, PixelBudget::M0_25, PixelBudget::M0_60};
    for (int i = 0; i < 3; ++i) {
      ScaleSchedule s = infinity_schedule(r, budgets[i]);
      ASSERT_EQ(s.num_scales(), lengths[i]);
      for (int k = 0; k < lengths[i]; ++k) EXPECT_EQ(s.grid(k), full.grid(k));
    }
    // The final grid has the template's aspect ratio, and the grids grow monotonically.
    const ScaleGrid last = full.grid(12);
    EXPECT_NEAR(double(last.h) / last.w, r, 0.01) << full.name();
    for (int k = 1; k < 13; ++k) EXPECT_GT(full.tokens(k), full.tokens(k - 1)) << full.name();
    EXPECT_EQ(full.grid(0), (ScaleGrid{1, 1}));
  }
}

TEST(Schedule, WideTemplatesAreTransposedTallOnes) {
  std::vector<double> ratios = infinity_aspect_ratios();
  ASSERT_EQ(ratios.size(), 15u);
  EXPECT_NEAR(ratios.front(), 1.0 / 3.0, 1e-9);
  EXPECT_NEAR(ratios.back(), 3.0, 1e-9);
  for (double r : ratios) {
    if (r <= 1.0) continue;
    ScaleSchedule tall = infinity_schedule(r, PixelBudget::M1);
    ScaleSchedule wide = infinity_schedule(1.0 / r, PixelBudget::M1);
    EXPECT_EQ(sides(tall, true), sides(wide, false));
    EXPECT_EQ(sides(tall, false), sides(wide, true));
  }
  // Spot values of the official table (h, w).
  EXPECT_EQ(infinity_schedule(3.0, PixelBudget::M1).grid(12), (ScaleGrid{111, 37}));
  EXPECT_EQ(infinity_schedule(0.75, PixelBudget::M1).grid(12), (ScaleGrid{54, 72}));
  EXPECT_EQ(infinity_schedule(1.25, PixelBudget::M1).grid(3), (ScaleGrid{5, 4}));
  EXPECT_EQ(infinity_schedule(0.5, PixelBudget::M0_25).grid(9), (ScaleGrid{23, 46}));
  EXPECT_EQ(infinity_schedule(1.0, PixelBudget::M0_06).grid(6), (ScaleGrid{16, 16}));
  // Official names of inverse templates are truncated (0.666, 0.571): those spellings work too.
  EXPECT_EQ(infinity_schedule(0.666, PixelBudget::M1).grid(12), (ScaleGrid{52, 78}));
  EXPECT_EQ(infinity_schedule(0.571, PixelBudget::M1).grid(12), (ScaleGrid{48, 84}));
}

TEST(Schedule, LookupErrorsListTheSupportedValues) {
  try {
    infinity_schedule(1.1, PixelBudget::M1);
    FAIL() << "1.1 is no template";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("1.1000"), std::string::npos) << m;
    EXPECT_NE(m.find("0.333"), std::string::npos) << m;
    EXPECT_NE(m.find("1.333"), std::string::npos) << m;
    EXPECT_NE(m.find("3.000"), std::string::npos) << m;
  }
  EXPECT_THROW(pixel_budget_from_name("2M"), Error);
  EXPECT_EQ(pixel_budget_from_name("0.25M"), PixelBudget::M0_25);
  EXPECT_EQ(pixel_budget_from_name("0.6M"), PixelBudget::M0_60);
  EXPECT_EQ(pixel_budget_name(PixelBudget::M1), "1M");
  EXPECT_DOUBLE_EQ(nearest_infinity_aspect_ratio(1.1), 1.0);
  EXPECT_DOUBLE_EQ(nearest_infinity_aspect_ratio(1.2), 1.25);
  EXPECT_NEAR(nearest_infinity_aspect_ratio(0.3), 1.0 / 3.0, 1e-12);
  EXPECT_THROW(nearest_infinity_aspect_ratio(-1.0), Error);
  EXPECT_THROW(ScaleSchedule("x", {}), Error);
  EXPECT_THROW(ScaleSchedule("x", {{1, 1}, {0, 3}}), Error);
}

TEST(Schedule, Var) {
  ScaleSchedule s = var_schedule(256);
  EXPECT_EQ(sides(s, true), (std::vector<int>{1, 2, 3, 4, 5, 6, 8, 10, 13, 16}));
  EXPECT_EQ(s.total_tokens(), 680);
  EXPECT_EQ(var_schedule(512).total_tokens(), 2240);
  EXPECT_THROW(var_schedule(1024), Error);
}
