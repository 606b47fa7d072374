// KServe's built-in ClusterServingRuntimes and its runtime selection.

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "resources/resources.h"

namespace osprey::resources {
namespace {

// KServe v0.13's config/runtimes: names, supported formats (version,
// autoSelect, priority), protocols, and the kserve-container with the image
// tags of that release's kustomization; plus kserve-predictiveserver of
// v0.17 (one server for sklearn, xgboost and lightgbm, chosen only when
// named: autoSelect false) and kserve-huggingfaceserver-multinode (Ray over
// GPU nodes; here its format is refused with the reason). Parsed once by ParseYaml, so that the
// built-ins go through the same defaults and validation as a user's runtime.
constexpr std::string_view kBuiltinRuntimes = R"yaml(
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: {name: kserve-huggingfaceserver}
spec:
  supportedModelFormats:
  - {name: huggingface, version: "1", autoSelect: true, priority: 1}
  protocolVersions: [v2, v1]
  containers:
  - name: kserve-container
    image: kserve/huggingfaceserver:v0.13.0
    args: ["--model_name={{.Name}}"]
    resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "1", memory: 2Gi}}
---
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: {name: kserve-huggingfaceserver-multinode}
spec:
  supportedModelFormats:
  - {name: huggingface, version: "1", autoSelect: true, priority: 2}
  protocolVersions: [v2, v1]
  containers:
  - name: kserve-container
    image: kserve/huggingfaceserver:v0.17.0-gpu
    args: ["--model_name={{.Name}}"]
    resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "1", memory: 2Gi}}
  workerSpec:
    pipelineParallelSize: 2
    tensorParallelSize: 1
    containers:
    - name: worker-container
      image: kserve/huggingfaceserver:v0.17.0-gpu
---
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: {name: kserve-lgbserver}
spec:
  supportedModelFormats:
  - {name: lightgbm, version: "3", autoSelect: true, priority: 1}
  protocolVersions: [v1, v2]
  containers:
  - name: kserve-container
    image: kserve/lgbserver:v0.13.0
    args: ["--model_name={{.Name}}", --model_dir=/mnt/models, --http_port=8080, --nthread=1]
    resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "1", memory: 2Gi}}
---
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata:
  name: kserve-mlserver
  annotations: {serving.kserve.io/server-type: mlserver}
spec:
  supportedModelFormats:
  - {name: sklearn, version: "0", autoSelect: true, priority: 2}
  - {name: sklearn, version: "1", autoSelect: true, priority: 2}
  - {name: xgboost, version: "1", autoSelect: true, priority: 2}
  - {name: xgboost, version: "2", autoSelect: true, priority: 2}
  - {name: lightgbm, version: "3", autoSelect: true, priority: 2}
  - {name: lightgbm, version: "4", autoSelect: true, priority: 2}
  - {name: mlflow, version: "1", autoSelect: true, priority: 1}
  - {name: mlflow, version: "2", autoSelect: true, priority: 1}
  protocolVersions: [v2]
  containers:
  - name: kserve-container
    image: docker.io/seldonio/mlserver:1.5.0
    env:
    - {name: MLSERVER_MODEL_IMPLEMENTATION, value: "{{.Labels.modelClass}}"}
    - {name: MLSERVER_HTTP_PORT, value: "8080"}
    - {name: MLSERVER_GRPC_PORT, value: "9000"}
    - {name: MODELS_DIR, value: /mnt/models}
    resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "1", memory: 2Gi}}
---
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: {name: kserve-paddleserver}
spec:
  supportedModelFormats:
  - {name: paddle, version: "2", autoSelect: true, priority: 1}
  protocolVersions: [v1, v2]
  containers:
  - name: kserve-container
    image: kserve/paddleserver:v0.13.0
    args: ["--model_name={{.Name}}", --model_dir=/mnt/models, --http_port=8080]
    resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "1", memory: 2Gi}}
---
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: {name: kserve-pmmlserver}
spec:
  supportedModelFormats:
  - {name: pmml, version: "3", autoSelect: true, priority: 1}
  - {name: pmml, version: "4", autoSelect: true, priority: 1}
  protocolVersions: [v1, v2]
  containers:
  - name: kserve-container
    image: kserve/pmmlserver:v0.13.0
    args: ["--model_name={{.Name}}", --model_dir=/mnt/models, --http_port=8080]
    resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "1", memory: 2Gi}}
---
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: {name: kserve-predictiveserver}
spec:
  supportedModelFormats:
  - {name: sklearn, version: "1", autoSelect: false, priority: 3}
  - {name: xgboost, version: "2", autoSelect: false, priority: 3}
  - {name: lightgbm, version: "4", autoSelect: false, priority: 3}
  protocolVersions: [v1, v2]
  containers:
  - name: kserve-container
    image: kserve/predictiveserver:v0.17.0
    args: ["--model_name={{.Name}}", --model_dir=/mnt/models, --http_port=8080, "--framework={{.Annotations.modelFormat}}", --nthread=1]
    resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "1", memory: 2Gi}}
---
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: {name: kserve-sklearnserver}
spec:
  supportedModelFormats:
  - {name: sklearn, version: "1", autoSelect: true, priority: 1}
  protocolVersions: [v1, v2]
  containers:
  - name: kserve-container
    image: kserve/sklearnserver:v0.13.0
    args: ["--model_name={{.Name}}", --model_dir=/mnt/models, --http_port=8080]
    resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "1", memory: 2Gi}}
---
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: {name: kserve-tensorflow-serving}
spec:
  supportedModelFormats:
  - {name: tensorflow, version: "1", autoSelect: true, priority: 2}
  - {name: tensorflow, version: "2", autoSelect: true, priority: 2}
  protocolVersions: [v1, grpc-v1]
  containers:
  - name: kserve-container
    image: tensorflow/serving:2.6.2
    command: [/usr/bin/tensorflow_model_server]
    args:
    - "--model_name={{.Name}}"
    - --port=9000
    - --rest_api_port=8080
    - --model_base_path=/mnt/models
    - --rest_api_timeout_in_ms=60000
    resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "1", memory: 2Gi}}
---
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata:
  name: kserve-torchserve
  annotations: {serving.kserve.io/server-type: torchserve}
spec:
  supportedModelFormats:
  - {name: pytorch, version: "1", autoSelect: true, priority: 2}
  protocolVersions: [v1, v2, grpc-v2]
  containers:
  - name: kserve-container
    image: pytorch/torchserve-kfs:0.9.0
    args:
    - torchserve
    - --start
    - --model-store=/mnt/models/model-store
    - --ts-config=/mnt/models/config/config.properties
    env:
    - {name: TS_SERVICE_ENVELOPE, value: "{{.Labels.serviceEnvelope}}"}
    resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "1", memory: 2Gi}}
---
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata:
  name: kserve-tritonserver
  annotations: {serving.kserve.io/server-type: tritonserver}
spec:
  supportedModelFormats:
  - {name: tensorrt, version: "8", autoSelect: true, priority: 1}
  - {name: tensorflow, version: "1", autoSelect: true, priority: 1}
  - {name: tensorflow, version: "2", autoSelect: true, priority: 1}
  - {name: onnx, version: "1", autoSelect: true, priority: 1}
  - {name: pytorch, version: "1"}
  - {name: triton, version: "2", autoSelect: true, priority: 1}
  protocolVersions: [v2, grpc-v2]
  containers:
  - name: kserve-container
    image: nvcr.io/nvidia/tritonserver:23.05-py3
    args:
    - tritonserver
    - --model-store=/mnt/models
    - --grpc-port=9000
    - --http-port=8080
    - --allow-grpc=true
    - --allow-http=true
    resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "1", memory: 2Gi}}
---
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: {name: kserve-xgbserver}
spec:
  supportedModelFormats:
  - {name: xgboost, version: "1", autoSelect: true, priority: 1}
  protocolVersions: [v1, v2]
  containers:
  - name: kserve-container
    image: kserve/xgbserver:v0.13.0
    args: ["--model_name={{.Name}}", --model_dir=/mnt/models, --http_port=8080, --nthread=1]
    resources: {requests: {cpu: "1", memory: 2Gi}, limits: {cpu: "1", memory: 2Gi}}
)yaml";

// KServe's constants.GetProtocolVersionInt: v1 < v2 < grpc-v1 < grpc-v2 < unknown.
int ProtocolRank(std::string_view protocol) {
  if (protocol == "v1") return 0;
  if (protocol == "v2") return 1;
  if (protocol == "grpc-v1") return 2;
  if (protocol == "grpc-v2") return 3;
  return 4;
}

// KServe's GetProtocolVersionPriority: the rank of the runtime's lowest
// protocol; a runtime that lists none ranks last.
int LowestProtocolRank(const ServingRuntime& rt) {
  int rank = 4;
  for (const std::string& p : rt.protocol_versions) rank = std::min(rank, ProtocolRank(p));
  return rank;
}

bool SupportsProtocol(const ServingRuntime& rt, std::string_view protocol) {
  return protocol.empty() || rt.protocol_versions.empty() ||
         std::find(rt.protocol_versions.begin(), rt.protocol_versions.end(), protocol) !=
             rt.protocol_versions.end();
}

// KServe's RuntimeSupportsModel: with an explicit runtime every listed format
// counts, otherwise only those with autoSelect; a model version must match a
// listed version exactly.
bool SupportsModel(const ServingRuntime& rt, const ModelFormat& format, bool explicit_runtime) {
  for (const SupportedModelFormat& f : rt.formats) {
    if (!explicit_runtime && !f.auto_select) continue;
    if (f.name != format.name) continue;
    if (format.version.empty() || f.version == format.version) return true;
  }
  return false;
}

// KServe's ServingRuntimeSpec.GetPriority: the first entry of that name.
std::optional<int> PriorityOf(const ServingRuntime& rt, std::string_view format) {
  for (const SupportedModelFormat& f : rt.formats) {
    if (f.name == format) return f.priority;
  }
  return std::nullopt;
}

std::string Describe(const ModelFormat& f) {
  return f.version.empty() ? StrCat("\"", f.name, "\"")
                           : StrCat("\"", f.name, "\" version \"", f.version, "\"");
}

// The supporting runtimes of one scope (namespace or cluster), best first.
std::vector<const ServingRuntime*> Supporting(const std::vector<ServingRuntime>& runtimes,
                                              const ModelSpec& model, bool multi_node) {
  std::vector<const ServingRuntime*> out;
  for (const ServingRuntime& rt : runtimes) {
    if (!rt.disabled && !rt.multi_model && rt.multi_node == multi_node &&
        SupportsModel(rt, model.format, false) && SupportsProtocol(rt, ProtocolOf(model))) {
      out.push_back(&rt);
    }
  }
  // KServe lists runtimes by lowest protocol, then newest first, then name;
  // there are no creation times here, so name alone breaks the tie.
  std::stable_sort(out.begin(), out.end(), [](const ServingRuntime* a, const ServingRuntime* b) {
    int ra = LowestProtocolRank(*a);
    int rb = LowestProtocolRank(*b);
    if (ra != rb) return ra < rb;
    return a->meta.name < b->meta.name;
  });
  // Then by priority, higher first; a runtime with a priority before one without.
  std::stable_sort(out.begin(), out.end(), [&](const ServingRuntime* a, const ServingRuntime* b) {
    std::optional<int> pa = PriorityOf(*a, model.format.name);
    std::optional<int> pb = PriorityOf(*b, model.format.name);
    if (pa && pb) return *pa > *pb;
    return pa.has_value() && !pb.has_value();
  });
  return out;
}

RuntimeChoice Fail(std::string reason, std::string message) {
  RuntimeChoice c;
  c.reason = std::move(reason);
  c.message = std::move(message);
  return c;
}

RuntimeChoice Chosen(const ServingRuntime* rt) {
  if (rt->containers.empty()) {
    return Fail("InvalidPredictorSpec",
                StrCat("runtime \"", rt->meta.name, "\" has no container configuration"));
  }
  RuntimeChoice c;
  c.runtime = rt;
  return c;
}

}  // namespace

const std::vector<ServingRuntime>& BuiltinClusterRuntimes() {
  static const std::vector<ServingRuntime>* const kRuntimes = [] {
    auto* out = new std::vector<ServingRuntime>();
    absl::StatusOr<std::vector<Resource>> parsed = ParseYaml(kBuiltinRuntimes);
    if (!parsed.ok()) {
      // The table above is part of this library: an error in it is a bug, and
      // resources_test fails on it first.
      std::cerr << "built-in runtimes: " << parsed.status() << "\n";
      std::abort();
    }
    for (Resource& r : *parsed) out->push_back(std::get<ServingRuntime>(std::move(r)));
    return out;
  }();
  return *kRuntimes;
}

RuntimeChoice SelectRuntime(const ModelSpec& model,
                            const std::vector<ServingRuntime>& namespace_runtimes,
                            const std::vector<ServingRuntime>& cluster_runtimes, bool multi_node) {
  if (!model.runtime.empty()) {
    const ServingRuntime* rt = nullptr;
    for (const auto* scope : {&namespace_runtimes, &cluster_runtimes}) {
      for (const ServingRuntime& candidate : *scope) {
        if (candidate.meta.name == model.runtime) {
          rt = &candidate;
          break;
        }
      }
      if (rt != nullptr) break;
    }
    if (rt == nullptr) {
      return Fail("RuntimeNotRecognized",
                  StrCat("runtime \"", model.runtime,
                         "\" is neither a ServingRuntime of the namespace nor a "
                         "ClusterServingRuntime"));
    }
    if (rt->disabled) {
      return Fail("RuntimeDisabled", StrCat("runtime \"", rt->meta.name, "\" is disabled"));
    }
    if (!SupportsProtocol(*rt, model.protocol_version)) {
      return Fail("NoSupportingRuntime",
                  StrCat("runtime \"", rt->meta.name, "\" does not support protocol ",
                         model.protocol_version));
    }
    if (!SupportsModel(*rt, model.format, true)) {
      return Fail("NoSupportingRuntime",
                  StrCat("runtime \"", rt->meta.name, "\" does not support model format ",
                         Describe(model.format)));
    }
    if (rt->multi_node != multi_node) {
      return Fail(
          "NoSupportingRuntime",
          rt->multi_node
              ? StrCat("runtime \"", rt->meta.name,
                       "\" serves multi-node predictors only; give spec.predictor.workerSpec")
              : StrCat("runtime \"", rt->meta.name,
                       "\" is not a multi-node runtime (it has no workerSpec), but the "
                       "predictor has spec.predictor.workerSpec"));
    }
    return Chosen(rt);
  }
  for (const auto* scope : {&namespace_runtimes, &cluster_runtimes}) {
    std::vector<const ServingRuntime*> supporting = Supporting(*scope, model, multi_node);
    if (!supporting.empty()) return Chosen(supporting.front());
  }
  return Fail("NoSupportingRuntime",
              StrCat("no ", multi_node ? "multi-node runtime (workerSpec)" : "runtime",
                     " supports model format ", Describe(model.format), " with protocol ",
                     ProtocolOf(model), " (auto-select)"));
}

std::string DefaultProtocol(const ModelSpec& model, std::string_view legacy_key) {
  if (!model.protocol_version.empty()) return model.protocol_version;
  if (model.format.name == "triton" || legacy_key == "triton" || legacy_key == "onnx" ||
      legacy_key == "huggingface")
    return "v2";
  return "";
}

std::string RuntimeProtocol(std::string_view protocol, const ServingRuntime& runtime) {
  if (!protocol.empty()) return std::string(protocol);
  std::string server;
  if (auto it = runtime.meta.annotations.find("serving.kserve.io/server-type");
      it != runtime.meta.annotations.end()) {
    server = it->second;
  } else if (runtime.meta.name == "kserve-tritonserver") {
    server = "tritonserver";
  } else if (runtime.meta.name == "kserve-mlserver") {
    server = "mlserver";
  } else if (runtime.meta.name == "kserve-torchserve") {
    server = "torchserve";
  }
  if (server == "tritonserver" || server == "mlserver") return "v2";
  if (server == "torchserve") return "v1";
  constexpr std::string_view kByRank[] = {"v1", "v2", "grpc-v1", "grpc-v2"};
  const int rank = LowestProtocolRank(runtime);
  return std::string(rank < 4 ? kByRank[rank] : "v1");
}

}  // namespace osprey::resources
