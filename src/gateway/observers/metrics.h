#pragma once

// The gateway's Prometheus metrics per revision: requests by status class
// (osprey_gateway_requests_total), the latency histogram
// (osprey_gateway_request_duration_seconds), the activator's wait for the
// requests it held (osprey_gateway_queue_wait_seconds) and the cold starts
// (osprey_gateway_cold_start_duration_seconds: from the first request held
// while the revision had no replica to its answer), recorded as an
// observer; plus the pool gauges the gateway hands to Render
// (osprey_gateway_concurrency, osprey_gateway_queue_depth). Every series is
// labelled namespace, inferenceservice, component and revision (the first
// three read from the revision's name, {service}-{component}-{00001}).
//
// Recording is lock-free: a revision's series is found by its dense
// Exchange::revision_id in a table of fixed chunks (created once under a
// mutex, never moved or freed while the observer lives), then a few relaxed
// atomic adds. Status class: an HTTP status's hundreds (none when the
// exchange has no HTTP status), gRPC calls 2xx when OK and 5xx otherwise.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/prometheus.h"
#include "gateway/exchange.h"

namespace osprey::gateway {

class MetricsObserver : public ExchangeObserver {
 public:
  // Latency bounds in seconds (0.5 ms .. 5 s).
  static constexpr double kBounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,   0.25,   0.5,   1,    5};
  // Queue wait and cold start bounds in seconds (1 ms .. 2 min).
  static constexpr double kWaitBounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1,
                                           2,     5,     10,   20,   30,  60,   120};

  MetricsObserver();
  ~MetricsObserver() override;

  void OnComplete(const Exchange& exchange) override;

  // A revision as Render lists it, with its pool's gauges.
  struct Revision {
    std::string_view key;  // "{namespace}/{revision}"
    std::string_view name;
    uint32_t id = 0;  // Exchange::revision_id
    int in_flight = 0;
    size_t waiting = 0;
  };
  // Appends the four families, each with a series per revision, in the
  // order given (revisions with no exchange yet: zero histograms).
  void Render(std::span<const Revision> revisions, std::string* out) const;

 private:
  struct Series {
    std::array<std::atomic<uint64_t>, 6> by_class{};  // [0]: none, [1..5]: 1xx..5xx
    Histogram latency{kBounds};
    Histogram queue_wait{kWaitBounds};
    Histogram cold_start{kWaitBounds};
  };
  static constexpr size_t kChunk = 256;
  static constexpr size_t kChunks = 4096;  // ids up to 1M; beyond, exchanges go uncounted
  struct Chunk {
    std::array<std::atomic<Series*>, kChunk> series{};
  };
  // The series of revision `id`, created on first use; nullptr past the table.
  Series* Find(uint32_t id) const;
  Series* Create(uint32_t id);

  std::array<std::atomic<Chunk*>, kChunks> chunks_{};
  std::mutex mu_;  // creation only
  std::vector<std::unique_ptr<Chunk>> owned_chunks_;
  std::vector<std::unique_ptr<Series>> owned_series_;
};

}  // namespace osprey::gateway
