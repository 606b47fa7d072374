#pragma once

// The Prometheus text exposition format, shared by the model server's
// /metrics and the gateway's: a lock-free latency histogram, family headers
// and label escaping. Recording is a few relaxed atomic adds (safe from any
// thread, never blocks); rendering reads the atomics without a lock, and a
// series' _count is its bucket total, so a scrape is always self-consistent.

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace osprey {

// Latency histogram with fixed upper bounds in seconds (cumulative buckets
// when rendered, plus +Inf). The bounds must outlive the histogram (use the
// constants below or other static storage).
class Histogram {
 public:
  // The model server's bounds: 100 us .. 10 s.
  static constexpr double kDefaultBounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                              0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                              1,      2.5,     5,      10};

  explicit Histogram(std::span<const double> bounds = kDefaultBounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double seconds);
  // Appends the _bucket/_sum/_count lines of one series; `labels` is the
  // label list without braces (name="value",...), followed by le.
  void Render(std::string_view name, std::string_view labels, std::string* out) const;

 private:
  std::span<const double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<uint64_t> sum_nanos_{0};
};

namespace prometheus {

// "# HELP name help\n# TYPE name type\n".
void AppendFamily(std::string_view name, std::string_view type, std::string_view help,
                  std::string* out);
// A label value escaped for the text format (backslash, quote, newline).
std::string LabelValue(std::string_view value);

}  // namespace prometheus
}  // namespace osprey
