#include "controlplane/trained_model.h"

#include <rapidjson/document.h>

#include <algorithm>

#include "common/flags.h"
#include "common/strings.h"

namespace osprey::controlplane {

TrainedModelPlan PlanTrainedModel(const resources::TrainedModel& tm, const TrainedModelTarget& t,
                                  const TrainedModelPlacement& placement) {
  TrainedModelPlan plan;
  auto condition = [&](std::string type, bool ok, std::string reason, std::string message) {
    plan.status.conditions.push_back({std::move(type), ok ? "True" : "False",
                                      ok ? "" : std::move(reason), ok ? "" : std::move(message)});
    return ok;
  };
  const std::string& isvc = tm.inference_service;
  const bool supported =
      std::find(t.formats.begin(), t.formats.end(), tm.framework) != t.formats.end();
  std::string served;
  for (const auto& f : t.formats) StrAppend(&served, served.empty() ? "" : ", ", f);
  bool ok = condition(
      "FrameworkSupported", t.exists && supported, "FrameworkNotSupported",
      !t.exists ? StrCat("InferenceService ", isvc, " does not exist")
                : StrCat("framework ", tm.framework, " is not supported by runtime ",
                         t.runtime.empty() ? std::string("(none resolved)") : t.runtime,
                         served.empty() ? std::string() : StrCat(" (it serves ", served, ")")));
  ok = condition("InferenceServiceReady", t.exists && t.ready, "InferenceServiceNotReady",
                 t.exists ? StrCat("InferenceService ", isvc, " is not ready")
                          : StrCat("InferenceService ", isvc, " does not exist")) &&
       ok;
  ok = condition("IsMMSPredictor", t.exists && t.multi_model, "NotMMSPredictor",
                 StrCat("InferenceService ", isvc,
                        " is not multi-model: its predictor names a storageUri (a multi-model "
                        "predictor has the model form without one)")) &&
       ok;
  const bool fits = !t.memory_limit.has_value() || t.memory_requested <= *t.memory_limit;
  ok = condition("MemoryResourceAvailable", fits, "MemoryResourceUnavailable",
                 StrCat("the TrainedModels of ", isvc, " ask for ", t.memory_requested,
                        " bytes; its predictor's memory limit is ", t.memory_limit.value_or(0),
                        " bytes")) &&
       ok;
  plan.place = ok;
  plan.status.ready = ok && placement.placed && placement.error.empty();
  std::string why = !ok                        ? "a precondition above does not hold"
                    : !placement.error.empty() ? placement.error
                                               : "the model is being placed";
  condition("Ready", plan.status.ready,
            !ok                       ? "NotReady"
            : placement.error.empty() ? "Placing"
                                      : "FailedToLoad",
            why);
  if (t.exists && !t.url.empty()) plan.status.url = StrCat(t.url, "/v1/models/", tm.meta.name);
  return plan;
}

std::optional<uint64_t> MemoryLimit(const std::string& resources_json) {
  rapidjson::Document d;
  d.Parse(resources_json.data(), resources_json.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("limits") || !d["limits"].IsObject())
    return std::nullopt;
  const auto& limits = d["limits"];
  if (!limits.HasMember("memory")) return std::nullopt;
  std::string text = limits["memory"].IsString()   ? limits["memory"].GetString()
                     : limits["memory"].IsNumber() ? StrCat(limits["memory"].GetDouble())
                                                   : std::string();
  auto bytes = ParseByteSize(text);
  if (!bytes.ok()) return std::nullopt;
  return *bytes;
}

uint64_t ModelCacheBudget(uint64_t memory_limit) {
  constexpr uint64_t kMiB = 1ull << 20;
  const uint64_t own = std::clamp<uint64_t>(memory_limit / 8, 64 * kMiB, 1024 * kMiB);
  return std::max(memory_limit / 2, memory_limit > own ? memory_limit - own : 0);
}

}  // namespace osprey::controlplane
