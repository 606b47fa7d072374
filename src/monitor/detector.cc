#include "monitor/detector.h"

#include <algorithm>
#include <cmath>

#include "common/json_writer.h"
#include "common/logging.h"
#include "common/strings.h"

namespace osprey::monitor {
namespace {

// Outlier scores (Mahalanobis distances) are unitless; the histogram's
// bounds cover in-distribution rows (about sqrt(F)) to far outliers.
constexpr double kScoreBounds[] = {0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 20, 50, 100};

using prometheus::LabelValue;

}  // namespace

Detector::Detector(DetectorOptions options) : options_(std::move(options)), scores_(kScoreBounds) {
  stride_ = options_.stride == 0 ? options_.window : options_.stride;
}

absl::StatusOr<std::unique_ptr<Detector>> Detector::Start(DetectorOptions options) {
  if (options.window < 2 || options.window > kMaxExactKsRows)
    return absl::InvalidArgumentError(
        StrCat("drift window must be 2 to ", kMaxExactKsRows, " rows, got ", options.window));
  if (!(options.p_value > 0 && options.p_value < 1))
    return absl::InvalidArgumentError(
        StrCat("drift p-value must be between 0 and 1, got ", options.p_value));
  if (!(options.outlier_quantile >= 0 && options.outlier_quantile < 1))
    return absl::InvalidArgumentError(
        StrCat("outlier quantile must be in [0, 1), got ", options.outlier_quantile));
  const bool given = options.reference.rows > 0;
  if (given == (options.first_rows > 0))
    return absl::InvalidArgumentError("give the drift reference as rows or as first:N, not both");
  if (options.first_rows > kMaxExactKsRows || options.reference.rows > kMaxExactKsRows)
    return absl::InvalidArgumentError(
        StrCat("drift reference has ", std::max(options.first_rows, options.reference.rows),
               " rows; at most ", kMaxExactKsRows, " (the exact KS test's range)"));
  if (options.first_rows == 1 || options.reference.rows == 1)
    return absl::InvalidArgumentError("drift reference needs at least 2 rows");
  options.buffer_rows = std::max(options.buffer_rows, options.window);
  std::unique_ptr<Detector> d(new Detector(std::move(options)));
  if (given) {
    const Matrix reference = std::move(d->options_.reference);
    d->options_.reference = Matrix{};
    OSPREY_RETURN_IF_ERROR(d->Fit(reference));
  }
  d->wake_rows_ =
      std::max<size_t>(1, std::min(d->RowsUntilNextTest(), d->options_.buffer_rows / 2));
  d->thread_ = std::thread([p = d.get()] { p->Run(); });
  return d;
}

Detector::~Detector() {
  {
    std::lock_guard<std::mutex> lock(buffer_mu_);
    stopping_ = true;
  }
  buffer_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::Status Detector::Fit(const Matrix& reference) {
  const size_t f = reference.cols;
  if (f == 0) return absl::InvalidArgumentError("the drift reference has no features");
  for (size_t i = 0; i < reference.values.size(); ++i)
    if (!std::isfinite(reference.values[i]))
      return absl::InvalidArgumentError(StrCat("the drift reference holds ", reference.values[i],
                                               " at row ", i / f, ", feature ", i % f,
                                               "; every value must be a finite number"));
  for (size_t c : options_.categorical)
    if (c >= f)
      return absl::InvalidArgumentError(StrCat(
          "categorical feature index ", c, " is out of range: the reference has ", f, " features"));
  is_categorical_.assign(f, false);
  for (size_t c : options_.categorical) is_categorical_[c] = true;
  sorted_reference_.assign(f, {});
  categories_.assign(f, {});
  category_counts_.assign(f, {});
  for (size_t c = 0; c < f; ++c) {
    std::vector<double> col(reference.rows);
    for (size_t r = 0; r < reference.rows; ++r) col[r] = reference.values[r * f + c];
    std::sort(col.begin(), col.end());
    if (is_categorical_[c]) {
      for (size_t i = 0; i < col.size();) {
        size_t j = i;
        while (j < col.size() && col[j] == col[i]) ++j;
        categories_[c].push_back(col[i]);
        category_counts_[c].push_back(static_cast<double>(j - i));
        i = j;
      }
    }
    sorted_reference_[c] = std::move(col);
  }
  reference_rows_ = reference.rows;
  if (options_.outlier_quantile > 0) {
    auto fitted = FitMahalanobis(reference.values, f);
    if (!fitted.ok()) return fitted.status();
    std::vector<double> scores(reference.rows);
    for (size_t r = 0; r < reference.rows; ++r)
      scores[r] = MahalanobisDistance(*fitted, &reference.values[r * f]);
    outlier_threshold_ = Quantile(scores, options_.outlier_quantile);
    mahalanobis_ = *std::move(fitted);
  }
  features_.store(f, std::memory_order_relaxed);
  fitted_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

std::optional<double> Detector::Observe(const double* rows, size_t n, size_t features) {
  if (n == 0 || features == 0) return std::nullopt;
  // A row holding NaN or an infinity (a missing value, to a tree model) has
  // no place in a KS or chi-squared test or a distance: it is left out, counted.
  std::vector<double> finite;
  for (size_t i = 0; i < n * features; ++i) {
    if (std::isfinite(rows[i])) continue;
    finite.reserve(n * features);
    for (size_t r = 0; r < n; ++r) {
      const double* row = rows + r * features;
      if (std::all_of(row, row + features, [](double v) { return std::isfinite(v); }))
        finite.insert(finite.end(), row, row + features);
    }
    rows_not_finite_.fetch_add(n - finite.size() / features, std::memory_order_relaxed);
    n = finite.size() / features;
    rows = finite.data();
    if (n == 0) return std::nullopt;
    break;
  }
  size_t expected = features_.load(std::memory_order_relaxed);
  if (expected == 0) {
    // first:N and nothing seen yet: the first rows set the feature count.
    features_.compare_exchange_strong(expected, features, std::memory_order_relaxed);
    expected = features_.load(std::memory_order_relaxed);
  }
  if (features != expected) {
    rows_mismatched_.fetch_add(n, std::memory_order_relaxed);
    return std::nullopt;
  }
  rows_seen_.fetch_add(n, std::memory_order_relaxed);
  // Scored only against a reference fitted before these rows came: the rows
  // that complete a first:N reference are never scored against themselves
  // (whether the detector thread fits it before this call returns or not).
  const bool fitted = fitted_.load(std::memory_order_acquire);
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(buffer_mu_);
    if (buffered_rows_ + n > options_.buffer_rows) {
      rows_dropped_.fetch_add(n, std::memory_order_relaxed);
    } else {
      buffer_.insert(buffer_.end(), rows, rows + n * features);
      buffered_rows_ += n;
    }
    // The detector thread is woken only when it has something to do: a wake
    // per request would cost the request path a context switch each.
    wake = buffered_rows_ >= wake_rows_;
  }
  if (wake) buffer_cv_.notify_one();
  if (!fitted || !mahalanobis_.has_value()) return std::nullopt;
  double worst = 0;
  uint64_t outliers = 0;
  for (size_t r = 0; r < n; ++r) {
    const double score = MahalanobisDistance(*mahalanobis_, rows + r * features);
    scores_.Observe(score);
    if (score > outlier_threshold_) ++outliers;
    worst = r == 0 ? score : std::max(worst, score);
  }
  scored_.fetch_add(n, std::memory_order_relaxed);
  if (outliers > 0) outliers_.fetch_add(outliers, std::memory_order_relaxed);
  return worst;
}

void Detector::Run() {
  std::vector<double> taken;
  for (;;) {
    size_t n = 0;
    {
      std::unique_lock<std::mutex> lock(buffer_mu_);
      buffer_cv_.wait(lock, [this] { return stopping_ || buffered_rows_ >= wake_rows_; });
      if (stopping_) return;
      taken.clear();
      taken.swap(buffer_);
      n = buffered_rows_;
      buffered_rows_ = 0;
    }
    Process(taken, n);
    const size_t needed = RowsUntilNextTest();
    std::lock_guard<std::mutex> lock(buffer_mu_);
    wake_rows_ = std::max<size_t>(1, std::min(needed, options_.buffer_rows / 2));
  }
}

size_t Detector::RowsUntilNextTest() const {
  if (!fitted_.load(std::memory_order_relaxed)) {
    const size_t f = features_.load(std::memory_order_relaxed);
    return options_.first_rows - (f == 0 ? 0 : collected_.size() / f);
  }
  const size_t to_fill = options_.window - window_rows_;
  const size_t to_stride = since_test_ >= stride_ ? 0 : stride_ - since_test_;
  return std::max(to_fill, to_stride);
}

void Detector::Process(const std::vector<double>& rows, size_t n) {
  const size_t f = features_.load(std::memory_order_relaxed);
  for (size_t r = 0; r < n; ++r) {
    const double* row = &rows[r * f];
    if (!fitted_.load(std::memory_order_relaxed)) {
      collected_.insert(collected_.end(), row, row + f);
      if (collected_.size() / f == options_.first_rows) {
        Matrix m{options_.first_rows, f, std::move(collected_)};
        collected_.clear();
        absl::Status fitted = Fit(m);
        if (!fitted.ok()) {
          OSPREY_LOG(kError) << "drift detector of model " << options_.model << ": "
                             << fitted.message();
          std::lock_guard<std::mutex> lock(state_mu_);
          fit_error_ = std::string(fitted.message());
          return;
        }
      }
      continue;
    }
    if (!fit_error_.empty()) return;
    // A ring of the last `window` rows: the tests need their values, not
    // their order.
    if (window_.size() != options_.window * f) window_.assign(options_.window * f, 0.0);
    std::copy(row, row + f, window_.begin() + static_cast<std::ptrdiff_t>(ring_next_ * f));
    ring_next_ = ring_next_ + 1 == options_.window ? 0 : ring_next_ + 1;
    ++sequence_;
    if (window_rows_ < options_.window) ++window_rows_;
    ++since_test_;
    if (window_rows_ == options_.window && since_test_ >= stride_) {
      since_test_ = 0;
      TestWindow();
    }
  }
}

void Detector::TestWindow() {
  const auto start = std::chrono::steady_clock::now();
  const size_t f = features_.load(std::memory_order_relaxed);
  const size_t w = window_rows_;
  WindowResult result;
  result.first_row = sequence_ - w;
  result.p_values.resize(f);
  result.statistics.resize(f);
  std::vector<double> col(w);
  for (size_t c = 0; c < f; ++c) {
    for (size_t r = 0; r < w; ++r) col[r] = window_[r * f + c];
    std::sort(col.begin(), col.end());
    TestResult t;
    if (is_categorical_[c]) {
      // Categories of the reference and of the window, counted in each.
      std::vector<double> cats = categories_[c];
      std::vector<double> ref = category_counts_[c];
      std::vector<double> win(cats.size(), 0.0);
      for (size_t i = 0; i < w;) {
        size_t j = i;
        while (j < w && col[j] == col[i]) ++j;
        auto at = std::lower_bound(cats.begin(), cats.end(), col[i]);
        const size_t k = static_cast<size_t>(at - cats.begin());
        if (at == cats.end() || *at != col[i]) {
          cats.insert(at, col[i]);
          ref.insert(ref.begin() + static_cast<std::ptrdiff_t>(k), 0.0);
          win.insert(win.begin() + static_cast<std::ptrdiff_t>(k), 0.0);
        }
        win[k] += static_cast<double>(j - i);
        i = j;
      }
      t = ChiSquareCategories(ref, win);
    } else {
      auto ks = KsTwoSampleSorted(sorted_reference_[c], col);
      if (ks.ok()) t = *ks;  // sizes are checked at Start
    }
    result.p_values[c] = t.p_value;
    result.statistics[c] = t.statistic;
  }
  const Decision d = DriftDecision(result.p_values, options_.p_value);
  result.drift = d.drift;
  result.threshold = d.threshold;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    result.index = windows_tested_++;
    if (d.drift) ++windows_drifted_;
    drift_ = d.drift;
    last_ = result;
    history_.push_back(std::move(result));
    while (history_.size() > options_.history) history_.pop_front();
  }
  state_cv_.notify_all();
}

bool Detector::WaitForWindows(uint64_t windows, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(state_mu_);
  return state_cv_.wait_for(lock, timeout, [&] { return windows_tested_ >= windows; });
}

void Detector::RenderMetrics(std::string* out) const {
  const std::string label = StrCat("model=\"", LabelValue(options_.model), "\"");
  auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
    prometheus::AppendFamily(name, type, help, out);
  };
  std::lock_guard<std::mutex> lock(state_mu_);
  family("osprey_drift_p_value", "gauge",
         "p-value of the last tested window, per feature (KS or chi-squared).");
  if (last_.has_value())
    for (size_t c = 0; c < last_->p_values.size(); ++c)
      StrAppend(out, "osprey_drift_p_value{", label, ",feature=\"", c, "\"} ", last_->p_values[c],
                "\n");
  family("osprey_drift_detected", "gauge",
         "1 when the last tested window drifted from the reference (Bonferroni).");
  StrAppend(out, "osprey_drift_detected{", label, "} ", drift_ ? 1 : 0, "\n");
  family("osprey_drift_windows_total", "counter", "Windows of recent inputs tested for drift.");
  StrAppend(out, "osprey_drift_windows_total{", label, "} ", windows_tested_, "\n");
  family("osprey_drift_windows_drifted_total", "counter", "Tested windows that drifted.");
  StrAppend(out, "osprey_drift_windows_drifted_total{", label, "} ", windows_drifted_, "\n");
  family("osprey_drift_rows_total", "counter", "Input rows handed to the detector.");
  StrAppend(out, "osprey_drift_rows_total{", label, "} ", rows_seen_.load(), "\n");
  family("osprey_drift_rows_dropped_total", "counter",
         "Input rows the detector's full buffer dropped.");
  StrAppend(out, "osprey_drift_rows_dropped_total{", label, "} ", rows_dropped_.load(), "\n");
  family("osprey_drift_rows_mismatched_total", "counter",
         "Input rows not monitored: their feature count differs from the reference's.");
  StrAppend(out, "osprey_drift_rows_mismatched_total{", label, "} ", rows_mismatched_.load(), "\n");
  family("osprey_drift_rows_not_finite_total", "counter",
         "Input rows not monitored: they hold NaN or an infinity.");
  StrAppend(out, "osprey_drift_rows_not_finite_total{", label, "} ", rows_not_finite_.load(), "\n");
  if (options_.outlier_quantile > 0 && fitted_.load(std::memory_order_acquire)) {
    family("osprey_outliers_total", "counter",
           "Rows whose Mahalanobis distance exceeds the reference's outlier quantile.");
    StrAppend(out, "osprey_outliers_total{", label, "} ", outliers_.load(), "\n");
    family("osprey_outlier_score", "histogram",
           "Mahalanobis distance of each row to the reference.");
    scores_.Render("osprey_outlier_score", label, out);
    family("osprey_outlier_threshold", "gauge", "Outlier score threshold (reference quantile).");
    StrAppend(out, "osprey_outlier_threshold{", label, "} ", outlier_threshold_, "\n");
  }
}

std::string Detector::StateJson() const {
  std::string out;
  JsonWriter w(&out);
  const bool fitted = fitted_.load(std::memory_order_acquire);
  std::lock_guard<std::mutex> lock(state_mu_);
  w.BeginObject();
  w.Key("model").String(options_.model);
  w.Key("ready").Bool(fitted && fit_error_.empty());
  if (!fit_error_.empty()) w.Key("error").String(fit_error_);
  w.Key("features").Uint(features_.load());
  w.Key("reference_rows").Uint(fitted ? reference_rows_ : 0);
  w.Key("window").Uint(options_.window);
  w.Key("stride").Uint(stride_);
  w.Key("p_value").Double(options_.p_value);
  w.Key("categorical").BeginArray();
  for (size_t c : options_.categorical) w.Uint(c);
  w.EndArray();
  w.Key("drift").Bool(drift_);
  w.Key("windows_tested").Uint(windows_tested_);
  w.Key("windows_drifted").Uint(windows_drifted_);
  w.Key("rows_seen").Uint(rows_seen_.load());
  w.Key("rows_dropped").Uint(rows_dropped_.load());
  w.Key("rows_mismatched").Uint(rows_mismatched_.load());
  w.Key("rows_not_finite").Uint(rows_not_finite_.load());
  w.Key("outlier_quantile").Double(options_.outlier_quantile);
  w.Key("outlier_threshold").Double(fitted ? outlier_threshold_ : 0.0);
  w.Key("outliers_total").Uint(outliers_.load());
  w.Key("rows_scored").Uint(scored_.load());
  auto window = [&](const WindowResult& r) {
    w.BeginObject();
    w.Key("index").Uint(r.index);
    w.Key("first_row").Uint(r.first_row);
    w.Key("drift").Bool(r.drift);
    w.Key("threshold").Double(r.threshold);
    w.Key("seconds").Double(r.seconds);
    w.Key("p_values").BeginArray();
    for (double p : r.p_values) w.Double(p);
    w.EndArray();
    w.Key("statistics").BeginArray();
    for (double s : r.statistics) w.Double(s);
    w.EndArray();
    w.EndObject();
  };
  w.Key("last");
  if (last_.has_value()) {
    window(*last_);
  } else {
    w.Null();
  }
  w.Key("windows").BeginArray();
  for (const WindowResult& r : history_) window(r);
  w.EndArray();
  w.EndObject();
  return out;
}

}  // namespace osprey::monitor
