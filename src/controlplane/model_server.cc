#include "controlplane/model_server.h"

#include <filesystem>

#include "common/json_writer.h"
#include "common/strings.h"
#include "controlplane/knative.h"
#include "controlplane/monitoring.h"
#include "controlplane/trained_model.h"

namespace osprey::controlplane {

const std::vector<ServeFormat>& ServeFormats() {
  static const std::vector<ServeFormat> kFormats = {
      {"sklearn", "sklearn", ""},
      {"xgboost", "xgboost", ""},
      {"lightgbm", "lightgbm", ""},
      {"pmml", "pmml", ""},
      {"pytorch", "pytorch", ""},
      {"tensorflow", "tensorflow", ""},
      {"onnx", "onnx", ""},
      {"paddle", "paddle", ""},
      {"triton", "", ""},
      {"custom", "custom", ""},
      {"tensorrt", "",
       "model format tensorrt needs NVIDIA TensorRT and a GPU, which this machine does not have"},
      {"mlflow", "mlflow", ""},
      {"huggingface", "",
       "model format huggingface (transformer LLMs) is not served by Osprey yet"},
  };
  return kFormats;
}

const ServeFormat* FindServeFormat(std::string_view format) {
  for (const auto& f : ServeFormats())
    if (f.format == format) return &f;
  return nullptr;
}

std::string ImageRepository(std::string image) {
  // Drop a digest or tag (a ':' after the last '/'), and Docker Hub's prefixes.
  if (size_t at = image.find('@'); at != std::string::npos) image.resize(at);
  size_t slash = image.rfind('/');
  size_t colon = image.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
    image.resize(colon);
  for (std::string_view prefix : {"docker.io/library/", "docker.io/", "index.docker.io/"})
    if (image.starts_with(prefix)) image.erase(0, prefix.size());
  return image;
}

const std::vector<std::string>& ModelServerImages() {
  static const std::vector<std::string> kImages = {
      "kserve/xgbserver",       "kserve/lgbserver",         "kserve/sklearnserver",
      "kserve/pmmlserver",      "kserve/paddleserver",      "tensorflow/serving",
      "pytorch/torchserve-kfs", "pytorch/torchserve",       "nvcr.io/nvidia/tritonserver",
      "seldonio/mlserver",      "kserve/huggingfaceserver", "kserve/predictiveserver"};
  return kImages;
}

std::string LastFlagValue(const std::vector<std::string>& args, std::string_view flag) {
  std::string value;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].size() > flag.size() && args[i].starts_with(flag) && args[i][flag.size()] == '=')
      value = args[i].substr(flag.size() + 1);
    else if (args[i] == flag && i + 1 < args.size())
      value = args[++i];
  }
  return value;
}

std::string ServedModelName(const RevisionSpec& rev) {
  std::string name = LastFlagValue(rev.container.args, "--model_name");
  if (!name.empty()) return name;
  for (const auto& e : rev.container.env)
    if (e.name == "MLSERVER_MODEL_NAME" && !e.value.empty()) name = e.value;
  return name.empty() ? rev.isvc : name;
}

bool ServesTritonRepository(const RevisionSpec& rev) {
  const auto& c = rev.container;
  const auto program = [](const std::vector<std::string>& v) {
    return !v.empty() && std::filesystem::path(v[0]).filename() == "tritonserver";
  };
  return ImageRepository(c.image) == "nvcr.io/nvidia/tritonserver" || program(c.command) ||
         (c.command.empty() && program(c.args));
}

bool ServesTorchServeStore(const RevisionSpec& rev) {
  const auto& c = rev.container;
  const auto program = [](const std::vector<std::string>& v) {
    return !v.empty() && std::filesystem::path(v[0]).filename() == "torchserve";
  };
  const std::string image = ImageRepository(c.image);
  return image == "pytorch/torchserve-kfs" || image == "pytorch/torchserve" || program(c.command) ||
         (c.command.empty() && program(c.args));
}

namespace {

// Where the server listens, as the layout says, and its extra flags.
void AppendListening(const ServeLayout& layout, std::vector<std::string>* argv) {
  if (!layout.http_address.empty()) {
    argv->push_back("--http-address");
    argv->push_back(layout.http_address);
  }
  argv->push_back("--http-port");
  argv->push_back(layout.http_port);
  if (!layout.grpc_port.empty()) {
    argv->push_back("--grpc-port");
    argv->push_back(layout.grpc_port);
  }
  argv->insert(argv->end(), layout.extra.begin(), layout.extra.end());
}

}  // namespace

bool ServesArtExplainer(const RevisionSpec& rev) {
  return ImageRepository(rev.container.image) == "kserve/art-explainer";
}

std::vector<std::string> ArtExplainerArgv(const RevisionSpec& rev, const ServeLayout& layout) {
  std::vector<std::string> argv = {layout.binary, "serve",        "--model-format",
                                   "art",         "--model-name", ServedModelName(rev)};
  if (!rev.storage_uri.empty()) {
    argv.push_back("--model-dir");
    argv.push_back(layout.model_dir);
  }
  AppendListening(layout, &argv);
  argv.push_back("--exit-on-load-failure");
  // The explainer's own flags go to it as written; the server's are Osprey's.
  std::string model_args;
  JsonWriter j(&model_args);
  j.BeginArray();
  const std::vector<std::string>& args = rev.container.args;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const size_t eq = a.find('=');
    const std::string flag = a.substr(0, eq);
    const bool valued =
        eq == std::string::npos && i + 1 < args.size() && !args[i + 1].starts_with("--");
    const std::string value = eq != std::string::npos ? a.substr(eq + 1)
                              : valued                ? args[i + 1]
                                                      : "";
    if (valued) ++i;
    if (flag == "--workers") {
      // Only a count the server takes (1..1024); anything else is dropped.
      if (!value.empty() && value.size() <= 4 &&
          value.find_first_not_of("0123456789") == std::string::npos && std::stoi(value) >= 1 &&
          std::stoi(value) <= 1024) {
        argv.push_back("--python-workers");
        argv.push_back(value);
      }
      continue;
    }
    if (flag == "--model_name" || flag == "--http_port" || flag == "--grpc_port" ||
        flag == "--enable_grpc" || flag == "--storage_uri")
      continue;
    j.String(a);
    if (valued) j.String(value);
  }
  j.EndArray();
  argv.push_back("--model-args");
  argv.push_back(std::move(model_args));
  return argv;
}

bool ServesMultiModel(const RevisionSpec& rev) {
  return rev.component == "predictor" && rev.storage_uri.empty() && !rev.model_format.empty() &&
         !ServesTritonRepository(rev) && !ServesTorchServeStore(rev);
}

std::vector<std::string> OspreyServeArgv(const RevisionSpec& rev, const ServeFormat& format,
                                         const ServeLayout& layout) {
  const bool triton = ServesTritonRepository(rev);
  // A multi-model predictor: TrainedModels land in the repository, each
  // loaded on its first request (or the controller's load), within the memory
  // limit when there is one; each model's files say what it is.
  const bool multi = ServesMultiModel(rev);
  std::vector<std::string> argv =
      triton || multi
          ? std::vector<std::string>{layout.binary, "serve", "--model-repository", layout.model_dir}
          : std::vector<std::string>{layout.binary,    "serve",        "--model-dir",
                                     layout.model_dir, "--model-name", ServedModelName(rev)};
  AppendListening(layout, &argv);
  if (multi) {
    argv.insert(argv.end(), {"--no-load-on-start", "--load-on-demand"});
    if (auto limit = MemoryLimit(rev.container.resources_json); limit.has_value()) {
      argv.push_back("--model-memory-budget");
      argv.push_back(StrCat(ModelCacheBudget(*limit)));
    }
  } else {
    argv.push_back("--exit-on-load-failure");
  }
  // A repository's models each say what they are (config.pbtxt, files).
  if (!format.backend.empty() && !triton && !multi) {
    argv.push_back("--model-format");
    argv.push_back(std::string(format.backend));
  }
  // KServe's servers run --workers processes of the model; Osprey runs that
  // many workers of a Python-hosted model (native backends need none).
  const std::string workers = LastFlagValue(rev.container.args, "--workers");
  if (!triton && !workers.empty() && workers.find_first_not_of("0123456789") == std::string::npos &&
      workers.size() <= 4 && std::stoi(workers) > 0) {
    argv.push_back("--python-workers");
    argv.push_back(workers);
  }
  if (rev.batcher.has_value()) {
    argv.push_back("--max-batch-size");
    argv.push_back(StrCat(rev.batcher->max_batch_size));
    argv.push_back("--max-queue-delay-us");
    argv.push_back(StrCat(static_cast<int64_t>(rev.batcher->max_latency_ms) * 1000));
  }
  if (rev.component == "predictor")
    if (auto predictor = RevisionComponent(rev); predictor.has_value())
      for (std::string& flag : MonitorServeFlags(predictor->annotations))
        argv.push_back(std::move(flag));
  return argv;
}

std::string OspreyServeReadyPath(const RevisionSpec& rev) {
  // Both serve their models under their own names (the repository's, the
  // store's configuration): the server is ready once every one is.
  if (ServesTritonRepository(rev) || ServesTorchServeStore(rev) || ServesMultiModel(rev))
    return "/v2/health/ready";
  return StrCat("/v2/models/", ServedModelName(rev), "/ready");
}

std::vector<std::pair<std::string, std::string>> ReplicaTraceEnv(const RevisionSpec& rev,
                                                                 std::string_view platform) {
  while (!platform.empty() && (platform.back() == ',' || platform.back() == ' '))
    platform.remove_suffix(1);
  if (rev.kind == kKnativeServiceKind)
    return {{"OTEL_SERVICE_NAME", rev.isvc},
            {"OTEL_RESOURCE_ATTRIBUTES",
             StrCat(platform, platform.empty() ? "" : ",", "service.namespace=", rev.namespace_,
                    ",k8s.namespace.name=", rev.namespace_, ",osprey.knative.service=", rev.isvc,
                    ",osprey.revision=", rev.name)}};
  std::string resource =
      StrCat(platform, platform.empty() ? "" : ",", "service.namespace=", rev.namespace_,
             ",k8s.namespace.name=", rev.namespace_, ",osprey.inferenceservice=", rev.isvc,
             ",osprey.component=", rev.component, ",osprey.revision=", rev.name,
             ",osprey.model=", ServedModelName(rev));
  if (!rev.model_format.empty()) StrAppend(&resource, ",osprey.model.format=", rev.model_format);
  return {{"OTEL_SERVICE_NAME", StrCat(rev.isvc, "-", rev.component)},
          {"OTEL_RESOURCE_ATTRIBUTES", std::move(resource)}};
}

}  // namespace osprey::controlplane
