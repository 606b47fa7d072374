#include "protocol/v1_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/json_writer.h"
#include "common/strings.h"
#include "protocol/json_util.h"

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

// One row of the request after pandas-shaped instances are unfolded: a list
// of values, or the (column name, value) pairs of a record (a null value
// pointer: a cell its column leaves out, i.e. missing).
struct Row {
  const Value* list = nullptr;
  std::vector<std::pair<std::string_view, const Value*>> fields;
  size_t instance = 0;  // which instance it came from, for errors
  size_t within = 0;    // its row within that instance
  bool one_of_many = false;
};

std::string Where(const Row& row) {
  return row.one_of_many ? StrCat("instance ", row.instance, " row ", row.within)
                         : StrCat("instance ", row.instance);
}

std::string_view Key(const Value& name) { return {name.GetString(), name.GetStringLength()}; }

// KServe's V1 instances, as its servers hand them to pandas: each instance is
// a list of values; a list of records ([{column: value}, ...]); a column
// dictionary, {column: [values]} or pandas' to_dict() shape {column: {index:
// value}} (rows in the order their index first appears); or, beyond KServe,
// one record {column: scalar}.
absl::Status UnfoldInstances(const Value& instances, std::vector<Row>* rows) {
  rows->reserve(instances.Size());
  for (size_t i = 0; i < instances.Size(); ++i) {
    const Value& inst = instances[static_cast<rapidjson::SizeType>(i)];
    if (inst.IsArray() && !inst.Empty() && inst[0].IsObject()) {
      for (size_t j = 0; j < inst.Size(); ++j) {
        const Value& rec = inst[static_cast<rapidjson::SizeType>(j)];
        if (!rec.IsObject())
          return absl::InvalidArgumentError(StrCat(
              "instance ", i, " is a list of records, but its element ", j, " is not an object"));
        Row& row = rows->emplace_back(Row{nullptr, {}, i, j, true});
        for (const auto& m : rec.GetObject()) row.fields.emplace_back(Key(m.name), &m.value);
      }
    } else if (inst.IsArray()) {
      rows->push_back(Row{&inst, {}, i, 0, false});
    } else if (inst.IsObject() && inst.MemberCount() > 0 && inst.MemberBegin()->value.IsArray()) {
      // {column: [values]}: every column as long as the first.
      const size_t n = inst.MemberBegin()->value.Size();
      for (const auto& m : inst.GetObject())
        if (!m.value.IsArray() || m.value.Size() != n)
          return absl::InvalidArgumentError(
              StrCat("instance ", i, " is a column dictionary, but column '", Key(m.name), "' ",
                     m.value.IsArray() ? StrCat("has ", m.value.Size(), " values, not ", n)
                                       : std::string("is not a list")));
      const size_t first = rows->size();
      for (size_t j = 0; j < n; ++j) rows->push_back(Row{nullptr, {}, i, j, true});
      for (const auto& m : inst.GetObject())
        for (size_t j = 0; j < n; ++j)
          (*rows)[first + j].fields.emplace_back(Key(m.name),
                                                 &m.value[static_cast<rapidjson::SizeType>(j)]);
    } else if (inst.IsObject() && inst.MemberCount() > 0 && inst.MemberBegin()->value.IsObject()) {
      // {column: {index: value}}: one row per index, cells a column lacks missing.
      const size_t first = rows->size();
      std::vector<std::string_view> index;
      for (const auto& m : inst.GetObject()) {
        if (!m.value.IsObject())
          return absl::InvalidArgumentError(StrCat("instance ", i,
                                                   " is an index-keyed column dictionary, but "
                                                   "column '",
                                                   Key(m.name), "' is not an object"));
        for (const auto& cell : m.value.GetObject()) {
          size_t j = 0;
          while (j < index.size() && index[j] != Key(cell.name)) ++j;
          if (j == index.size()) {
            index.push_back(Key(cell.name));
            rows->push_back(Row{nullptr, {}, i, j, true});
          }
          (*rows)[first + j].fields.emplace_back(Key(m.name), &cell.value);
        }
      }
    } else if (inst.IsObject()) {
      Row& row = rows->emplace_back(Row{nullptr, {}, i, 0, false});
      for (const auto& m : inst.GetObject()) row.fields.emplace_back(Key(m.name), &m.value);
    } else {
      rows->push_back(Row{&inst, {}, i, 0, false});  // a scalar: one value
    }
  }
  return absl::OkStatus();
}

// The columns records are placed in: the model's feature names, else the
// names in the order they first appear (as pandas orders a frame's columns).
class Columns {
 public:
  Columns(const ModelMetadata& md, const std::vector<Row>& rows) : md_(md) {
    if (!md.feature_names.empty()) return;
    for (const Row& r : rows)
      for (const auto& f : r.fields)
        if (std::find(seen_.begin(), seen_.end(), f.first) == seen_.end()) seen_.push_back(f.first);
  }
  size_t size() const {
    return md_.feature_names.empty() ? seen_.size() : md_.feature_names.size();
  }
  absl::StatusOr<size_t> Find(std::string_view key, const Row& row) const {
    if (md_.feature_names.empty())
      return static_cast<size_t>(std::find(seen_.begin(), seen_.end(), key) - seen_.begin());
    size_t col = 0;
    while (col < md_.feature_names.size() && md_.feature_names[col] != key) ++col;
    if (col == md_.feature_names.size())
      return absl::InvalidArgumentError(
          StrCat(Where(row), ": unknown feature '", key, "' for model '", md_.name, "'"));
    return col;
  }

 private:
  const ModelMetadata& md_;
  std::vector<std::string_view> seen_;
};

// Rows for a model whose input is BYTES (mixed categorical and numeric
// fields): every value becomes text, numbers in their shortest form, booleans
// as true/false, null (and a field a record leaves out) as "" (missing).
absl::StatusOr<InferRequest> DecodeTextRows(const std::vector<Row>& rows, const ModelMetadata& md,
                                            const TensorSpec& spec) {
  const int64_t want = spec.shape.size() == 2 ? spec.shape[1] : -1;
  std::vector<std::string> cells;
  auto text = [](const Value* v, const Row& r, std::string_view where,
                 std::string* out) -> absl::Status {
    if (v == nullptr || v->IsNull()) {
      out->clear();
    } else if (v->IsString()) {
      out->assign(v->GetString(), v->GetStringLength());
    } else if (v->IsBool()) {
      *out = v->GetBool() ? "true" : "false";
    } else if (v->IsNumber()) {
      char buf[32];
      auto res = std::to_chars(buf, buf + sizeof(buf), v->GetDouble());
      out->assign(buf, res.ptr);
    } else {
      return absl::InvalidArgumentError(
          StrCat(Where(r), where, " must be a string, number, boolean or null"));
    }
    return absl::OkStatus();
  };
  const Columns columns(md, rows);
  int64_t width = -1;
  for (const Row& row : rows) {
    const size_t before = cells.size();
    if (row.list == nullptr) {
      cells.resize(before + columns.size());
      for (const auto& [key, v] : row.fields) {
        OSPREY_ASSIGN_OR_RETURN(size_t col, columns.Find(key, row));
        OSPREY_RETURN_IF_ERROR(text(v, row, StrCat(": feature '", key, "'"), &cells[before + col]));
      }
    } else if (!row.list->IsArray()) {
      return absl::InvalidArgumentError(StrCat(Where(row), " must be a list or an object"));
    } else {
      for (const Value& v : row.list->GetArray()) {
        cells.emplace_back();
        OSPREY_RETURN_IF_ERROR(text(&v, row, "", &cells.back()));
      }
    }
    const int64_t got = static_cast<int64_t>(cells.size() - before);
    if (want >= 0 && got != want)
      return absl::InvalidArgumentError(StrCat(Where(row), " has ", got, " values; model '",
                                               md.name, "' input '", spec.name, "' expects ",
                                               want));
    if (width < 0) width = got;
    if (got != width)
      return absl::InvalidArgumentError(
          StrCat(Where(row), " has ", got, " values, but instance 0 has ", width));
  }
  if (width < 0) width = want >= 0 ? want : 0;
  Tensor t(spec.name, DataType::kBytes, {static_cast<int64_t>(rows.size()), width});
  std::string* bytes = t.mutable_owned_data();
  for (const std::string& c : cells) AppendBytesElement(c, bytes);
  InferRequest req;
  req.model_name = md.name;
  req.inputs.push_back(std::move(t));
  return req;
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

  std::vector<Row> unfolded;
  OSPREY_RETURN_IF_ERROR(UnfoldInstances(rows->value, &unfolded));
  if (spec.datatype == DataType::kBytes) return DecodeTextRows(unfolded, md, spec);

  const Columns columns(md, unfolded);
  std::vector<double> values;
  const size_t n = unfolded.size();
  int64_t width = -1;
  for (const Row& row : unfolded) {
    size_t before = values.size();
    if (row.list == nullptr) {
      values.resize(before + columns.size(), std::nan(""));
      for (const auto& [key, v] : row.fields) {
        OSPREY_ASSIGN_OR_RETURN(size_t col, columns.Find(key, row));
        if (v == nullptr || v->IsNull()) continue;
        if (v->IsNumber())
          values[before + col] = v->GetDouble();
        else if (v->IsBool())
          values[before + col] = v->GetBool() ? 1.0 : 0.0;
        else
          return absl::InvalidArgumentError(
              StrCat(Where(row), ": feature '", key, "' must be a number, boolean or null"));
      }
    } else {
      OSPREY_RETURN_IF_ERROR(AppendLeaves(*row.list, row.instance, &values));
    }
    int64_t got = static_cast<int64_t>(values.size() - before);
    if (width < 0) width = got;
    if (want >= 0 && got != want)
      return absl::InvalidArgumentError(StrCat(Where(row), " has ", got, " values; model '",
                                               md.name, "' input '", spec.name, "' expects ",
                                               want));
    if (got != width)
      return absl::InvalidArgumentError(
          StrCat(Where(row), " has ", got, " values, but instance 0 has ", width));
  }

  InferRequest req;
  req.model_name = md.name;
  DataType type = spec.datatype == DataType::kFp64 ? DataType::kFp64 : DataType::kFp32;
  // No instances: a batch of zero rows of the model's width.
  if (width < 0) width = want >= 0 ? want : 0;
  Tensor t(spec.name, type, {static_cast<int64_t>(n), width});
  if (spec.shape.size() == 1) *t.mutable_shape() = {static_cast<int64_t>(values.size())};
  if (spec.shape.size() > 2 && n > 0 && unfolded[0].list != nullptr) {
    // A model of [batch, d1, d2, ...] inputs: each instance keeps its own
    // nesting (an 8x8 image stays [1, 8, 8]) when it holds width values.
    std::vector<int64_t> dims = {static_cast<int64_t>(n)};
    int64_t count = 1;
    for (const Value* v = unfolded[0].list;
         v != nullptr && v->IsArray() && !v->Empty() && count <= width; v = &(*v)[0]) {
      dims.push_back(v->Size());
      count *= v->Size();  // at most width * (body size): no overflow
    }
    if (count == width && dims.size() == spec.shape.size()) *t.mutable_shape() = dims;
  }
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

std::string EncodeV1PredictResponse(const InferResponse& response, bool records) {
  std::string body;
  body.reserve(128);
  JsonWriter w(&body);
  w.BeginObject();
  w.Key("predictions").BeginArray();
  // Each output's BYTES elements, for writing by index.
  std::vector<std::vector<std::string_view>> strings(response.outputs.size());
  for (size_t i = 0; i < response.outputs.size(); ++i) {
    const Tensor& t = response.outputs[i];
    if (t.datatype() != DataType::kBytes) continue;
    BytesReader reader(t.data());
    std::string_view e;
    while (reader.Next(&e)) strings[i].push_back(e);
  }
  if (records) {
    // One object per row: {output name: its value in that row}.
    int64_t rows = response.outputs.empty() || response.outputs[0].shape().empty()
                       ? 0
                       : response.outputs[0].shape()[0];
    for (int64_t r = 0; r < rows; ++r) {
      w.BeginObject();
      for (size_t i = 0; i < response.outputs.size(); ++i) {
        const Tensor& t = response.outputs[i];
        w.Key(t.name());
        const int64_t per_row = t.element_count() / std::max<int64_t>(1, t.shape()[0]);
        int64_t index = r * per_row;
        if (t.shape().size() == 1)
          WriteElement(t, index, strings[i], w);
        else
          WriteNested(t, strings[i], t.shape().data() + 1, t.shape().size() - 1, index, w);
      }
      w.EndObject();
    }
  } else if (!response.outputs.empty()) {
    const Tensor& t = response.outputs[0];
    const Shape& shape = t.shape();
    int64_t index = 0;
    if (shape.empty()) {
      WriteElement(t, index, strings[0], w);
    } else {
      for (int64_t r = 0; r < shape[0]; ++r)
        WriteNested(t, strings[0], shape.data() + 1, shape.size() - 1, index, w);
    }
  }
  w.EndArray();
  w.EndObject();
  return body;
}

absl::StatusOr<std::string> EncodeV1ExplainResponse(const Tensor& t,
                                                    const std::vector<std::string>& feature_names) {
  const Shape& shape = t.shape();
  if ((t.datatype() != DataType::kFp32 && t.datatype() != DataType::kFp64) ||
      (shape.size() != 2 && shape.size() != 3) || shape.back() < 1)
    return absl::InvalidArgumentError(
        StrCat("explanation tensor '", t.name(), "' of datatype ", DataTypeName(t.datatype()),
               " and shape ", ShapeToString(shape),
               "; expected FP32 or FP64 [n, F + 1] or [n, G, F + 1]"));
  const int64_t rows = shape[0];
  const bool grouped = shape.size() == 3;
  const int64_t groups = grouped ? shape[1] : 1;
  const int64_t features = shape.back() - 1;
  std::string body;
  body.reserve(static_cast<size_t>(32 + t.element_count() * 12));
  JsonWriter w(&body);
  const std::vector<std::string_view> no_strings;
  w.BeginObject().Key("explanations").BeginArray();
  int64_t index = 0;
  for (int64_t r = 0; r < rows; ++r) {
    w.BeginObject().Key("contributions");
    if (grouped) w.BeginArray();
    for (int64_t g = 0; g < groups; ++g) {
      w.BeginArray();
      for (int64_t f = 0; f < features; ++f)
        WriteElement(t, index + g * (features + 1) + f, no_strings, w);
      w.EndArray();
    }
    if (grouped) w.EndArray();
    w.Key("bias");
    if (grouped) w.BeginArray();
    for (int64_t g = 0; g < groups; ++g)
      WriteElement(t, index + g * (features + 1) + features, no_strings, w);
    if (grouped) w.EndArray();
    w.EndObject();
    index += groups * (features + 1);
  }
  w.EndArray();
  if (!feature_names.empty()) {
    w.Key("feature_names").BeginArray();
    for (const std::string& n : feature_names) w.String(n);
    w.EndArray();
  }
  w.EndObject();
  return body;
}

}  // namespace osprey
