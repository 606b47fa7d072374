#include "monitor/detector.h"

#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "common/strings.h"
#include "gtest/gtest.h"

namespace osprey::monitor {
namespace {

using std::chrono::seconds;

// Rows of two features: a grid with a deterministic spread, shifted by `shift`.
std::vector<double> Rows(size_t n, double shift, size_t offset = 0) {
  std::vector<double> rows;
  for (size_t i = offset; i < offset + n; ++i) {
    rows.push_back(static_cast<double>((i * 37 + 5) % 101) / 10.0 + shift);
    rows.push_back(static_cast<double>((i * 53 + 1) % 7));  // categorical
  }
  return rows;
}

DetectorOptions Options(size_t window) {
  DetectorOptions o;
  o.model = "m";
  o.reference = Matrix{1000, 2, Rows(1000, 0)};
  o.window = window;
  o.categorical = {1};
  return o;
}

TEST(Detector, TestsEachWindowAgainstTheReference) {
  auto d = Detector::Start(Options(100));
  ASSERT_TRUE(d.ok()) << d.status();
  std::vector<double> same = Rows(100, 0, 3000), shifted = Rows(100, 3.0, 5000);
  (*d)->Observe(same.data(), 100, 2);
  ASSERT_TRUE((*d)->WaitForWindows(1, seconds(10)));
  EXPECT_NE((*d)->StateJson().find("\"drift\":false"), std::string::npos);
  (*d)->Observe(shifted.data(), 100, 2);
  ASSERT_TRUE((*d)->WaitForWindows(2, seconds(10)));
  const std::string state = (*d)->StateJson();
  EXPECT_NE(state.find("\"windows_tested\":2"), std::string::npos) << state;
  EXPECT_NE(state.find("\"windows_drifted\":1"), std::string::npos) << state;
  std::string metrics;
  (*d)->RenderMetrics(&metrics);
  EXPECT_NE(metrics.find("osprey_drift_detected{model=\"m\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("osprey_drift_p_value{model=\"m\",feature=\"1\"}"), std::string::npos);
}

TEST(Detector, CategoriesOnlyTheWindowHasAreCounted) {
  // Reference: feature 1 takes 0 and 1; the window also 2 (never seen).
  DetectorOptions o;
  o.model = "m";
  o.window = 6;
  o.categorical = {1};
  o.outlier_quantile = 0;
  o.reference = Matrix{8, 2, {0, 0, 1, 0, 2, 1, 3, 1, 4, 0, 5, 1, 6, 0, 7, 0}};
  auto d = Detector::Start(std::move(o));
  ASSERT_TRUE(d.ok()) << d.status();
  const double rows[] = {0, 2, 1, 2, 2, 0, 3, 1, 4, 2, 5, 2};
  (*d)->Observe(rows, 6, 2);
  ASSERT_TRUE((*d)->WaitForWindows(1, seconds(10)));
  // Categories 0, 1, 2: reference 5, 3, 0; window 1, 1, 4.
  const TestResult expected =
      ChiSquareCategories(std::vector<double>{5, 3, 0}, std::vector<double>{1, 1, 4});
  const std::string state = (*d)->StateJson();
  const std::string p = StrCat(",", expected.p_value, "],\"statistics\"");
  EXPECT_NE(state.find(p), std::string::npos) << state << " " << p;
}

TEST(Detector, SlidingWindowsWithAStride) {
  DetectorOptions o = Options(100);
  o.stride = 25;
  auto d = Detector::Start(std::move(o));
  ASSERT_TRUE(d.ok());
  std::vector<double> rows = Rows(200, 0, 7);
  for (size_t i = 0; i < 200; ++i) (*d)->Observe(&rows[i * 2], 1, 2);
  // Windows end at rows 100, 125, 150, 175 and 200.
  ASSERT_TRUE((*d)->WaitForWindows(5, seconds(10)));
  const std::string state = (*d)->StateJson();
  EXPECT_NE(state.find("\"index\":4,\"first_row\":100"), std::string::npos) << state;
}

TEST(Detector, OutlierScoresAndFullBufferDrops) {
  DetectorOptions o = Options(100);
  o.buffer_rows = 100;
  auto d = Detector::Start(std::move(o));
  ASSERT_TRUE(d.ok());
  const double inlier[] = {5.0, 3.0}, outlier[] = {500.0, 3.0};
  auto in = (*d)->Observe(inlier, 1, 2);
  auto out = (*d)->Observe(outlier, 1, 2);
  ASSERT_TRUE(in.has_value() && out.has_value());
  EXPECT_LT(*in, 2.0);
  EXPECT_GT(*out, 50.0);
  // Wrong width: not monitored.
  const double three[] = {1, 2, 3};
  EXPECT_FALSE((*d)->Observe(three, 1, 3).has_value());
  // More rows than the buffer holds at once are dropped, and counted.
  std::vector<double> many = Rows(150, 0);
  (*d)->Observe(many.data(), 150, 2);
  std::string metrics;
  (*d)->RenderMetrics(&metrics);
  EXPECT_NE(metrics.find("osprey_drift_rows_dropped_total{model=\"m\"} 150"), std::string::npos)
      << metrics;
  const std::string outliers = "osprey_outliers_total{model=\"m\"} ";
  const size_t at = metrics.find(outliers);
  ASSERT_NE(at, std::string::npos) << metrics;
  const int counted = std::atoi(metrics.c_str() + at + outliers.size());
  EXPECT_GE(counted, 1);  // the outlier, and the few reference-like rows past the 0.99 quantile
  EXPECT_LT(counted, 10);
  EXPECT_NE(metrics.find("osprey_drift_rows_mismatched_total{model=\"m\"} 1"), std::string::npos);
}

TEST(Detector, FirstRowsBecomeTheReference) {
  DetectorOptions o;
  o.model = "m";
  o.first_rows = 300;
  o.window = 100;
  auto d = Detector::Start(std::move(o));
  ASSERT_TRUE(d.ok()) << d.status();
  std::vector<double> rows = Rows(300, 0);
  EXPECT_FALSE((*d)->Observe(rows.data(), 300, 2).has_value());  // still collecting
  std::vector<double> shifted = Rows(100, 5.0, 900);
  (*d)->Observe(shifted.data(), 100, 2);
  ASSERT_TRUE((*d)->WaitForWindows(1, seconds(10)));
  EXPECT_NE((*d)->StateJson().find("\"drift\":true"), std::string::npos);
  EXPECT_NE((*d)->StateJson().find("\"reference_rows\":300"), std::string::npos);
}

// Rows holding NaN or an infinity are left out and counted (a NaN in a
// sorted sample would stall the tests); rows of no features are ignored.
TEST(Detector, RowsThatAreNotFiniteAreCountedNotTested) {
  auto d = Detector::Start(Options(100));
  ASSERT_TRUE(d.ok()) << d.status();
  std::vector<double> rows = Rows(102, 0, 3000);
  rows[0] = std::nan("");
  rows[3] = INFINITY;
  EXPECT_TRUE((*d)->Observe(rows.data(), 102, 2).has_value());
  EXPECT_FALSE((*d)->Observe(rows.data(), 1, 0).has_value());
  ASSERT_TRUE((*d)->WaitForWindows(1, seconds(10)));
  const std::string state = (*d)->StateJson();
  EXPECT_NE(state.find("\"rows_not_finite\":2"), std::string::npos) << state;
  EXPECT_NE(state.find("\"drift\":false"), std::string::npos) << state;
  // first:N: zero-width rows never set the feature count.
  DetectorOptions o;
  o.model = "m";
  o.first_rows = 10;
  o.window = 10;
  auto first = Detector::Start(std::move(o));
  ASSERT_TRUE(first.ok());
  (*first)->Observe(rows.data(), 5, 0);
  EXPECT_EQ((*first)->features(), 0u);
}

TEST(Detector, OptionErrorsNameTheOption) {
  struct Case {
    DetectorOptions options;
    const char* message;
  };
  DetectorOptions window = Options(1), p = Options(100), cat = Options(100), both = Options(100),
                  big = Options(100), nan_quantile = Options(100), nan_reference = Options(100);
  p.p_value = 1.5;
  nan_quantile.outlier_quantile = std::nan("");
  nan_reference.reference.values[2 * 7 + 1] = std::nan("");
  cat.categorical = {2};
  both.first_rows = 10;
  big.reference = Matrix{10001, 1, std::vector<double>(10001, 0.0)};
  const Case cases[] = {
      {window, "drift window"},
      {p, "p-value"},
      {cat, "categorical feature index 2"},
      {both, "not both"},
      {big, "at most 10000"},
      {nan_quantile, "outlier quantile must be in [0, 1), got nan"},
      {nan_reference, "the drift reference holds nan at row 7, feature 1"},
  };
  for (const Case& c : cases) {
    auto d = Detector::Start(c.options);
    ASSERT_FALSE(d.ok()) << c.message;
    EXPECT_NE(d.status().message().find(c.message), std::string_view::npos) << d.status();
  }
}

}  // namespace
}  // namespace osprey::monitor
