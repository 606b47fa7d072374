#pragma once

// Blocking HTTP/1.1 client (libcurl) for the control plane, the gateway entry
// point and the CLI. One HttpClient keeps its connections open between calls
// (keep-alive); it is not thread-safe: use one per thread.

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace osprey {

struct HttpClientRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{30000};
  std::chrono::milliseconds connect_timeout{5000};
};

struct HttpClientResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names as sent
  std::string body;
  // The value of header `name` (case-insensitive), or empty.
  std::string Header(std::string_view name) const;
};

class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Any HTTP status is a response. Errors: kUnavailable when the connection
  // could not be made (nothing was sent: safe to retry elsewhere),
  // kDeadlineExceeded on timeout, kInternal for other transport failures.
  absl::StatusOr<HttpClientResponse> Send(const HttpClientRequest& request);

 private:
  void* curl_;
};

}  // namespace osprey
