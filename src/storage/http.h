#pragma once

// GET over HTTP(S) through libcurl, with the storage initializer's policy:
// a connect timeout, a stall timeout (a transfer that moves no byte for that
// long is cut), and retries with exponential backoff on connection errors,
// stalls, 5xx, 408 and 429 -- never on other 4xx, which a retry cannot fix.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

typedef void CURL;

namespace osprey::storage {

struct HttpOptions {
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::seconds stall_timeout{30};
  int retries = 3;  // attempts after the first
  // Wait before retry k (1-based): retry_backoff * 2^(k-1), at most 10 s.
  std::chrono::milliseconds retry_backoff{500};
  bool verify_tls = true;
  std::string ca_bundle;  // PEM file of trusted CAs; empty: the system's
  bool follow_redirects = true;
};

struct HttpRequest {
  std::string url;
  // Headers ("Name: value") for one attempt; called before each attempt, so
  // that a signature carries the time it is sent at. May be empty.
  std::function<std::vector<std::string>()> headers;
};

struct HttpResponse {
  long status = 0;
  // Get(): the body. Download(): the body of a non-2xx answer (first 64 KiB),
  // else empty.
  std::string body;
  int attempts = 0;
};

// Bytes received so far in this attempt, and the announced total (0: unknown).
using ByteProgress = std::function<void(uint64_t done, uint64_t total)>;

// One connection cache: requests made through one client reuse connections.
// Not thread-safe; make one per thread.
class HttpClient {
 public:
  explicit HttpClient(HttpOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Every completed exchange is OK, whatever its HTTP status (after the
  // retries a 5xx earned); only a transport failure is an error, after the
  // retries: Unavailable (cannot connect, connection lost), DeadlineExceeded
  // (connect timeout, stall), InvalidArgument (malformed URL, bad scheme),
  // ResourceExhausted (Get() body over max_body). Messages name the URL.
  absl::StatusOr<HttpResponse> Get(const HttpRequest& request,
                                   uint64_t max_body = uint64_t{256} << 20);
  // Streams a 2xx body into `file` (created, truncated at each attempt).
  absl::StatusOr<HttpResponse> Download(const HttpRequest& request,
                                        const std::filesystem::path& file,
                                        const ByteProgress& progress);

 private:
  struct Sink;
  absl::StatusOr<HttpResponse> Perform(const HttpRequest& request, Sink* sink);

  HttpOptions options_;
  CURL* curl_;
};

// The Status for a non-2xx answer to a GET of `what` (a URI or URL):
// 404 -> NotFound, 401 -> Unauthenticated, 403 -> PermissionDenied,
// 5xx -> Unavailable, other
// 4xx -> FailedPrecondition. The message names `what`, the code and `detail`.
absl::Status HttpStatusError(std::string_view what, long status, std::string_view detail);

}  // namespace osprey::storage
