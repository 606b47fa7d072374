#pragma once

// KServe's API objects as typed values: InferenceService
// (serving.kserve.io/v1beta1), ServingRuntime and ClusterServingRuntime
// (serving.kserve.io/v1alpha1). Parsed from KServe's own YAML or JSON
// unchanged, defaulted and validated here; this library knows nothing of what
// acts on them (no process, store or network code).
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

namespace osprey::resources {

struct ObjectMeta {
  std::string name;
  std::string namespace_ = "default";  // "" for cluster-scoped objects
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

struct EnvVar {
  std::string name;
  std::string value;
};

struct Container {
  std::string name;
  std::string image;
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::vector<EnvVar> env;
  std::string resources_json;  // kept as given ({} when absent); not enforced locally
};

struct ModelFormat {
  std::string name;     // lower-cased as KServe compares them
  std::string version;  // empty: any
};

// Predictor `model:` form. Legacy framework keys (`sklearn:`, `xgboost:`, ...)
// are rewritten into this form with format = the key.
struct ModelSpec {
  ModelFormat format;
  std::string runtime;           // explicit runtime name, empty: auto-select
  std::string storage_uri;       // may be empty for a runtime that needs none
  std::string protocol_version;  // "v1" (default), "v2", "grpc-v1" or "grpc-v2"
  std::vector<std::string> args;
  std::vector<EnvVar> env;
  std::string resources_json;
};

struct Batcher {
  int max_batch_size = 32;
  int max_latency_ms = 500;
};

struct Logger {
  std::string url;
  std::string mode = "all";  // all | request | response
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
  std::vector<Container> containers;
  std::string explainer_type;  // e.g. "art", for `explainer: {art: {...}}`
};

struct InferenceService {
  ObjectMeta meta;
  Component predictor;
  std::optional<Component> transformer;
  std::optional<Component> explainer;
};

struct SupportedModelFormat {
  std::string name;
  std::string version;
  bool auto_select = false;
  std::optional<int> priority;
};

// ServingRuntime (namespaced) or ClusterServingRuntime (cluster = true).
struct ServingRuntime {
  ObjectMeta meta;
  bool cluster = false;
  std::vector<SupportedModelFormat> formats;
  std::vector<std::string> protocol_versions;  // default {"v1"} when absent
  bool multi_model = false;
  bool disabled = false;
  std::vector<Container> containers;  // the main one is named kserve-container
};

using Resource = std::variant<InferenceService, ServingRuntime>;

// Kind names as they appear in YAML: "InferenceService", "ServingRuntime",
// "ClusterServingRuntime".
std::string_view KindOf(const Resource& r);

// Parses one or more YAML documents ("---" separated; JSON is YAML too).
// Empty documents are skipped. Applies KServe's defaults and validates; the
// first error is returned, prefixed with "document N: " when the file has
// more than one document.
absl::StatusOr<std::vector<Resource>> ParseYaml(std::string_view text);

// Canonical JSON of a resource (apiVersion, kind, metadata, spec; defaults
// filled in), and back. FromJson(ToJson(r)) == r.
std::string ToJson(const Resource& r);
absl::StatusOr<Resource> FromJson(std::string_view json);

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
// cluster runtime; it must list the format (and not be disabled) or the
// result is an error. Otherwise auto-select among non-disabled runtimes that
// list the format with autoSelect true (and the version, when the model gives
// one) and support the model's protocol; higher priority wins (a format with
// no priority ranks below any priority); namespace runtimes beat cluster
// runtimes at equal standing. `namespace_runtimes` holds only those of the
// model's namespace.
struct RuntimeChoice {
  const ServingRuntime* runtime = nullptr;
  std::string reason;   // on failure: NoSupportingRuntime | RuntimeNotRecognized |
                        // RuntimeDisabled | InvalidPredictorSpec
  std::string message;  // human-readable, names the format/protocol/runtime
};
RuntimeChoice SelectRuntime(const ModelSpec& model,
                            const std::vector<ServingRuntime>& namespace_runtimes,
                            const std::vector<ServingRuntime>& cluster_runtimes);

}  // namespace osprey::resources
