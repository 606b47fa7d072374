#pragma once

// Calling an InferenceService from inside the gateway, with everything a
// client's request gets (traffic split, least-outstanding choice,
// containerConcurrency, the activator queue, retry on a refused connection,
// the per-route timeout, observers), without an HTTP hop back into the
// gateway: for an InferenceGraph step, a transformer's call to its
// predictor, or any in-process client. Gateway implements it.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "common/header_source.h"
#include "common/status.h"

namespace osprey::gateway {

struct CallRequest {
  // The InferenceService "{namespace}/{name}": its main route (the one with
  // its traffic split, not a tag route). Empty: routed by `host` and
  // `target` as a client's request is.
  std::string_view service;
  std::string_view host;  // the Host sent; empty: the route's first host
  std::string_view method = "POST";
  std::string_view target;  // path and query, e.g. /v2/models/iris/infer
  // Headers for the replica (hop-by-hop ones are left out); an
  // x-request-id among them is kept, else one is made up.
  HeaderSource headers;
  std::shared_ptr<const std::string> body;
  // No answer after this: DEADLINE_EXCEEDED. The route's timeout still
  // bounds each attempt, and the queue deadline the wait for a replica.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // The event loop (a boost::asio::io_context) to run on: the caller's own,
  // a loop of the gateway's HTTP server (HttpRequest::io_context).
  void* io_context = nullptr;
};

struct CallResult {
  // OK: a replica answered, with any HTTP status (below). Otherwise why none
  // did: NOT_FOUND (no such service or route), UNAVAILABLE (no ready
  // revision, queue full or waited too long, connection refused),
  // DEADLINE_EXCEEDED, INTERNAL (the replica broke the exchange); the
  // message names the revision.
  absl::Status status;
  int http_status = 0;
  std::string header_lines;  // "Name: value\r\n" each, as the replica sent them
  std::string body;
};

using CallDone = absl::AnyInvocable<void(CallResult)>;

class Caller {
 public:
  virtual ~Caller() = default;
  // Must be called on request.io_context's thread; the request's strings
  // need to live only until Call returns (the body is shared). `done` runs
  // exactly once, on that loop, possibly before Call returns.
  virtual void Call(const CallRequest& request, CallDone done) = 0;
};

}  // namespace osprey::gateway
