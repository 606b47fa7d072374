#pragma once

// A model's drift and outlier detector, as the model server runs it:
//
//   request path --Observe(rows)--> bounded buffer --> detector thread
//                                   (full: rows dropped and counted)
//
// Observe copies the request's rows into a buffer of at most
// Options::buffer_rows rows under a mutex held for the copy only (the
// detector thread swaps the buffer out in O(1)); it never waits for the
// detector, and rows that do not fit are dropped and counted. It also scores
// each row against the reference with the Mahalanobis distance (a
// precomputed inverse covariance, O(F^2) per row) and counts outliers.
//
// The detector thread keeps the last `window` rows and, every `stride` rows
// once it has a full window, tests the window against the reference: the
// two-sample Kolmogorov-Smirnov test for continuous features, the
// chi-squared test of category counts for categorical ones, Bonferroni over
// the features (stats.h). A reference given as "first:N" is the first N rows
// observed; detection starts after them.
//
// State:   collecting reference (first:N only) --N rows--> ready
//          ready: no drift <--a window tested--> drift (the last window's verdict)
//
// Thread safety: every method may be called from any thread. Results are
// read (RenderMetrics, StateJson) under a mutex the request path never takes.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/prometheus.h"
#include "common/status.h"
#include "monitor/reference.h"
#include "monitor/stats.h"

namespace osprey::monitor {

struct DetectorOptions {
  std::string model;  // the label of its metrics
  // The reference rows; empty with first_rows > 0 ("first:N").
  Matrix reference;
  size_t first_rows = 0;
  size_t window = 500;  // rows per tested window (<= kMaxExactKsRows)
  size_t stride = 0;    // rows between tests; 0: `window` (windows do not overlap)
  double p_value = 0.05;
  std::vector<size_t> categorical;  // feature indices tested with chi-squared
  // Outliers: a row whose distance exceeds this quantile of the reference's
  // own distances. 0 turns the outlier detector off.
  double outlier_quantile = 0.99;
  size_t buffer_rows = 65536;  // rows waiting for the detector thread
  size_t history = 256;        // tested windows kept for StateJson
};

// One tested window.
struct WindowResult {
  uint64_t index = 0;      // 0, 1, ...
  uint64_t first_row = 0;  // sequence number of its first row (rows after the reference)
  bool drift = false;
  double threshold = 0;
  std::vector<double> p_values;    // per feature
  std::vector<double> statistics;  // per feature: KS D or chi-squared
  double seconds = 0;              // time the tests took
};

class Detector {
 public:
  // Fits the reference (when given) and starts the thread. InvalidArgument
  // naming the option (window, stride, p-value, categorical index, reference
  // size) when they cannot work together.
  static absl::StatusOr<std::unique_ptr<Detector>> Start(DetectorOptions options);
  ~Detector();  // stops the thread; rows still buffered are not tested
  Detector(const Detector&) = delete;
  Detector& operator=(const Detector&) = delete;

  // Request path. `rows` holds n rows of `features` values. Returns the
  // largest outlier score of the rows, or nullopt when there is none (the
  // reference is still being collected, outliers are off, or the rows have
  // the wrong number of features: counted as mismatched, not buffered).
  std::optional<double> Observe(const double* rows, size_t n, size_t features);

  // Prometheus families of this detector (HELP/TYPE lines included when
  // `headers`); several detectors render one after another with headers once.
  void RenderMetrics(std::string* out) const;
  // The configuration, counters, the current verdict and the tested windows
  // still kept (oldest first), as one JSON object.
  std::string StateJson() const;
  // True once `windows` windows have been tested; false at the deadline.
  bool WaitForWindows(uint64_t windows, std::chrono::milliseconds timeout) const;

  const DetectorOptions& options() const { return options_; }
  // Values per row: the reference's, or (first:N) the first rows'; 0 before any.
  size_t features() const { return features_.load(std::memory_order_relaxed); }

 private:
  explicit Detector(DetectorOptions options);
  absl::Status Fit(const Matrix& reference);  // on Start or the detector thread
  void Run();
  void Process(const std::vector<double>& rows, size_t n);
  void TestWindow();
  // Rows the detector thread needs before its next test (or the end of the
  // first:N reference). Detector thread only.
  size_t RowsUntilNextTest() const;

  DetectorOptions options_;
  size_t stride_ = 0;
  std::atomic<size_t> features_{0};  // 0 until known (first:N)

  // Set once by Fit, then read-only; `fitted_` publishes them.
  std::atomic<bool> fitted_{false};
  std::vector<std::vector<double>> sorted_reference_;  // per feature
  std::vector<std::vector<double>> categories_;        // per categorical feature: sorted values
  std::vector<std::vector<double>> category_counts_;   // reference counts, same order
  std::vector<bool> is_categorical_;
  size_t reference_rows_ = 0;
  std::optional<MahalanobisModel> mahalanobis_;
  double outlier_threshold_ = 0;

  // The request path's buffer.
  std::mutex buffer_mu_;
  std::condition_variable buffer_cv_;
  std::vector<double> buffer_;
  size_t buffered_rows_ = 0;
  // The detector thread sleeps until this many rows are buffered: what its
  // next test needs (capped at half the buffer).
  size_t wake_rows_ = 1;
  bool stopping_ = false;

  std::atomic<uint64_t> rows_seen_{0};
  std::atomic<uint64_t> rows_dropped_{0};
  std::atomic<uint64_t> rows_mismatched_{0};
  std::atomic<uint64_t> rows_not_finite_{0};
  std::atomic<uint64_t> outliers_{0};
  std::atomic<uint64_t> scored_{0};
  Histogram scores_;

  // The detector thread's own.
  std::vector<double> collected_;  // first:N rows so far
  std::vector<double> window_;     // ring of the last `window` rows, flattened
  size_t ring_next_ = 0;           // the row the next one overwrites
  size_t window_rows_ = 0;
  size_t since_test_ = 0;
  uint64_t sequence_ = 0;  // rows after the reference

  // Results.
  mutable std::mutex state_mu_;
  mutable std::condition_variable state_cv_;
  uint64_t windows_tested_ = 0;
  uint64_t windows_drifted_ = 0;
  bool drift_ = false;
  std::optional<WindowResult> last_;
  std::deque<WindowResult> history_;
  std::string fit_error_;

  std::thread thread_;
};

}  // namespace osprey::monitor
