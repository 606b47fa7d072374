#include "autoscaler/kpa.h"

#include <algorithm>
#include <cmath>

namespace osprey::autoscaler {
namespace {

double Value(const KpaSpec& spec, const Sample& s) {
  return spec.metric == KpaSpec::Metric::kRps ? s.rps : s.concurrency;
}

int Ceil(double v) { return static_cast<int>(std::ceil(v - 1e-9)); }

}  // namespace

KpaDecision Decide(const KpaSpec& spec, KpaState* state, const Sample& sample, int ready,
                   int waiting, Clock::time_point now) {
  KpaDecision d;
  if (!state->started) {
    state->started = true;
    state->created = now;
    state->last_traffic = now;
  }
  state->samples.push_back(sample);
  while (!state->samples.empty() && state->samples.front().time < now - spec.stable_window)
    state->samples.pop_front();
  if (Value(spec, sample) > 0 || waiting > 0) state->last_traffic = now;

  const auto panic_window = std::chrono::duration_cast<std::chrono::milliseconds>(
      spec.stable_window * spec.panic_window_fraction);
  double stable_sum = 0, panic_sum = 0;
  int panic_n = 0;
  for (const auto& s : state->samples) {
    stable_sum += Value(spec, s);
    if (s.time >= now - panic_window) {
      panic_sum += Value(spec, s);
      ++panic_n;
    }
  }
  d.observed_stable = stable_sum / static_cast<double>(state->samples.size());
  d.observed_panic = panic_n ? panic_sum / panic_n : 0;

  const double per_replica = std::max(0.01, spec.target * spec.utilization);
  int want_stable = Ceil(d.observed_stable / per_replica);
  int want_panic = Ceil(d.observed_panic / per_replica);
  const int base = std::max(ready, 1);
  const int max_up = Ceil(spec.max_scale_up_rate * base);
  const int max_down = static_cast<int>(std::floor(base / spec.max_scale_down_rate));
  want_stable = std::clamp(want_stable, std::min(max_down, max_up), max_up);
  want_panic = std::clamp(want_panic, std::min(max_down, max_up), max_up);

  const bool over = ready > 0 && want_panic / static_cast<double>(base) >= spec.panic_threshold;
  if (over) state->last_over_threshold = now;
  if (!state->panicking && over) {
    state->panicking = true;
    state->panic_since = now;
    state->panic_max = 0;
  } else if (state->panicking && !over && now - state->last_over_threshold >= spec.stable_window) {
    state->panicking = false;
  }
  if (state->panicking) {
    d.desired = std::max({want_panic, state->panic_max, ready});
    state->panic_max = d.desired;
    d.reason = "Panic";
  } else {
    d.desired = want_stable;
    d.reason = "Stable";
  }

  state->recent.emplace_back(now, d.desired);
  while (!state->recent.empty() && state->recent.front().first < now - spec.scale_down_delay)
    state->recent.pop_front();
  for (const auto& [t, v] : state->recent) d.desired = std::max(d.desired, v);

  if (now - state->created < spec.stable_window && d.desired < spec.initial_scale) {
    d.desired = spec.initial_scale;
    d.reason = "InitialScale";
  }
  if (d.desired == 0 && spec.min_scale == 0) {
    const auto idle = now - state->last_traffic;
    if (idle < spec.stable_window + spec.scale_to_zero_grace && ready > 0) {
      d.desired = 1;
      d.reason = idle < spec.stable_window ? "Stable" : "ScaleToZeroGrace";
    } else {
      d.reason = "NoTraffic";
    }
  }
  if (waiting > 0 && d.desired < 1) {
    d.desired = 1;
    d.reason = "Activating";
  }
  if (d.desired < spec.min_scale) {
    d.desired = spec.min_scale;
    if (d.reason == "NoTraffic") d.reason = "MinScale";
  }
  if (spec.max_scale > 0 && d.desired > spec.max_scale) {
    d.desired = spec.max_scale;
    d.reason = "MaxScale";
  }
  return d;
}

}  // namespace osprey::autoscaler
