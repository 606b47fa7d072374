#include "server/metrics.h"

#include <charconv>
#include <cstdio>

#include "common/strings.h"

namespace osprey {
namespace {

std::string LabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

std::string FormatDouble(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

void Header(std::string_view name, std::string_view type, std::string_view help, std::string* out) {
  StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

}  // namespace

void Histogram::Observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

void Histogram::Render(std::string_view name, std::string_view labels, std::string* out) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    char le[16];
    std::snprintf(le, sizeof(le), "%g", kBounds[i]);  // 0.0001, not 1e-04
    StrAppend(out, name, "_bucket{", labels, ",le=\"", le, "\"} ", cumulative, "\n");
  }
  cumulative += buckets_[kBounds.size()].load(std::memory_order_relaxed);
  StrAppend(out, name, "_bucket{", labels, ",le=\"+Inf\"} ", cumulative, "\n");
  StrAppend(out, name, "_sum{", labels, "} ",
            FormatDouble(static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9),
            "\n");
  // The count is the bucket total so a scrape is always self-consistent.
  StrAppend(out, name, "_count{", labels, "} ", cumulative, "\n");
}

ModelMetrics* Metrics::ForModel(std::string_view model) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(model);
  if (it == models_.end())
    it = models_.emplace(std::string(model), std::make_unique<ModelMetrics>()).first;
  return it->second.get();
}

void Metrics::CountHttpResponse(int status) {
  size_t cls = static_cast<size_t>(status / 100);
  if (cls < http_by_class_.size()) http_by_class_[cls].fetch_add(1, std::memory_order_relaxed);
}

std::string Metrics::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);

  Header("request_predict_seconds", "histogram", "Time spent in the model's predict step.", &out);
  for (const auto& [name, m] : models_)
    m->predict.Render("request_predict_seconds", StrCat("model_name=\"", LabelValue(name), "\""),
                      &out);

  Header("osprey_inference_requests_total", "counter", "Inference requests by model and outcome.",
         &out);
  for (const auto& [name, m] : models_) {
    std::string label = LabelValue(name);
    StrAppend(&out, "osprey_inference_requests_total{model=\"", label, "\",outcome=\"success\"} ",
              m->success.load(), "\n");
    StrAppend(&out, "osprey_inference_requests_total{model=\"", label, "\",outcome=\"failure\"} ",
              m->failure.load(), "\n");
  }
  Header("osprey_inference_executions_total", "counter",
         "Model executions; fewer than requests when requests are batched.", &out);
  for (const auto& [name, m] : models_)
    StrAppend(&out, "osprey_inference_executions_total{model=\"", LabelValue(name), "\"} ",
              m->executions.load(), "\n");
  Header("osprey_inference_batched_requests_total", "counter",
         "Requests executed together with others in one batch.", &out);
  for (const auto& [name, m] : models_)
    StrAppend(&out, "osprey_inference_batched_requests_total{model=\"", LabelValue(name), "\"} ",
              m->batched_requests.load(), "\n");
  Header("osprey_inference_pending_requests", "gauge", "Requests received and not yet answered.",
         &out);
  for (const auto& [name, m] : models_)
    StrAppend(&out, "osprey_inference_pending_requests{model=\"", LabelValue(name), "\"} ",
              m->pending.load(), "\n");

  struct Family {
    const char* name;
    const char* help;
    Histogram ModelMetrics::*member;
  };
  static constexpr Family kFamilies[] = {
      {"osprey_inference_request_duration_seconds", "Time from a request's arrival to its answer.",
       &ModelMetrics::request},
      {"osprey_inference_queue_duration_seconds",
       "Time from a request's arrival to the start of its execution.", &ModelMetrics::queue},
      {"osprey_inference_compute_duration_seconds", "Time spent executing the model.",
       &ModelMetrics::compute},
  };
  for (const Family& f : kFamilies) {
    Header(f.name, "histogram", f.help, &out);
    for (const auto& [name, m] : models_)
      ((*m).*(f.member)).Render(f.name, StrCat("model=\"", LabelValue(name), "\""), &out);
  }

  Header("osprey_http_responses_total", "counter", "HTTP responses by status code class.", &out);
  for (size_t c = 1; c < http_by_class_.size(); ++c)
    StrAppend(&out, "osprey_http_responses_total{code=\"", c, "xx\"} ", http_by_class_[c].load(),
              "\n");
  return out;
}

}  // namespace osprey
