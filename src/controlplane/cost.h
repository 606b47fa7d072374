#pragma once

// What each revision costs: replica-seconds, CPU-seconds, memory (average
// and peak) and requests, since it was first seen and over the last hour,
// from samples the controller takes of its replicas (their own accounting:
// /proc), and right-sizing advice from the same measurements. Pure: the
// controllers sample, this adds up and judges.

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace osprey::controlplane {

// One revision over one sampling interval.
struct UsageSample {
  double seconds = 0;         // the interval
  int replicas = 0;           // replicas running in it
  double cpu_seconds = 0;     // CPU its replicas (and their workers) used in it
  uint64_t memory_bytes = 0;  // resident at its end, all replicas
  double requests = 0;        // answered in it
  double concurrency = 0;     // time-averaged requests in flight or waiting
  int waiting = 0;            // held by the activator at its end
};

struct UsageTotals {
  double seconds = 0;  // time observed
  double replica_seconds = 0;
  double cpu_seconds = 0;
  double memory_byte_seconds = 0;  // for the average
  uint64_t memory_peak = 0;
  double requests = 0;
  double concurrency_seconds = 0;  // for the average concurrency
  double waiting_seconds = 0;      // time with requests held at the activator
  double average_memory() const { return seconds > 0 ? memory_byte_seconds / seconds : 0; }
  double average_replicas() const { return seconds > 0 ? replica_seconds / seconds : 0; }
  double average_concurrency() const { return seconds > 0 ? concurrency_seconds / seconds : 0; }
  // CPU-seconds per 1,000 requests; nullopt without requests.
  std::optional<double> cpu_per_1000() const {
    if (requests < 1) return std::nullopt;
    return cpu_seconds * 1000.0 / requests;
  }
  void Add(const UsageSample& s);
  // Another's totals over the same span, side by side (a service's
  // revisions): amounts add up; the span is the longer; the peak is the sum
  // of the peaks (an upper bound: they need not have peaked together).
  void Merge(const UsageTotals& other);
};

// A revision's usage: totals since first seen, and buckets covering the last
// `window` (an hour by default; tests shorten it).
class UsageLedger {
 public:
  using Clock = std::chrono::steady_clock;
  explicit UsageLedger(Clock::duration window = std::chrono::hours(1), int buckets = 60)
      : window_(window), bucket_width_(window / buckets) {}
  void Add(const UsageSample& s, Clock::time_point now);
  const UsageTotals& total() const { return total_; }
  // The totals a previous run kept (the recent window starts empty).
  void Restore(const UsageTotals& total) { total_ = total; }
  UsageTotals Window(Clock::time_point now) const;  // the last `window`
  Clock::duration window() const { return window_; }

 private:
  Clock::duration window_, bucket_width_;
  UsageTotals total_;
  std::deque<std::pair<Clock::time_point, UsageTotals>> buckets_;  // oldest first
};

// How a revision is configured, against which its usage is judged.
struct SizingSettings {
  int min_replicas = 1;
  int max_replicas = 0;            // 0: unbounded
  double target = 100;             // the autoscaler's concurrency target per replica
  int container_concurrency = 0;   // 0: unlimited
  int batcher_max_batch_size = 0;  // 0: no batcher
  int batcher_max_latency_ms = 0;
};

struct Advice {
  std::string reason;   // e.g. "MinReplicasHigh"
  std::string message;  // what looks wrong, with the numbers behind it
  bool operator==(const Advice&) const = default;
};

// Right-sizing advice from the usage over a window (judged only when the
// window holds at least `min_seconds` of samples): minReplicas above what the
// traffic needs, maxReplicas reached with requests held, replicas at their
// containerConcurrency with requests held, a batcher whose batches cannot
// fill, and scale to zero making requests wait for cold starts. Pure:
// table-tested.
std::vector<Advice> RightSizing(const SizingSettings& settings, const UsageTotals& usage,
                                double min_seconds = 60);

}  // namespace osprey::controlplane
