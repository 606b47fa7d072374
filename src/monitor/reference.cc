#include "monitor/reference.h"

#include <cstdint>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/strings.h"

namespace osprey::monitor {
namespace {

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view Std(absl::string_view s) { return std::string_view(s.data(), s.size()); }

absl::Status NpyError(std::string_view what) {
  return absl::InvalidArgumentError(StrCat("reference .npy: ", what));
}

// The value of `key` in the header dict ("{'descr': '<f8', 'fortran_order':
// False, 'shape': (100, 4), }"), as written after the colon.
std::string_view HeaderValue(std::string_view header, std::string_view key) {
  const std::string quoted = StrCat("'", key, "'");
  size_t at = header.find(quoted);
  if (at == std::string_view::npos) return {};
  size_t colon = header.find(':', at + quoted.size());
  if (colon == std::string_view::npos) return {};
  std::string_view rest = Std(absl::StripLeadingAsciiWhitespace(Absl(header.substr(colon + 1))));
  if (rest.starts_with("(")) return rest.substr(0, rest.find(')') + 1);
  size_t end = rest.find_first_of(",}");
  return Std(absl::StripAsciiWhitespace(Absl(rest.substr(0, end))));
}

template <typename T>
double Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return static_cast<double>(v);
}

}  // namespace

absl::StatusOr<Matrix> ParseNpy(std::string_view bytes) {
  if (bytes.size() < 10 || bytes.substr(0, 6) != "\x93NUMPY") return NpyError("not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return NpyError("truncated header");
    uint32_t len = 0;
    for (int i = 0; i < 4; ++i)
      len |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_len = len;
    offset = 12;
  } else {
    return NpyError(StrCat("unknown format version ", major));
  }
  if (bytes.size() < offset + header_len) return NpyError("truncated header");
  std::string_view header = bytes.substr(offset, header_len);
  std::string_view data = bytes.substr(offset + header_len);

  std::string_view descr = HeaderValue(header, "descr");
  if (descr.size() < 3) return NpyError("header has no descr");
  descr = descr.substr(1, descr.size() - 2);  // unquote
  const char order = descr[0];
  if (order == '>') return NpyError(StrCat("big-endian dtype ", descr, " is not supported"));
  const char kind = descr[1];
  size_t width = 0;
  if (!absl::SimpleAtoi(Absl(descr.substr(2)), &width))
    return NpyError(StrCat("unsupported dtype ", descr));
  double (*load)(const char*) = nullptr;
  if (kind == 'f' && width == 8) load = Load<double>;
  if (kind == 'f' && width == 4) load = Load<float>;
  if (kind == 'i' && width == 8) load = Load<int64_t>;
  if (kind == 'i' && width == 4) load = Load<int32_t>;
  if (kind == 'i' && width == 2) load = Load<int16_t>;
  if (kind == 'i' && width == 1) load = Load<int8_t>;
  if (kind == 'u' && width == 8) load = Load<uint64_t>;
  if (kind == 'u' && width == 4) load = Load<uint32_t>;
  if (kind == 'u' && width == 2) load = Load<uint16_t>;
  if ((kind == 'u' || kind == 'b') && width == 1) load = Load<uint8_t>;
  if (load == nullptr)
    return NpyError(StrCat("unsupported dtype ", descr, " (floats, integers and bool are read)"));
  const bool fortran = HeaderValue(header, "fortran_order") == "True";

  std::string_view shape = HeaderValue(header, "shape");
  if (shape.size() < 2 || shape.front() != '(') return NpyError("header has no shape");
  std::vector<size_t> dims;
  for (absl::string_view part : absl::StrSplit(Absl(shape.substr(1, shape.size() - 2)), ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) continue;
    size_t d = 0;
    if (!absl::SimpleAtoi(part, &d)) return NpyError(StrCat("bad shape ", shape));
    dims.push_back(d);
  }
  if (dims.empty() || dims.size() > 2)
    return NpyError(StrCat("shape ", shape, ": expected rows or (rows, features)"));
  Matrix m;
  m.rows = dims[0];
  m.cols = dims.size() == 2 ? dims[1] : 1;
  if (m.rows == 0 || m.cols == 0) return NpyError(StrCat("shape ", shape, " is empty"));
  if (m.rows > (1u << 30) / m.cols) return NpyError(StrCat("shape ", shape, " is too large"));
  const size_t count = m.rows * m.cols;
  if (data.size() < count * width)
    return NpyError(StrCat("shape ", shape, " needs ", count * width, " bytes of data, file has ",
                           data.size()));
  m.values.resize(count);
  for (size_t r = 0; r < m.rows; ++r)
    for (size_t c = 0; c < m.cols; ++c) {
      const size_t at = fortran ? c * m.rows + r : r * m.cols + c;
      m.values[r * m.cols + c] = load(data.data() + at * width);
    }
  return m;
}

absl::StatusOr<Matrix> ParseCsv(std::string_view text) {
  Matrix m;
  size_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(Absl(text), '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::vector<double> row;
    bool numeric = true;
    for (absl::string_view field : absl::StrSplit(line, ',')) {
      double v = 0;
      if (!absl::SimpleAtod(absl::StripAsciiWhitespace(field), &v)) {
        numeric = false;
        break;
      }
      row.push_back(v);
    }
    if (!numeric) {
      if (m.rows == 0 && m.cols == 0 && line_no == 1) continue;  // header
      return absl::InvalidArgumentError(
          StrCat("reference .csv: line ", line_no, " has a field that is not a number"));
    }
    if (m.cols == 0) m.cols = row.size();
    if (row.size() != m.cols)
      return absl::InvalidArgumentError(StrCat("reference .csv: line ", line_no, " has ",
                                               row.size(), " fields, expected ", m.cols));
    m.values.insert(m.values.end(), row.begin(), row.end());
    ++m.rows;
  }
  if (m.rows == 0) return absl::InvalidArgumentError("reference .csv has no data rows");
  return m;
}

absl::StatusOr<Matrix> ParseReference(std::string_view file_name, std::string_view bytes) {
  std::string lower = absl::AsciiStrToLower(Absl(file_name));
  if (lower.ends_with(".npy")) return ParseNpy(bytes);
  if (lower.ends_with(".csv")) return ParseCsv(bytes);
  if (lower.ends_with(".parquet"))
    return absl::InvalidArgumentError(
        StrCat("reference ", file_name,
               ": Parquet is not read (no Parquet reader in Osprey); give a .npy or .csv file"));
  return absl::InvalidArgumentError(
      StrCat("reference ", file_name, ": expected a .npy or .csv file"));
}

}  // namespace osprey::monitor
