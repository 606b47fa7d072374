#include "backends/lightgbm/lightgbm_backend.h"

#include "backends/lightgbm/lgbm_model.h"
#include "backends/model_files.h"
#include "backends/simple_backend.h"
#include "common/logging.h"
#include "common/strings.h"

namespace osprey {
namespace {

namespace fs = std::filesystem;

bool IsLightgbmFile(const fs::path& p) {
  auto ext = p.extension().string();
  if (ext != ".txt" && ext != ".bst" && p.stem() != "model") return false;
  return FileStartsWith(p, "tree\n") || FileStartsWith(p, "tree\r\n");
}

absl::StatusOr<fs::path> FindLightgbmFile(const fs::path& dir) {
  return FindModelFile(dir, "LightGBM text model (*.txt or *.bst starting with 'tree')",
                       IsLightgbmFile);
}

class LightgbmModel : public Model {
 public:
  absl::Status Init(const LoadOptions& options) {
    OSPREY_ASSIGN_OR_RETURN(fs::path file, FindLightgbmFile(options.dir));
    OSPREY_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
    auto parsed = LgbmModel::Parse(text);
    if (!parsed.ok())
      return absl::Status(
          parsed.status().code(),
          StrCat("cannot load LightGBM model ", file.string(), ": ", parsed.status().message()));
    model_ = *std::move(parsed);
    metadata_.name = options.name;
    metadata_.versions = {options.version};
    metadata_.platform = "lightgbm";
    metadata_.converts_input_datatypes = true;
    metadata_.batchable = true;
    metadata_.feature_names = model_->feature_names();
    metadata_.inputs = {{"input-0", DataType::kFp64, {-1, model_->num_features()}, {}}};
    Shape out_shape = {-1};
    if (model_->num_classes() > 1) out_shape = {-1, model_->num_classes()};
    metadata_.outputs = {{"output-0", DataType::kFp64, out_shape, {}}};
    OSPREY_LOG(kInfo) << "model '" << options.name << "': LightGBM, " << model_->num_trees()
                      << " trees, objective " << model_->objective() << ", "
                      << model_->num_features() << " features";
    return absl::OkStatus();
  }

  const ModelMetadata& metadata() const override { return metadata_; }

  void Execute(std::span<InferTask> tasks) override {
    for (InferTask& task : tasks) task.status = Predict(*task.request, task.response);
  }

  bool explains() const override { return model_->explains(); }

  // FP64 contributions, [n, features + 1] or [n, num_class, features + 1]
  // (pred_contrib's values; lightgbm flattens the last two dimensions).
  absl::Status Explain(const InferRequest& request, InferResponse* response) override {
    if (!model_->explains()) return Model::Explain(request, response);
    const Tensor& input = request.inputs[0];
    std::vector<double> values;
    OSPREY_RETURN_IF_ERROR(ConvertToFloat64(input, &values));
    const int64_t rows = input.shape()[0];
    const int64_t width = model_->num_features() + 1;
    Shape shape = {rows, width};
    if (model_->num_classes() > 1) shape = {rows, model_->num_classes(), width};
    Tensor out("contributions", DataType::kFp64, std::move(shape));
    std::string* bytes = out.mutable_owned_data();
    bytes->resize(static_cast<size_t>(out.element_count()) * sizeof(double));
    OSPREY_RETURN_IF_ERROR(
        model_->Explain(values.data(), rows, reinterpret_cast<double*>(bytes->data())));
    response->outputs.push_back(std::move(out));
    return absl::OkStatus();
  }

 private:
  absl::Status Predict(const InferRequest& request, InferResponse* response) const {
    const Tensor& input = request.inputs[0];
    std::vector<double> values;
    OSPREY_RETURN_IF_ERROR(ConvertToFloat64(input, &values));
    const int64_t rows = input.shape()[0];
    bool raw = false;
    if (const ParameterValue* p = FindParameter(request.parameters, "raw_score")) {
      if (!std::holds_alternative<bool>(*p))
        return absl::InvalidArgumentError("parameter 'raw_score' must be a boolean");
      raw = std::get<bool>(*p);
    }
    Shape shape = metadata_.outputs[0].shape;
    shape[0] = rows;
    Tensor out("output-0", DataType::kFp64, std::move(shape));
    std::string* bytes = out.mutable_owned_data();
    bytes->resize(static_cast<size_t>(rows * model_->num_classes()) * sizeof(double));
    model_->Predict(values.data(), rows, reinterpret_cast<double*>(bytes->data()), raw);
    response->outputs.push_back(std::move(out));
    return absl::OkStatus();
  }

  std::unique_ptr<LgbmModel> model_;
  ModelMetadata metadata_;
};

}  // namespace

const Backend& LightgbmBackend() {
  static const SimpleBackend<LightgbmModel> backend(
      "lightgbm", [](const fs::path& dir) { return FindLightgbmFile(dir).ok(); });
  return backend;
}

}  // namespace osprey
