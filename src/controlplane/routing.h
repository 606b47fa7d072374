#pragma once

// The gateway's route table from the InferenceServices' status, as a pure
// function. Per InferenceService: its host (and its name for the model-name
// fallback, and /serving/{ns}/{name}/ on any host) split as the entry
// component's traffic says (the transformer's when it has one, else the
// predictor's), V1 `:explain` on its host to the explainer, and each
// component's own host {name}-{component}-{ns}.{domain} (and
// /serving/{ns}/{name}-{component}/), where a transformer or explainer
// reaches the predictor; with tag routing on
// (serving.kserve.io/enable-tag-routing: "true") a latest- host for the latest
// created revision and a prev- host for the revision tagged prev; with
// serving.osprey.dev/mirror-percent N, N% of the main route's requests copied
// to the latest revision once it is ready (answers discarded). A route of a
// component with a `logger` carries it (the service's own routes: the entry
// component's; :explain: the explainer's). Where a
// revision's replicas are (ports, sockets) is the executor's part: it hands
// each revision's gateway target in ready-made.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "controlplane/reconciler.h"
#include "gateway/route_table.h"

namespace osprey::controlplane {

// Osprey's annotation for shadow traffic.
inline constexpr char kMirrorAnnotation[] = "serving.osprey.dev/mirror-percent";
// Osprey's annotation for the trace sampling ratio of an InferenceService's
// (or an InferenceGraph's) requests that start a trace ("0".."1"); without
// it (or when it is not such a number) the platform's sampler decides.
inline constexpr char kTraceSamplingAnnotation[] = "serving.osprey.dev/trace-sampling";

// The ratio kTraceSamplingAnnotation gives among `annotations`: a decimal
// number from 0 to 1 (spaces around it allowed); nullopt when absent or
// anything else. Pure.
std::optional<double> TraceSamplingOf(const std::map<std::string, std::string>& annotations);

struct RevisionRouting {
  // Key "{ns}/{revision}", name, containerConcurrency and the ready replicas
  // that stay (one about to be stopped is already left out).
  gateway::RevisionTarget target;
  bool aspired = false;
  RevisionPhase phase = RevisionPhase::kPending;
};

struct ServiceRouting {
  resources::ObjectMeta meta;
  std::optional<int> timeout_seconds;  // spec.predictor.timeout
  std::optional<int> transformer_timeout_seconds;
  std::optional<int> explainer_timeout_seconds;
  // Each component's `logger` (spec.{predictor,transformer,explainer}.logger).
  std::optional<resources::Logger> predictor_logger;
  std::optional<resources::Logger> transformer_logger;
  std::optional<resources::Logger> explainer_logger;
  IsvcStatus status;
  std::vector<std::string> aspired;  // revision keys: in the table even without traffic
  // The name the predictor serves its model under (--model_name in its
  // args; ServedModelName), when it is not the InferenceService's: requests
  // that find their route by model name use it.
  std::string served_model_name;
};

// A Knative Service's routes: its host {name}.{ns}.{domain} and in-cluster
// names (knative.h) split by its resolved traffic, a host per tag
// ({tag}-{name}.{ns}.{domain}, all to that entry's revision), and the path
// /serving/{ns}/{name}/ on any host; timeoutSeconds bounds each request.
struct KnativeRouting {
  resources::ObjectMeta meta;
  std::optional<int> timeout_seconds;
  std::vector<TrafficTarget> traffic;  // KnativeStatus::traffic
  std::vector<std::string> aspired;    // revision keys
};

// A revision key and its percent of a route's requests.
using KeyShare = std::pair<std::string, int>;

// A route planned elsewhere (an Istio VirtualService's, istio.h) with its
// split and mirror as revision keys.
struct KeyedRoute {
  gateway::Route route;
  std::vector<KeyShare> split;
  // Header changes of the destinations that reach each revision of `split`
  // (WeightedRevision::headers), by key.
  std::map<std::string, std::shared_ptr<const gateway::HeaderOps>> split_headers;
  std::optional<KeyShare> mirror;
  bool wildcard = false;  // on a "*" or "*.suffix" host: after the services' routes
};

// `revisions` by key. A traffic entry whose revision is unknown is left out.
// `keyed` routes come first (after them, if `wildcard`, every service's).
gateway::RouteTable PlanRoutes(const std::vector<ServiceRouting>& services,
                               const std::map<std::string, RevisionRouting>& revisions,
                               const PlatformConfig& config,
                               const std::vector<KnativeRouting>& knative = {},
                               const std::vector<KeyedRoute>& keyed = {});

// Whether two tables route alike (routes, splits, mirrors, timeouts, loggers, revision
// endpoints and limits). A table is republished only when it changed: a
// route's draw sequence restarts with a new table.
bool SameRoutes(const gateway::RouteTable& a, const gateway::RouteTable& b);

}  // namespace osprey::controlplane
