#include "controlplane/model_server.h"

#include "common/strings.h"
#include "controlplane/monitoring.h"

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

std::string ServedModelName(const RevisionSpec& rev) {
  const std::vector<std::string>& args = rev.container.args;
  std::string name;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].starts_with("--model_name="))
      name = args[i].substr(13);
    else if (args[i] == "--model_name" && i + 1 < args.size())
      name = args[++i];
  }
  if (!name.empty()) return name;
  for (const auto& e : rev.container.env)
    if (e.name == "MLSERVER_MODEL_NAME" && !e.value.empty()) name = e.value;
  return name.empty() ? rev.isvc : name;
}

std::vector<std::string> OspreyServeArgv(const RevisionSpec& rev, const ServeFormat& format,
                                         const ServeLayout& layout) {
  std::vector<std::string> argv = {layout.binary,    "serve",        "--model-dir",
                                   layout.model_dir, "--model-name", ServedModelName(rev)};
  if (!layout.http_address.empty()) {
    argv.push_back("--http-address");
    argv.push_back(layout.http_address);
  }
  argv.push_back("--http-port");
  argv.push_back(layout.http_port);
  if (!layout.grpc_port.empty()) {
    argv.push_back("--grpc-port");
    argv.push_back(layout.grpc_port);
  }
  argv.insert(argv.end(), layout.extra.begin(), layout.extra.end());
  argv.push_back("--exit-on-load-failure");
  if (!format.backend.empty()) {
    argv.push_back("--model-format");
    argv.push_back(std::string(format.backend));
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
  return StrCat("/v2/models/", ServedModelName(rev), "/ready");
}

}  // namespace osprey::controlplane
