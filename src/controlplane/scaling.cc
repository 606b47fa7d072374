#include "controlplane/scaling.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/strings.h"

namespace osprey::controlplane {

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  const std::string s(text);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v < 0) return std::nullopt;
  std::string_view unit(end);
  double ms = unit == "ms"                ? v
              : unit == "" || unit == "s" ? v * 1000
              : unit == "m"               ? v * 60000
              : unit == "h"               ? v * 3600000
                                          : -1;
  if (ms < 0) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

void ApplyAutoscalingAnnotations(const std::map<std::string, std::string>& annotations,
                                 autoscaler::KpaSpec* spec) {
  constexpr std::string_view kPrefix = "autoscaling.knative.dev/";
  for (const auto& [key, value] : annotations) {
    if (key.compare(0, kPrefix.size(), kPrefix) != 0) continue;
    std::string name = key.substr(kPrefix.size());
    char* end = nullptr;
    double number = std::strtod(value.c_str(), &end);
    bool numeric = end != value.c_str() && *end == '\0';
    if (name == "metric") {
      if (value == "rps") spec->metric = autoscaler::KpaSpec::Metric::kRps;
      if (value == "concurrency") spec->metric = autoscaler::KpaSpec::Metric::kConcurrency;
    } else if (name == "target" && numeric && number > 0) {
      spec->target = number;
    } else if (name == "target-utilization-percentage" && numeric && number > 0) {
      spec->utilization = number / 100;
    } else if (name == "panic-window-percentage" && numeric && number > 0) {
      spec->panic_window_fraction = number / 100;
    } else if (name == "panic-threshold-percentage" && numeric && number > 0) {
      spec->panic_threshold = number / 100;
    } else if (name == "max-scale-up-rate" && numeric && number > 1) {
      spec->max_scale_up_rate = number;
    } else if (name == "max-scale-down-rate" && numeric && number > 1) {
      spec->max_scale_down_rate = number;
    } else if ((name == "min-scale" || name == "minScale") && numeric && number >= 0) {
      spec->min_scale = static_cast<int>(number);
    } else if ((name == "max-scale" || name == "maxScale") && numeric && number >= 0) {
      spec->max_scale = static_cast<int>(number);
    } else if (name == "initial-scale" && numeric && number >= 0) {
      spec->initial_scale = static_cast<int>(number);
    } else if (name == "window") {
      if (auto d = ParseDuration(value)) spec->stable_window = *d;
    } else if (name == "scale-down-delay") {
      if (auto d = ParseDuration(value)) spec->scale_down_delay = *d;
    } else if (name == "scale-to-zero-grace-period" ||
               name == "scale-to-zero-pod-retention-period") {
      if (auto d = ParseDuration(value)) spec->scale_to_zero_grace = *d;
    }
  }
}

autoscaler::KpaSpec KpaSpecFor(const autoscaler::KpaSpec& defaults,
                               const std::map<std::string, std::string>& isvc_annotations,
                               const resources::Component& predictor, int min_replicas) {
  autoscaler::KpaSpec spec = defaults;
  if (predictor.scale_metric == "rps") {
    spec.metric = autoscaler::KpaSpec::Metric::kRps;
    spec.target = 200;
  }
  if (predictor.scale_target.has_value() && *predictor.scale_target > 0)
    spec.target = *predictor.scale_target;
  spec.min_scale = min_replicas;
  spec.max_scale = predictor.max_replicas;
  ApplyAutoscalingAnnotations(isvc_annotations, &spec);
  ApplyAutoscalingAnnotations(predictor.annotations, &spec);
  spec.min_scale = std::max(spec.min_scale, min_replicas);
  // Knative's rule: a replica never aims above the requests it may hold.
  if (predictor.container_concurrency > 0 &&
      spec.metric == autoscaler::KpaSpec::Metric::kConcurrency)
    spec.target = std::min(spec.target, static_cast<double>(predictor.container_concurrency));
  return spec;
}

int DesiredReplicas(const autoscaler::KpaSpec& spec, const ScaleState& state) {
  const int kept = spec.max_scale > 0 ? std::min(state.adopted, spec.max_scale) : state.adopted;
  const int initial = state.ever_ready ? 0 : spec.initial_scale;
  int desired = state.decided ? state.decision : std::max({spec.min_scale, initial, kept});
  if (state.activating) desired = std::max(desired, 1);
  return desired;
}

ScaleEvent ScaleEventFor(const std::string& revision, int before,
                         const autoscaler::KpaDecision& decision, const autoscaler::KpaSpec& spec) {
  if (before < 0 || before == decision.desired) return {};
  char observed[64];
  std::snprintf(observed, sizeof(observed), "%.2f stable, %.2f panic", decision.observed_stable,
                decision.observed_panic);
  return {decision.desired == 0 ? "ScaledToZero" : "Scaled",
          StrCat("revision ", revision, ": ", before, " -> ", decision.desired, " replicas (",
                 decision.reason, "; observed ",
                 spec.metric == autoscaler::KpaSpec::Metric::kRps ? "rps " : "concurrency ",
                 observed, ", target ", spec.target, " x ", spec.utilization, ")")};
}

}  // namespace osprey::controlplane
