#pragma once

// AWS Signature Version 4 for S3 requests (header-based, "AWS4-HMAC-SHA256").
//
// The signer is pure: the caller gives the time, so that tests reproduce AWS's
// published vectors. It follows S3's flavour of the canonical request: the
// path is percent-encoded once and not normalized (S3 keys may hold "//" or
// "."), the query is sorted by encoded name then value.

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace osprey::storage {

struct SigV4Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  // Temporary credentials: sent and signed as x-amz-security-token.
  std::string session_token;
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct SigV4Request {
  std::string method = "GET";
  // Host header exactly as sent: host, or host:port when the port is not the
  // scheme's default.
  std::string host;
  // Decoded path, starting with '/': "/bucket/dir/model file.bin".
  std::string path = "/";
  // Decoded names and values, in any order.
  HeaderList query;
  // Headers to sign besides host and x-amz-date (e.g. x-amz-content-sha256,
  // range). Names in any case; values are trimmed for signing.
  HeaderList headers;
  // Hex SHA-256 of the body (or "UNSIGNED-PAYLOAD").
  std::string payload_sha256;
};

struct SigV4Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;      // hex
  std::string authorization;  // value of the Authorization header
  // Every header to send for the signature to hold: host, x-amz-date, the
  // request's own headers, x-amz-security-token when set, authorization.
  HeaderList headers;
};

// Signs `request` at `amz_date` ("YYYYMMDDTHHMMSSZ", UTC) for `service` in
// `region`.
SigV4Signature SignV4(const SigV4Request& request, const SigV4Credentials& credentials,
                      std::string_view region, std::string_view service, std::string_view amz_date);

// "YYYYMMDDTHHMMSSZ" of `t` in UTC.
std::string AmzDate(std::chrono::system_clock::time_point t);

// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters
// (A-Z a-z 0-9 - . _ ~) stay, every other byte becomes %XX (upper case);
// '/' stays unless `encode_slash`.
std::string UriEncode(std::string_view s, bool encode_slash);

// The canonical query string: each name and value UriEncode'd (slashes too),
// sorted, joined with '&'. Also the query to put in the URL, so that what is
// sent is what was signed.
std::string CanonicalQuery(const HeaderList& query);

}  // namespace osprey::storage
