#pragma once

// An InferenceGraph's status and its route, as pure functions: what KServe's
// InferenceGraph controller decides. Each serviceName step is resolved, as
// KServe's controller does before it starts the router, to its
// InferenceService's URL plus the predict path of the service's protocol
// and model name (/v1/models/{model}:predict, /v2/models/{model}/infer); a
// step that names a missing service, or one that has never had a ready
// revision (KServe: no status.address yet), keeps the graph not Ready (and
// unrouted). Once every step resolves, the graph is routed on its own host
// ({name}-{namespace}.{domain} by the platform's template) and Ready, with
// the conditions KServe copies from the router's Knative Service
// (ConfigurationsReady, Ready, RoutesReady) plus Stopped False; status.url
// is set only while Ready.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/reconciler.h"
#include "gateway/route_table.h"
#include "resources/resources.h"

namespace osprey::controlplane {

// What a graph needs of an InferenceService its steps name.
struct GraphServiceView {
  std::string url;           // its URL (ServiceUrl); "" until it has had a ready revision
  std::string predict_path;  // "" for a gRPC-only protocol
};

// The view of `isvc` (its stored status, its runtimes for the protocol of an
// explicitly named runtime), following KServe's GetPredictorEndpoint: the
// transformer's protocol when it has one, else the predictor's (an explicit
// runtime's first listed v1 or v2 protocol when the model names none); the
// model name from --model_name / MLSERVER_MODEL_NAME as KServe reads it,
// else the service's name.
GraphServiceView GraphServiceViewOf(const resources::InferenceService& isvc,
                                    const IsvcStatus& status,
                                    const std::vector<resources::ServingRuntime>& ns_runtimes,
                                    const std::vector<resources::ServingRuntime>& cluster_runtimes,
                                    const PlatformConfig& config);

struct GraphStatus {
  std::string url;  // set while Ready
  std::vector<Condition> conditions;
  bool ready = false;
  bool operator==(const GraphStatus&) const = default;
};

struct GraphPlan {
  GraphStatus status;
  // The route, when Ready: the graph's canonical JSON with serviceUrl filled in.
  std::optional<gateway::GraphRoute> route;
};

// `services`: the graph's namespace's InferenceServices by name.
GraphPlan PlanGraph(const resources::InferenceGraph& graph,
                    const std::map<std::string, GraphServiceView>& services,
                    const PlatformConfig& config);

// The graph as the API shows it: the resource as applied with
// metadata.creationTimestamp and generation, and status (url, conditions with
// lastTransitionTime from `transition_times` by type, observedGeneration).
std::string GraphJson(const std::string& resource_json, const std::string& created,
                      int64_t generation, int64_t observed_generation, const GraphStatus& status,
                      const std::map<std::string, std::string>& transition_times);

}  // namespace osprey::controlplane
