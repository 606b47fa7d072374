#include "monitor/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "boost/math/special_functions/gamma.hpp"
#include "common/strings.h"

namespace osprey::monitor {
namespace {

// Floor division for a possibly negative numerator and a positive divisor.
int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

// AVX2 where the CPU has it (chosen once, at load): twice the lanes.
__attribute__((target_clones("avx2", "default"))) double KsExactPValue(int64_t m, int64_t n,
                                                                       int64_t h) {
  if (h <= 0 || m <= 0 || n <= 0) return 1.0;
  const int64_t limit = h * std::gcd(m, n);
  // A path is the merged order of the two samples: i steps from the first
  // (m rows), j from the second. It stays inside while |i*n - j*m| < limit.
  // P(i, j): the probability that a uniformly random path reaches (i, j)
  // without leaving; from (i, j) the next step is an i step with probability
  // (m - i) / (m + n - i - j). Probabilities never exceed 1, so nothing
  // overflows (unlike counting paths). Cells are visited by anti-diagonal
  // t = i + j: a diagonal depends on the previous one only, its cells share
  // one denominator and none depends on another, so the inner loop is a
  // chain-free multiply-add the compiler can vectorise.
  const int64_t total = m + n;
  // cells[d][i + 1] = P(i, t - i) for the diagonal t of parity d; index 0
  // and every cell outside the band stay 0.
  std::vector<double> prev(static_cast<size_t>(m) + 2, 0.0), cur(static_cast<size_t>(m) + 2, 0.0);
  prev[1] = 1.0;  // t = 0: (0, 0)
  int64_t prev_lo = 0, prev_hi = 0, cur_lo = 0, cur_hi = -1;
  for (int64_t t = 1; t <= total; ++t) {
    // Inside: |i * (m + n) - t * m| < limit, and 0 <= i <= m, 0 <= t - i <= n.
    int64_t lo = std::max<int64_t>({0, t - n, FloorDiv(t * m - limit, total) + 1});
    int64_t hi = std::min<int64_t>({m, t, FloorDiv(t * m + limit - 1, total)});
    if (lo > hi) return 1.0;  // every path leaves the band
    std::fill(cur.begin() + cur_lo + 1, cur.begin() + cur_hi + 2, 0.0);
    const double inv = 1.0 / static_cast<double>(total - t + 1);
    // From (i - 1, j): an i step, m - (i - 1) of m + n - (t - 1) left.
    // From (i, j - 1): a j step, n - (j - 1) left.
    const double* __restrict p = prev.data() + lo;
    double* __restrict c = cur.data() + lo + 1;
    const double left_i = static_cast<double>(m - lo + 1) * inv;
    const double left_j = static_cast<double>(n - (t - lo) + 1) * inv;
    const int count = static_cast<int>(hi - lo + 1);  // int: converts to double in SIMD
    for (int k = 0; k < count; ++k) {
      const double kd = static_cast<double>(k);
      c[k] = p[k] * (left_i - kd * inv) + p[k + 1] * (left_j + kd * inv);
    }
    cur_lo = lo;
    cur_hi = hi;
    std::swap(prev, cur);
    std::swap(prev_lo, cur_lo);
    std::swap(prev_hi, cur_hi);
  }
  (void)prev_lo;
  const double inside = prev[static_cast<size_t>(m) + 1];  // (m, n)
  return std::clamp(1.0 - inside, 0.0, 1.0);
}

absl::StatusOr<TestResult> KsTwoSampleSorted(std::span<const double> a, std::span<const double> b) {
  const int64_t n1 = static_cast<int64_t>(a.size()), n2 = static_cast<int64_t>(b.size());
  if (n1 == 0 || n2 == 0)
    return absl::InvalidArgumentError("the KS test needs two non-empty samples");
  if (a.size() > kMaxExactKsRows || b.size() > kMaxExactKsRows)
    return absl::InvalidArgumentError(StrCat("the KS test takes samples of at most ",
                                             kMaxExactKsRows, " rows (exact mode); got ", n1,
                                             " and ", n2));
  // max |F1 - F2| over every value, as the integer |c1*n2 - c2*n1| over n1*n2;
  // both ECDFs are read after all ties of a value.
  int64_t best = 0;
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    const double v = j >= b.size() || (i < a.size() && a[i] <= b[j]) ? a[i] : b[j];
    while (i < a.size() && a[i] == v) ++i;
    while (j < b.size() && b[j] == v) ++j;
    best = std::max(best, std::abs(static_cast<int64_t>(i) * n2 - static_cast<int64_t>(j) * n1));
  }
  const int64_t g = std::gcd(n1, n2);
  const int64_t h = best / g;  // the statistic in units of 1 / lcm(n1, n2)
  const int64_t lcm = n1 / g * n2;
  TestResult r;
  r.statistic = static_cast<double>(h) / static_cast<double>(lcm);
  r.p_value = KsExactPValue(n1, n2, h);
  return r;
}

absl::StatusOr<TestResult> KsTwoSample(std::span<const double> a, std::span<const double> b) {
  std::vector<double> sa(a.begin(), a.end()), sb(b.begin(), b.end());
  std::sort(sa.begin(), sa.end());
  std::sort(sb.begin(), sb.end());
  return KsTwoSampleSorted(sa, sb);
}

double ChiSquareSurvival(double statistic, double dof) {
  if (!(statistic > 0)) return 1.0;
  if (std::isinf(statistic)) return 0.0;
  return boost::math::gamma_q(dof / 2.0, statistic / 2.0);
}

TestResult ChiSquareCategories(std::span<const double> reference_counts,
                               std::span<const double> window_counts) {
  const size_t k = std::min(reference_counts.size(), window_counts.size());
  TestResult r;
  if (k < 2) return r;
  double rows[2] = {0, 0};
  std::vector<double> cols(k, 0.0);
  for (size_t c = 0; c < k; ++c) {
    rows[0] += reference_counts[c];
    rows[1] += window_counts[c];
    cols[c] = reference_counts[c] + window_counts[c];
  }
  const double total = rows[0] + rows[1];
  if (!(rows[0] > 0) || !(rows[1] > 0)) return r;
  const double dof = static_cast<double>(k - 1);
  double stat = 0;
  for (int row = 0; row < 2; ++row) {
    std::span<const double> observed = row == 0 ? reference_counts : window_counts;
    for (size_t c = 0; c < k; ++c) {
      const double expected = rows[row] * cols[c] / total;
      double o = observed[c];
      if (k == 2) {  // Yates' continuity correction (one degree of freedom)
        const double diff = expected - o;
        o += std::copysign(std::min(0.5, std::abs(diff)), diff);
        if (diff == 0) o = observed[c];
      }
      stat += (o - expected) * (o - expected) / expected;
    }
  }
  r.statistic = stat;
  r.p_value = ChiSquareSurvival(stat, dof);
  return r;
}

Decision DriftDecision(std::span<const double> p_values, double p_value) {
  Decision d;
  if (p_values.empty()) return d;
  d.min_p_value = *std::min_element(p_values.begin(), p_values.end());
  d.threshold = p_value / static_cast<double>(p_values.size());
  d.drift = d.min_p_value < d.threshold;
  return d;
}

namespace {

// Cholesky factor L (lower, row-major) of the symmetric matrix `a`; false
// when it is not positive definite.
bool Cholesky(const std::vector<double>& a, size_t f, std::vector<double>* l) {
  l->assign(f * f, 0.0);
  for (size_t i = 0; i < f; ++i) {
    for (size_t j = 0; j <= i; ++j) {
      double s = a[i * f + j];
      for (size_t k = 0; k < j; ++k) s -= (*l)[i * f + k] * (*l)[j * f + k];
      if (i == j) {
        // A pivot lost to rounding (relative to its diagonal) is a singular matrix.
        if (!(s > 1e-10 * std::abs(a[i * f + i])) || !std::isfinite(s)) return false;
        (*l)[i * f + i] = std::sqrt(s);
      } else {
        (*l)[i * f + j] = s / (*l)[j * f + j];
      }
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<MahalanobisModel> FitMahalanobis(std::span<const double> rows, size_t features) {
  if (features == 0 || rows.size() % features != 0)
    return absl::InvalidArgumentError(
        StrCat("the reference has ", rows.size(), " values, not rows of ", features, " features"));
  const size_t n = rows.size() / features;
  if (n < 2)
    return absl::InvalidArgumentError(
        StrCat("the outlier detector needs at least 2 reference rows, got ", n));
  MahalanobisModel m;
  m.features = features;
  m.mean.assign(features, 0.0);
  for (size_t r = 0; r < n; ++r)
    for (size_t c = 0; c < features; ++c) m.mean[c] += rows[r * features + c];
  for (double& v : m.mean) v /= static_cast<double>(n);
  std::vector<double> cov(features * features, 0.0);
  for (size_t r = 0; r < n; ++r)
    for (size_t i = 0; i < features; ++i) {
      const double di = rows[r * features + i] - m.mean[i];
      for (size_t j = 0; j <= i; ++j)
        cov[i * features + j] += di * (rows[r * features + j] - m.mean[j]);
    }
  double diag = 0;
  for (size_t i = 0; i < features; ++i) {
    for (size_t j = 0; j <= i; ++j) {
      cov[i * features + j] /= static_cast<double>(n - 1);
      cov[j * features + i] = cov[i * features + j];
    }
    diag += cov[i * features + i];
  }
  std::vector<double> l;
  double ridge = 0;
  const double base = std::max(1e-9, 1e-6 * diag / static_cast<double>(features));
  for (int attempt = 0;; ++attempt) {
    std::vector<double> a = cov;
    for (size_t i = 0; i < features; ++i) a[i * features + i] += ridge;
    if (Cholesky(a, features, &l)) break;
    if (attempt >= 30)
      return absl::InvalidArgumentError(
          "the reference's covariance cannot be regularised (non-finite values?)");
    ridge = ridge == 0 ? base : ridge * 10;
  }
  m.ridge = ridge;
  // inverse = L^-T L^-1: invert L (lower triangular), then multiply.
  std::vector<double> li(features * features, 0.0);
  for (size_t i = 0; i < features; ++i) {
    li[i * features + i] = 1.0 / l[i * features + i];
    for (size_t j = 0; j < i; ++j) {
      double s = 0;
      for (size_t k = j; k < i; ++k) s += l[i * features + k] * li[k * features + j];
      li[i * features + j] = -s / l[i * features + i];
    }
  }
  m.inverse.assign(features * features, 0.0);
  for (size_t i = 0; i < features; ++i)
    for (size_t j = 0; j < features; ++j) {
      double s = 0;
      for (size_t k = std::max(i, j); k < features; ++k)
        s += li[k * features + i] * li[k * features + j];
      m.inverse[i * features + j] = s;
    }
  return m;
}

double MahalanobisDistance(const MahalanobisModel& model, const double* row) {
  const size_t f = model.features;
  double total = 0;
  double d[64];
  std::vector<double> heap;
  double* diff = d;
  if (f > 64) {
    heap.resize(f);
    diff = heap.data();
  }
  for (size_t i = 0; i < f; ++i) diff[i] = row[i] - model.mean[i];
  for (size_t i = 0; i < f; ++i) {
    const double* inv = &model.inverse[i * f];
    double s = 0;
    for (size_t j = 0; j < f; ++j) s += inv[j] * diff[j];
    total += diff[i] * s;
  }
  return std::sqrt(std::max(0.0, total));
}

double Quantile(std::vector<double>& values, double q) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  const double t = pos - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * t;
}

}  // namespace osprey::monitor
