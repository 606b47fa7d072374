#include "protocol/v2_json.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/json_writer.h"
#include "common/strings.h"
#include "protocol/json_util.h"

namespace osprey {
namespace {

using rapidjson::Value;

absl::Status DecodeTensorHeader(const Value& v, std::string_view what, size_t index,
                                Tensor* tensor) {
  if (!v.IsObject())
    return absl::InvalidArgumentError(StrCat(what, "[", index, "] must be an object"));
  auto name = v.FindMember("name");
  if (name == v.MemberEnd() || !name->value.IsString())
    return absl::InvalidArgumentError(
        StrCat(what, "[", index, "]: 'name' is missing or not a string"));
  tensor->set_name(std::string(name->value.GetString(), name->value.GetStringLength()));

  auto datatype = v.FindMember("datatype");
  if (datatype == v.MemberEnd() || !datatype->value.IsString())
    return absl::InvalidArgumentError(
        StrCat(what, " '", tensor->name(), "': 'datatype' is missing or not a string"));
  std::string_view type_name(datatype->value.GetString(), datatype->value.GetStringLength());
  DataType type = ParseDataType(type_name);
  if (type == DataType::kInvalid)
    return absl::InvalidArgumentError(
        StrCat(what, " '", tensor->name(), "': unknown datatype '", type_name,
               "' (expected BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64, BF16 or BYTES)"));
  tensor->set_datatype(type);

  auto shape = v.FindMember("shape");
  if (shape == v.MemberEnd() || !shape->value.IsArray())
    return absl::InvalidArgumentError(
        StrCat(what, " '", tensor->name(), "': 'shape' is missing or not an array"));
  Shape* dims = tensor->mutable_shape();
  dims->reserve(shape->value.Size());
  for (const Value& d : shape->value.GetArray()) {
    if (!d.IsInt64() || d.GetInt64() < 0)
      return absl::InvalidArgumentError(
          StrCat(what, " '", tensor->name(), "': 'shape' must hold non-negative integers"));
    dims->push_back(d.GetInt64());
  }
  auto params = v.FindMember("parameters");
  if (params != v.MemberEnd()) {
    OSPREY_RETURN_IF_ERROR(DecodeParameters(params->value,
                                            StrCat(what, " '", tensor->name(), "' parameters"),
                                            tensor->mutable_parameters()));
  }
  return absl::OkStatus();
}

// Walks nested arrays in row-major order, calling `fn` on each leaf.
template <typename Fn>
absl::Status ForEachLeaf(const Value& v, Fn& fn, int depth = 0) {
  if (v.IsArray()) {
    if (depth >= kMaxJsonNesting)
      return absl::InvalidArgumentError(
          StrCat("'data' is nested deeper than ", kMaxJsonNesting, " levels"));
    for (const Value& e : v.GetArray()) OSPREY_RETURN_IF_ERROR(ForEachLeaf(e, fn, depth + 1));
    return absl::OkStatus();
  }
  return fn(v);
}

std::string_view JsonKind(const Value& v) {
  if (v.IsNull()) return "null";
  if (v.IsBool()) return "a boolean";
  if (v.IsString()) return "a string";
  if (v.IsObject()) return "an object";
  if (v.IsArray()) return "an array";
  if (v.IsInt64() || v.IsUint64()) return "an integer";
  return "a number";
}

template <typename T>
void Append(std::string* out, T value) {
  char buf[sizeof(T)];
  std::memcpy(buf, &value, sizeof(T));
  out->append(buf, sizeof(T));
}

template <typename T>
absl::Status AppendInteger(const Value& e, const Tensor& t, int64_t index, std::string* out) {
  if constexpr (std::is_signed_v<T>) {
    if (e.IsInt64()) {
      int64_t x = e.GetInt64();
      if (x >= std::numeric_limits<T>::min() && x <= std::numeric_limits<T>::max()) {
        Append<T>(out, static_cast<T>(x));
        return absl::OkStatus();
      }
      return absl::InvalidArgumentError(StrCat("input '", t.name(), "': element ", index, " = ", x,
                                               " is out of range for ",
                                               DataTypeName(t.datatype())));
    }
  } else {
    if (e.IsUint64()) {
      uint64_t x = e.GetUint64();
      if (x <= std::numeric_limits<T>::max()) {
        Append<T>(out, static_cast<T>(x));
        return absl::OkStatus();
      }
      return absl::InvalidArgumentError(StrCat("input '", t.name(), "': element ", index, " = ", x,
                                               " is out of range for ",
                                               DataTypeName(t.datatype())));
    }
    if (e.IsInt64())
      return absl::InvalidArgumentError(StrCat("input '", t.name(), "': element ", index, " = ",
                                               e.GetInt64(), " is negative, not allowed for ",
                                               DataTypeName(t.datatype())));
  }
  return absl::InvalidArgumentError(StrCat("input '", t.name(), "': element ", index, " is ",
                                           JsonKind(e), ", expected an integer for ",
                                           DataTypeName(t.datatype())));
}

// `body_size` bounds the elements the JSON can hold (each takes at least one
// byte), so a huge declared shape cannot make us reserve memory it never fills.
absl::Status DecodeJsonData(const Value& data, Tensor* t, int64_t expected, size_t body_size) {
  std::string* out = t->mutable_owned_data();
  DataType type = t->datatype();
  if (type == DataType::kFp16 || type == DataType::kBf16)
    return absl::InvalidArgumentError(
        StrCat("input '", t->name(), "': ", DataTypeName(type),
               " data travels only in binary form (binary_data_size), not as JSON"));
  size_t size = ElementSize(type);
  if (size > 0 && expected > 0)
    out->reserve(std::min(static_cast<size_t>(expected), body_size) * size);
  int64_t index = 0;
  auto leaf = [&](const Value& e) -> absl::Status {
    if (index >= expected) {
      ++index;  // counted for the size error below; nothing stored
      return absl::OkStatus();
    }
    absl::Status s;
    switch (type) {
      case DataType::kBool:
        if (!e.IsBool())
          return absl::InvalidArgumentError(StrCat("input '", t->name(), "': element ", index,
                                                   " is ", JsonKind(e),
                                                   ", expected true or false for BOOL"));
        out->push_back(e.GetBool() ? 1 : 0);
        break;
      case DataType::kFp32:
      case DataType::kFp64:
        if (!e.IsNumber())
          return absl::InvalidArgumentError(StrCat("input '", t->name(), "': element ", index,
                                                   " is ", JsonKind(e), ", expected a number for ",
                                                   DataTypeName(type)));
        if (type == DataType::kFp32)
          Append<float>(out, static_cast<float>(e.GetDouble()));
        else
          Append<double>(out, e.GetDouble());
        break;
      case DataType::kBytes:
        if (!e.IsString())
          return absl::InvalidArgumentError(StrCat("input '", t->name(), "': element ", index,
                                                   " is ", JsonKind(e),
                                                   ", expected a string for BYTES"));
        AppendBytesElement(std::string_view(e.GetString(), e.GetStringLength()), out);
        break;
      case DataType::kInt8:
        s = AppendInteger<int8_t>(e, *t, index, out);
        break;
      case DataType::kInt16:
        s = AppendInteger<int16_t>(e, *t, index, out);
        break;
      case DataType::kInt32:
        s = AppendInteger<int32_t>(e, *t, index, out);
        break;
      case DataType::kInt64:
        s = AppendInteger<int64_t>(e, *t, index, out);
        break;
      case DataType::kUint8:
        s = AppendInteger<uint8_t>(e, *t, index, out);
        break;
      case DataType::kUint16:
        s = AppendInteger<uint16_t>(e, *t, index, out);
        break;
      case DataType::kUint32:
        s = AppendInteger<uint32_t>(e, *t, index, out);
        break;
      case DataType::kUint64:
        s = AppendInteger<uint64_t>(e, *t, index, out);
        break;
      default:
        return absl::InvalidArgumentError("unsupported datatype");
    }
    ++index;
    return s;
  };
  OSPREY_RETURN_IF_ERROR(ForEachLeaf(data, leaf));
  if (index != expected)
    return absl::InvalidArgumentError(StrCat("input '", t->name(), "': shape ",
                                             ShapeToString(t->shape()), " expects ", expected,
                                             " elements, but 'data' holds ", index));
  return absl::OkStatus();
}

void WriteShape(const Shape& shape, JsonWriter& w) {
  w.BeginArray();
  for (int64_t d : shape) w.Int(d);
  w.EndArray();
}

template <typename T>
T LoadAt(const char* p, int64_t i) {
  T v;
  std::memcpy(&v, p + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return v;
}

void WriteJsonData(const Tensor& t, JsonWriter& w) {
  const char* p = t.data().data();
  int64_t n = t.element_count();
  w.BeginArray();
  switch (t.datatype()) {
    case DataType::kBool:
      for (int64_t i = 0; i < n; ++i) w.Bool(p[i] != 0);
      break;
    case DataType::kFp32:
      for (int64_t i = 0; i < n; ++i) w.Float(LoadAt<float>(p, i));
      break;
    case DataType::kFp64:
      for (int64_t i = 0; i < n; ++i) w.Double(LoadAt<double>(p, i));
      break;
    case DataType::kFp16:
    case DataType::kBf16:
      for (int64_t i = 0; i < n; ++i) w.Float(static_cast<float>(NumericElementAsDouble(t, i)));
      break;
    case DataType::kUint8:
      for (int64_t i = 0; i < n; ++i) w.Uint(LoadAt<uint8_t>(p, i));
      break;
    case DataType::kUint16:
      for (int64_t i = 0; i < n; ++i) w.Uint(LoadAt<uint16_t>(p, i));
      break;
    case DataType::kUint32:
      for (int64_t i = 0; i < n; ++i) w.Uint(LoadAt<uint32_t>(p, i));
      break;
    case DataType::kUint64:
      for (int64_t i = 0; i < n; ++i) w.Uint(LoadAt<uint64_t>(p, i));
      break;
    case DataType::kInt8:
      for (int64_t i = 0; i < n; ++i) w.Int(LoadAt<int8_t>(p, i));
      break;
    case DataType::kInt16:
      for (int64_t i = 0; i < n; ++i) w.Int(LoadAt<int16_t>(p, i));
      break;
    case DataType::kInt32:
      for (int64_t i = 0; i < n; ++i) w.Int(LoadAt<int32_t>(p, i));
      break;
    case DataType::kInt64:
      for (int64_t i = 0; i < n; ++i) w.Int(LoadAt<int64_t>(p, i));
      break;
    case DataType::kBytes: {
      BytesReader reader(t.data());
      std::string_view e;
      while (reader.Next(&e)) w.String(e);
      break;
    }
    default:
      break;
  }
  w.EndArray();
}

enum class SpecStyle { kMetadata, kTritonConfig };

// Tensor descriptions as V2 metadata writes them ("datatype": "FP32",
// "shape") or as Triton's model configuration does ("data_type": "TYPE_FP32",
// BYTES as TYPE_STRING, "dims").
void WriteTensorSpecs(const std::vector<TensorSpec>& specs, JsonWriter& w,
                      SpecStyle style = SpecStyle::kMetadata) {
  const bool triton = style == SpecStyle::kTritonConfig;
  w.BeginArray();
  for (const TensorSpec& s : specs) {
    std::string_view type = DataTypeName(s.datatype);
    w.BeginObject();
    w.Key("name").String(s.name);
    if (triton)
      w.Key("data_type").String(StrCat("TYPE_", type == "BYTES" ? "STRING" : type));
    else
      w.Key("datatype").String(type);
    w.Key(triton ? "dims" : "shape");
    WriteShape(s.shape, w);
    if (!triton && !s.parameters.empty()) {
      w.Key("parameters");
      EncodeJsonParameters(s.parameters, w);
    }
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace

absl::StatusOr<InferRequest> DecodeV2InferRequest(std::shared_ptr<const std::string> body,
                                                  std::optional<uint64_t> header_length) {
  std::string_view all(*body);
  std::string_view json = all;
  if (header_length.has_value()) {
    if (*header_length > all.size())
      return absl::InvalidArgumentError(StrCat("Inference-Header-Content-Length is ",
                                               *header_length, " but the body holds only ",
                                               all.size(), " bytes"));
    json = all.substr(0, *header_length);
  }
  std::string_view binary = all.substr(json.size());

  RequestDocument request_doc;
  rapidjson::Document& doc = *request_doc;
  OSPREY_RETURN_IF_ERROR(ParseJson(json, &doc));
  if (!doc.IsObject()) return absl::InvalidArgumentError("request body must be a JSON object");

  InferRequest req;
  req.backing = std::move(body);
  auto id = doc.FindMember("id");
  if (id != doc.MemberEnd()) {
    if (!id->value.IsString()) return absl::InvalidArgumentError("'id' must be a string");
    req.id.assign(id->value.GetString(), id->value.GetStringLength());
  }
  auto params = doc.FindMember("parameters");
  if (params != doc.MemberEnd())
    OSPREY_RETURN_IF_ERROR(DecodeParameters(params->value, "'parameters'", &req.parameters));

  auto inputs = doc.FindMember("inputs");
  if (inputs == doc.MemberEnd() || !inputs->value.IsArray())
    return absl::InvalidArgumentError("'inputs' is missing or not an array");
  if (inputs->value.Empty()) return absl::InvalidArgumentError("'inputs' is empty");
  req.inputs.resize(inputs->value.Size());
  size_t binary_offset = 0;
  for (size_t i = 0; i < req.inputs.size(); ++i) {
    const Value& v = inputs->value[static_cast<rapidjson::SizeType>(i)];
    Tensor& t = req.inputs[i];
    OSPREY_RETURN_IF_ERROR(DecodeTensorHeader(v, "inputs", i, &t));
    OSPREY_ASSIGN_OR_RETURN(int64_t expected, ElementCount(t.shape()));
    const ParameterValue* binary_size = FindParameter(t.parameters(), "binary_data_size");
    auto data = v.FindMember("data");
    if (binary_size != nullptr) {
      if (!std::holds_alternative<int64_t>(*binary_size) || std::get<int64_t>(*binary_size) < 0)
        return absl::InvalidArgumentError(
            StrCat("input '", t.name(), "': binary_data_size must be a non-negative integer"));
      if (data != v.MemberEnd())
        return absl::InvalidArgumentError(
            StrCat("input '", t.name(), "' has both 'data' and binary_data_size; use one"));
      uint64_t size = static_cast<uint64_t>(std::get<int64_t>(*binary_size));
      if (size > binary.size() - binary_offset)
        return absl::InvalidArgumentError(
            StrCat("input '", t.name(), "': binary_data_size ", size, " exceeds the ",
                   binary.size() - binary_offset, " binary bytes left in the body (",
                   header_length ? "" : "no Inference-Header-Content-Length header; ",
                   "binary part ", binary.size(), " bytes)"));
      t.BorrowData(binary.substr(binary_offset, size));
      binary_offset += size;
      OSPREY_RETURN_IF_ERROR(t.Validate());
      // The parameter described the transport; the backend does not need it.
      auto& p = *t.mutable_parameters();
      std::erase_if(p, [](const auto& kv) { return kv.first == "binary_data_size"; });
    } else {
      if (data == v.MemberEnd())
        return absl::InvalidArgumentError(
            StrCat("input '", t.name(), "': 'data' is missing (and no binary_data_size)"));
      OSPREY_RETURN_IF_ERROR(DecodeJsonData(data->value, &t, expected, json.size()));
    }
  }
  if (binary_offset != binary.size())
    return absl::InvalidArgumentError(StrCat("binary_data_size of the inputs add up to ",
                                             binary_offset, " bytes, but the body carries ",
                                             binary.size(), " bytes after the JSON header"));

  auto outputs = doc.FindMember("outputs");
  if (outputs != doc.MemberEnd()) {
    if (!outputs->value.IsArray()) return absl::InvalidArgumentError("'outputs' must be an array");
    for (const Value& o : outputs->value.GetArray()) {
      if (!o.IsObject()) return absl::InvalidArgumentError("'outputs' entries must be objects");
      auto name = o.FindMember("name");
      if (name == o.MemberEnd() || !name->value.IsString())
        return absl::InvalidArgumentError("'outputs' entry: 'name' is missing or not a string");
      RequestedOutput out;
      out.name.assign(name->value.GetString(), name->value.GetStringLength());
      auto op = o.FindMember("parameters");
      if (op != o.MemberEnd())
        OSPREY_RETURN_IF_ERROR(DecodeParameters(
            op->value, StrCat("output '", out.name, "' parameters"), &out.parameters));
      req.outputs.push_back(std::move(out));
    }
  }
  return req;
}

bool WantsBinaryOutput(const InferRequest& request, std::string_view name) {
  for (const RequestedOutput& o : request.outputs) {
    if (o.name == name) {
      std::optional<bool> b = GetBoolParameter(o.parameters, "binary_data");
      if (b.has_value()) return *b;
      break;
    }
  }
  return GetBoolParameter(request.parameters, "binary_data_output").value_or(false);
}

EncodedBody EncodeV2InferResponse(const InferResponse& response, const InferRequest& request) {
  EncodedBody out;
  std::string& body = out.body;
  body.reserve(256);
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("model_name").String(response.model_name);
  if (!response.model_version.empty()) w.Key("model_version").String(response.model_version);
  w.Key("id").String(response.id);
  if (!response.parameters.empty()) {
    w.Key("parameters");
    EncodeJsonParameters(response.parameters, w);
  }
  w.Key("outputs").BeginArray();
  std::vector<const Tensor*> binary_parts;
  for (const Tensor& t : response.outputs) {
    w.BeginObject();
    w.Key("name").String(t.name());
    w.Key("datatype").String(DataTypeName(t.datatype()));
    w.Key("shape");
    WriteShape(t.shape(), w);
    bool binary = WantsBinaryOutput(request, t.name());
    if (binary || !t.parameters().empty()) {
      Parameters params = t.parameters();
      if (binary) params.emplace_back("binary_data_size", static_cast<int64_t>(t.data().size()));
      w.Key("parameters");
      EncodeJsonParameters(params, w);
    }
    if (binary) {
      binary_parts.push_back(&t);
    } else {
      w.Key("data");
      WriteJsonData(t, w);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  if (!binary_parts.empty()) {
    out.json_length = body.size();
    for (const Tensor* t : binary_parts) body.append(t->data());
  }
  return out;
}

std::string EncodeV2ModelMetadata(const ModelMetadata& md) {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("name").String(md.name);
  w.Key("versions").BeginArray();
  for (const auto& v : md.versions) w.String(v);
  w.EndArray();
  w.Key("platform").String(md.platform);
  w.Key("inputs");
  WriteTensorSpecs(md.inputs, w);
  w.Key("outputs");
  WriteTensorSpecs(md.outputs, w);
  if (!md.parameters.empty()) {
    w.Key("parameters");
    EncodeJsonParameters(md.parameters, w);
  }
  w.EndObject();
  return body;
}

std::string EncodeTritonModelConfig(const ModelMetadata& md) {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("name").String(md.name);
  w.Key("platform").String(md.platform);
  w.Key("backend").String(md.platform);
  w.Key("max_batch_size").Int(0);
  w.Key("input");
  WriteTensorSpecs(md.inputs, w, SpecStyle::kTritonConfig);
  w.Key("output");
  WriteTensorSpecs(md.outputs, w, SpecStyle::kTritonConfig);
  w.EndObject();
  return body;
}

std::string EncodeV2ServerMetadata(std::string_view name, std::string_view version,
                                   const std::vector<std::string>& extensions) {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("name").String(name);
  w.Key("version").String(version);
  w.Key("extensions").BeginArray();
  for (const auto& e : extensions) w.String(e);
  w.EndArray();
  w.EndObject();
  return body;
}

std::string EncodeV2RepositoryIndex(const std::vector<RepositoryEntry>& entries) {
  std::string body;
  JsonWriter w(&body);
  w.BeginArray();
  for (const auto& e : entries) {
    w.BeginObject();
    w.Key("name").String(e.name);
    if (!e.version.empty()) w.Key("version").String(e.version);
    w.Key("state").String(e.state);
    w.Key("reason").String(e.reason);
    w.EndObject();
  }
  w.EndArray();
  return body;
}

absl::StatusOr<bool> DecodeV2RepositoryIndexRequest(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return false;
  RequestDocument request_doc;
  rapidjson::Document& doc = *request_doc;
  OSPREY_RETURN_IF_ERROR(ParseJson(body, &doc));
  if (!doc.IsObject()) return absl::InvalidArgumentError("index request must be a JSON object");
  auto ready = doc.FindMember("ready");
  if (ready == doc.MemberEnd()) return false;
  if (!ready->value.IsBool()) return absl::InvalidArgumentError("'ready' must be a boolean");
  return ready->value.GetBool();
}

}  // namespace osprey
