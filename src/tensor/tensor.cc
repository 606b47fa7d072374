#include "tensor/tensor.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "common/strings.h"

namespace osprey {
namespace {

struct TypeInfo {
  DataType type;
  std::string_view name;
  size_t size;
};

constexpr TypeInfo kTypes[] = {
    {DataType::kBool, "BOOL", 1},     {DataType::kUint8, "UINT8", 1},
    {DataType::kUint16, "UINT16", 2}, {DataType::kUint32, "UINT32", 4},
    {DataType::kUint64, "UINT64", 8}, {DataType::kInt8, "INT8", 1},
    {DataType::kInt16, "INT16", 2},   {DataType::kInt32, "INT32", 4},
    {DataType::kInt64, "INT64", 8},   {DataType::kFp16, "FP16", 2},
    {DataType::kFp32, "FP32", 4},     {DataType::kFp64, "FP64", 8},
    {DataType::kBf16, "BF16", 2},     {DataType::kBytes, "BYTES", 0},
};

template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

size_t ElementSize(DataType type) {
  for (const auto& t : kTypes)
    if (t.type == type) return t.size;
  return 0;
}

std::string_view DataTypeName(DataType type) {
  for (const auto& t : kTypes)
    if (t.type == type) return t.name;
  return "INVALID";
}

DataType ParseDataType(std::string_view name) {
  for (const auto& t : kTypes)
    if (t.name == name) return t.type;
  return DataType::kInvalid;
}

bool IsIntegral(DataType type) {
  switch (type) {
    case DataType::kUint8:
    case DataType::kUint16:
    case DataType::kUint32:
    case DataType::kUint64:
    case DataType::kInt8:
    case DataType::kInt16:
    case DataType::kInt32:
    case DataType::kInt64:
      return true;
    default:
      return false;
  }
}

bool IsFloating(DataType type) {
  return type == DataType::kFp16 || type == DataType::kFp32 || type == DataType::kFp64 ||
         type == DataType::kBf16;
}

std::string ShapeToString(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ",";
    StrAppend(&out, shape[i]);
  }
  out += "]";
  return out;
}

absl::StatusOr<int64_t> ElementCount(const Shape& shape) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0)
      return absl::InvalidArgumentError(
          StrCat("negative dimension in shape ", ShapeToString(shape)));
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / d)
      return absl::InvalidArgumentError(
          StrCat("shape ", ShapeToString(shape), " has too many elements"));
    count *= d;
  }
  return count;
}

bool ShapeMatches(const Shape& pattern, const Shape& actual) {
  if (pattern.size() != actual.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i)
    if (pattern[i] != -1 && pattern[i] != actual[i]) return false;
  return true;
}

const ParameterValue* FindParameter(const Parameters& params, std::string_view key) {
  for (const auto& [k, v] : params)
    if (k == key) return &v;
  return nullptr;
}

std::optional<bool> GetBoolParameter(const Parameters& params, std::string_view key) {
  const ParameterValue* v = FindParameter(params, key);
  if (v == nullptr || !std::holds_alternative<bool>(*v)) return std::nullopt;
  return std::get<bool>(*v);
}

std::optional<int64_t> GetIntParameter(const Parameters& params, std::string_view key) {
  const ParameterValue* v = FindParameter(params, key);
  if (v == nullptr || !std::holds_alternative<int64_t>(*v)) return std::nullopt;
  return std::get<int64_t>(*v);
}

int64_t Tensor::element_count() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

absl::Status Tensor::Validate() const {
  OSPREY_ASSIGN_OR_RETURN(int64_t count, ElementCount(shape_));
  std::string_view bytes = data();
  if (datatype_ == DataType::kBytes) {
    BytesReader reader(bytes);
    std::string_view element;
    int64_t seen = 0;
    size_t consumed = 0;
    while (consumed < bytes.size()) {
      if (bytes.size() - consumed < 4)
        return absl::InvalidArgumentError(StrCat("input '", name_, "': BYTES element ", seen,
                                                 " has a truncated 4-byte length prefix"));
      uint32_t len = Load<uint32_t>(bytes.data() + consumed);
      if (bytes.size() - consumed - 4 < len)
        return absl::InvalidArgumentError(StrCat("input '", name_, "': BYTES element ", seen,
                                                 " declares ", len, " bytes but only ",
                                                 bytes.size() - consumed - 4, " remain"));
      consumed += 4 + len;
      ++seen;
    }
    if (seen != count)
      return absl::InvalidArgumentError(StrCat("tensor '", name_, "': shape ",
                                               ShapeToString(shape_), " expects ", count,
                                               " BYTES elements, got ", seen));
    return absl::OkStatus();
  }
  size_t size = ElementSize(datatype_);
  if (size == 0)
    return absl::InvalidArgumentError(StrCat("tensor '", name_, "': invalid datatype"));
  if (static_cast<uint64_t>(count) > std::numeric_limits<uint64_t>::max() / size ||
      bytes.size() != static_cast<uint64_t>(count) * size)
    return absl::InvalidArgumentError(StrCat("tensor '", name_, "': shape ", ShapeToString(shape_),
                                             " of ", DataTypeName(datatype_), " needs ", count,
                                             " elements (", static_cast<uint64_t>(count) * size,
                                             " bytes), got ", bytes.size(), " bytes"));
  return absl::OkStatus();
}

bool BytesReader::Next(std::string_view* element) {
  if (raw_.size() < 4) return false;
  uint32_t len = Load<uint32_t>(raw_.data());
  if (raw_.size() - 4 < len) return false;
  *element = raw_.substr(4, len);
  raw_.remove_prefix(4 + len);
  return true;
}

void AppendBytesElement(std::string_view element, std::string* raw) {
  uint32_t len = static_cast<uint32_t>(element.size());
  char prefix[4];
  std::memcpy(prefix, &len, 4);
  raw->append(prefix, 4);
  raw->append(element);
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t FloatToHalf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  uint16_t sign = (bits >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((bits >> 23) & 0xff) - 127 + 15;
  uint32_t mant = bits & 0x7fffffu;
  if (((bits >> 23) & 0xff) == 0xff) return sign | 0x7c00u | (mant ? 0x200u : 0);
  if (exp >= 31) return sign | 0x7c00u;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return sign | static_cast<uint16_t>(half);
  }
  uint16_t half = sign | static_cast<uint16_t>(exp << 10) | static_cast<uint16_t>(mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;  // may carry into exponent: fine
  return half;
}

float Bfloat16ToFloat(uint16_t value) {
  uint32_t bits = static_cast<uint32_t>(value) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t FloatToBfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

double NumericElementAsDouble(const Tensor& t, int64_t i) {
  const char* p = t.data().data();
  switch (t.datatype()) {
    case DataType::kBool:
      return p[i] != 0 ? 1.0 : 0.0;
    case DataType::kUint8:
      return Load<uint8_t>(p + i);
    case DataType::kUint16:
      return Load<uint16_t>(p + 2 * i);
    case DataType::kUint32:
      return Load<uint32_t>(p + 4 * i);
    case DataType::kUint64:
      return static_cast<double>(Load<uint64_t>(p + 8 * i));
    case DataType::kInt8:
      return Load<int8_t>(p + i);
    case DataType::kInt16:
      return Load<int16_t>(p + 2 * i);
    case DataType::kInt32:
      return Load<int32_t>(p + 4 * i);
    case DataType::kInt64:
      return static_cast<double>(Load<int64_t>(p + 8 * i));
    case DataType::kFp16:
      return HalfToFloat(Load<uint16_t>(p + 2 * i));
    case DataType::kBf16:
      return Bfloat16ToFloat(Load<uint16_t>(p + 2 * i));
    case DataType::kFp32:
      return Load<float>(p + 4 * i);
    case DataType::kFp64:
      return Load<double>(p + 8 * i);
    default:
      return std::nan("");
  }
}

namespace {

// Numeric or BOOL tensor -> T values; memcpy when the datatype is T's own.
template <typename T>
absl::Status ConvertNumeric(const Tensor& tensor, DataType own, std::vector<T>* out) {
  if (tensor.datatype() == DataType::kBytes || tensor.datatype() == DataType::kInvalid)
    return absl::InvalidArgumentError(StrCat("input '", tensor.name(), "' has datatype ",
                                             DataTypeName(tensor.datatype()),
                                             "; this model takes numeric inputs"));
  int64_t n = tensor.element_count();
  out->resize(static_cast<size_t>(n));
  if (tensor.datatype() == own) {
    if (n > 0) std::memcpy(out->data(), tensor.data().data(), static_cast<size_t>(n) * sizeof(T));
    return absl::OkStatus();
  }
  if (tensor.datatype() == DataType::kFp32) {  // the common widening, without a switch per value
    const char* src = tensor.data().data();
    for (int64_t i = 0; i < n; ++i) {
      float v;
      std::memcpy(&v, src + i * 4, 4);
      (*out)[static_cast<size_t>(i)] = static_cast<T>(v);
    }
    return absl::OkStatus();
  }
  for (int64_t i = 0; i < n; ++i)
    (*out)[static_cast<size_t>(i)] = static_cast<T>(NumericElementAsDouble(tensor, i));
  return absl::OkStatus();
}

}  // namespace

absl::Status ConvertToFloat32(const Tensor& tensor, std::vector<float>* out) {
  return ConvertNumeric(tensor, DataType::kFp32, out);
}

absl::Status ConvertToFloat64(const Tensor& tensor, std::vector<double>* out) {
  return ConvertNumeric(tensor, DataType::kFp64, out);
}

}  // namespace osprey
