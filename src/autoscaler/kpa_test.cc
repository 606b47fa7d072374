#include "autoscaler/kpa.h"

#include <gtest/gtest.h>

namespace osprey::autoscaler {
namespace {

using std::chrono::milliseconds;

// One tick of a scenario: at `t_ms`, the gateway measured `value` (the
// metric), with `ready` replicas and `waiting` held requests; the decider
// must answer `desired` for `reason`.
struct Tick {
  int t_ms;
  double value;
  int ready;
  int waiting;
  int desired;
  std::string reason;
};

struct Scenario {
  std::string name;
  KpaSpec spec;
  std::vector<Tick> ticks;
};

KpaSpec Spec(double target, int min_scale = 1, int max_scale = 0) {
  KpaSpec s;
  s.target = target;
  s.utilization = 1.0;  // round numbers in the tables
  s.stable_window = milliseconds(6000);
  s.min_scale = min_scale;
  s.max_scale = max_scale;
  s.initial_scale = 0;
  s.scale_to_zero_grace = milliseconds(1000);
  return s;
}

TEST(Kpa, Scenarios) {
  std::vector<Scenario> scenarios;
  scenarios.push_back({"steady load at the target per replica",
                       Spec(10),
                       {{0, 25, 3, 0, 3, "Stable"}, {2000, 25, 3, 0, 3, "Stable"}}});
  scenarios.push_back({"burst panics and scales at once",
                       Spec(10),
                       {{0, 5, 1, 0, 1, "Stable"}, {2000, 50, 1, 0, 5, "Panic"}}});
  {
    // In panic the decider never scales down; it leaves panic once a stable
    // window passed without the panic threshold.
    Scenario s{"panic holds until a calm stable window", Spec(10), {}};
    s.ticks = {{0, 60, 1, 0, 6, "Panic"},
               {1000, 10, 6, 0, 6, "Panic"},
               {3000, 10, 6, 0, 6, "Panic"},
               {6500, 10, 6, 0, 3, "Stable"},
               {13000, 10, 3, 0, 1, "Stable"}};
    scenarios.push_back(s);
  }
  {
    Scenario s{"scale down at most halves per decision", Spec(10), {}};
    s.ticks = {{0, 0, 10, 0, 5, "Stable"}};
    scenarios.push_back(s);
  }
  {
    Scenario s{"scale to zero after the window and the grace period", Spec(10, 0), {}};
    s.ticks = {{0, 4, 1, 0, 1, "Stable"},
               {2000, 0, 1, 0, 1, "Stable"},  // still within the stable window
               {6500, 0, 1, 0, 1, "ScaleToZeroGrace"},
               {7100, 0, 1, 0, 0, "NoTraffic"},
               {8000, 0, 0, 0, 0, "NoTraffic"},
               {9000, 0, 0, 3, 1, "Activating"}};  // a request arrives at zero
    scenarios.push_back(s);
  }
  {
    Scenario s{"min replicas keep an idle revision up", Spec(10, 2), {}};
    s.ticks = {{0, 0, 2, 0, 2, "Stable"}, {20000, 0, 2, 0, 2, "Stable"}};
    scenarios.push_back(s);
  }
  scenarios.push_back(
      {"max replicas bound a burst", Spec(10, 1, 4), {{0, 1000, 1, 0, 4, "MaxScale"}}});
  {
    KpaSpec spec = Spec(10);
    spec.stable_window = milliseconds(1000);
    spec.scale_down_delay = milliseconds(3000);
    scenarios.push_back({"scale-down delay keeps the highest recent decision",
                         spec,
                         {{0, 40, 4, 0, 4, "Stable"},
                          {1500, 10, 4, 0, 4, "Stable"},  // the 40 left the window
                          {2900, 10, 4, 0, 4, "Stable"},
                          {3100, 10, 4, 0, 2, "Stable"}}});  // then halves at most
  }
  {
    KpaSpec spec = Spec(200);
    spec.metric = KpaSpec::Metric::kRps;
    scenarios.push_back({"rps metric", spec, {{0, 900, 5, 0, 5, "Stable"}}});
  }
  {
    KpaSpec spec = Spec(10, 0);
    spec.initial_scale = 2;
    scenarios.push_back({"initial scale holds for the first window",
                         spec,
                         {{0, 0, 0, 0, 2, "InitialScale"},
                          {3000, 0, 2, 0, 2, "InitialScale"},
                          {6100, 0, 2, 0, 1, "Stable"}}});
  }
  {
    KpaSpec spec = Spec(10);
    spec.utilization = 0.7;  // KServe's default: aim at 70% of the target
    scenarios.push_back({"utilization leaves headroom",
                         spec,
                         {{0, 14, 2, 0, 2, "Stable"}, {100, 14.1, 2, 0, 3, "Stable"}}});
  }

  for (const auto& s : scenarios) {
    SCOPED_TRACE(s.name);
    KpaState state;
    const Clock::time_point t0{};
    for (const auto& tick : s.ticks) {
      SCOPED_TRACE(tick.t_ms);
      auto now = t0 + milliseconds(tick.t_ms);
      Sample sample{now, s.spec.metric == KpaSpec::Metric::kRps ? 0 : tick.value,
                    s.spec.metric == KpaSpec::Metric::kRps ? tick.value : 0};
      KpaDecision d = Decide(s.spec, &state, sample, tick.ready, tick.waiting, now);
      EXPECT_EQ(d.desired, tick.desired);
      EXPECT_EQ(d.reason, tick.reason);
    }
  }
}

}  // namespace
}  // namespace osprey::autoscaler
