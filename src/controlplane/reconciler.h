#pragma once

// The reconciler's decisions, as pure functions over snapshots:
// (InferenceService spec, its revisions and what is observed of them,
// runtimes, clock) -> plan. The controller executes plans (store writes,
// downloads, replica processes); nothing here does I/O.
//
// A revision's life (RevisionPhase):
//
//   kPending --storage fetch starts--> kDownloading --done--> kLoading
//   kLoading --a replica answers its readiness probe--> kReady
//   kDownloading/kLoading --fetch fails / replicas crash before ready--> kFailed
//   kFailed --a later replica becomes ready (backoff restarts)--> kReady
//   any --no longer aspired--> kRetired (replicas stopped; spec kept)

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "resources/resources.h"

namespace osprey::controlplane {

// What the plan needs of the platform it runs on. Nothing here says how a
// revision runs (processes, pods): that is the executor's placement step
// (local/placement.h for `osprey up`).
struct PlatformConfig {
  std::string domain = "example.com";
  // "{{.Name}}-{{.Namespace}}.{{.Domain}}" (default) or "{{.Name}}.{{.Namespace}}.{{.Domain}}"
  std::string domain_template = "{{.Name}}-{{.Namespace}}.{{.Domain}}";
  uint16_t gateway_port = 8080;  // shown in URLs when not 80
  // What the platform says of a model format no runtime serves (e.g. that it
  // needs hardware it lacks), added to NoSupportingRuntime's message.
  std::map<std::string, std::string> format_notes;
};

// An immutable revision of a component, in KServe's terms: the spec it was
// made from and the container that serves it, as KServe would put it in the
// pod. How it runs on a given platform is decided by that platform's executor
// (an executor that cannot run it reports the revision Failed, as Kubernetes
// reports ImagePullBackOff; the spec stays valid).
struct RevisionSpec {
  std::string name;  // {isvc}-{component}-{00001}
  std::string namespace_;
  std::string isvc;                     // the owner's name
  std::string component = "predictor";  // predictor | transformer | explainer; "" for a ksvc's
  // The owner's kind: an InferenceService, or a Knative Service
  // (kKnativeServiceKind, knative.h) whose spec_json is its template.
  std::string kind = "InferenceService";
  int number = 0;
  std::string spec_json;     // canonical JSON of the component's spec
  std::string created;       // RFC 3339
  std::string runtime;       // runtime name; "" for custom containers
  std::string model_format;  // format name as the user wrote it; "" for custom containers
  std::string storage_uri;
  std::string protocol = "v1";
  // The serving container: the runtime's kserve-container (or the
  // predictor's own) with KServe's templates ({{.Name}}, {{.Namespace}},
  // {{.Labels.key}}, {{.Annotations.key}}) expanded and the model's args and
  // env appended. Paths under /mnt/models and port flags are as written.
  resources::Container container;
  std::optional<resources::Batcher> batcher;  // the component's batcher
  int min_replicas = 1;
  int max_replicas = 0;
  // Set when the spec cannot be served on any platform: NoSupportingRuntime,
  // InvalidPredictorSpec, RuntimeNotRecognized (a runtime without container).
  std::string failure_reason;
  std::string failure_message;
};

enum class RevisionPhase { kPending, kDownloading, kLoading, kReady, kFailed, kRetired };
std::string_view RevisionPhaseName(RevisionPhase p);

struct RevisionObserved {
  RevisionPhase phase = RevisionPhase::kPending;
  int replicas = 0;         // replica processes that exist
  int ready_replicas = 0;   // of them, answering their readiness probe
  int failed_replicas = 0;  // of them, crashed or restarting
  std::string reason;       // on kFailed: ModelLoadFailed, StorageFailed, ...
  std::string message;
  std::string failure_time;  // RFC 3339
  bool ever_ready = false;
};

struct RevisionView {
  RevisionSpec spec;
  RevisionObserved observed;
};

// The predictor's spec as a new revision would run it, or the reason it
// cannot. Pure; the same on every platform.
RevisionSpec ResolveRevision(const resources::InferenceService& isvc, const std::string& spec_json,
                             int number, const std::string& now,
                             const std::vector<resources::ServingRuntime>& namespace_runtimes,
                             const std::vector<resources::ServingRuntime>& cluster_runtimes,
                             const PlatformConfig& config);

// A transformer's or explainer's revision (`component` is "transformer" or
// "explainer"): its container with KServe's arguments appended where the
// args lack them: --model_name {isvc}, --predictor_host
// {isvc}-predictor.{namespace} (the predictor's in-cluster host; an executor
// maps it to where the predictor answers), --http_port 8080 (the explainer:
// always), --workers {containerConcurrency} when set. An explainer of a
// named type (art) runs that type's image with its settings as flags. The
// protocol is the container's PROTOCOL env, v1 without it.
RevisionSpec ResolveComponentRevision(const resources::InferenceService& isvc,
                                      const std::string& component, const std::string& spec_json,
                                      int number, const std::string& now);

// The component spec revision `rev` was made from: its spec_json read as the
// predictor, transformer or explainer it is, or as a Knative Service's
// template (nullopt when it does not parse; a stored revision always should).
std::optional<resources::Component> RevisionComponent(const RevisionSpec& rev);

// The names of the components an InferenceService has, predictor first.
std::vector<std::string> ComponentsOf(const resources::InferenceService& isvc);
// The component of that name (nullptr when the service has none).
const resources::Component* ComponentOf(const resources::InferenceService& isvc,
                                        std::string_view component);

// Expands KServe's container templates ({{.Name}}, {{.Namespace}},
// {{.Labels.key}}, {{.Annotations.key}}) in one string.
std::string ExpandTemplates(const std::string& text, const resources::ObjectMeta& meta);

struct Condition {
  std::string type;
  std::string status;  // "True", "False", "Unknown"
  std::string reason;
  std::string message;
  bool operator==(const Condition&) const = default;
};

// One entry of status.components.predictor.traffic.
struct TrafficTarget {
  std::string revision;
  int percent = 0;
  std::string tag;      // "latest", "prev" or ""
  bool latest = false;  // the latest created revision
  bool operator==(const TrafficTarget&) const = default;
};

// A transformer's or explainer's part of status.components: its URL,
// revisions and traffic, as the predictor's in IsvcStatus.
struct ComponentStatus {
  std::string url;
  std::string latest_created;
  std::string latest_ready;
  std::string latest_rolled_out;
  std::string previous_rolled_out;
  std::vector<TrafficTarget> traffic;
  bool operator==(const ComponentStatus&) const = default;
};

struct IsvcStatus {
  std::string url;
  std::string predictor_url;  // components.predictor.url: {isvc}-predictor's host
  std::vector<Condition> conditions;
  std::string latest_created;
  std::string latest_ready;
  std::string latest_rolled_out;
  std::string previous_rolled_out;
  // Where requests go; percents sum to 100 (empty: no revision is ready).
  // Only ready revisions appear. A 0% entry keeps a tagged revision routable.
  std::vector<TrafficTarget> traffic;
  // modelStatus
  std::string transition_status;   // UpToDate | InProgress | BlockedByFailedLoad | InvalidSpec
  std::string active_model_state;  // "" | Pending | Loading | Loaded | FailedToLoad
  std::string target_model_state;
  std::string failure_reason;
  std::string failure_message;
  std::string failure_time;
  int total_copies = 0;
  int failed_copies = 0;
  // The other components, when the service has them.
  std::optional<ComponentStatus> transformer;
  std::optional<ComponentStatus> explainer;
  // The component of that name: the predictor's fields read into one.
  std::optional<ComponentStatus> Component(std::string_view component) const;
  bool operator==(const IsvcStatus&) const = default;
};

struct ReconcileInput {
  const resources::InferenceService* isvc = nullptr;
  std::string spec_json;  // canonical JSON of the predictor spec
  // Canonical JSON of the transformer's and explainer's specs (ComponentSpecJson;
  // "" when the service has none).
  std::string transformer_json;
  std::string explainer_json;
  // This isvc's, by increasing number; each component's revisions are those
  // whose spec.component names it.
  std::vector<RevisionView> revisions;
  const std::vector<resources::ServingRuntime>* namespace_runtimes = nullptr;
  const std::vector<resources::ServingRuntime>* cluster_runtimes = nullptr;
  const PlatformConfig* config = nullptr;
  std::string now;                  // RFC 3339
  std::string previous_rolled_out;  // from the stored status
  std::string latest_rolled_out;
  // The stored status, for the transformer's and explainer's rolled-out
  // revisions (nullptr: none yet).
  const IsvcStatus* stored = nullptr;
  // Components the executor runs besides the predictor; one it does not
  // run is left out of the plan and the status.
  bool run_transformer = true;
  bool run_explainer = true;
};

struct ReconcilePlan {
  // New revisions to record and start, at most one per component.
  std::vector<RevisionSpec> create;
  // The aspired revisions with their minimum replicas (the autoscaler decides
  // how many above that); a revision absent here is retired (0 replicas).
  std::map<std::string, int> replicas;
  IsvcStatus status;
};

// Traffic follows KServe's canary rollout: without canaryTrafficPercent the
// latest ready revision takes 100% (and becomes the rolled-out one once it is
// the latest created). With canaryTrafficPercent N and a newer revision than
// the rolled-out one, the newer takes N% (tag latest) and the rolled-out one
// the rest (tag prev); N = 0 pins everything to the rolled-out revision while
// the newer stays deployed; removing the field promotes. A revision that is
// not ready never gets traffic. Each component (predictor, transformer,
// explainer) has its own revisions, traffic and canary; the service is
// Ready when every component is (PredictorReady, TransformerReady,
// ExplainerReady) and the entry component (the transformer when there is
// one, else the predictor) has a ready revision (IngressReady). modelStatus
// follows the predictor.
ReconcilePlan Reconcile(const ReconcileInput& input);

// "http://iris-default.example.com" (":port" added when not 80).
std::string ServiceHost(const resources::ObjectMeta& meta, const PlatformConfig& config);
std::string ServiceUrl(const resources::ObjectMeta& meta, const PlatformConfig& config);
// A component's own host and URL: those of "{isvc}-{component}"
// (http://iris-predictor-default.example.com).
std::string ComponentHost(const resources::ObjectMeta& meta, std::string_view component,
                          const PlatformConfig& config);
std::string ComponentUrl(const resources::ObjectMeta& meta, std::string_view component,
                         const PlatformConfig& config);

}  // namespace osprey::controlplane
