#include "backends/pmml/pmml_backend.h"

#include <cmath>
#include <cstring>

#include "backends/model_files.h"
#include "backends/pmml/pmml_model.h"
#include "backends/simple_backend.h"
#include "common/logging.h"
#include "common/strings.h"

namespace osprey {
namespace {

namespace fs = std::filesystem;
using pmml::Value;

absl::StatusOr<fs::path> FindPmmlFile(const fs::path& dir) {
  return FindModelFile(dir, "PMML model (*.pmml)",
                       [](const fs::path& p) { return p.extension() == ".pmml"; });
}

class PmmlBackendModel : public Model {
 public:
  absl::Status Init(const LoadOptions& options) {
    OSPREY_ASSIGN_OR_RETURN(fs::path file, FindPmmlFile(options.dir));
    OSPREY_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
    auto parsed = PmmlModel::Parse(text);
    if (!parsed.ok())
      return absl::Status(parsed.status().code(),
                          StrCat("cannot load ", file.string(), ": ", parsed.status().message()));
    model_ = *std::move(parsed);
    bool all_numeric = true;
    for (const pmml::Column& c : model_->inputs()) {
      all_numeric = all_numeric && c.numeric;
      metadata_.feature_names.push_back(c.name);
    }
    metadata_.name = options.name;
    metadata_.versions = {options.version};
    metadata_.platform = "pmml";
    metadata_.converts_input_datatypes = true;
    metadata_.batchable = true;
    metadata_.v1_records = true;
    metadata_.inputs = {{"input-0",
                         all_numeric ? DataType::kFp64 : DataType::kBytes,
                         {-1, static_cast<int64_t>(model_->inputs().size())}}};
    for (const pmml::Column& c : model_->outputs())
      metadata_.outputs.push_back({c.name, c.numeric ? DataType::kFp64 : DataType::kBytes, {-1}});
    OSPREY_LOG(kInfo) << "model '" << options.name << "': PMML " << model_->model_kind() << ", "
                      << model_->inputs().size() << " input field(s), " << model_->outputs().size()
                      << " result column(s)";
    return absl::OkStatus();
  }

  const ModelMetadata& metadata() const override { return metadata_; }

  void Execute(std::span<InferTask> tasks) override {
    for (InferTask& task : tasks) task.status = Predict(*task.request, task.response);
  }

 private:
  absl::Status Predict(const InferRequest& request, InferResponse* response) const {
    const Tensor& input = request.inputs[0];
    const int64_t rows = input.shape()[0];
    const size_t width = model_->inputs().size();
    std::vector<Value> cells(static_cast<size_t>(rows) * width);
    if (input.datatype() == DataType::kBytes) {
      BytesReader reader(input.data());
      std::string_view e;
      for (Value& c : cells) {
        if (!reader.Next(&e)) return absl::InvalidArgumentError("input-0 is malformed");
        c = e.empty() ? Value::Missing() : Value::String(std::string(e));
      }
    } else {
      std::vector<double> values;
      OSPREY_RETURN_IF_ERROR(ConvertToFloat64(input, &values));
      for (size_t i = 0; i < cells.size(); ++i)
        cells[i] = std::isnan(values[i]) ? Value::Missing() : Value::Number(values[i]);
    }
    const auto& columns = model_->outputs();
    std::vector<Tensor> outs;
    for (const pmml::Column& c : columns)
      outs.emplace_back(c.name, c.numeric ? DataType::kFp64 : DataType::kBytes, Shape{rows});
    std::vector<Value> result;
    for (int64_t r = 0; r < rows; ++r) {
      absl::Status s = model_->Evaluate(
          std::span<const Value>(cells.data() + static_cast<size_t>(r) * width, width), &result);
      if (!s.ok()) return absl::InvalidArgumentError(StrCat("row ", r, ": ", s.message()));
      for (size_t i = 0; i < columns.size(); ++i) {
        std::string* bytes = outs[i].mutable_owned_data();
        const Value& v = result[i];
        if (columns[i].numeric) {
          double d = v.kind == Value::Kind::kNumber   ? v.number
                     : v.kind == Value::Kind::kString ? std::atof(v.text.c_str())
                                                      : std::nan("");
          bytes->append(reinterpret_cast<const char*>(&d), sizeof(d));
        } else {
          AppendBytesElement(v.kind == Value::Kind::kString   ? std::string_view(v.text)
                             : v.kind == Value::Kind::kNumber ? std::string_view(StrCat(v.number))
                                                              : std::string_view(),
                             bytes);
        }
      }
    }
    for (Tensor& t : outs) response->outputs.push_back(std::move(t));
    return absl::OkStatus();
  }

  std::unique_ptr<PmmlModel> model_;
  ModelMetadata metadata_;
};

}  // namespace

const Backend& PmmlBackend() {
  static const SimpleBackend<PmmlBackendModel> backend(
      "pmml", [](const fs::path& dir) { return FindPmmlFile(dir).ok(); });
  return backend;
}

}  // namespace osprey
