#include "storage/uri.h"

#include "storage/sigv4.h"

namespace osprey::storage {
namespace {

// Splits "bucket/rest" into bucket and rest (rest without leading '/').
void SplitFirst(std::string_view s, std::string* first, std::string* rest) {
  size_t slash = s.find('/');
  *first = std::string(s.substr(0, slash));
  if (slash == std::string_view::npos) {
    rest->clear();
    return;
  }
  std::string_view r = s.substr(slash + 1);
  while (r.starts_with('/')) r.remove_prefix(1);
  *rest = std::string(r);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool IsRemote(Scheme scheme) {
  return scheme == Scheme::kHttp || scheme == Scheme::kGcs || scheme == Scheme::kS3;
}

absl::StatusOr<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int hi = i + 2 < s.size() ? HexValue(s[i + 1]) : -1;
    int lo = hi >= 0 ? HexValue(s[i + 2]) : -1;
    if (hi < 0 || lo < 0)
      return absl::InvalidArgumentError(StrCat("malformed percent escape in '", s, "'"));
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

absl::StatusOr<ModelUri> ParseModelUri(std::string_view uri) {
  ModelUri out;
  out.uri = std::string(uri);
  if (uri.empty()) return absl::InvalidArgumentError("empty model URI");
  size_t sep = uri.find("://");
  if (sep == std::string_view::npos) {
    out.scheme = Scheme::kFile;
    out.location = std::string(uri);
    return out;
  }
  std::string scheme(uri.substr(0, sep));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view rest = uri.substr(sep + 3);
  if (scheme == "file") {
    // file:///abs/path, or file://localhost/abs/path.
    if (rest.starts_with("localhost/")) rest.remove_prefix(9);
    if (!rest.starts_with('/'))
      return absl::InvalidArgumentError(
          StrCat("model URI '", uri, "': file:// takes an absolute path (file:///path)"));
    out.scheme = Scheme::kFile;
    OSPREY_ASSIGN_OR_RETURN(out.location, PercentDecode(rest));
    return out;
  }
  if (scheme == "http" || scheme == "https") {
    if (rest.empty() || rest.starts_with('/'))
      return absl::InvalidArgumentError(StrCat("model URI '", uri, "' has no host"));
    out.scheme = Scheme::kHttp;
    out.location = std::string(uri);
    return out;
  }
  if (scheme == "s3" || scheme == "gs" || scheme == "pvc") {
    SplitFirst(rest, &out.location, &out.path);
    if (out.location.empty())
      return absl::InvalidArgumentError(
          StrCat("model URI '", uri, "' names no ", scheme == "pvc" ? "claim" : "bucket"));
    out.scheme = scheme == "s3" ? Scheme::kS3 : scheme == "gs" ? Scheme::kGcs : Scheme::kPvc;
    return out;
  }
  return absl::InvalidArgumentError(
      StrCat("model URI '", uri, "': unsupported scheme '", scheme,
             "://' (file, pvc, http, https, s3 and gs are supported)"));
}

std::string UrlFileName(std::string_view url) {
  size_t sep = url.find("://");
  std::string_view rest = sep == std::string_view::npos ? url : url.substr(sep + 3);
  rest = rest.substr(0, rest.find_first_of("?#"));
  size_t path_start = rest.find('/');
  std::string_view path = path_start == std::string_view::npos ? "" : rest.substr(path_start);
  std::string_view last = path.substr(path.rfind('/') + 1);
  absl::StatusOr<std::string> name = PercentDecode(last);
  if (!name.ok() || name->empty() || *name == "." || *name == ".." ||
      name->find('/') != std::string::npos || name->find('\0') != std::string::npos)
    return "model";
  return *std::move(name);
}

std::string GcsObjectUrl(std::string_view base, std::string_view bucket, std::string_view object) {
  return StrCat(base, "/", UriEncode(bucket, true), "/", UriEncode(object, false));
}

std::string GcsListUrl(std::string_view base, std::string_view bucket, std::string_view prefix,
                       std::string_view page_token) {
  std::string url = StrCat(base, "/storage/v1/b/", UriEncode(bucket, true),
                           "/o?prefix=", UriEncode(prefix, true));
  if (!page_token.empty()) StrAppend(&url, "&pageToken=", UriEncode(page_token, true));
  return url;
}

}  // namespace osprey::storage
