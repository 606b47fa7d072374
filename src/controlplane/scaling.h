#pragma once

// How many replicas a revision runs, as pure functions: the KPA settings of a
// revision from the platform defaults, its predictor's scaling fields and
// Knative's autoscaling.knative.dev/* annotations, and the replicas to run
// now from the autoscaler's last decision. The local controller and the
// Kubernetes operator both call these; neither keeps a rule of its own.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "autoscaler/kpa.h"
#include "resources/resources.h"

namespace osprey::controlplane {

// "60s", "2m", "500ms", "1h" or plain seconds; nullopt when unreadable or
// negative.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

// Knative's autoscaling.knative.dev/* annotations over `spec`. Unreadable or
// out-of-range values are ignored: the value before stands (Knative's webhook
// would refuse them; a running platform keeps serving).
void ApplyAutoscalingAnnotations(const std::map<std::string, std::string>& annotations,
                                 autoscaler::KpaSpec* spec);

// The KPA settings of one revision: `defaults`, then the predictor's
// scaleMetric/scaleTarget and maxReplicas, then the annotations of the
// InferenceService and then of the predictor (the closer one wins). The
// minimum is never below `min_replicas`, the reconciler's floor for the
// revision (its minReplicas while it is aspired). With containerConcurrency,
// a concurrency target is at most that (Knative's rule).
autoscaler::KpaSpec KpaSpecFor(const autoscaler::KpaSpec& defaults,
                               const std::map<std::string, std::string>& isvc_annotations,
                               const resources::Component& predictor, int min_replicas);

// What the controller knows of a revision's scale between decisions.
struct ScaleState {
  bool decided = false;     // the autoscaler decided at least once this run
  int decision = 0;         // its last decision
  int adopted = 0;          // replicas a previous run left running (kept until the first decision)
  bool activating = false;  // the gateway holds requests for it
  // It was ready before (a previous run served it): the initial scale is
  // for a revision's first start, not for every start of the platform.
  bool ever_ready = false;
};

// Replicas the revision runs now: the autoscaler's last decision; before the
// first one the initial scale (only for a revision never ready), or what a
// previous run left running (capped at max_scale); at least one while
// requests wait for it.
int DesiredReplicas(const autoscaler::KpaSpec& spec, const ScaleState& state);

// The event of a revision's scale changing from `before` replicas (-1: no
// scale known yet, no event) to the decision's: Scaled, or ScaledToZero, with
// the decider's reason, what it observed and its target. Empty reason: no
// change.
struct ScaleEvent {
  std::string reason;  // "" | Scaled | ScaledToZero
  std::string message;
};
ScaleEvent ScaleEventFor(const std::string& revision, int before,
                         const autoscaler::KpaDecision& decision, const autoscaler::KpaSpec& spec);

}  // namespace osprey::controlplane
