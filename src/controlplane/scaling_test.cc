#include "controlplane/scaling.h"

#include <gtest/gtest.h>

namespace osprey::controlplane {
namespace {

using std::chrono::milliseconds;
using Metric = autoscaler::KpaSpec::Metric;

TEST(ParseDuration, Table) {
  struct Case {
    const char* text;
    std::optional<milliseconds> want;
  } cases[] = {
      {"60s", milliseconds(60000)}, {"2m", milliseconds(120000)},
      {"500ms", milliseconds(500)}, {"1h", milliseconds(3600000)},
      {"7", milliseconds(7000)},    {"1.5s", milliseconds(1500)},
      {"", std::nullopt},           {"s", std::nullopt},
      {"-1s", std::nullopt},        {"3d", std::nullopt},
      {"10 s", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(ParseDuration(c.text), c.want) << c.text;
}

// Each row: annotations over the defaults, and the one field they should
// change (read back by `get`), or stay at.
TEST(ApplyAutoscalingAnnotations, Table) {
  const std::string p = "autoscaling.knative.dev/";
  struct Case {
    std::string key, value;
    double want;
    double (*get)(const autoscaler::KpaSpec&);
  } cases[] = {
      {p + "target", "10", 10, [](const auto& s) { return s.target; }},
      {p + "target", "0", 100, [](const auto& s) { return s.target; }},
      {p + "target", "ten", 100, [](const auto& s) { return s.target; }},
      {p + "target-utilization-percentage", "50", 0.5, [](const auto& s) { return s.utilization; }},
      {p + "panic-window-percentage", "20", 0.2,
       [](const auto& s) { return s.panic_window_fraction; }},
      {p + "panic-threshold-percentage", "300", 3, [](const auto& s) { return s.panic_threshold; }},
      {p + "max-scale-up-rate", "4", 4, [](const auto& s) { return s.max_scale_up_rate; }},
      {p + "max-scale-up-rate", "1", 1000, [](const auto& s) { return s.max_scale_up_rate; }},
      {p + "max-scale-down-rate", "8", 8, [](const auto& s) { return s.max_scale_down_rate; }},
      {p + "min-scale", "0", 0, [](const auto& s) { return double(s.min_scale); }},
      {p + "minScale", "3", 3, [](const auto& s) { return double(s.min_scale); }},
      {p + "max-scale", "5", 5, [](const auto& s) { return double(s.max_scale); }},
      {p + "maxScale", "-1", 0, [](const auto& s) { return double(s.max_scale); }},
      {p + "initial-scale", "0", 0, [](const auto& s) { return double(s.initial_scale); }},
      {p + "window", "6s", 6000, [](const auto& s) { return double(s.stable_window.count()); }},
      {p + "window", "soon", 60000, [](const auto& s) { return double(s.stable_window.count()); }},
      {p + "scale-down-delay", "2m", 120000,
       [](const auto& s) { return double(s.scale_down_delay.count()); }},
      {p + "scale-to-zero-grace-period", "5s", 5000,
       [](const auto& s) { return double(s.scale_to_zero_grace.count()); }},
      {p + "scale-to-zero-pod-retention-period", "1m", 60000,
       [](const auto& s) { return double(s.scale_to_zero_grace.count()); }},
      {"other.dev/target", "10", 100, [](const auto& s) { return s.target; }},
  };
  for (const auto& c : cases) {
    autoscaler::KpaSpec spec;
    ApplyAutoscalingAnnotations({{c.key, c.value}}, &spec);
    EXPECT_DOUBLE_EQ(c.get(spec), c.want) << c.key << "=" << c.value;
  }
  autoscaler::KpaSpec spec;
  ApplyAutoscalingAnnotations({{p + "metric", "rps"}}, &spec);
  EXPECT_EQ(spec.metric, Metric::kRps);
  ApplyAutoscalingAnnotations({{p + "metric", "cpu"}}, &spec);
  EXPECT_EQ(spec.metric, Metric::kRps) << "an unknown metric leaves the one before";
}

TEST(KpaSpecFor, PredictorFieldsThenServiceThenPredictorAnnotations) {
  autoscaler::KpaSpec defaults;
  defaults.target = 100;
  const std::string t = "autoscaling.knative.dev/target";
  struct Case {
    const char* name;
    std::string metric;
    std::optional<int> scale_target;
    std::map<std::string, std::string> isvc, predictor;
    int min_replicas, max_replicas;
    Metric want_metric;
    double want_target;
    int want_min, want_max;
  } cases[] = {
      {"defaults", "", std::nullopt, {}, {}, 1, 0, Metric::kConcurrency, 100, 1, 0},
      {"rps has its own default target",
       "rps",
       std::nullopt,
       {},
       {},
       1,
       0,
       Metric::kRps,
       200,
       1,
       0},
      {"scaleTarget", "rps", 30, {}, {}, 0, 4, Metric::kRps, 30, 0, 4},
      {"service annotation over scaleTarget",
       "",
       30,
       {{t, "7"}},
       {},
       1,
       0,
       Metric::kConcurrency,
       7,
       1,
       0},
      {"predictor annotation over the service's",
       "",
       30,
       {{t, "7"}},
       {{t, "9"}},
       1,
       0,
       Metric::kConcurrency,
       9,
       1,
       0},
      {"min-scale annotation never below minReplicas",
       "",
       std::nullopt,
       {{"autoscaling.knative.dev/min-scale", "0"}},
       {},
       2,
       0,
       Metric::kConcurrency,
       100,
       2,
       0},
      {"min-scale annotation above minReplicas",
       "",
       std::nullopt,
       {{"autoscaling.knative.dev/min-scale", "3"}},
       {},
       0,
       0,
       Metric::kConcurrency,
       100,
       3,
       0},
      {"max-scale annotation over maxReplicas",
       "",
       std::nullopt,
       {},
       {{"autoscaling.knative.dev/max-scale", "6"}},
       0,
       2,
       Metric::kConcurrency,
       100,
       0,
       6},
  };
  for (const auto& c : cases) {
    resources::Component predictor;
    predictor.scale_metric = c.metric;
    predictor.scale_target = c.scale_target;
    predictor.annotations = c.predictor;
    predictor.max_replicas = c.max_replicas;
    autoscaler::KpaSpec spec = KpaSpecFor(defaults, c.isvc, predictor, c.min_replicas);
    EXPECT_EQ(spec.metric, c.want_metric) << c.name;
    EXPECT_DOUBLE_EQ(spec.target, c.want_target) << c.name;
    EXPECT_EQ(spec.min_scale, c.want_min) << c.name;
    EXPECT_EQ(spec.max_scale, c.want_max) << c.name;
  }
}

TEST(DesiredReplicas, Table) {
  struct Case {
    const char* name;
    int min_scale, initial_scale, max_scale;
    ScaleState state;
    int want;
  } cases[] = {
      {"first pass: initial scale", 0, 1, 0, {}, 1},
      {"first pass: min scale above initial", 3, 1, 0, {}, 3},
      {"initial scale 0 with min 0: none", 0, 0, 0, {}, 0},
      {"a previous run's replicas kept", 1, 1, 0, {.adopted = 4}, 4},
      {"kept replicas capped at max scale", 1, 1, 2, {.adopted = 4}, 2},
      {"the decision rules once made", 3, 5, 0, {.decided = true, .decision = 1}, 1},
      {"decided zero", 0, 1, 0, {.decided = true, .decision = 0}, 0},
      {"requests waiting wake a revision at zero",
       0,
       0,
       0,
       {.decided = true, .decision = 0, .activating = true},
       1},
      {"activation never lowers", 0, 0, 0, {.decided = true, .decision = 3, .activating = true}, 3},
      {"a restart does not wake a revision ready before", 0, 1, 0, {.ever_ready = true}, 0},
      {"...but keeps its minimum", 2, 1, 0, {.ever_ready = true}, 2},
      {"...and what it left running", 0, 1, 0, {.adopted = 1, .ever_ready = true}, 1},
  };
  for (const auto& c : cases) {
    autoscaler::KpaSpec spec;
    spec.min_scale = c.min_scale;
    spec.initial_scale = c.initial_scale;
    spec.max_scale = c.max_scale;
    EXPECT_EQ(DesiredReplicas(spec, c.state), c.want) << c.name;
  }
}

}  // namespace
}  // namespace osprey::controlplane

namespace osprey::controlplane {
namespace {

TEST(ScaleEventFor, Table) {
  autoscaler::KpaSpec concurrency;
  concurrency.target = 10;
  concurrency.utilization = 0.7;
  autoscaler::KpaSpec rps = concurrency;
  rps.metric = autoscaler::KpaSpec::Metric::kRps;
  struct Case {
    const char* name;
    int before;
    autoscaler::KpaDecision decision;
    const autoscaler::KpaSpec* spec;
    std::string want_reason, want_message;
  } cases[] = {
      {"first decision: no event", -1, {3, "Stable", 20, 25}, &concurrency, "", ""},
      {"unchanged: no event", 3, {3, "Stable", 20, 25}, &concurrency, "", ""},
      {"up",
       1,
       {3, "Panic", 20.5, 25},
       &concurrency,
       "Scaled",
       "revision r: 1 -> 3 replicas (Panic; observed concurrency 20.50 stable, 25.00 panic, "
       "target 10 x 0.7)"},
      {"to zero",
       1,
       {0, "NoTraffic", 0, 0},
       &rps,
       "ScaledToZero",
       "revision r: 1 -> 0 replicas (NoTraffic; observed rps 0.00 stable, 0.00 panic, target "
       "10 x 0.7)"},
  };
  for (const auto& c : cases) {
    ScaleEvent e = ScaleEventFor("r", c.before, c.decision, *c.spec);
    EXPECT_EQ(e.reason, c.want_reason) << c.name;
    EXPECT_EQ(e.message, c.want_message) << c.name;
  }
}

}  // namespace
}  // namespace osprey::controlplane
