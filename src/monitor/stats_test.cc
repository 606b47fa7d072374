#include "monitor/stats.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace osprey::monitor {
namespace {

// The expected numbers come from scipy 1.10 and numpy 1.26:
// tests/fixtures/drift_expected.py prints these tables.

struct SampleSpec {
  int64_t n, mult, add, mod;
  double scale, shift;
};

// ((i * mult + add) % mod) * scale + shift, as the fixture script computes it.
std::vector<double> Sample(const SampleSpec& s) {
  std::vector<double> v(static_cast<size_t>(s.n));
  for (int64_t i = 0; i < s.n; ++i)
    v[static_cast<size_t>(i)] =
        static_cast<double>((i * s.mult + s.add) % s.mod) * s.scale + s.shift;
  return v;
}

TEST(KsTwoSample, MatchesScipyKs2sampDefaultMode) {
  struct Case {
    SampleSpec a, b;
    double statistic, p_value;
  };
  const Case cases[] = {
      {{5, 3, 1, 7, 1.0, 0.0}, {7, 5, 2, 11, 1.0, 0.0}, 0.37142857142857144, 0.7373737373737375},
      {{20, 7, 3, 97, 0.01, 0.0}, {20, 11, 5, 89, 0.01, 0.0}, 0.1, 0.9999923931635496},
      {{20, 7, 3, 97, 0.01, 0.0}, {20, 11, 5, 89, 0.01, 0.3}, 0.5, 0.012298612583953778},
      {{30, 13, 0, 10, 1.0, 0.0}, {45, 17, 4, 10, 1.0, 0.0}, 0.022222222222222223, 1.0},
      {{100, 37, 1, 1000, 0.001, 0.0},
       {37, 101, 7, 1000, 0.001, 0.05},
       0.07945945945945945,
       0.9883971471369227},
      {{1000, 7919, 3, 10007, 0.0001, 0.0},
       {200, 104729, 11, 10009, 0.0001, 0.0},
       0.016,
       0.9999999999789521},
      {{1000, 7919, 3, 10007, 0.0001, 0.0},
       {200, 104729, 11, 10009, 0.0001, 0.08},
       0.089,
       0.13706041252984388},
      {{5000, 7919, 3, 10007, 0.0001, 0.0},
       {500, 104729, 11, 10009, 0.0001, 0.02},
       0.024,
       0.9513938943468405},
      {{10000, 7919, 3, 10007, 0.0001, 0.0},
       {1000, 104729, 11, 10009, 0.0001, 0.01},
       0.0116,
       0.9996228991415658},
      {{300, 31, 2, 300, 1.0, 0.0},
       {300, 37, 9, 300, 1.0, 25.0},
       0.08333333333333333,
       0.2488247843957968},
      {{64, 5, 0, 4, 1.0, 0.0}, {48, 3, 1, 4, 1.0, 0.0}, 0.0, 1.0},
      {{200, 7, 1, 101, 1.0, 0.0}, {150, 11, 3, 103, 1.0, 40.0}, 0.42, 4.776486544348525e-14},
      {{500, 7, 1, 500, 1.0, 0.0}, {500, 11, 3, 500, 1.0, 60.0}, 0.12, 0.001478117952199697},
      {{2000, 7919, 3, 10007, 0.0001, 0.0},
       {300, 104729, 11, 10009, 0.0001, 0.3},
       0.30366666666666664,
       8.70474514115621e-22},
  };
  for (const Case& c : cases) {
    auto r = KsTwoSample(Sample(c.a), Sample(c.b));
    ASSERT_TRUE(r.ok()) << r.status();
    SCOPED_TRACE(testing::Message() << "n1=" << c.a.n << " n2=" << c.b.n);
    EXPECT_NEAR(r->statistic, c.statistic, 1e-12);
    EXPECT_NEAR(r->p_value, c.p_value, 1e-9);
    // Symmetric in its samples.
    auto swapped = KsTwoSample(Sample(c.b), Sample(c.a));
    ASSERT_TRUE(swapped.ok());
    EXPECT_NEAR(swapped->p_value, r->p_value, 1e-12);
  }
}

TEST(KsTwoSample, RefusesEmptyAndOversizedSamples) {
  std::vector<double> one = {1.0}, none;
  std::vector<double> big(kMaxExactKsRows + 1, 0.0);
  EXPECT_EQ(KsTwoSample(one, none).status().code(), absl::StatusCode::kInvalidArgument);
  auto r = KsTwoSample(big, one);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("10000"), std::string_view::npos);
}

TEST(KsExactPValue, EdgeCases) {
  EXPECT_EQ(KsExactPValue(10, 10, 0), 1.0);
  // D = 1 for n = m: only the two extreme orders of 2n!/(n!n!) paths.
  EXPECT_NEAR(KsExactPValue(3, 3, 3), 2.0 / 20.0, 1e-15);
  EXPECT_NEAR(KsExactPValue(1, 1, 1), 1.0, 1e-15);
}

TEST(ChiSquareCategories, MatchesScipyChi2Contingency) {
  struct Case {
    std::vector<double> reference, window;
    double statistic, p_value;
  };
  const Case cases[] = {
      {{50, 50}, {30, 70}, 7.520833333333334, 0.006098945931214352},
      {{10, 20, 30}, {12, 18, 35}, 0.4724526485660098, 0.7896019476138597},
      {{100, 0, 50}, {80, 20, 50}, 22.22222222222222, 1.4945338524781447e-05},
      {{5, 5}, {5, 5}, 0.0, 1.0},
      {{500, 300, 150, 50}, {100, 100, 100, 200}, 337.5, 7.588645344872774e-73},
      {{1000, 1}, {999, 3}, 0.24950081106518235, 0.6174267912186975},
  };
  for (const Case& c : cases) {
    TestResult r = ChiSquareCategories(c.reference, c.window);
    SCOPED_TRACE(testing::Message() << "categories=" << c.reference.size());
    EXPECT_NEAR(r.statistic, c.statistic, 1e-9 * std::max(1.0, c.statistic));
    EXPECT_NEAR(r.p_value, c.p_value, 1e-12);
    if (c.p_value > 0) {
      EXPECT_NEAR(r.p_value / c.p_value, 1.0, 1e-7);
    }
  }
  // One category: nothing to compare.
  TestResult single = ChiSquareCategories(std::vector<double>{4}, std::vector<double>{9});
  EXPECT_EQ(single.p_value, 1.0);
}

TEST(DriftDecision, BonferroniOverFeatures) {
  struct Case {
    std::vector<double> p_values;
    double p;
    bool drift;
    double threshold;
  };
  const Case cases[] = {
      {{0.5, 0.2, 0.03}, 0.05, false, 0.05 / 3},
      {{0.5, 0.2, 0.01}, 0.05, true, 0.05 / 3},
      {{0.04}, 0.05, true, 0.05},
      {{0.05}, 0.05, false, 0.05},  // strictly below
      {{0.9, 0.001, 0.9, 0.9}, 0.01, true, 0.0025},
      {{}, 0.05, false, 0},
  };
  for (const Case& c : cases) {
    Decision d = DriftDecision(c.p_values, c.p);
    EXPECT_EQ(d.drift, c.drift);
    EXPECT_DOUBLE_EQ(d.threshold, c.threshold);
  }
}

std::vector<double> Reference() {
  std::vector<double> a = Sample({200, 37, 1, 101, 0.1, 0.0});
  std::vector<double> b = Sample({200, 53, 7, 103, 0.05, 1.0});
  std::vector<double> c = Sample({200, 71, 3, 107, 0.2, -2.0});
  std::vector<double> rows;
  for (size_t i = 0; i < 200; ++i) {
    rows.push_back(a[i]);
    rows.push_back(b[i]);
    rows.push_back(c[i] + 0.5 * a[i]);
  }
  return rows;
}

TEST(Mahalanobis, MatchesScipyDistanceWithNumpyInverseCovariance) {
  auto m = FitMahalanobis(Reference(), 3);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->ridge, 0.0);
  struct Case {
    std::vector<double> row;
    double distance;
  };
  const Case cases[] = {
      {{0.0, 0.0, 0.0}, 3.124585094947658},
      {{5.0, 3.5, 8.0}, 0.5255132771160523},
      {{50.0, -3.0, 0.0}, 17.828307320737213},
  };
  for (const Case& c : cases) EXPECT_NEAR(MahalanobisDistance(*m, c.row.data()), c.distance, 1e-9);
}

TEST(Mahalanobis, QuantileOfReferenceScoresMatchesNumpy) {
  const std::vector<double> rows = Reference();
  auto m = FitMahalanobis(rows, 3);
  ASSERT_TRUE(m.ok());
  std::vector<double> scores;
  for (size_t r = 0; r < 200; ++r) scores.push_back(MahalanobisDistance(*m, &rows[r * 3]));
  struct Case {
    double q, value;
  };
  const Case cases[] = {
      {0.5, 1.6932304048879288},
      {0.9, 2.2119071802334056},
      {0.99, 2.63323313865009},
  };
  for (const Case& c : cases) EXPECT_NEAR(Quantile(scores, c.q), c.value, 1e-9);
}

TEST(Mahalanobis, SingularCovarianceIsRegularised) {
  // The third feature is the sum of the first two: rank 2.
  std::vector<double> rows;
  for (int i = 0; i < 50; ++i) {
    double x = i % 7, y = (i * 3) % 11;
    rows.insert(rows.end(), {x, y, x + y});
  }
  auto m = FitMahalanobis(rows, 3);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_GT(m->ridge, 0.0);
  const double on_plane[] = {3, 5, 8}, off_plane[] = {3, 5, 20};
  EXPECT_LT(MahalanobisDistance(*m, on_plane), 5.0);
  EXPECT_GT(MahalanobisDistance(*m, off_plane), 100.0);
  // A constant feature too.
  std::vector<double> constant = {1, 0, 2, 0, 3, 0};
  EXPECT_TRUE(FitMahalanobis(constant, 2).ok());
  EXPECT_FALSE(FitMahalanobis(std::vector<double>{1, 2}, 2).ok());  // one row
}

}  // namespace
}  // namespace osprey::monitor
