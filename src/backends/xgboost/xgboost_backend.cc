#include "backends/xgboost/xgboost_backend.h"

#include <xgboost/c_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <random>
#include <system_error>
#include <vector>

#include "absl/strings/str_join.h"
#include "backends/model_files.h"
#include "backends/simple_backend.h"
#include "backends/xgboost/forest.h"
#include "backends/xgboost/xgb_explainer.h"
#include "common/logging.h"
#include "common/strings.h"
#include "rapidjson/document.h"

namespace osprey {
namespace {

namespace fs = std::filesystem;

// XGBoost's last error without the stack trace it appends.
std::string LastError() {
  std::string message = XGBGetLastError();
  size_t trace = message.find("Stack trace:");
  if (trace != std::string::npos) message.resize(trace);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  return message;
}

absl::Status XgbError(std::string_view what) {
  return absl::InternalError(StrCat(what, ": ", LastError()));
}

// *.json, *.ubj or *.bst, except a LightGBM text model named *.bst as
// KServe's lgbserver names it.
bool IsModelFile(const fs::path& p) {
  auto ext = p.extension().string();
  if (ext == ".bst") return !FileStartsWith(p, "tree\n");
  return ext == ".json" || ext == ".ubj";
}

absl::StatusOr<fs::path> FindXgboostFile(const fs::path& dir) {
  return FindModelFile(dir, "XGBoost model file (*.json, *.ubj, *.bst)", IsModelFile);
}

class XgboostModel : public Model {
 public:
  XgboostModel() = default;
  ~XgboostModel() override {
    for (DMatrixHandle proxy : proxies_) XGDMatrixFree(proxy);
    if (booster_ != nullptr) XGBoosterFree(booster_);
  }

  absl::Status Init(const LoadOptions& options) {
    OSPREY_ASSIGN_OR_RETURN(fs::path file, FindXgboostFile(options.dir));
    if (XGBoosterCreate(nullptr, 0, &booster_) != 0) return XgbError("creating booster");
    if (XGBoosterLoadModel(booster_, file.c_str()) != 0)
      return absl::InvalidArgumentError(
          StrCat("cannot load XGBoost model ", file.string(), ": ", LastError()));
    std::string threads = std::to_string(options.threads_per_call);
    if (XGBoosterSetParam(booster_, "nthread", threads.c_str()) != 0)
      return XgbError("setting nthread");
    bst_ulong features = 0;
    if (XGBoosterGetNumFeature(booster_, &features) != 0) return XgbError("reading num_feature");
    num_features_ = static_cast<int64_t>(features);

    // Objective and class count from the learner's configuration.
    bst_ulong len = 0;
    const char* config = nullptr;
    if (XGBoosterSaveJsonConfig(booster_, &len, &config) != 0) return XgbError("reading config");
    rapidjson::Document doc;
    doc.Parse(config, len);
    std::string objective;
    int64_t num_class = 0;
    if (!doc.HasParseError() && doc.IsObject() && doc.HasMember("learner")) {
      const auto& learner = doc["learner"];
      if (learner.HasMember("objective") && learner["objective"].HasMember("name"))
        objective = learner["objective"]["name"].GetString();
      if (learner.HasMember("learner_model_param") &&
          learner["learner_model_param"].HasMember("num_class")) {
        const auto& nc = learner["learner_model_param"]["num_class"];
        if (nc.IsString()) num_class = std::atoll(nc.GetString());
      }
    }

    bst_ulong n_names = 0;
    const char** names = nullptr;
    if (XGBoosterGetStrFeatureInfo(booster_, "feature_name", &n_names, &names) == 0) {
      for (bst_ulong i = 0; i < n_names; ++i) metadata_.feature_names.emplace_back(names[i]);
    }

    metadata_.name = options.name;
    metadata_.versions = {options.version};
    metadata_.platform = "xgboost";
    metadata_.converts_input_datatypes = true;
    metadata_.batchable = true;
    metadata_.inputs = {{"input-0", DataType::kFp32, {-1, num_features_}, {}}};
    Shape out_shape = {-1};
    if (objective == "multi:softprob" && num_class > 1) out_shape = {-1, num_class};
    metadata_.outputs = {{"output-0", DataType::kFp32, out_shape, {}}};
    objective_ = objective;
    bst_ulong json_len = 0;
    const char* json = nullptr;
    if (XGBoosterSaveModelToBuffer(booster_, R"({"format":"json"})", &json_len, &json) != 0) {
      OSPREY_LOG(kInfo) << "model '" << metadata_.name
                        << "': libxgboost predictor, no explanations (model JSON unavailable: "
                        << LastError() << ")";
      return absl::OkStatus();
    }
    UseNativeEvaluatorIfExact(std::string_view(json, json_len));
    // The explainer's own copy of the trees, read now: the JSON is at hand,
    // and saving the model again later could race with predictions.
    auto explainer = XgbExplainer::Parse(std::string_view(json, json_len));
    if (explainer.ok() && (*explainer)->num_features() == num_features_) {
      explainer_ = *std::move(explainer);
    } else {
      OSPREY_LOG(kInfo) << "model '" << metadata_.name << "': no explanations ("
                        << (explainer.ok() ? "feature count differs" : explainer.status().message())
                        << ")";
    }
    return absl::OkStatus();
  }

  // Compiles the native evaluator and keeps it only if it reproduces
  // libxgboost's predictions bit for bit on probe rows built around every
  // split threshold (each side of it, and missing values).
  void UseNativeEvaluatorIfExact(std::string_view json) {
    if (num_features_ <= 0) return;  // nothing to probe; libxgboost handles it
    auto forest = Forest::Compile(json);
    if (!forest.ok()) {
      OSPREY_LOG(kInfo) << "model '" << metadata_.name << "': libxgboost predictor ("
                        << forest.status().message() << ")";
      return;
    }
    std::vector<float> probe = ProbeRows(**forest);
    int64_t rows = static_cast<int64_t>(probe.size()) / num_features_;
    InferResponse reference;
    absl::Status s = PredictWithLibrary(probe, rows, &reference);
    std::vector<float> native(static_cast<size_t>(rows * (*forest)->output_width()));
    (*forest)->Predict(probe.data(), rows, native.data());
    std::string_view expected = s.ok() ? reference.outputs[0].data() : std::string_view();
    if (!s.ok() || expected.size() != native.size() * sizeof(float) ||
        std::memcmp(expected.data(), native.data(), expected.size()) != 0) {
      OSPREY_LOG(kWarning) << "model '" << metadata_.name
                           << "': native evaluator disagrees with libxgboost; using libxgboost";
      return;
    }
    OSPREY_LOG(kInfo) << "model '" << metadata_.name << "': native evaluator ("
                      << (*forest)->num_trees() << " trees, " << objective_
                      << "), verified against libxgboost on " << rows << " rows";
    forest_ = *std::move(forest);
  }

  // Rows mixing, per feature, every split threshold, the float just below it,
  // missing values and extremes, from a fixed seed.
  std::vector<float> ProbeRows(const Forest& forest) const {
    std::vector<std::vector<float>> candidates = forest.SplitThresholds();
    for (auto& c : candidates) {
      size_t n = c.size();
      for (size_t i = 0; i < n; ++i) c.push_back(std::nextafter(c[i], -INFINITY));
    }
    std::mt19937 rng(42);
    constexpr int kRows = 256;
    std::vector<float> rows(static_cast<size_t>(kRows * num_features_));
    for (int r = 0; r < kRows; ++r) {
      for (int64_t f = 0; f < num_features_; ++f) {
        auto& c = candidates[static_cast<size_t>(f)];
        uint32_t pick = rng() % 16;
        // The first block has no missing value: blocks without NaN take
        // their own path, which the probe must cover too.
        if (r < 64 && pick == 0) pick = 3;
        float v;
        if (pick == 0)
          v = std::nanf("");
        else if (pick == 1)
          v = (rng() % 2) ? 1e30f : -1e30f;
        else if (c.empty() || pick == 2)
          v = static_cast<float>(rng() % 1000) / 10.0f - 50.0f;
        else
          v = c[rng() % c.size()];
        rows[static_cast<size_t>(r * num_features_ + f)] = v;
      }
    }
    return rows;
  }

  const ModelMetadata& metadata() const override { return metadata_; }

  void Execute(std::span<InferTask> tasks) override {
    for (InferTask& task : tasks) task.status = Predict(*task.request, task.response);
  }

  bool explains() const override { return explainer_ != nullptr; }

  // FP32 contributions, [n, features + 1] or [n, num_class, features + 1] as
  // pred_contribs.
  absl::Status Explain(const InferRequest& request, InferResponse* response) override {
    if (explainer_ == nullptr) return Model::Explain(request, response);
    const Tensor& input = request.inputs[0];
    std::vector<float> values;
    OSPREY_RETURN_IF_ERROR(ConvertToFloat32(input, &values));
    const int64_t rows = input.shape()[0];
    const int64_t width = num_features_ + 1;
    Shape shape = {rows, width};
    if (explainer_->num_groups() > 1) shape = {rows, explainer_->num_groups(), width};
    Tensor out("contributions", DataType::kFp32, std::move(shape));
    std::string* bytes = out.mutable_owned_data();
    bytes->resize(static_cast<size_t>(out.element_count()) * sizeof(float));
    OSPREY_RETURN_IF_ERROR(
        explainer_->Explain(values.data(), rows, reinterpret_cast<float*>(bytes->data())));
    response->outputs.push_back(std::move(out));
    return absl::OkStatus();
  }

 private:
  absl::Status Predict(const InferRequest& request, InferResponse* response) {
    const Tensor& input = request.inputs[0];
    std::vector<float> values;
    OSPREY_RETURN_IF_ERROR(ConvertToFloat32(input, &values));
    int64_t rows = input.shape()[0];
    if (rows == 0 || forest_ != nullptr) {
      Shape shape = metadata_.outputs[0].shape;
      shape[0] = rows;
      Tensor out("output-0", DataType::kFp32, shape);
      std::string* bytes = out.mutable_owned_data();
      bytes->resize(static_cast<size_t>(out.element_count()) * sizeof(float));
      if (rows > 0) forest_->Predict(values.data(), rows, reinterpret_cast<float*>(bytes->data()));
      response->outputs.push_back(std::move(out));
      return absl::OkStatus();
    }
    return PredictWithLibrary(values, rows, response);
  }

  // libxgboost's own predictor (inplace prediction from a dense array).
  absl::Status PredictWithLibrary(const std::vector<float>& values, int64_t rows,
                                  InferResponse* response) {
    char array[160];
    std::snprintf(array, sizeof(array),
                  "{\"data\":[%llu,true],\"shape\":[%lld,%lld],\"typestr\":\"<f4\",\"version\":3}",
                  static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(values.data())),
                  static_cast<long long>(rows), static_cast<long long>(num_features_));
    static constexpr char kConfig[] =
        "{\"type\":0,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
        "\"strict_shape\":false,\"missing\":NaN,\"cache_id\":0}";
    const bst_ulong* shape = nullptr;
    bst_ulong dim = 0;
    const float* result = nullptr;
    DMatrixHandle proxy = AcquireProxy();
    if (proxy == nullptr) return XgbError("creating a proxy DMatrix");
    int rc = XGBoosterPredictFromDense(booster_, array, kConfig, proxy, &shape, &dim, &result);
    ReleaseProxy(proxy);
    if (rc != 0)
      return XgbError(StrCat("XGBoost prediction for model '", metadata_.name, "' failed"));
    Shape out_shape(shape, shape + dim);
    int64_t count = 1;
    for (int64_t d : out_shape) count *= d;
    Tensor out("output-0", DataType::kFp32, std::move(out_shape));
    out.mutable_owned_data()->assign(reinterpret_cast<const char*>(result),
                                     static_cast<size_t>(count) * sizeof(float));
    response->outputs.push_back(std::move(out));
    return absl::OkStatus();
  }

  // Without a proxy, every XGBoosterPredictFromDense call builds one, and its
  // construction reads cgroup files; a pool of reusable proxies (one per
  // concurrent call: a proxy holds the call's input) avoids that per request.
  DMatrixHandle AcquireProxy() {
    {
      std::lock_guard<std::mutex> lock(proxy_mu_);
      if (!free_proxies_.empty()) {
        DMatrixHandle p = free_proxies_.back();
        free_proxies_.pop_back();
        return p;
      }
    }
    DMatrixHandle p = nullptr;
    if (XGProxyDMatrixCreate(&p) != 0) return nullptr;
    std::lock_guard<std::mutex> lock(proxy_mu_);
    proxies_.push_back(p);
    return p;
  }
  void ReleaseProxy(DMatrixHandle p) {
    std::lock_guard<std::mutex> lock(proxy_mu_);
    free_proxies_.push_back(p);
  }

  std::unique_ptr<Forest> forest_;           // set when it reproduces libxgboost exactly
  std::unique_ptr<XgbExplainer> explainer_;  // set when the model can be explained
  std::mutex proxy_mu_;
  std::vector<DMatrixHandle> proxies_;       // every proxy made, freed with the model
  std::vector<DMatrixHandle> free_proxies_;  // those not in use
  BoosterHandle booster_ = nullptr;
  int64_t num_features_ = 0;
  std::string objective_;
  ModelMetadata metadata_;
};

}  // namespace

const Backend& XgboostBackend() {
  static const SimpleBackend<XgboostModel> backend(
      "xgboost", [](const fs::path& dir) { return FindXgboostFile(dir).ok(); });
  return backend;
}

}  // namespace osprey
