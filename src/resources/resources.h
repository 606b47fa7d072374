#pragma once

// KServe's API objects as typed values: InferenceService
// (serving.kserve.io/v1beta1), ServingRuntime, ClusterServingRuntime and InferenceGraph
// (serving.kserve.io/v1alpha1), and Knative's Service (serving.knative.dev/v1). Parsed from
// KServe's own YAML or JSON unchanged, defaulted and validated here; this library knows nothing of
// what acts on them (no process, store or network code).
//
// Every error names the field path it is about, KServe-style:
//   spec.predictor.model.modelFormat.name: required
// and, for a multi-document file, which document ("document 2: ...").

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"
#include "resources/inference_graph.h"
#include "resources/istio.h"
#include "resources/object_meta.h"

namespace osprey::resources {

struct EnvVar {
  std::string name;
  std::string value;
  // valueFrom as compact JSON ("" for none): exactly one of fieldRef,
  // resourceFieldRef, configMapKeyRef, secretKeyRef. Pods on a cluster get
  // it as written; a local replica resolves what it can (placement.h).
  std::string value_from;
  bool operator==(const EnvVar&) const = default;
};

// A container's declared port. Knative's convention, which KServe follows: a
// port named h2c serves HTTP/2 cleartext, i.e. gRPC.
struct ContainerPort {
  std::string name;
  int container_port = 0;
  std::string protocol;  // TCP when not given
  bool operator==(const ContainerPort&) const = default;
};

struct Container {
  std::string name;
  std::string image;
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::vector<EnvVar> env;
  std::string resources_json;  // kept as given ({} when absent); not enforced locally
  // readinessProbe, kept as given ("" when absent), and what of it the local
  // platform honors: an HTTP GET of probe_path, or a TCP connect, on the
  // replica's port (the probe's port names the container's port, which is the
  // replica's). exec and grpc probes are kept but not run: such a replica is
  // checked as one without a probe.
  std::string readiness_probe_json;
  enum class Probe { kNone, kHttpGet, kTcpSocket, kOther };
  Probe probe = Probe::kNone;
  std::string probe_path;  // kHttpGet: path and query
  std::vector<ContainerPort> ports;
  // The Kubernetes Container fields Osprey does not model (envFrom,
  // volumeMounts, securityContext, livenessProbe, ...) as given: a compact
  // JSON object in document order, "" when none. Kept and written back; a
  // cluster pod gets them as written; `osprey up` does not apply them.
  std::string extra_json;
  bool operator==(const Container&) const = default;
};

// The containerPort of the container's port named h2c (it serves gRPC
// there), 0 when it declares none.
inline int GrpcContainerPort(const Container& c) {
  for (const ContainerPort& p : c.ports)
    if (p.name == "h2c") return p.container_port;
  return 0;
}

struct ModelFormat {
  std::string name;     // lower-cased as KServe compares them
  std::string version;  // empty: any; otherwise matched exactly against a runtime's version
  bool operator==(const ModelFormat&) const = default;
};

// Predictor `model:` form. Legacy framework keys (`sklearn:`, `xgboost:`, ...)
// are rewritten into this form with format = the key.
struct ModelSpec {
  ModelFormat format;
  std::string runtime;      // explicit runtime name, empty: auto-select
  std::string storage_uri;  // may be empty for a runtime that needs none
  // "v1", "v2", "grpc-v1" or "grpc-v2"; empty when not given. Empty selects
  // as v1 (KServe's default, see ProtocolOf) but, as in KServe, leaves the
  // protocol of an explicitly named runtime unchecked (`runtime:
  // kserve-mlserver` without protocolVersion is valid and speaks v2).
  std::string protocol_version;
  std::vector<std::string> args;
  std::vector<EnvVar> env;
  std::string resources_json;  // {} when absent
  bool operator==(const ModelSpec&) const = default;
};

// The protocol a model is selected with: protocol_version, v1 when not given.
inline std::string_view ProtocolOf(const ModelSpec& m) {
  return m.protocol_version.empty() ? std::string_view("v1") : std::string_view(m.protocol_version);
}

struct Batcher {
  int max_batch_size = 32;
  int max_latency_ms = 500;
  bool operator==(const Batcher&) const = default;
};

// Payload logging of a component's exchanges as CloudEvents (KServe's
// LoggerSpec): POSTed to `url` (http:// or https://, required).
struct Logger {
  std::string url;
  std::string mode = "all";  // all | request | response
  // Request headers copied into each event's `metadata` attribute.
  std::vector<std::string> metadata_headers;
  // The InferenceService's annotations copied into its `annotations` attribute.
  std::vector<std::string> metadata_annotations;
  bool operator==(const Logger&) const = default;
};

// Predictor, transformer or explainer.
struct Component {
  // Fields every component has (KServe's ComponentExtensionSpec).
  int min_replicas = 1;  // 0 allows scale to zero
  int max_replicas = 0;  // 0: unbounded
  std::optional<int> scale_target;
  std::string scale_metric;  // "" | concurrency | rps | cpu | memory
  int container_concurrency = 0;
  std::optional<int> timeout_seconds;
  std::optional<int> canary_traffic_percent;
  std::optional<Logger> logger;
  std::optional<Batcher> batcher;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;

  // Exactly one of: the model form (predictor; legacy keys rewritten here),
  // custom containers, or (explainer) a named explainer type.
  std::optional<ModelSpec> model;
  std::string legacy_key;  // the framework key the user wrote, "" for `model:`
  // A single custom container without a name is named kserve-container, as
  // KServe's defaulter does; with several, each needs its name.
  std::vector<Container> containers;
  std::string explainer_type;  // e.g. "art", for `explainer: {art: {...}}`
  std::string explainer_json;  // that type's own settings as compact JSON ("" without a type)
  // The named explainer's container as KServe builds it from those settings
  // (ExplainerExtensionSpec: the container's fields inline, `type`, `config`,
  // `storageUri`, `runtimeVersion`): image kserve/<type>-explainer unless
  // given; args --adversary_type TYPE (art), --KEY VALUE per config entry in
  // key order, --storage_uri /mnt/models with storage (STORAGE_URI in its
  // env), then its own args. Derived when parsed; not written back.
  std::optional<Container> explainer_container;
  // The predictor's workerSpec (multi-node serving) as compact JSON; "" when absent.
  std::string worker_spec_json;
  // The Kubernetes PodSpec fields beside the containers (volumes,
  // serviceAccountName, imagePullSecrets, securityContext, nodeSelector,
  // tolerations, ...) as given, like Container::extra_json.
  std::string pod_json;
  bool operator==(const Component&) const = default;
};

struct InferenceService {
  ObjectMeta meta;
  Component predictor;
  std::optional<Component> transformer;
  std::optional<Component> explainer;
  bool operator==(const InferenceService&) const = default;
};

struct SupportedModelFormat {
  std::string name;
  std::string version;
  bool auto_select = false;
  std::optional<int> priority;  // >= 1; higher wins
  bool operator==(const SupportedModelFormat&) const = default;
};

// ServingRuntime (namespaced) or ClusterServingRuntime (cluster = true).
struct ServingRuntime {
  ObjectMeta meta;
  bool cluster = false;
  std::vector<SupportedModelFormat> formats;
  // Empty when absent: KServe sets no default and treats a runtime that lists
  // no protocol as supporting any.
  std::vector<std::string> protocol_versions;
  bool multi_model = false;
  // It has a workerSpec: serves only predictors that have one (multi-node).
  bool multi_node = false;
  bool disabled = false;
  std::vector<Container> containers;  // the main one is named kserve-container
  bool operator==(const ServingRuntime&) const = default;
};

struct InferenceGraph {
  ObjectMeta meta;
  std::map<std::string, InferenceRouter> nodes;  // by name; one is "root"
  std::optional<int64_t> timeout_seconds;        // spec.timeout: the whole request
  std::optional<RouterTimeouts> router_timeouts;
  std::optional<int> min_replicas;
  int max_replicas = 0;
  std::optional<int> scale_target;
  std::string scale_metric;
  std::string resources_json;  // {} when absent
  bool operator==(const InferenceGraph&) const = default;
};

// KServe's TrainedModel (serving.kserve.io/v1alpha1): one more model placed
// onto a running multi-model InferenceService (a predictor without a
// storageUri), reachable at /v1/models/{name} and /v2/models/{name} on its
// host. Every field is required, as KServe's CRD has them.
struct TrainedModel {
  ObjectMeta meta;
  std::string inference_service;  // spec.inferenceService
  std::string storage_uri;        // spec.model.storageUri
  std::string framework;          // spec.model.framework, lower-cased
  std::string memory;             // spec.model.memory as written ("256Mi")
  uint64_t memory_bytes = 0;      // ... in bytes
  bool operator==(const TrainedModel&) const = default;
};

// One entry of a Knative Service's spec.traffic: a share of the requests
// (and, with a tag, a host of its own) for a named revision or for the
// latest ready one.
struct KnativeTrafficTarget {
  std::string revision_name;     // "" when latest_revision
  bool latest_revision = false;  // follows the latest ready revision
  int percent = 0;
  std::string tag;  // {tag}-{service}.{ns}.{domain} reaches it alone
  bool operator==(const KnativeTrafficTarget&) const = default;
};

// Knative Serving's Service (serving.knative.dev/v1, short name ksvc): any
// HTTP server, revisioned on every change of its template, autoscaled
// (autoscaling.knative.dev/* annotations on the template, scale to zero by
// default) and routed by its traffic block. Knative's webhook rules: the
// template's name, when given, is prefixed "{service}-"; one container, or
// exactly one of several declaring a port (the one that serves);
// containerConcurrency 0..1000; timeoutSeconds 1..600 (300 when absent);
// traffic entries name a revision or latestRevision (not both), tags are
// unique DNS labels, percents sum to 100; no traffic block is 100% to the
// latest revision.
struct KnativeService {
  ObjectMeta meta;
  std::string revision_name;  // spec.template.metadata.name, "" when not given
  // spec.template: its metadata's labels and annotations, containers,
  // containerConcurrency and timeoutSeconds (min_replicas 0: Knative scales
  // to zero unless autoscaling.knative.dev/min-scale says otherwise).
  Component revision;
  size_t serving_container = 0;  // index into revision.containers
  std::vector<KnativeTrafficTarget> traffic;
  bool operator==(const KnativeService&) const = default;
};

using Resource =
    std::variant<InferenceService, ServingRuntime, InferenceGraph, TrainedModel, KnativeService,
                 VirtualService, IstioGateway, ServiceEntry, DestinationRule>;

// Whether `r` is one of Istio's kinds (VirtualService, Gateway, ServiceEntry,
// DestinationRule).
bool IsIstio(const Resource& r);

// Kind names as they appear in YAML: "InferenceService", "ServingRuntime",
// "ClusterServingRuntime", "InferenceGraph", "TrainedModel", "Service"
// (Knative's), "VirtualService", "Gateway", "ServiceEntry", "DestinationRule"
// (Istio's).
std::string_view KindOf(const Resource& r);

// Parses one or more YAML documents ("---" separated; JSON is YAML too).
// Empty documents are skipped. Applies KServe's defaults and validates; the
// first error is returned (kInvalidArgument), prefixed with "document N: "
// when the file has more than one document and ending in " (line L)" where
// the line is known. Unknown fields are errors, except Kubernetes PodSpec and
// Container fields Osprey does not model, which are kept as given
// (Component::pod_json, Container::extra_json).
absl::StatusOr<std::vector<Resource>> ParseYaml(std::string_view text);

// Canonical JSON of a resource (apiVersion, kind, metadata, spec; defaults
// filled in; compact, keys in KServe's order), and back: FromJson(ToJson(r))
// == r for every r that ParseYaml or FromJson produced. A legacy framework
// key is written back as that key. FromJson validates as ParseYaml does.
std::string ToJson(const Resource& r);
absl::StatusOr<Resource> FromJson(std::string_view json);

// One YAML (or JSON) document holding an object -> compact JSON, keys in
// document order; InvalidArgument for anything else.
absl::StatusOr<std::string> YamlToJson(std::string_view yaml);
// JSON text -> YAML text (block style, as `kubectl get -o yaml` prints).
absl::StatusOr<std::string> JsonToYaml(std::string_view json);

// ClusterServingRuntimes under KServe's own names (kserve-lgbserver,
// kserve-mlserver, kserve-paddleserver, kserve-pmmlserver,
// kserve-sklearnserver, kserve-tensorflow-serving, kserve-torchserve,
// kserve-tritonserver, kserve-xgbserver, ...) with KServe's formats, versions,
// priorities, protocols and container images.
const std::vector<ServingRuntime>& BuiltinClusterRuntimes();

// KServe's runtime selection, a pure function.
// Explicit `model.runtime`: the namespace runtime of that name, else the
// cluster runtime (none: RuntimeNotRecognized); it must not be disabled
// (RuntimeDisabled), must support the model's protocol when the model gives
// one, and must list the format, autoSelect or not, and the version when the
// model gives one (NoSupportingRuntime). Otherwise auto-select among non-disabled,
// single-model runtimes that list the format with autoSelect true (and the
// version, when the model gives one) and support the model's protocol (v1
// when not given; a runtime listing no protocol supports any). As in KServe's
// GetSupportingRuntimes, every matching namespace runtime comes before every
// cluster runtime; within each group higher priority wins (the priority of
// the runtime's first entry for the format name; no priority ranks below any
// priority), then the runtime whose lowest protocol is the lowest
// (v1 < v2 < grpc-v1 < grpc-v2 < none listed), then the name. A chosen runtime
// without containers is InvalidPredictorSpec. `namespace_runtimes` holds only
// those of the model's namespace. The returned pointer points into one of the
// two vectors.
struct RuntimeChoice {
  const ServingRuntime* runtime = nullptr;
  std::string reason;   // on failure: NoSupportingRuntime | RuntimeNotRecognized |
                        // RuntimeDisabled | InvalidPredictorSpec
  std::string message;  // human-readable, names the format/protocol/runtime
};
// `multi_node`: the predictor has a workerSpec; only multi-node runtimes
// serve it, and only it is served by them (KServe's rule).
RuntimeChoice SelectRuntime(const ModelSpec& model,
                            const std::vector<ServingRuntime>& namespace_runtimes,
                            const std::vector<ServingRuntime>& cluster_runtimes,
                            bool multi_node = false);

// KServe's admission default of a predictor model's protocol, before its
// runtime is chosen (pure): protocolVersion when given; else v2 for the
// triton format and for the legacy triton, onnx and huggingface keys
// (`legacy_key`: Component::legacy_key); else "" (selected as v1).
std::string DefaultProtocol(const ModelSpec& model, std::string_view legacy_key);

// The protocol a model is served with once `runtime` is chosen (pure;
// KServe's SetRuntimeDefaults, then the runtime's protocols): `protocol`
// (DefaultProtocol's) when set; else v2 for a Triton or MLServer runtime and
// v1 for TorchServe, known by the runtime's serving.kserve.io/server-type
// annotation, else by its built-in name (kserve-tritonserver, ...); else the
// runtime's lowest protocol by KServe's order, v1 when it lists none.
std::string RuntimeProtocol(std::string_view protocol, const ServingRuntime& runtime);

}  // namespace osprey::resources
