#pragma once

// The API's objects as KServe and Knative show them, rendered from typed
// snapshots (pure: no store, no locks). `osprey get -o json` and kubectl-style
// clients read these; the Kubernetes operator writes the same status shape.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_dom.h"
#include "common/status.h"
#include "controlplane/knative.h"
#include "controlplane/reconciler.h"
#include "resources/kinds.h"

namespace osprey::controlplane {

// A revision's spec as the store keeps it and the Revision view shows it.
std::string RevisionSpecJson(const RevisionSpec& spec);
// The inverse; a record stored before revisions were kept in KServe's terms
// (a local "command" and "healthPath") reads as a container with that
// command and an HTTP probe of that path.
absl::StatusOr<RevisionSpec> ParseRevisionSpec(std::string_view json);

// The canonical JSON of an InferenceService's predictor as a revision is
// made from it ("{}" when it has none): traffic (canaryTrafficPercent) is
// not part of a revision, so changing it moves traffic between revisions.
std::string PredictorSpecJson(std::string_view isvc_json);
// The same of spec.{component} (transformer, explainer; "" when absent).
std::string ComponentSpecJson(std::string_view isvc_json, const char* component);

struct IsvcRecord {
  std::string resource_json;  // canonical JSON as applied
  std::string created;        // RFC 3339
  int64_t generation = 1;
  int64_t observed_generation = 0;
  IsvcStatus status;
  std::map<std::string, std::string> transition_times;  // condition type -> RFC 3339
  // A tag's URL is status.url with "{tag}-" before its host (an
  // InferenceService component's), not Knative's {tag}-{name}.{ns}.{domain}.
  bool tag_before_url = false;
};
// The InferenceService with metadata.creationTimestamp/generation and a
// KServe-shaped status (url, address, conditions, components.predictor with
// traffic and tag URLs, modelStatus, observedGeneration).
std::string IsvcJson(const IsvcRecord& r);

// The status alone (what the operator writes to the status subresource);
// `transition_times` by condition type.
std::string IsvcStatusJson(const IsvcStatus& status,
                           const std::map<std::string, std::string>& transition_times,
                           int64_t observed_generation);

// A (Cluster)ServingRuntime as applied, with its creationTimestamp; a
// built-in one is labelled osprey.dev/builtin: "true".
std::string RuntimeJson(const std::string& resource_json, const std::string& created, bool builtin);

struct ReplicaView {
  std::string id;
  int pid = 0;
  int port = 0;
  std::string state;
  int restarts = 0;
  std::string last_exit;
  bool adopted = false;
};
struct StorageView {
  std::string uri;
  std::string phase;  // idle | starting | downloading | ... | done | failed
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  int files_done = 0;
  std::string error;
};
struct RevisionRecord {
  RevisionSpec spec;
  RevisionObserved observed;
  int desired = 0;
  std::string model_dir;
  StorageView storage;
  // How it runs here (status.local); empty when it cannot.
  std::vector<std::string> command;
  std::string readiness_path;
  std::vector<ReplicaView> replicas;
};
// A Knative-style Revision (serving.knative.dev/v1): the revision's spec in
// KServe's terms, its phase, replicas and model fetch.
std::string RevisionJson(const RevisionRecord& r);

struct AutoscalerRecord {
  std::string revision;
  std::string namespace_;
  std::string created;
  int desired = 0;
  int actual = 0;
  int ready = 0;
  std::string reason;  // the last decision's, or Initial before one
  double observed_stable = 0;
  double observed_panic = 0;
  bool panicking = false;
};
// A Knative PodAutoscaler (autoscaling.internal.knative.dev/v1alpha1).
std::string PodAutoscalerJson(const AutoscalerRecord& r);

struct KnativeRecord {
  std::string resource_json;  // canonical JSON as applied
  std::string created;        // RFC 3339
  int64_t generation = 1;
  int64_t observed_generation = 0;
  KnativeStatus status;
  std::map<std::string, std::string> transition_times;  // condition type -> RFC 3339
  // A tag's URL is status.url with "{tag}-" before its host (an
  // InferenceService component's), not Knative's {tag}-{name}.{ns}.{domain}.
  bool tag_before_url = false;
};
// A Knative Service (serving.knative.dev/v1) with its status: url, address,
// conditions, latestCreated/ReadyRevisionName, traffic (tag URLs),
// observedGeneration.
std::string KnativeServiceJson(const KnativeRecord& r, const PlatformConfig& config);
// The Configuration and Route a Knative Service owns, under its name: the
// template with the latest created and ready revisions; the traffic and URL.
std::string ConfigurationJson(const KnativeRecord& r);
std::string RouteJson(const KnativeRecord& r, const PlatformConfig& config);

// An InferenceService component as the Knative Service KServe makes for it
// ({isvc}-{component}, labelled serving.kserve.io/inferenceservice and
// component): `latest`'s container (the latest created revision's; null:
// none yet) as its template, the component's status (url, latest
// revisions, traffic) and its `ready` condition ({Component}Ready) as
// Ready, ConfigurationsReady and RoutesReady.
KnativeRecord ComponentAsKnative(const resources::ObjectMeta& isvc, std::string_view component,
                                 const ComponentStatus& status, const Condition* ready,
                                 const RevisionSpec* latest, const std::string& created,
                                 int64_t generation, const std::string& ready_time);

struct DeploymentRecord {
  std::string revision;  // the Deployment is "{revision}-deployment"
  std::string namespace_;
  std::string created;
  std::map<std::string, std::string> labels;
  int desired = 0;
  int replicas = 0;
  int ready = 0;
};
// What runs a revision, as a Kubernetes Deployment (apps/v1): spec.replicas
// the desired scale; status replicas, readyReplicas, availableReplicas,
// updatedReplicas.
std::string DeploymentJson(const DeploymentRecord& r);

// A status's "conditions" array as Kubernetes writes it, each with its
// lastTransitionTime from `transition_times` (by condition type).
void WriteConditionList(json::Writer& w, const std::vector<Condition>& conditions,
                        const std::map<std::string, std::string>& transition_times);

// {"items": [...]} of rendered items.
std::string ListJson(const std::vector<std::string>& items);
// The same as the Kubernetes list of `kind` ({"apiVersion": group/version,
// "kind": "InferenceServiceList", "metadata": {}, "items": [...]}).
std::string ListJson(const resources::KindInfo& kind, const std::vector<std::string>& items);

}  // namespace osprey::controlplane
