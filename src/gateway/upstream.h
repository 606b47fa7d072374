#pragma once

// Asynchronous HTTP/1.1 calls to replicas, run on the HTTP server's own event
// loop (the io_context the request arrived on): no thread hand-off, no
// blocking. Each loop keeps its own idle keep-alive connections per replica
// port. Boost stays inside upstream.cc.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "common/status.h"

namespace osprey::gateway {

struct UpstreamRequest {
  void* io_context = nullptr;  // a boost::asio::io_context: the loop to run on
  uint16_t port = 0;           // the replica, on 127.0.0.1
  std::string unix_socket;     // or, when set, its Unix domain socket
  // Request line and headers, ending with a blank line; not copied: it must
  // stay alive until `done` runs (the caller keeps it with its callback).
  std::string_view head;
  std::shared_ptr<const std::string> body;
  std::chrono::milliseconds timeout{60000};
};

struct UpstreamResult {
  // kUnavailable: the connection was refused (nothing reached the replica);
  // kDeadlineExceeded: no answer within the timeout; kInternal: anything else.
  absl::Status status;
  int http_status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// Must be called on the thread running request.io_context; `done` runs there
// too, exactly once. A kept-alive connection that turns out closed is
// replaced by a fresh one, once, before any answer byte (the replica never
// saw the request).
void SendUpstream(UpstreamRequest request, absl::AnyInvocable<void(UpstreamResult)> done);

// Runs `fn` on the loop of `io_context`: at once when called from it, else
// posted there.
void RunOn(void* io_context, absl::AnyInvocable<void()> fn);

}  // namespace osprey::gateway
