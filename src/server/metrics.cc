#include "server/metrics.h"

#include "common/strings.h"

namespace osprey {
namespace {

using prometheus::LabelValue;

void Header(std::string_view name, std::string_view type, std::string_view help, std::string* out) {
  prometheus::AppendFamily(name, type, help, out);
}

}  // namespace

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
