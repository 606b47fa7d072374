#pragma once

// The forwarder: one attempt loop for every request the gateway sends to a
// replica it was assigned (revision_pool.h).
//
// - HTTP calls go on the loop the request arrived on, with no thread
//   hand-off: by the replica's link (link/link_client.h) when it has one,
//   else HTTP/1.1 on its Unix socket, else on its port
//   (net/http_upstream.h).
// - A refused connection (nothing reached the replica) is tried again on
//   another replica of the revision with room, up to the call's retries;
//   nothing else is retried, and never after a timeout, unless the call's
//   route asks for it (Outbound::retry_5xx, retry_gateway_error). Each
//   attempt gets the call's whole timeout, or its per_try_timeout.
// - Each attempt's outcome is told to its pool (outlier detection).
// - gRPC calls are sent by the gRPC ingress (grpc++ stays in that target):
//   the forwarder gives them their replica's target. They are never
//   retried: grpc++ does not tell whether a failed call reached the replica.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "common/status.h"
#include "gateway/revision_pool.h"
#include "net/http_upstream.h"

namespace osprey::gateway {

// An HTTP request on its way to a replica: a pool request (its replica
// assigned) and what is sent. The gateway's kinds of call derive from it.
struct Outbound : RevisionPool::Request {
  void* io = nullptr;  // the event loop (boost::asio::io_context) it runs on
  std::string head;    // request line and header lines, through the blank line
  std::shared_ptr<const std::string> body;
  std::chrono::milliseconds timeout{60000};  // per attempt
  int retries = 0;                           // further attempts after a refused connection
  // A route's retry policy (RoutePolicy): further attempts, up to
  // `retries`, on what its flags say: on another replica with room, else the
  // same one. per_try_timeout (0: none) bounds each attempt, `timeout` all
  // of them.
  bool retry_5xx = false;
  bool retry_gateway_error = false;
  bool retry_reset = false;
  std::vector<int> retry_statuses;
  std::chrono::milliseconds per_try_timeout{0};
  bool keep_alive = true;  // false: a new connection per attempt (UpstreamRequest::keep_alive)
  // When the attempts must have ended (set at the first attempt from
  // `timeout`): no attempt outlives it, and none starts after it.
  std::chrono::steady_clock::time_point attempts_deadline{};
  // When each further attempt started (a refused connection tried again);
  // empty when the first one was the last.
  std::vector<std::chrono::steady_clock::time_point> retried_at;
};

class Forwarder {
 public:
  // The last attempt's result: the replica's answer, or why there is none
  // (UpstreamResult::status). Runs on the call's loop; `call->replica` is
  // the replica that had the last attempt, whose pool slot is still taken
  // (the callee releases it).
  using Answered = absl::AnyInvocable<void(std::unique_ptr<Outbound> call, UpstreamResult result)>;

  struct Options {
    int links_per_replica = 1;  // UpstreamRequest::links
  };
  Forwarder(Options options, Answered answered);

  // From any thread: sends `call` from its loop (at once when called on it,
  // else posted there), then `answered` once. `call->pool` must outlive it.
  void Forward(std::unique_ptr<Outbound> call);

  // The gRPC endpoint of the request's replica ("unix:/path"), valid while
  // the request holds its replica; UNIMPLEMENTED when it serves no gRPC (a
  // custom container).
  static absl::StatusOr<const std::string*> GrpcTarget(const RevisionPool::Request& call);

 private:
  void Attempt(std::unique_ptr<Outbound> call, int attempt);

  const Options options_;
  Answered answered_;
};

}  // namespace osprey::gateway
