#include "protocol/v2_grpc.h"

#include <cstring>
#include <limits>

namespace osprey {
namespace {

using inference::InferTensorContents;

template <typename T>
void AppendRaw(std::string* out, T value) {
  char buf[sizeof(T)];
  std::memcpy(buf, &value, sizeof(T));
  out->append(buf, sizeof(T));
}

// Names of the typed fields that hold elements, for error messages.
std::string FilledFields(const InferTensorContents& c) {
  std::string out;
  auto add = [&](int n, const char* name) {
    if (n > 0) StrAppend(&out, out.empty() ? "" : ", ", name);
  };
  add(c.bool_contents_size(), "bool_contents");
  add(c.int_contents_size(), "int_contents");
  add(c.int64_contents_size(), "int64_contents");
  add(c.uint_contents_size(), "uint_contents");
  add(c.uint64_contents_size(), "uint64_contents");
  add(c.fp32_contents_size(), "fp32_contents");
  add(c.fp64_contents_size(), "fp64_contents");
  add(c.bytes_contents_size(), "bytes_contents");
  return out;
}

int TotalElements(const InferTensorContents& c) {
  return c.bool_contents_size() + c.int_contents_size() + c.int64_contents_size() +
         c.uint_contents_size() + c.uint64_contents_size() + c.fp32_contents_size() +
         c.fp64_contents_size() + c.bytes_contents_size();
}

const char* ContentsFieldFor(DataType type) {
  switch (type) {
    case DataType::kBool:
      return "bool_contents";
    case DataType::kInt8:
    case DataType::kInt16:
    case DataType::kInt32:
      return "int_contents";
    case DataType::kInt64:
      return "int64_contents";
    case DataType::kUint8:
    case DataType::kUint16:
    case DataType::kUint32:
      return "uint_contents";
    case DataType::kUint64:
      return "uint64_contents";
    case DataType::kFp32:
      return "fp32_contents";
    case DataType::kFp64:
      return "fp64_contents";
    case DataType::kBytes:
      return "bytes_contents";
    default:
      return nullptr;
  }
}

template <typename T, typename Field>
absl::Status PackNarrow(const Field& field, const Tensor& t, std::string* out) {
  out->reserve(static_cast<size_t>(field.size()) * sizeof(T));
  for (int i = 0; i < field.size(); ++i) {
    auto v = field.Get(i);
    if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max())
      return absl::InvalidArgumentError(StrCat("input '", t.name(), "': element ", i, " = ",
                                               static_cast<int64_t>(v), " is out of range for ",
                                               DataTypeName(t.datatype())));
    AppendRaw<T>(out, static_cast<T>(v));
  }
  return absl::OkStatus();
}

template <typename T, typename Field>
void PackSame(const Field& field, std::string* out) {
  out->resize(static_cast<size_t>(field.size()) * sizeof(T));
  if (field.size() > 0) std::memcpy(out->data(), field.data(), out->size());
}

absl::Status PackTyped(const InferTensorContents& c, Tensor* t) {
  const char* want = ContentsFieldFor(t->datatype());
  if (want == nullptr)
    return absl::InvalidArgumentError(StrCat("input '", t->name(),
                                             "': ", DataTypeName(t->datatype()),
                                             " has no typed contents field; send it in "
                                             "raw_input_contents"));
  std::string filled = FilledFields(c);
  if (!filled.empty() && filled != want)
    return absl::InvalidArgumentError(StrCat("input '", t->name(), "' of datatype ",
                                             DataTypeName(t->datatype()), " expects ", want,
                                             ", got ", filled));
  std::string* out = t->mutable_owned_data();
  switch (t->datatype()) {
    case DataType::kBool:
      out->reserve(static_cast<size_t>(c.bool_contents_size()));
      for (bool b : c.bool_contents()) out->push_back(b ? 1 : 0);
      return absl::OkStatus();
    case DataType::kInt8:
      return PackNarrow<int8_t>(c.int_contents(), *t, out);
    case DataType::kInt16:
      return PackNarrow<int16_t>(c.int_contents(), *t, out);
    case DataType::kInt32:
      PackSame<int32_t>(c.int_contents(), out);
      return absl::OkStatus();
    case DataType::kInt64:
      PackSame<int64_t>(c.int64_contents(), out);
      return absl::OkStatus();
    case DataType::kUint8:
      return PackNarrow<uint8_t>(c.uint_contents(), *t, out);
    case DataType::kUint16:
      return PackNarrow<uint16_t>(c.uint_contents(), *t, out);
    case DataType::kUint32:
      PackSame<uint32_t>(c.uint_contents(), out);
      return absl::OkStatus();
    case DataType::kUint64:
      PackSame<uint64_t>(c.uint64_contents(), out);
      return absl::OkStatus();
    case DataType::kFp32:
      PackSame<float>(c.fp32_contents(), out);
      return absl::OkStatus();
    case DataType::kFp64:
      PackSame<double>(c.fp64_contents(), out);
      return absl::OkStatus();
    case DataType::kBytes:
      for (const std::string& s : c.bytes_contents()) AppendBytesElement(s, out);
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError("unsupported datatype");
  }
}

template <typename T>
T LoadAt(const char* p, int64_t i) {
  T v;
  std::memcpy(&v, p + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return v;
}

template <typename T, typename Field>
void UnpackTo(const Tensor& t, Field* field) {
  int64_t n = t.element_count();
  field->Reserve(static_cast<int>(n));
  const char* p = t.data().data();
  for (int64_t i = 0; i < n; ++i) field->Add(LoadAt<T>(p, i));
}

void FillTyped(const Tensor& t, InferTensorContents* c) {
  switch (t.datatype()) {
    case DataType::kBool: {
      std::string_view d = t.data();
      for (char b : d) c->add_bool_contents(b != 0);
      break;
    }
    case DataType::kInt8:
      UnpackTo<int8_t>(t, c->mutable_int_contents());
      break;
    case DataType::kInt16:
      UnpackTo<int16_t>(t, c->mutable_int_contents());
      break;
    case DataType::kInt32:
      UnpackTo<int32_t>(t, c->mutable_int_contents());
      break;
    case DataType::kInt64:
      UnpackTo<int64_t>(t, c->mutable_int64_contents());
      break;
    case DataType::kUint8:
      UnpackTo<uint8_t>(t, c->mutable_uint_contents());
      break;
    case DataType::kUint16:
      UnpackTo<uint16_t>(t, c->mutable_uint_contents());
      break;
    case DataType::kUint32:
      UnpackTo<uint32_t>(t, c->mutable_uint_contents());
      break;
    case DataType::kUint64:
      UnpackTo<uint64_t>(t, c->mutable_uint64_contents());
      break;
    case DataType::kFp32:
      UnpackTo<float>(t, c->mutable_fp32_contents());
      break;
    case DataType::kFp64:
      UnpackTo<double>(t, c->mutable_fp64_contents());
      break;
    case DataType::kBytes: {
      BytesReader reader(t.data());
      std::string_view e;
      while (reader.Next(&e)) c->add_bytes_contents(std::string(e));
      break;
    }
    default:
      break;
  }
}

template <typename Proto>
absl::Status DecodeHeader(const Proto& in, Tensor* t) {
  t->set_name(in.name());
  DataType type = ParseDataType(in.datatype());
  if (type == DataType::kInvalid)
    return absl::InvalidArgumentError(
        StrCat("input '", in.name(), "': unknown datatype '", in.datatype(), "'"));
  t->set_datatype(type);
  Shape* shape = t->mutable_shape();
  shape->assign(in.shape().begin(), in.shape().end());
  for (int64_t d : *shape)
    if (d < 0)
      return absl::InvalidArgumentError(StrCat("input '", in.name(), "': shape ",
                                               ShapeToString(*shape),
                                               " must hold non-negative integers"));
  return DecodeGrpcParameters(in.parameters(), t->mutable_parameters());
}

}  // namespace

absl::Status DecodeGrpcParameters(
    const google::protobuf::Map<std::string, inference::InferParameter>& in, Parameters* out) {
  for (const auto& [key, p] : in) {
    switch (p.parameter_choice_case()) {
      case inference::InferParameter::kBoolParam:
        out->emplace_back(key, p.bool_param());
        break;
      case inference::InferParameter::kInt64Param:
        out->emplace_back(key, p.int64_param());
        break;
      case inference::InferParameter::kStringParam:
        out->emplace_back(key, p.string_param());
        break;
      case inference::InferParameter::kDoubleParam:
        out->emplace_back(key, p.double_param());
        break;
      case inference::InferParameter::kUint64Param:
        if (p.uint64_param() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          out->emplace_back(key, static_cast<int64_t>(p.uint64_param()));
        else
          out->emplace_back(key, static_cast<double>(p.uint64_param()));
        break;
      default:
        return absl::InvalidArgumentError(StrCat("parameter '", key, "' has no value"));
    }
  }
  return absl::OkStatus();
}

void EncodeGrpcParameters(const Parameters& in,
                          google::protobuf::Map<std::string, inference::InferParameter>* out) {
  for (const auto& [key, value] : in) {
    inference::InferParameter& p = (*out)[key];
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, bool>)
            p.set_bool_param(x);
          else if constexpr (std::is_same_v<T, int64_t>)
            p.set_int64_param(x);
          else if constexpr (std::is_same_v<T, double>)
            p.set_double_param(x);
          else
            p.set_string_param(x);
        },
        value);
  }
}

absl::StatusOr<InferRequest> DecodeGrpcInferRequest(const inference::ModelInferRequest& m) {
  InferRequest req;
  req.model_name = m.model_name();
  req.model_version = m.model_version();
  req.id = m.id();
  OSPREY_RETURN_IF_ERROR(DecodeGrpcParameters(m.parameters(), &req.parameters));
  if (m.inputs_size() == 0) return absl::InvalidArgumentError("'inputs' is empty");
  bool raw = m.raw_input_contents_size() > 0;
  if (raw && m.raw_input_contents_size() != m.inputs_size())
    return absl::InvalidArgumentError(
        StrCat("raw_input_contents has ", m.raw_input_contents_size(), " entries for ",
               m.inputs_size(), " inputs; when used it must carry every input, in order"));
  req.inputs.resize(static_cast<size_t>(m.inputs_size()));
  for (int i = 0; i < m.inputs_size(); ++i) {
    const auto& in = m.inputs(i);
    Tensor& t = req.inputs[static_cast<size_t>(i)];
    OSPREY_RETURN_IF_ERROR(DecodeHeader(in, &t));
    int filled = in.has_contents() ? TotalElements(in.contents()) : 0;
    if (raw) {
      if (filled > 0)
        return absl::InvalidArgumentError(
            StrCat("input '", in.name(),
                   "' has typed contents while the request uses raw_input_contents; "
                   "use one or the other for all inputs"));
      t.BorrowData(m.raw_input_contents(i));
    } else {
      OSPREY_ASSIGN_OR_RETURN(int64_t expected, ElementCount(t.shape()));
      if (filled != expected) {
        if (filled == 0 && ContentsFieldFor(t.datatype()) == nullptr)
          return absl::InvalidArgumentError(
              StrCat("input '", in.name(), "': ", DataTypeName(t.datatype()),
                     " has no typed contents field; send it in raw_input_contents"));
        return absl::InvalidArgumentError(StrCat("input '", in.name(), "': shape ",
                                                 ShapeToString(t.shape()), " expects ", expected,
                                                 " elements, but contents hold ", filled));
      }
      OSPREY_RETURN_IF_ERROR(PackTyped(in.contents(), &t));
    }
    OSPREY_RETURN_IF_ERROR(t.Validate());
  }
  for (const auto& o : m.outputs()) {
    RequestedOutput out;
    out.name = o.name();
    OSPREY_RETURN_IF_ERROR(DecodeGrpcParameters(o.parameters(), &out.parameters));
    req.outputs.push_back(std::move(out));
  }
  return req;
}

void EncodeGrpcInferResponse(const InferResponse& response, bool raw,
                             inference::ModelInferResponse* out) {
  out->set_model_name(response.model_name);
  out->set_model_version(response.model_version);
  out->set_id(response.id);
  EncodeGrpcParameters(response.parameters, out->mutable_parameters());
  for (const Tensor& t : response.outputs)
    if (ContentsFieldFor(t.datatype()) == nullptr) raw = true;
  for (const Tensor& t : response.outputs) {
    auto* o = out->add_outputs();
    o->set_name(t.name());
    o->set_datatype(std::string(DataTypeName(t.datatype())));
    for (int64_t d : t.shape()) o->add_shape(d);
    EncodeGrpcParameters(t.parameters(), o->mutable_parameters());
    if (raw)
      out->add_raw_output_contents(std::string(t.data()));
    else
      FillTyped(t, o->mutable_contents());
  }
}

}  // namespace osprey
