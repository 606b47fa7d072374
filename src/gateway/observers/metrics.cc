#include "gateway/observers/metrics.h"

#include "common/strings.h"
#include "gateway/route_table.h"

namespace osprey::gateway {

MetricsObserver::MetricsObserver() = default;
MetricsObserver::~MetricsObserver() = default;

MetricsObserver::Series* MetricsObserver::Find(uint32_t id) const {
  if (id >= kChunk * kChunks) return nullptr;
  const Chunk* chunk = chunks_[id / kChunk].load(std::memory_order_acquire);
  return chunk == nullptr ? nullptr : chunk->series[id % kChunk].load(std::memory_order_acquire);
}

MetricsObserver::Series* MetricsObserver::Create(uint32_t id) {
  if (id >= kChunk * kChunks) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  Chunk* chunk = chunks_[id / kChunk].load(std::memory_order_acquire);
  if (chunk == nullptr) {
    owned_chunks_.push_back(std::make_unique<Chunk>());
    chunk = owned_chunks_.back().get();
    chunks_[id / kChunk].store(chunk, std::memory_order_release);
  }
  Series* series = chunk->series[id % kChunk].load(std::memory_order_acquire);
  if (series == nullptr) {
    owned_series_.push_back(std::make_unique<Series>());
    series = owned_series_.back().get();
    chunk->series[id % kChunk].store(series, std::memory_order_release);
  }
  return series;
}

void MetricsObserver::OnComplete(const Exchange& e) {
  Series* s = Find(e.revision_id);
  if (s == nullptr && (s = Create(e.revision_id)) == nullptr) return;
  int cls = 0;
  if (e.http_status >= 100 && e.http_status < 600) {
    cls = e.http_status / 100;
  } else if (e.kind == Exchange::Kind::kGrpc) {
    cls = e.code == absl::StatusCode::kOk ? 2 : 5;
  }
  s->by_class[cls].fetch_add(1, std::memory_order_relaxed);
  const double seconds = std::chrono::duration<double>(e.end - e.start).count();
  s->latency.Observe(seconds);
  if (e.queue_wait > Exchange::Clock::duration::zero())
    s->queue_wait.Observe(std::chrono::duration<double>(e.queue_wait).count());
  if (e.cold_start && e.code == absl::StatusCode::kOk)
    s->cold_start.Observe(
        std::chrono::duration<double>(e.end - (e.cold_start_since != Exchange::Clock::time_point{}
                                                   ? e.cold_start_since
                                                   : e.start))
            .count());
}

void MetricsObserver::Render(std::span<const Revision> revisions, std::string* out) const {
  std::vector<std::string> labels;
  labels.reserve(revisions.size());
  for (const Revision& r : revisions) {
    const size_t slash = r.key.find('/');
    const auto [service, component] = RevisionService(r.name);
    labels.push_back(StrCat("namespace=\"", prometheus::LabelValue(r.key.substr(0, slash)),
                            "\",inferenceservice=\"", prometheus::LabelValue(service),
                            "\",component=\"", prometheus::LabelValue(component), "\",revision=\"",
                            prometheus::LabelValue(r.name), "\""));
  }
  prometheus::AppendFamily("osprey_gateway_requests_total", "counter",
                           "Requests answered by the gateway, by revision and status class.", out);
  static const char* kClass[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (size_t i = 0; i < revisions.size(); ++i)
    if (const Series* s = Find(revisions[i].id))
      for (int c = 0; c < 6; ++c)
        if (uint64_t v = s->by_class[c].load(std::memory_order_relaxed); v > 0)
          StrAppend(out, "osprey_gateway_requests_total{", labels[i], ",code_class=\"", kClass[c],
                    "\"} ", v, "\n");
  prometheus::AppendFamily("osprey_gateway_request_duration_seconds", "histogram",
                           "Time from arrival to answer at the gateway.", out);
  static const Histogram kNone{kBounds};
  static const Histogram kNoWait{kWaitBounds};
  for (size_t i = 0; i < revisions.size(); ++i) {
    const Series* s = Find(revisions[i].id);
    (s != nullptr ? s->latency : kNone)
        .Render("osprey_gateway_request_duration_seconds", labels[i], out);
  }
  prometheus::AppendFamily("osprey_gateway_queue_wait_seconds", "histogram",
                           "Time requests were held for a replica (activator), of those held.",
                           out);
  for (size_t i = 0; i < revisions.size(); ++i) {
    const Series* s = Find(revisions[i].id);
    (s != nullptr ? s->queue_wait : kNoWait)
        .Render("osprey_gateway_queue_wait_seconds", labels[i], out);
  }
  prometheus::AppendFamily(
      "osprey_gateway_cold_start_duration_seconds", "histogram",
      "From the first request held while a revision had no replica to its answer.", out);
  for (size_t i = 0; i < revisions.size(); ++i) {
    const Series* s = Find(revisions[i].id);
    (s != nullptr ? s->cold_start : kNoWait)
        .Render("osprey_gateway_cold_start_duration_seconds", labels[i], out);
  }
  prometheus::AppendFamily("osprey_gateway_concurrency", "gauge",
                           "Requests in flight to a revision's replicas.", out);
  for (size_t i = 0; i < revisions.size(); ++i)
    StrAppend(out, "osprey_gateway_concurrency{", labels[i], "} ", revisions[i].in_flight, "\n");
  prometheus::AppendFamily("osprey_gateway_queue_depth", "gauge",
                           "Requests held waiting for a replica (activator).", out);
  for (size_t i = 0; i < revisions.size(); ++i)
    StrAppend(out, "osprey_gateway_queue_depth{", labels[i], "} ", revisions[i].waiting, "\n");
}

}  // namespace osprey::gateway
