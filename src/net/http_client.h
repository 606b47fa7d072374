#pragma once

// Blocking HTTP/1.1 client (libcurl) for the control plane, the gateway entry
// point and the CLI. One HttpClient keeps its connections open between calls
// (keep-alive); it is not thread-safe: use one per thread.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace osprey {

// TLS for https:// URLs. PEM data wins over a file of the same role; empty
// fields keep libcurl's defaults (the system's CAs, no client certificate).
struct TlsOptions {
  std::string ca_file;
  std::string ca_pem;
  std::string cert_file;  // client certificate
  std::string cert_pem;
  std::string key_file;  // its private key
  std::string key_pem;
  bool insecure = false;  // no server certificate check (kubeconfig insecure-skip-tls-verify)
};

struct HttpClientRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{30000};
  std::chrono::milliseconds connect_timeout{5000};
  const TlsOptions* tls = nullptr;
  // A streamed body (a watch): each piece of a 2xx answer is handed over as
  // it arrives and not kept in the response (another answer's body is);
  // returning false ends the transfer (the call then returns kCancelled).
  // `timeout` 0 means none.
  std::function<bool(std::string_view)> on_body;
  // Polled while a transfer runs (about once a second when no data flows);
  // false ends it (kCancelled). Lets another thread stop a long watch.
  std::function<bool()> keep_going;
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
  // kDeadlineExceeded on timeout, kCancelled when on_body or keep_going
  // ended it, kInternal for other transport failures.
  absl::StatusOr<HttpClientResponse> Send(const HttpClientRequest& request);

 private:
  void* curl_;
};

}  // namespace osprey
