#include "backends/triton_model.h"

#include <algorithm>

#include "absl/strings/str_join.h"
#include "common/strings.h"

namespace osprey {
namespace {

// One platform Osprey serves: Triton's platform and backend names, the
// Osprey backend and the file Triton looks for.
struct Platform {
  std::string_view platform;
  std::string_view backend;
  std::string_view osprey;
  std::string_view file;
  int default_cpu_instances;
};

constexpr Platform kServed[] = {
    {"pytorch_libtorch", "pytorch", "pytorch", "model.pt", 1},
    {"onnxruntime_onnx", "onnxruntime", "onnx", "model.onnx", 2},
    {"tensorflow_savedmodel", "tensorflow", "tensorflow", "model.savedmodel", 2},
    {"", "python", "python", "model.py", 1},
};

// Platforms and backends refused at load, and why.
struct Refused {
  std::string_view platform;
  std::string_view backend;
  std::string_view reason;
};

constexpr Refused kRefused[] = {
    {"tensorrt_plan", "tensorrt",
     "TensorRT plans need NVIDIA TensorRT and a GPU, which Osprey does not run models on; "
     "serve the model as ONNX (onnxruntime_onnx) or TorchScript (pytorch_libtorch) instead"},
    {"tensorflow_graphdef", "",
     "TensorFlow GraphDef models (frozen TF1 graphs) are not served by Osprey; export a "
     "SavedModel (platform tensorflow_savedmodel)"},
    {"ensemble", "",
     "ensemble models are not served by Osprey; chain the models with an InferenceGraph"},
    {"", "tensorrtllm", "the TensorRT-LLM backend needs NVIDIA TensorRT and a GPU"},
    {"", "vllm", "the vLLM backend needs a GPU"},
    {"", "torch_aoti", "AOT-compiled PyTorch models are not served by Osprey; save TorchScript"},
    {"pytorch_aoti", "", "AOT-compiled PyTorch models are not served by Osprey; save TorchScript"},
};

constexpr std::string_view kOspreyPlatforms =
    "pytorch_libtorch, onnxruntime_onnx, tensorflow_savedmodel and the python backend";

bool Has(const std::set<std::string>& files, std::string_view name) {
  return files.count(std::string(name)) > 0;
}

// Triton's auto-completion from the version directory's files.
std::string_view PlatformFromFiles(const std::set<std::string>& files) {
  if (Has(files, "model.plan")) return "tensorrt_plan";
  if (Has(files, "model.graphdef")) return "tensorflow_graphdef";
  if (Has(files, "model.savedmodel/")) return "tensorflow_savedmodel";
  if (Has(files, "model.onnx") || Has(files, "model.onnx/")) return "onnxruntime_onnx";
  if (Has(files, "model.pt")) return "pytorch_libtorch";
  if (Has(files, "model.py")) return "python";
  return "";
}

}  // namespace

absl::StatusOr<TritonModelPlan> PlanTritonModel(std::string_view name,
                                                const std::set<std::string>& version_files,
                                                ModelConfigFile* config) {
  const auto refuse = [&](auto make, std::string_view reason) {
    return make(StrCat("model '", name, "': ", reason));
  };
  if (config->name.empty()) config->name = std::string(name);

  // Platform and backend: from each other, else from the files.
  std::string platform = config->platform;
  std::string backend = config->backend;
  if (platform.empty() && backend.empty()) {
    std::string_view found = PlatformFromFiles(version_files);
    if (found == "python")
      backend = "python";
    else
      platform = std::string(found);
  }
  for (const Refused& r : kRefused) {
    if ((!r.platform.empty() && platform == r.platform) ||
        (!r.backend.empty() && backend == r.backend))
      return refuse(
          r.platform == "tensorrt_plan" || r.backend == "tensorrtllm" || r.backend == "vllm"
              ? absl::FailedPreconditionError
              : absl::UnimplementedError,
          r.reason);
  }
  const Platform* served = nullptr;
  if (!platform.empty() || !backend.empty()) {
    for (const Platform& p : kServed) {
      if ((platform.empty() || platform == p.platform) &&
          (backend.empty() || backend == p.backend)) {
        served = &p;
        break;
      }
    }
    if (served == nullptr) {
      for (const Platform& p : kServed)
        if ((!platform.empty() && platform == p.platform) ||
            (!backend.empty() && backend == p.backend))
          return refuse(absl::InvalidArgumentError,
                        StrCat("config.pbtxt names platform '", platform, "' and backend '",
                               backend, "', which disagree"));
      return refuse(absl::UnimplementedError,
                    StrCat(platform.empty() ? StrCat("backend '", backend, "'")
                                            : StrCat("platform '", platform, "'"),
                           " is not served by Osprey (it serves ", kOspreyPlatforms, ")"));
    }
    config->platform = std::string(served->platform);
    config->backend = std::string(served->backend);
    if (config->default_model_filename.empty())
      config->default_model_filename = std::string(served->file);
  }

  if (config->decoupled)
    return refuse(absl::UnimplementedError,
                  "decoupled models (model_transaction_policy) answer a request with several "
                  "responses, which Osprey does not serve");
  if (config->sequence_batching)
    return refuse(absl::UnimplementedError,
                  "sequence batching (stateful models) is not served by Osprey");
  if (config->ensemble_scheduling)
    return refuse(absl::UnimplementedError,
                  "ensemble scheduling is not served by Osprey; chain the models with an "
                  "InferenceGraph");
  if (config->parameters.count("EXECUTION_ENV_PATH") > 0)
    return refuse(absl::UnimplementedError,
                  "EXECUTION_ENV_PATH (a packed Python environment) is not supported: the model "
                  "runs in Osprey's Python environment");

  TritonModelPlan plan;
  if (served != nullptr) {
    plan.backend = std::string(served->osprey);
    plan.model_file = config->default_model_filename;
  }
  int index = 0;
  for (InstanceGroup& g : config->instance_groups) {
    if (g.name.empty()) g.name = StrCat(config->name, "_", index);
    ++index;
    if (g.kind == InstanceGroup::Kind::kGpu)
      return refuse(absl::FailedPreconditionError,
                    StrCat("instance_group '", g.name,
                           "' asks for KIND_GPU, and Osprey runs models on CPU only; use "
                           "KIND_CPU"));
    // KIND_AUTO runs on CPU where there is no GPU, as here.
    if (g.kind == InstanceGroup::Kind::kAuto) g.kind = InstanceGroup::Kind::kCpu;
    g.gpus.clear();
    if (g.count == 0) g.count = served != nullptr ? served->default_cpu_instances : 1;
    plan.instances += g.count;
  }
  return plan;
}

absl::StatusOr<std::vector<int64_t>> SelectVersions(std::string_view name,
                                                    const VersionPolicy& policy,
                                                    std::vector<int64_t> available) {
  std::sort(available.begin(), available.end());
  available.erase(std::unique(available.begin(), available.end()), available.end());
  if (available.empty())
    return absl::InvalidArgumentError(
        StrCat("model '", name, "' has no version directory (1/, 2/, ...)"));
  switch (policy.kind) {
    case VersionPolicy::Kind::kAll:
      return available;
    case VersionPolicy::Kind::kLatest: {
      const size_t n = std::min<size_t>(available.size(), static_cast<size_t>(policy.num_versions));
      return std::vector<int64_t>(available.end() - static_cast<ptrdiff_t>(n), available.end());
    }
    case VersionPolicy::Kind::kSpecific: {
      std::vector<int64_t> out, missing;
      for (int64_t v : policy.versions) {
        if (std::binary_search(available.begin(), available.end(), v))
          out.push_back(v);
        else
          missing.push_back(v);
      }
      if (!missing.empty())
        return absl::InvalidArgumentError(StrCat(
            "model '", name, "': version_policy asks for version(s) ", absl::StrJoin(missing, ", "),
            ", which it does not have (it has ", absl::StrJoin(available, ", "), ")"));
      std::sort(out.begin(), out.end());
      out.erase(std::unique(out.begin(), out.end()), out.end());
      return out;
    }
  }
  return available;
}

}  // namespace osprey
