#pragma once

// The gateway: routes each request (see route_table.h) to a revision, and
// within it to the ready replica with the fewest requests outstanding, never
// past the revision's containerConcurrency. When no replica can take it (none
// ready: the revision is at zero, or all at their limit) the request waits in
// the revision's bounded queue (the activator) and the control plane is
// poked to scale up; it leaves the queue for the first replica with room, or
// gets 503 with Retry-After past the queue bound or its deadline.
//
// Forwarding is asynchronous on the HTTP server loop the request arrived on
// (upstream.h), with keep-alive connections to the replicas: no thread
// hand-off, nothing blocks. A refused connection is retried on another
// replica (nothing reached the replica); nothing else is retried, and never
// after a timeout.
//
// Per revision it measures what the autoscaler needs (time-averaged
// concurrency including queued requests, requests/s) and exports Prometheus
// metrics: requests by code class, latency histogram, concurrency and queue
// depth. An access log line per request carries its x-request-id (made up
// when the client sent none).

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "common/status.h"
#include "gateway/route_table.h"
#include "net/http_types.h"

namespace osprey::gateway {

class Gateway : public HttpHandler {
 public:
  struct Options {
    int default_timeout_ms = 60000;
    int queue_limit = 1000;  // requests held per revision
    std::chrono::milliseconds queue_deadline{30000};
    std::string access_log;  // file path; empty: none
    // Called (from a gateway thread) when a request is queued for a revision
    // with no ready replica: the control plane should scale it up now.
    std::function<void(const std::string& revision_key)> on_demand;
    // Links each gateway loop may keep per replica (see UpstreamRequest::
    // links): replicas run a loop per CPU, so with fewer gateway loops,
    // CPUs / gateway loops keeps them all busy.
    int links_per_replica = 1;
  };

  explicit Gateway(Options options);
  ~Gateway() override;

  // Replaces the route table (thread-safe; requests in progress keep theirs).
  void Update(std::shared_ptr<const RouteTable> table);
  void Handle(const HttpRequest& request, HttpDone done) override;

  // The gRPC ingress's way in. Routes a call by its :authority `host`, else
  // by `model` (the model name in its request), with the same split,
  // least-outstanding choice, containerConcurrency and activator queue as
  // HTTP. Exactly one of the callbacks runs, on any thread: `start` with the
  // assigned replica's gRPC target ("unix:/path") and the per-route timeout,
  // or `refuse` with the reason (NOT_FOUND, UNAVAILABLE, DEADLINE_EXCEEDED,
  // UNIMPLEMENTED). After `start`, the caller must call FinishGrpc with the
  // ticket once the call to the replica ended.
  struct GrpcTicket;
  using GrpcStart = absl::AnyInvocable<void(std::shared_ptr<GrpcTicket> ticket,
                                            const std::string& target, int timeout_ms)>;
  void AdmitGrpc(std::string_view host, std::string_view model, GrpcStart start,
                 absl::AnyInvocable<void(absl::Status)> refuse);
  void FinishGrpc(std::shared_ptr<GrpcTicket> ticket, bool ok);

  // Per revision seen since the previous call; resets the averages.
  std::vector<RevisionStats> CollectStats();
  // Prometheus text exposition of the gateway's metrics.
  std::string RenderMetrics() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace osprey::gateway
