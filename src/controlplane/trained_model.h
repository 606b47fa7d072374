#pragma once

// TrainedModels (KServe's serving.kserve.io/v1alpha1): models placed onto a
// running multi-model InferenceService. What a TrainedModel's status says,
// from its InferenceService and from how its placement went, decided by one
// pure function; the controllers fetch the model into the service's model
// repository and ask its replicas to load it.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/reconciler.h"
#include "resources/resources.h"

namespace osprey::controlplane {

// What a TrainedModel needs of its InferenceService.
struct TrainedModelTarget {
  bool exists = false;
  // Multi-model: a predictor of the model form without a storageUri (its
  // replicas serve a model repository, models loaded on demand).
  bool multi_model = false;
  bool ready = false;                    // its Ready condition
  std::string url;                       // its status.url
  std::string runtime;                   // its predictor's runtime ("" when none resolved)
  std::vector<std::string> formats;      // that runtime's supported model formats
  std::optional<uint64_t> memory_limit;  // the predictor's resources.limits.memory
  // spec.model.memory of this TrainedModel and of the service's TrainedModels
  // created before it (a newcomer past the limit is refused, not the others).
  uint64_t memory_requested = 0;
};

// How its placement went (the controller's fetch and load).
struct TrainedModelPlacement {
  bool placed = false;  // fetched into the repository, loaded where replicas run
  std::string error;    // why the last placement failed
};

struct TrainedModelStatus {
  std::string url;  // the service's /v1/models/{name}
  std::vector<Condition> conditions;
  bool ready = false;
  bool operator==(const TrainedModelStatus&) const = default;
};

struct TrainedModelPlan {
  TrainedModelStatus status;
  bool place = false;  // every precondition holds: fetch and load it
};

// Conditions, in KServe's order: FrameworkSupported, InferenceServiceReady,
// IsMMSPredictor, MemoryResourceAvailable, Ready. `place` when the first four
// hold; Ready when placed too. The url is the service's /v1/models/{name}.
TrainedModelPlan PlanTrainedModel(const resources::TrainedModel& tm, const TrainedModelTarget& t,
                                  const TrainedModelPlacement& placement);

// The predictor's resources.limits.memory in bytes, from its resources JSON.
std::optional<uint64_t> MemoryLimit(const std::string& resources_json);

// The models' share of a container's memory limit, the replica's model
// cache budget: the limit less the server's own memory (an eighth of the
// limit, at least 64 MiB and at most 1 GiB), never under half the limit.
uint64_t ModelCacheBudget(uint64_t memory_limit);

}  // namespace osprey::controlplane
