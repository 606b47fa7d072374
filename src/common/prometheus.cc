#include "common/prometheus.h"

#include <cstdio>

#include "common/strings.h"

namespace osprey {

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double seconds) {
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

void Histogram::Render(std::string_view name, std::string_view labels, std::string* out) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    char le[16];
    std::snprintf(le, sizeof(le), "%g", bounds_[i]);  // 0.0001, not 1e-04
    StrAppend(out, name, "_bucket{", labels, ",le=\"", le, "\"} ", cumulative, "\n");
  }
  cumulative += buckets_[bounds_.size()].load(std::memory_order_relaxed);
  StrAppend(out, name, "_bucket{", labels, ",le=\"+Inf\"} ", cumulative, "\n");
  StrAppend(out, name, "_sum{", labels, "} ",
            static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9, "\n");
  StrAppend(out, name, "_count{", labels, "} ", cumulative, "\n");
}

namespace prometheus {

void AppendFamily(std::string_view name, std::string_view type, std::string_view help,
                  std::string* out) {
  StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

std::string LabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace prometheus
}  // namespace osprey
