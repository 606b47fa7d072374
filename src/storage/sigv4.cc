#include "storage/sigv4.h"

#include <algorithm>
#include <ctime>

#include "common/strings.h"
#include "storage/crypto.h"

namespace osprey::storage {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Header value as SigV4 canonicalizes it: trimmed, inner runs of spaces
// collapsed to one.
std::string CanonicalHeaderValue(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string UriEncode(std::string_view s, bool encode_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved || (c == '/' && !encode_slash)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string CanonicalQuery(const HeaderList& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query)
    encoded.emplace_back(UriEncode(name, true), UriEncode(value, true));
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out.push_back('&');
    StrAppend(&out, name, "=", value);
  }
  return out;
}

std::string AmzDate(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

SigV4Signature SignV4(const SigV4Request& request, const SigV4Credentials& credentials,
                      std::string_view region, std::string_view service,
                      std::string_view amz_date) {
  HeaderList headers;
  headers.emplace_back("host", request.host);
  headers.emplace_back("x-amz-date", std::string(amz_date));
  for (const auto& [name, value] : request.headers) headers.emplace_back(Lower(name), value);
  if (!credentials.session_token.empty())
    headers.emplace_back("x-amz-security-token", credentials.session_token);
  std::stable_sort(headers.begin(), headers.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  std::string canonical_headers;
  std::string signed_headers;
  for (const auto& [name, value] : headers) {
    StrAppend(&canonical_headers, name, ":", CanonicalHeaderValue(value), "\n");
    if (!signed_headers.empty()) signed_headers.push_back(';');
    signed_headers += name;
  }

  SigV4Signature out;
  out.canonical_request =
      StrCat(request.method, "\n", UriEncode(request.path, /*encode_slash=*/false), "\n",
             CanonicalQuery(request.query), "\n", canonical_headers, "\n", signed_headers, "\n",
             request.payload_sha256);
  std::string_view date = amz_date.substr(0, 8);
  std::string scope = StrCat(date, "/", region, "/", service, "/aws4_request");
  out.string_to_sign =
      StrCat("AWS4-HMAC-SHA256\n", amz_date, "\n", scope, "\n", Sha256Hex(out.canonical_request));
  std::string key = HmacSha256(StrCat("AWS4", credentials.secret_access_key), date);
  key = HmacSha256(key, region);
  key = HmacSha256(key, service);
  key = HmacSha256(key, "aws4_request");
  out.signature = HexEncode(HmacSha256(key, out.string_to_sign));
  out.authorization = StrCat("AWS4-HMAC-SHA256 Credential=", credentials.access_key_id, "/", scope,
                             ", SignedHeaders=", signed_headers, ", Signature=", out.signature);
  out.headers = std::move(headers);
  out.headers.emplace_back("authorization", out.authorization);
  return out;
}

}  // namespace osprey::storage
