#include "controlplane/cost.h"

#include <algorithm>
#include <cmath>

#include "common/strings.h"

namespace osprey::controlplane {

void UsageTotals::Add(const UsageSample& s) {
  seconds += s.seconds;
  replica_seconds += s.replicas * s.seconds;
  cpu_seconds += s.cpu_seconds;
  memory_byte_seconds += static_cast<double>(s.memory_bytes) * s.seconds;
  memory_peak = std::max(memory_peak, s.memory_bytes);
  requests += s.requests;
  concurrency_seconds += s.concurrency * s.seconds;
  if (s.waiting > 0) waiting_seconds += s.seconds;
}

void UsageLedger::Add(const UsageSample& s, Clock::time_point now) {
  total_.Add(s);
  if (buckets_.empty() || now - buckets_.back().first >= bucket_width_)
    buckets_.emplace_back(now, UsageTotals{});
  buckets_.back().second.Add(s);
  while (!buckets_.empty() && now - buckets_.front().first > window_) buckets_.pop_front();
}

UsageTotals UsageLedger::Window(Clock::time_point now) const {
  UsageTotals out;
  for (const auto& [start, t] : buckets_) {
    if (now - start > window_) continue;
    out.seconds += t.seconds;
    out.replica_seconds += t.replica_seconds;
    out.cpu_seconds += t.cpu_seconds;
    out.memory_byte_seconds += t.memory_byte_seconds;
    out.memory_peak = std::max(out.memory_peak, t.memory_peak);
    out.requests += t.requests;
    out.concurrency_seconds += t.concurrency_seconds;
    out.waiting_seconds += t.waiting_seconds;
  }
  return out;
}

namespace {

std::string Fixed(double v, int digits = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

}  // namespace

void UsageTotals::Merge(const UsageTotals& o) {
  seconds = std::max(seconds, o.seconds);
  replica_seconds += o.replica_seconds;
  cpu_seconds += o.cpu_seconds;
  memory_byte_seconds += o.memory_byte_seconds;
  memory_peak += o.memory_peak;
  requests += o.requests;
  concurrency_seconds += o.concurrency_seconds;
  waiting_seconds = std::max(waiting_seconds, o.waiting_seconds);
}

std::vector<Advice> RightSizing(const SizingSettings& s, const UsageTotals& u, double min_seconds) {
  std::vector<Advice> out;
  if (u.seconds < min_seconds) return out;
  const double replicas = u.average_replicas();
  const double concurrency = u.average_concurrency();
  const double held = u.waiting_seconds / u.seconds;  // share of the time with requests held
  const std::string over = StrCat("over the last ", Fixed(u.seconds / 60, 0), " min");
  // Idle replicas kept by minReplicas.
  if (s.min_replicas > 1 && replicas > 0 && replicas <= s.min_replicas + 0.01 && s.target > 0) {
    const int needed = std::max(1, static_cast<int>(std::ceil(concurrency / s.target)));
    if (needed < s.min_replicas && concurrency / replicas < 0.25 * s.target)
      out.push_back({"MinReplicasHigh",
                     StrCat("minReplicas ", s.min_replicas, " looks high: ", Fixed(replicas),
                            " replicas averaged ", Fixed(concurrency / replicas, 2),
                            " concurrent requests each (target ", Fixed(s.target, 0), ") ", over,
                            "; ", needed, " would hold this traffic")});
  }
  // The ceiling reached while requests waited at the activator.
  if (s.max_replicas > 0 && replicas >= s.max_replicas - 0.01 && held >= 0.1)
    out.push_back(
        {"MaxReplicasReached", StrCat("maxReplicas ", s.max_replicas,
                                      " was reached and requests waited at "
                                      "the activator ",
                                      Fixed(held * 100, 0), "% of the time ", over, " (",
                                      Fixed(concurrency, 1), " concurrent requests on average)")});
  // Replicas full at their containerConcurrency while requests waited.
  if (s.container_concurrency > 0 && replicas > 0 &&
      concurrency / replicas >= 0.9 * s.container_concurrency && held >= 0.1 &&
      (s.max_replicas == 0 || replicas < s.max_replicas - 0.01))
    out.push_back(
        {"ContainerConcurrencyLimit",
         StrCat("replicas ran at their containerConcurrency ", s.container_concurrency, " (",
                Fixed(concurrency / replicas, 1),
                " each on average) and requests "
                "waited ",
                Fixed(held * 100, 0), "% of the time ", over, ": lower the autoscaling target (",
                Fixed(s.target, 0), ") so replicas are added before they fill")});
  // Scale to zero paid for with cold starts: requests held while a replica starts.
  if (s.min_replicas == 0 && held >= 0.05 && u.requests > 0)
    out.push_back(
        {"ColdStarts", StrCat("requests waited for a replica to start ", Fixed(held * 100, 0),
                              "% of the time ", over, " (", Fixed(replicas, 2),
                              " replicas on average): minReplicas 1 keeps one warm, for about ",
                              Fixed(std::max(0.0, 1 - replicas) * u.seconds / 60, 0),
                              " replica-minutes more per ", Fixed(u.seconds / 60, 0), " min")});
  // A batcher whose batches cannot fill: each waits maxLatency.
  if (s.batcher_max_batch_size > 1 && replicas > 0 && u.requests > 0 &&
      concurrency / replicas < 0.25 * s.batcher_max_batch_size)
    out.push_back({"BatchTooLarge",
                   StrCat("batcher maxBatchSize ", s.batcher_max_batch_size, " with ",
                          Fixed(concurrency / replicas, 1), " concurrent requests per replica ",
                          over, ": batches rarely fill and wait up to maxLatency ",
                          s.batcher_max_latency_ms, " ms; a maxBatchSize near ",
                          std::max(1, static_cast<int>(std::ceil(concurrency / replicas))),
                          " fits the traffic")});
  return out;
}

}  // namespace osprey::controlplane
