#include "backends/model_config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <fstream>
#include <sstream>

#include "common/json_writer.h"
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
absl::StatusOr<TensorSpec> ToSpec(const Proto& t, int64_t max_batch_size,
                                  std::map<std::string, Shape>* reshapes) {
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
  if (t.has_reshape()) {
    Shape& shape = (*reshapes)[t.name()];
    for (int64_t d : t.reshape().shape()) {
      if (d < -1 || d == 0)
        return absl::InvalidArgumentError(
            StrCat("config.pbtxt: tensor '", t.name(), "' has reshape dimension ", d));
      shape.push_back(d);
    }
  }
  return spec;
}

InstanceGroup::Kind ToKind(config::ModelInstanceGroup::Kind kind) {
  switch (kind) {
    case config::ModelInstanceGroup::KIND_GPU:
      return InstanceGroup::Kind::kGpu;
    case config::ModelInstanceGroup::KIND_CPU:
      return InstanceGroup::Kind::kCpu;
    case config::ModelInstanceGroup::KIND_MODEL:
      return InstanceGroup::Kind::kModel;
    default:
      return InstanceGroup::Kind::kAuto;
  }
}

absl::Status ReadVersionPolicy(const config::ModelVersionPolicy& p, VersionPolicy* out) {
  if (p.has_all()) {
    out->kind = VersionPolicy::Kind::kAll;
  } else if (p.has_specific()) {
    out->kind = VersionPolicy::Kind::kSpecific;
    for (int64_t v : p.specific().versions()) {
      if (v < 0)
        return absl::InvalidArgumentError(
            StrCat("config.pbtxt: version_policy specific lists version ", v));
      out->versions.push_back(v);
    }
    if (out->versions.empty())
      return absl::InvalidArgumentError("config.pbtxt: version_policy specific lists no versions");
  } else {
    out->kind = VersionPolicy::Kind::kLatest;
    out->num_versions = p.has_latest() ? p.latest().num_versions() : 1;
    if (out->num_versions < 1)
      return absl::InvalidArgumentError(
          "config.pbtxt: version_policy latest needs num_versions >= 1");
  }
  return absl::OkStatus();
}

std::string TritonTypeName(DataType t) {
  std::string_view name = DataTypeName(t);
  return StrCat("TYPE_", name == "BYTES" ? "STRING" : name);
}

// A tensor's entry of the JSON: dims without the batch dimension.
void WriteTensor(const TensorSpec& t, const ModelConfigFile& c, bool input, JsonWriter& w) {
  w.BeginObject();
  w.Key("name").String(t.name);
  w.Key("data_type").String(TritonTypeName(t.datatype));
  if (input) w.Key("format").String("FORMAT_NONE");
  w.Key("dims").BeginArray();
  for (size_t i = c.max_batch_size > 0 ? 1 : 0; i < t.shape.size(); ++i) w.Int(t.shape[i]);
  w.EndArray();
  if (auto it = c.reshapes.find(t.name); it != c.reshapes.end()) {
    w.Key("reshape").BeginObject().Key("shape").BeginArray();
    for (int64_t d : it->second) w.Int(d);
    w.EndArray().EndObject();
  }
  w.Key("is_shape_tensor").Bool(false);
  if (input) {
    w.Key("allow_ragged_batch").Bool(false);
    w.Key("optional").Bool(false);
  } else {
    w.Key("label_filename").String("");
  }
  w.EndObject();
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
  out.backend = proto.backend();
  for (const auto& t : proto.input()) {
    OSPREY_ASSIGN_OR_RETURN(TensorSpec s, ToSpec(t, out.max_batch_size, &out.reshapes));
    out.inputs.push_back(std::move(s));
  }
  for (const auto& t : proto.output()) {
    OSPREY_ASSIGN_OR_RETURN(TensorSpec s, ToSpec(t, out.max_batch_size, &out.reshapes));
    out.outputs.push_back(std::move(s));
  }
  out.has_version_policy = proto.has_version_policy();
  OSPREY_RETURN_IF_ERROR(ReadVersionPolicy(proto.version_policy(), &out.version_policy));
  for (const auto& g : proto.instance_group()) {
    InstanceGroup group;
    group.name = g.name();
    group.kind = ToKind(g.kind());
    group.count = g.count();
    if (group.count < 0)
      return absl::InvalidArgumentError(
          StrCat("config.pbtxt: instance_group count must be >= 1, got ", group.count));
    group.gpus.assign(g.gpus().begin(), g.gpus().end());
    out.instance_groups.push_back(std::move(group));
  }
  for (const auto& [key, value] : proto.parameters()) out.parameters[key] = value.string_value();
  out.decoupled = proto.model_transaction_policy().decoupled();
  out.sequence_batching = proto.has_sequence_batching();
  out.ensemble_scheduling = proto.has_ensemble_scheduling();
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

std::string_view InstanceKindName(InstanceGroup::Kind kind) {
  switch (kind) {
    case InstanceGroup::Kind::kGpu:
      return "KIND_GPU";
    case InstanceGroup::Kind::kCpu:
      return "KIND_CPU";
    case InstanceGroup::Kind::kModel:
      return "KIND_MODEL";
    case InstanceGroup::Kind::kAuto:
      break;
  }
  return "KIND_AUTO";
}

std::string ModelConfigJson(const ModelConfigFile& c) {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("name").String(c.name);
  w.Key("platform").String(c.platform);
  w.Key("backend").String(c.backend);
  w.Key("version_policy").BeginObject();
  switch (c.version_policy.kind) {
    case VersionPolicy::Kind::kLatest:
      w.Key("latest").BeginObject().Key("num_versions").Int(c.version_policy.num_versions);
      w.EndObject();
      break;
    case VersionPolicy::Kind::kAll:
      w.Key("all").BeginObject().EndObject();
      break;
    case VersionPolicy::Kind::kSpecific:
      w.Key("specific").BeginObject().Key("versions").BeginArray();
      for (int64_t v : c.version_policy.versions) w.Int(v);
      w.EndArray().EndObject();
      break;
  }
  w.EndObject();
  w.Key("max_batch_size").Int(c.max_batch_size);
  w.Key("input").BeginArray();
  for (const TensorSpec& t : c.inputs) WriteTensor(t, c, true, w);
  w.EndArray();
  w.Key("output").BeginArray();
  for (const TensorSpec& t : c.outputs) WriteTensor(t, c, false, w);
  w.EndArray();
  if (c.dynamic_batching.has_value()) {
    w.Key("dynamic_batching").BeginObject().Key("preferred_batch_size").BeginArray();
    for (int64_t p : c.dynamic_batching->preferred_batch_sizes) w.Int(p);
    w.EndArray();
    w.Key("max_queue_delay_microseconds").Int(c.dynamic_batching->max_queue_delay_us);
    w.Key("preserve_ordering").Bool(false);
    w.EndObject();
  }
  w.Key("instance_group").BeginArray();
  for (const InstanceGroup& g : c.instance_groups) {
    w.BeginObject();
    w.Key("name").String(g.name);
    w.Key("kind").String(InstanceKindName(g.kind));
    w.Key("count").Int(g.count);
    w.Key("gpus").BeginArray();
    for (int gpu : g.gpus) w.Int(gpu);
    w.EndArray();
    w.Key("secondary_devices").BeginArray().EndArray();
    w.Key("profile").BeginArray().EndArray();
    w.Key("passive").Bool(false);
    w.Key("host_policy").String("");
    w.EndObject();
  }
  w.EndArray();
  w.Key("default_model_filename").String(c.default_model_filename);
  w.Key("cc_model_filenames").BeginObject().EndObject();
  w.Key("metric_tags").BeginObject().EndObject();
  w.Key("parameters").BeginObject();
  for (const auto& [key, value] : c.parameters)
    w.Key(key).BeginObject().Key("string_value").String(value).EndObject();
  w.EndObject();
  w.Key("model_warmup").BeginArray().EndArray();
  if (c.decoupled)
    w.Key("model_transaction_policy").BeginObject().Key("decoupled").Bool(true).EndObject();
  w.EndObject();
  return body;
}

}  // namespace osprey
