#pragma once

// A Kubernetes API client over the REST API (libcurl through net/http_client,
// RapidJSON for bodies): requests with the config's credentials, a client-side
// rate limit (QPS and burst, as client-go's), and watch streams. Thread-safe:
// calls from several threads each use their own connection.

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "kube/config.h"

namespace osprey {
class HttpClient;
struct TlsOptions;
}  // namespace osprey

namespace osprey::kube {

// Where a kind's objects live on the API server.
struct ResourceRef {
  std::string group;  // "" for the core group
  std::string version;
  std::string plural;
  bool namespaced = true;
};

// "/api/v1/namespaces/ns/pods/name/status" and the like. An empty namespace
// of a namespaced resource lists across all namespaces; an empty name is the
// collection.
std::string ResourcePath(const ResourceRef& ref, std::string_view ns, std::string_view name = "",
                         std::string_view subresource = "");

// Percent-encodes a query parameter's value.
std::string QueryEscape(std::string_view text);

struct Response {
  int status = 0;
  std::string body;
};

// The error a non-2xx answer means, with the API server's message
// (metav1.Status) when it sent one: 404 kNotFound, 409 kAlreadyExists (create)
// or kAborted (a conflict: stale resourceVersion, or a server-side apply
// conflict), 410 kOutOfRange (resource version too old), 401
// kUnauthenticated, 403 kPermissionDenied, 400/422 kInvalidArgument, 429 and
// 5xx kUnavailable.
// The reasons in the answer's details.causes (metav1.StatusCause) are kept on
// the status; HasCause asks for one, e.g. "NamespaceTerminating".
absl::Status StatusOf(const Response& r, std::string_view what);
bool HasCause(const absl::Status& status, std::string_view cause);

// A token bucket: `qps` per second, up to `burst` at once. Take() returns how
// long the caller must wait before its request; pure apart from the clock the
// caller passes.
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  RateLimiter(double qps, int burst);
  Clock::duration Take(Clock::time_point now);

 private:
  std::mutex mu_;
  double qps_;
  double burst_;
  double tokens_;
  Clock::time_point last_{};
  bool started_ = false;
};

struct ClientOptions {
  double qps = 50;
  int burst = 100;
  std::string user_agent = "osprey";
  std::chrono::milliseconds timeout{30000};
};

class Client {
 public:
  Client(Config config, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const Config& config() const { return config_; }

  // One request. Transport errors are errors; any HTTP status is a Response.
  absl::StatusOr<Response> Call(std::string_view method, const std::string& path,
                                const std::string& body = "",
                                std::string_view content_type = "application/json");

  // GET, as a body or the error its status means.
  absl::StatusOr<std::string> Get(const std::string& path);

  // The resources a group version serves ("/apis/{group}/{version}"'s
  // discovery: plurals, and subresources as "plural/status"); an error when
  // the cluster serves no such group version.
  absl::StatusOr<std::set<std::string>> ServedResources(const std::string& group_version);

  // Server-side apply of `object_json` (a full object with apiVersion, kind,
  // metadata.name) as field manager `manager`. A conflict with another
  // manager's fields is an error (kAborted) unless `force`.
  absl::StatusOr<std::string> Apply(const std::string& path, const std::string& object_json,
                                    std::string_view manager, bool force = false);

  // A JSON merge patch.
  absl::StatusOr<std::string> MergePatch(const std::string& path, const std::string& patch_json);

  // Streams a watch: `on_line` gets each event line (one JSON object) as it
  // arrives. Returns OK when the server ends the stream (its timeout), the
  // error otherwise, kCancelled when `keep_going` turned false. `timeout`
  // bounds the whole stream (give the server's timeoutSeconds and a margin:
  // a connection that went half-open is given up then). The request counts
  // against the rate limit once.
  absl::Status Watch(const std::string& path_and_query,
                     const std::function<void(std::string_view line)>& on_line,
                     const std::function<bool()>& keep_going, std::chrono::milliseconds timeout);

  // Requests sent so far (tests and benchmarks count writes with it).
  uint64_t requests() const;
  uint64_t writes() const;

 private:
  struct Pool;
  std::string Bearer();
  absl::StatusOr<Response> Send(std::string_view method, const std::string& path,
                                const std::string& body, std::string_view content_type,
                                const std::function<void(std::string_view)>* on_line,
                                const std::function<bool()>* keep_going,
                                std::chrono::milliseconds timeout);

  Config config_;
  ClientOptions options_;
  std::unique_ptr<TlsOptions> tls_;
  RateLimiter limiter_;
  std::unique_ptr<Pool> pool_;
  std::mutex token_mu_;
  std::string token_;
  std::filesystem::file_time_type token_mtime_{};
};

// Credentials from `kubeconfig_flag` (else $KUBECONFIG, else the pod's
// service account: config.h's ResolveConfig) and a client that reached the
// API server (GET /version); errors say where the configuration came from.
absl::StatusOr<std::unique_ptr<Client>> Connect(const std::string& kubeconfig_flag,
                                                const ClientOptions& options);

}  // namespace osprey::kube
