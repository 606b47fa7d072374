#pragma once

// Prometheus metrics of the model server, rendered in the text exposition
// format at /metrics. Recording is lock-free (atomics); families are created
// per model on first use under a mutex and never removed, so counts survive an
// unload/reload of the same model as Prometheus expects.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/prometheus.h"

namespace osprey {

// Everything recorded about one model name.
struct ModelMetrics {
  std::atomic<uint64_t> success{0};
  std::atomic<uint64_t> failure{0};
  std::atomic<uint64_t> executions{0};
  std::atomic<uint64_t> batched_requests{0};  // requests that ran in a batch of 2 or more
  std::atomic<int64_t> pending{0};
  Histogram predict;  // KServe's request_predict_seconds
  Histogram request;  // arrival to response ready
  Histogram queue;    // arrival to execution start
  Histogram compute;  // execution
};

class Metrics {
 public:
  // Stable pointer for the life of this object.
  ModelMetrics* ForModel(std::string_view model);
  // Counts an HTTP response by status code class (2xx, 4xx, 5xx).
  void CountHttpResponse(int status);
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<ModelMetrics>, std::less<>> models_;
  std::array<std::atomic<uint64_t>, 6> http_by_class_{};
};

}  // namespace osprey
