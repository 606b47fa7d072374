#include "protocol/content_type.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "absl/strings/escaping.h"
#include "common/strings.h"

namespace osprey {
namespace {

std::string_view ContentType(const Parameters& params) {
  const ParameterValue* v = FindParameter(params, "content_type");
  if (v == nullptr || !std::holds_alternative<std::string>(*v)) return {};
  return std::get<std::string>(*v);
}

bool ValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t extra = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c >> 5) == 0x6) {
      extra = 1;
      cp = c & 0x1Fu;
    } else if ((c >> 4) == 0xE) {
      extra = 2;
      cp = c & 0x0Fu;
    } else if ((c >> 3) == 0x1E) {
      extra = 3;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (s.size() - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3Fu);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += extra + 1;
  }
  return true;
}

absl::Status DecodeInput(Tensor* t) {
  const std::string_view type = ContentType(t->parameters());
  if (type != "base64" && type != "str") return absl::OkStatus();
  if (t->datatype() != DataType::kBytes)
    return absl::InvalidArgumentError(StrCat("input '", t->name(), "': content_type '", type,
                                             "' needs datatype BYTES, got ",
                                             DataTypeName(t->datatype())));
  BytesReader reader(t->data());
  std::string_view e;
  int64_t i = 0;
  if (type == "str") {
    for (; reader.Next(&e); ++i)
      if (!ValidUtf8(e))
        return absl::InvalidArgumentError(
            StrCat("input '", t->name(), "' element ", i, ": content_type 'str' needs UTF-8 text"));
    return absl::OkStatus();
  }
  std::string decoded, out;
  for (; reader.Next(&e); ++i) {
    if (!absl::Base64Unescape(absl::string_view(e.data(), e.size()), &decoded))
      return absl::InvalidArgumentError(
          StrCat("input '", t->name(), "' element ", i, ": not Base64 (content_type 'base64')"));
    AppendBytesElement(decoded, &out);
  }
  *t->mutable_owned_data() = std::move(out);
  return absl::OkStatus();
}

// One cell of a column as a number (NaN: missing) or as text.
absl::StatusOr<double> CellNumber(const Tensor& col, int64_t row,
                                  const std::vector<std::string_view>& text,
                                  std::string_view model) {
  if (col.datatype() != DataType::kBytes) return NumericElementAsDouble(col, row);
  std::string_view s = text[static_cast<size_t>(row)];
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (s.empty()) return std::nan("");
  if (s.front() == '+') s.remove_prefix(1);
  double v = 0;
  auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  if (res.ec != std::errc() || res.ptr != s.data() + s.size())
    return absl::InvalidArgumentError(
        StrCat("input '", col.name(), "' row ", row, ": '", text[static_cast<size_t>(row)],
               "' is not a number, and model '", model, "' takes numbers"));
  return v;
}

std::string CellText(const Tensor& col, int64_t row, const std::vector<std::string_view>& text) {
  if (col.datatype() == DataType::kBytes) return std::string(text[static_cast<size_t>(row)]);
  if (col.datatype() == DataType::kBool)
    return NumericElementAsDouble(col, row) != 0 ? "true" : "false";
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof(buf), NumericElementAsDouble(col, row));
  return std::string(buf, res.ptr);
}

// The "pd" request: its columns as the model's one input.
absl::Status DecodeFrame(const ModelMetadata& md, InferRequest* request) {
  const TensorSpec& spec = md.inputs[0];
  const std::vector<Tensor>& cols = request->inputs;
  if (cols.empty()) return absl::OkStatus();
  int64_t rows = -1;
  for (const Tensor& c : cols) {
    const Shape& s = c.shape();
    if (!(s.size() == 1 || (s.size() == 2 && s[1] == 1)))
      return absl::InvalidArgumentError(
          StrCat("input '", c.name(), "': a column of a 'pd' request has shape [N] or [N,1], got ",
                 ShapeToString(s)));
    if (rows < 0) rows = s[0];
    if (s[0] != rows)
      return absl::InvalidArgumentError(StrCat("input '", c.name(), "' has ", s[0],
                                               " rows, but input '", cols[0].name(), "' has ",
                                               rows));
  }
  // Where each input goes among the model's features.
  const bool named = !md.feature_names.empty();
  const size_t width = named ? md.feature_names.size() : cols.size();
  std::vector<int> source(width, -1);
  for (size_t i = 0; i < cols.size(); ++i) {
    size_t col = i;
    if (named) {
      col = 0;
      while (col < width && md.feature_names[col] != cols[i].name()) ++col;
      if (col == width) {
        std::string names;
        for (size_t k = 0; k < width && k < 16; ++k)
          StrAppend(&names, k == 0 ? "" : ", ", md.feature_names[k]);
        if (width > 16) StrAppend(&names, ", ...");
        return absl::InvalidArgumentError(StrCat("input '", cols[i].name(),
                                                 "' is not a feature of model '", md.name,
                                                 "' (features: ", names, ")"));
      }
    }
    if (source[col] >= 0)
      return absl::InvalidArgumentError(
          StrCat("input '", cols[i].name(), "' is given twice in a 'pd' request"));
    source[col] = static_cast<int>(i);
  }
  std::vector<std::vector<std::string_view>> text(cols.size());
  for (size_t i = 0; i < cols.size(); ++i) {
    if (cols[i].datatype() != DataType::kBytes) continue;
    BytesReader reader(cols[i].data());
    std::string_view e;
    while (reader.Next(&e)) text[i].push_back(e);
    if (static_cast<int64_t>(text[i].size()) != rows)
      return absl::InvalidArgumentError(StrCat("input '", cols[i].name(), "' holds ",
                                               text[i].size(), " elements for ", rows, " rows"));
  }

  const int64_t w = static_cast<int64_t>(width);
  if (spec.datatype == DataType::kBytes) {
    Tensor t(spec.name, DataType::kBytes, {rows, w});
    std::string* out = t.mutable_owned_data();
    for (int64_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < width; ++c)
        AppendBytesElement(source[c] < 0 ? std::string()
                                         : CellText(cols[static_cast<size_t>(source[c])], r,
                                                    text[static_cast<size_t>(source[c])]),
                           out);
    request->inputs.clear();
    request->inputs.push_back(std::move(t));
    return absl::OkStatus();
  }
  const DataType type = spec.datatype == DataType::kFp64 ? DataType::kFp64 : DataType::kFp32;
  Tensor t(spec.name, type, {rows, w});
  std::string* out = t.mutable_owned_data();
  const size_t size = ElementSize(type);
  out->resize(static_cast<size_t>(rows) * width * size);
  char* p = out->data();
  for (int64_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < width; ++c, p += size) {
      double v = std::nan("");
      if (source[c] >= 0) {
        const size_t i = static_cast<size_t>(source[c]);
        OSPREY_ASSIGN_OR_RETURN(v, CellNumber(cols[i], r, text[i], md.name));
      }
      if (type == DataType::kFp32) {
        const float f = static_cast<float>(v);
        std::memcpy(p, &f, sizeof(f));
      } else {
        std::memcpy(p, &v, sizeof(v));
      }
    }
  }
  request->inputs.clear();
  request->inputs.push_back(std::move(t));
  return absl::OkStatus();
}

}  // namespace

bool HasContentTypes(const InferRequest& request) {
  if (!request.parameters.empty() && ContentType(request.parameters) == "pd") return true;
  for (const Tensor& t : request.inputs) {
    if (t.parameters().empty()) continue;
    const std::string_view type = ContentType(t.parameters());
    if (type == "base64" || type == "str") return true;
  }
  return false;
}

absl::Status DecodeContentTypes(const ModelMetadata& md, InferRequest* request) {
  if (md.raw_requests) return absl::OkStatus();  // the model decodes its own request
  for (Tensor& t : request->inputs)
    if (!t.parameters().empty()) OSPREY_RETURN_IF_ERROR(DecodeInput(&t));
  if (md.inputs.size() == 1 && ContentType(request->parameters) == "pd")
    return DecodeFrame(md, request);
  return absl::OkStatus();
}

}  // namespace osprey
