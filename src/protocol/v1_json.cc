#include "protocol/v1_json.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "common/strings.h"
#include "protocol/json_util.h"
#include "protocol/json_writer.h"

namespace osprey {
namespace {

using rapidjson::Value;

absl::Status AppendLeaves(const Value& v, size_t row, std::vector<double>* out, int depth = 0) {
  if (v.IsArray()) {
    if (depth >= kMaxJsonNesting)
      return absl::InvalidArgumentError(
          StrCat("instance ", row, " is nested deeper than ", kMaxJsonNesting, " levels"));
    for (const Value& e : v.GetArray())
      OSPREY_RETURN_IF_ERROR(AppendLeaves(e, row, out, depth + 1));
    return absl::OkStatus();
  }
  if (v.IsNumber())
    out->push_back(v.GetDouble());
  else if (v.IsBool())
    out->push_back(v.GetBool() ? 1.0 : 0.0);
  else if (v.IsNull())
    out->push_back(std::nan(""));
  else
    return absl::InvalidArgumentError(StrCat("instance ", row,
                                             ": values must be numbers, booleans or null; got ",
                                             v.IsString() ? "a string" : "an object"));
  return absl::OkStatus();
}

template <typename T>
void WriteValue(const Tensor& t, int64_t i, JsonWriter& w) {
  T v;
  std::memcpy(&v, t.data().data() + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  if constexpr (std::is_same_v<T, float>)
    w.Float(v);
  else if constexpr (std::is_same_v<T, double>)
    w.Double(v);
  else if constexpr (std::is_signed_v<T>)
    w.Int(v);
  else
    w.Uint(v);
}

void WriteElement(const Tensor& t, int64_t i, const std::vector<std::string_view>& strings,
                  JsonWriter& w) {
  switch (t.datatype()) {
    case DataType::kBool:
      w.Bool(t.data()[static_cast<size_t>(i)] != 0);
      break;
    case DataType::kFp32:
      WriteValue<float>(t, i, w);
      break;
    case DataType::kFp64:
      WriteValue<double>(t, i, w);
      break;
    case DataType::kInt8:
      WriteValue<int8_t>(t, i, w);
      break;
    case DataType::kInt16:
      WriteValue<int16_t>(t, i, w);
      break;
    case DataType::kInt32:
      WriteValue<int32_t>(t, i, w);
      break;
    case DataType::kInt64:
      WriteValue<int64_t>(t, i, w);
      break;
    case DataType::kUint8:
      WriteValue<uint8_t>(t, i, w);
      break;
    case DataType::kUint16:
      WriteValue<uint16_t>(t, i, w);
      break;
    case DataType::kUint32:
      WriteValue<uint32_t>(t, i, w);
      break;
    case DataType::kUint64:
      WriteValue<uint64_t>(t, i, w);
      break;
    case DataType::kBytes:
      w.String(strings[static_cast<size_t>(i)]);
      break;
    default:
      w.Double(NumericElementAsDouble(t, i));
  }
}

// Writes elements [begin, begin + prod(dims)) nested by dims.
void WriteNested(const Tensor& t, const std::vector<std::string_view>& strings, const int64_t* dims,
                 size_t rank, int64_t& index, JsonWriter& w) {
  if (rank == 0) {
    WriteElement(t, index++, strings, w);
    return;
  }
  w.BeginArray();
  for (int64_t i = 0; i < dims[0]; ++i) WriteNested(t, strings, dims + 1, rank - 1, index, w);
  w.EndArray();
}

}  // namespace

absl::StatusOr<InferRequest> DecodeV1PredictRequest(std::string_view body,
                                                    const ModelMetadata& md) {
  RequestDocument request_doc;
  rapidjson::Document& doc = *request_doc;
  OSPREY_RETURN_IF_ERROR(ParseJson(body, &doc));
  if (!doc.IsObject()) return absl::InvalidArgumentError("request body must be a JSON object");
  auto rows = doc.FindMember("instances");
  if (rows == doc.MemberEnd()) rows = doc.FindMember("inputs");
  if (rows == doc.MemberEnd())
    return absl::InvalidArgumentError("expected 'instances' (or 'inputs') in the request body");
  if (!rows->value.IsArray())
    return absl::InvalidArgumentError(
        StrCat("'", rows->name.GetString(), "' must be an array of instances"));
  if (md.inputs.size() != 1)
    return absl::InvalidArgumentError(StrCat("model '", md.name, "' has ", md.inputs.size(),
                                             " inputs; V1 predict needs exactly one"));
  const TensorSpec& spec = md.inputs[0];
  // Features per row the model expects, when the metadata fixes it.
  int64_t want = spec.shape.size() == 2 ? spec.shape[1] : -1;

  std::vector<double> values;
  size_t n = rows->value.Size();
  int64_t width = -1;
  for (size_t r = 0; r < n; ++r) {
    const Value& row = rows->value[static_cast<rapidjson::SizeType>(r)];
    size_t before = values.size();
    if (row.IsObject()) {
      if (md.feature_names.empty())
        return absl::InvalidArgumentError(
            StrCat("instance ", r, " is an object, but model '", md.name,
                   "' has no feature names; send each instance as a list of values"));
      values.resize(before + md.feature_names.size(), std::nan(""));
      for (const auto& m : row.GetObject()) {
        std::string_view key(m.name.GetString(), m.name.GetStringLength());
        size_t col = 0;
        while (col < md.feature_names.size() && md.feature_names[col] != key) ++col;
        if (col == md.feature_names.size())
          return absl::InvalidArgumentError(
              StrCat("instance ", r, ": unknown feature '", key, "' for model '", md.name, "'"));
        const Value& v = m.value;
        if (v.IsNumber())
          values[before + col] = v.GetDouble();
        else if (v.IsBool())
          values[before + col] = v.GetBool() ? 1.0 : 0.0;
        else if (!v.IsNull())
          return absl::InvalidArgumentError(
              StrCat("instance ", r, ": feature '", key, "' must be a number, boolean or null"));
      }
    } else {
      OSPREY_RETURN_IF_ERROR(AppendLeaves(row, r, &values));
    }
    int64_t got = static_cast<int64_t>(values.size() - before);
    if (width < 0) width = got;
    if (want >= 0 && got != want)
      return absl::InvalidArgumentError(StrCat("instance ", r, " has ", got, " values; model '",
                                               md.name, "' input '", spec.name, "' expects ",
                                               want));
    if (got != width)
      return absl::InvalidArgumentError(
          StrCat("instance ", r, " has ", got, " values, but instance 0 has ", width));
  }

  InferRequest req;
  req.model_name = md.name;
  DataType type = spec.datatype == DataType::kFp64 ? DataType::kFp64 : DataType::kFp32;
  // No instances: a batch of zero rows of the model's width.
  if (width < 0) width = want >= 0 ? want : 0;
  Tensor t(spec.name, type, {static_cast<int64_t>(n), width});
  if (spec.shape.size() == 1) *t.mutable_shape() = {static_cast<int64_t>(values.size())};
  std::string* bytes = t.mutable_owned_data();
  bytes->resize(values.size() * ElementSize(type));
  for (size_t i = 0; i < values.size(); ++i) {
    if (type == DataType::kFp32) {
      float f = static_cast<float>(values[i]);
      std::memcpy(bytes->data() + 4 * i, &f, 4);
    } else {
      std::memcpy(bytes->data() + 8 * i, &values[i], 8);
    }
  }
  req.inputs.push_back(std::move(t));
  return req;
}

std::string EncodeV1PredictResponse(const InferResponse& response) {
  std::string body;
  body.reserve(128);
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("predictions").BeginArray();
  if (!response.outputs.empty()) {
    const Tensor& t = response.outputs[0];
    std::vector<std::string_view> strings;
    if (t.datatype() == DataType::kBytes) {
      BytesReader reader(t.data());
      std::string_view e;
      while (reader.Next(&e)) strings.push_back(e);
    }
    const Shape& shape = t.shape();
    int64_t index = 0;
    if (shape.empty()) {
      WriteElement(t, index, strings, w);
    } else {
      for (int64_t r = 0; r < shape[0]; ++r)
        WriteNested(t, strings, shape.data() + 1, shape.size() - 1, index, w);
    }
  }
  w.EndArray();
  w.EndObject();
  return body;
}

}  // namespace osprey
