#pragma once

// A Knative-style (KPA) autoscaling decider, as a pure function:
// (spec, state, metric samples, ready replicas, now) -> desired replicas and
// the new state. No clock, no I/O: the controller feeds it the gateway's
// measurements on every tick and keeps the state between calls.
//
// The algorithm, per Knative's KPA:
//   stable  = average of the samples in the stable window (60 s)
//   panic   = average of the samples in the panic window (10% of it)
//   desired = ceil(observed / (target * utilization))   for each window
//   each bounded by the rates: at most ready * max_scale_up_rate, at least
//   ready / max_scale_down_rate
//   panic mode starts when panic desired / ready >= panic_threshold (200%),
//   and ends once a whole stable window passed without that; in panic the
//   decider never scales down
//   scale-down delay: the highest decision of the last `scale_down_delay`
//   wins
//   to zero only with min_scale 0, after a stable window without traffic and
//   then the scale-to-zero grace period
//   finally clamped to [min_scale, max_scale] (max 0: unbounded).
// A revision with requests waiting and no replica gets at least one at once
// (the activator's poke), whatever the windows say.

#include <chrono>
#include <deque>
#include <string>
#include <vector>

namespace osprey::autoscaler {

using Clock = std::chrono::steady_clock;

struct KpaSpec {
  enum class Metric { kConcurrency, kRps };
  Metric metric = Metric::kConcurrency;
  double target = 100;       // per replica: concurrent requests, or requests/s
  double utilization = 0.7;  // of the target aimed at
  std::chrono::milliseconds stable_window{60000};
  double panic_window_fraction = 0.1;
  double panic_threshold = 2.0;  // desired/ready ratio that starts panic mode
  double max_scale_up_rate = 1000;
  double max_scale_down_rate = 2;
  int min_scale = 1;
  int max_scale = 0;  // 0: unbounded
  int initial_scale = 1;
  std::chrono::milliseconds scale_down_delay{0};
  std::chrono::milliseconds scale_to_zero_grace{30000};
};

// One measurement over the interval ending at `time`: average concurrent
// requests (in flight plus queued at the gateway) and requests/s.
struct Sample {
  Clock::time_point time;
  double concurrency = 0;
  double rps = 0;
};

struct KpaState {
  std::deque<Sample> samples;  // within the stable window, oldest first
  bool panicking = false;
  Clock::time_point panic_since{};
  Clock::time_point last_over_threshold{};
  int panic_max = 0;  // highest decision while panicking
  // Decisions within the scale-down delay, for its maximum.
  std::deque<std::pair<Clock::time_point, int>> recent;
  Clock::time_point last_traffic{};  // last sample with any traffic
  Clock::time_point created{};       // first decision
  bool started = false;
};

struct KpaDecision {
  int desired = 0;
  std::string reason;  // e.g. "Stable", "Panic", "NoTraffic", "ScaleToZeroGrace", "Activating"
  double observed_stable = 0;
  double observed_panic = 0;
};

// Adds `sample` to the state, then decides. `waiting` are requests the
// gateway holds for this revision.
KpaDecision Decide(const KpaSpec& spec, KpaState* state, const Sample& sample, int ready,
                   int waiting, Clock::time_point now);

}  // namespace osprey::autoscaler
