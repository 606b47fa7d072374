#include "backends/model_config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <fstream>
#include <sstream>

#include "common/strings.h"
#include "model_config.pb.h"

namespace osprey {
namespace {

namespace fs = std::filesystem;

class Collector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first.empty()) first = StrCat("line ", line + 1, ", column ", column + 1, ": ", message);
  }
  void AddWarning(int, int, const std::string&) override {}
  std::string first;
};

absl::StatusOr<DataType> ToDataType(config::DataType t, const std::string& tensor) {
  switch (t) {
    case config::TYPE_BOOL:
      return DataType::kBool;
    case config::TYPE_UINT8:
      return DataType::kUint8;
    case config::TYPE_UINT16:
      return DataType::kUint16;
    case config::TYPE_UINT32:
      return DataType::kUint32;
    case config::TYPE_UINT64:
      return DataType::kUint64;
    case config::TYPE_INT8:
      return DataType::kInt8;
    case config::TYPE_INT16:
      return DataType::kInt16;
    case config::TYPE_INT32:
      return DataType::kInt32;
    case config::TYPE_INT64:
      return DataType::kInt64;
    case config::TYPE_FP16:
      return DataType::kFp16;
    case config::TYPE_FP32:
      return DataType::kFp32;
    case config::TYPE_FP64:
      return DataType::kFp64;
    case config::TYPE_STRING:
      return DataType::kBytes;
    case config::TYPE_BF16:
      return DataType::kBf16;
    default:
      return absl::InvalidArgumentError(
          StrCat("config.pbtxt: tensor '", tensor, "' has no valid data_type"));
  }
}

template <typename Proto>
absl::StatusOr<TensorSpec> ToSpec(const Proto& t, int64_t max_batch_size) {
  if (t.name().empty()) return absl::InvalidArgumentError("config.pbtxt: a tensor has no name");
  TensorSpec spec;
  spec.name = t.name();
  OSPREY_ASSIGN_OR_RETURN(spec.datatype, ToDataType(t.data_type(), t.name()));
  if (max_batch_size > 0) spec.shape.push_back(-1);
  for (int64_t d : t.dims()) {
    if (d < -1 || d == 0)
      return absl::InvalidArgumentError(
          StrCat("config.pbtxt: tensor '", t.name(), "' has dimension ", d));
    spec.shape.push_back(d);
  }
  return spec;
}

}  // namespace

absl::StatusOr<std::optional<ModelConfigFile>> ReadModelConfig(const fs::path& dir) {
  fs::path file = dir / "config.pbtxt";
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::optional<ModelConfigFile>();
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  config::ModelConfig proto;
  google::protobuf::TextFormat::Parser parser;
  parser.AllowUnknownField(true);
  parser.AllowUnknownExtension(true);
  Collector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text.str(), &proto))
    return absl::InvalidArgumentError(StrCat("cannot parse ", file.string(), ": ", errors.first));
  ModelConfigFile out;
  out.name = proto.name();
  out.platform = proto.platform();
  out.default_model_filename = proto.default_model_filename();
  out.max_batch_size = proto.max_batch_size();
  if (out.max_batch_size < 0)
    return absl::InvalidArgumentError("config.pbtxt: max_batch_size must be >= 0");
  for (const auto& t : proto.input()) {
    OSPREY_ASSIGN_OR_RETURN(TensorSpec s, ToSpec(t, out.max_batch_size));
    out.inputs.push_back(std::move(s));
  }
  for (const auto& t : proto.output()) {
    OSPREY_ASSIGN_OR_RETURN(TensorSpec s, ToSpec(t, out.max_batch_size));
    out.outputs.push_back(std::move(s));
  }
  if (proto.has_dynamic_batching()) {
    if (out.max_batch_size == 0)
      return absl::InvalidArgumentError("config.pbtxt: dynamic_batching needs max_batch_size > 0");
    BatchingHint hint;
    hint.max_batch_size = out.max_batch_size;
    hint.max_queue_delay_us =
        static_cast<int64_t>(proto.dynamic_batching().max_queue_delay_microseconds());
    for (int32_t p : proto.dynamic_batching().preferred_batch_size()) {
      if (p < 1 || p > out.max_batch_size)
        return absl::InvalidArgumentError(
            StrCat("config.pbtxt: preferred_batch_size ", p, " is not within 1..max_batch_size"));
      hint.preferred_batch_sizes.push_back(p);
    }
    out.dynamic_batching = std::move(hint);
  }
  return std::optional<ModelConfigFile>(std::move(out));
}

}  // namespace osprey
