#pragma once

// The statistics of Osprey's built-in drift and outlier detection, as pure
// functions over plain arrays (no threads, no state, no I/O):
//
// - KsTwoSample: the two-sided two-sample Kolmogorov-Smirnov test, with the
//   p-value scipy.stats.ks_2samp gives in its default mode ('auto': the exact
//   null distribution, which Osprey computes for samples of at most
//   kMaxExactKsRows; larger samples are refused, see below).
// - ChiSquareCategories: the chi-squared test of independence on the 2 x K
//   table of category counts (reference row, window row) over the categories
//   seen in either, with Yates' correction when K = 2, as
//   scipy.stats.chi2_contingency computes it (alibi-detect's ChiSquareDrift).
// - DriftDecision: Bonferroni over the features (alibi-detect's KSDrift and
//   ChiSquareDrift with correction='bonferroni'): drift when the smallest
//   p-value is below p_value / features.
// - Mahalanobis: the reference's mean and inverse covariance (a singular
//   covariance is regularised), and the distance of a row, O(F^2).
// - Quantile: numpy's default (linear) quantile, for the outlier threshold.
//
// Cost: KsTwoSample is O((n1 + n2) log(n1 + n2)) for the statistic plus the
// exact distribution, O(max(n1,n2) * band) with band <= min(n1,n2) + 1; for a
// window of 1,000 and a reference of 10,000 rows that is a few milliseconds.
// Thread safety: every function is reentrant.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"

namespace osprey::monitor {

// scipy's 'auto' mode computes the exact distribution up to this many rows per
// sample and switches to an asymptotic one above; Osprey refuses larger
// samples instead of approximating differently.
inline constexpr size_t kMaxExactKsRows = 10000;

struct TestResult {
  double statistic = 0;
  double p_value = 1;
};

// Two-sided KS test of `a` against `b` (any order; NaN not allowed). Sorted
// copies are made; pass presorted data to KsTwoSampleSorted to skip that.
// InvalidArgument when a sample is empty or larger than kMaxExactKsRows.
absl::StatusOr<TestResult> KsTwoSample(std::span<const double> a, std::span<const double> b);
absl::StatusOr<TestResult> KsTwoSampleSorted(std::span<const double> a_sorted,
                                             std::span<const double> b_sorted);

// P(D >= h / lcm(m, n)) under the null hypothesis for samples of m and n
// rows: one minus the probability that a uniformly random monotone lattice
// path from (0,0) to (m,n) stays strictly inside |i*n - j*m| < h*gcd(m,n).
double KsExactPValue(int64_t m, int64_t n, int64_t h);

// Chi-squared test of the 2 x K contingency table {reference, window} (K
// category counts each, same order). Categories with no count in either row
// must be left out by the caller. K = 1 (one category): statistic 0, p 1.
TestResult ChiSquareCategories(std::span<const double> reference_counts,
                               std::span<const double> window_counts);

// Upper tail of the chi-squared distribution with `dof` degrees of freedom.
double ChiSquareSurvival(double statistic, double dof);

// Bonferroni: drift when min(p_values) < p_value / p_values.size().
struct Decision {
  bool drift = false;
  double min_p_value = 1;
  double threshold = 0;  // p_value / features
};
Decision DriftDecision(std::span<const double> p_values, double p_value);

// Mean and inverse covariance of the reference rows (row-major, `features`
// columns). The covariance is the sample covariance (n - 1); when it is not
// positive definite, a ridge of 1e-6 times its mean diagonal (at least 1e-9),
// growing tenfold until the Cholesky factorisation succeeds, is added.
struct MahalanobisModel {
  size_t features = 0;
  std::vector<double> mean;     // features
  std::vector<double> inverse;  // features x features, row-major
  double ridge = 0;             // what was added to the diagonal
};
absl::StatusOr<MahalanobisModel> FitMahalanobis(std::span<const double> rows, size_t features);
// sqrt((x - mean)^T inverse (x - mean)); `row` has model.features values.
double MahalanobisDistance(const MahalanobisModel& model, const double* row);

// numpy.quantile(values, q) (linear interpolation); `values` is sorted in
// place. q in [0, 1]; NaN for no values.
double Quantile(std::vector<double>& values, double q);

}  // namespace osprey::monitor
