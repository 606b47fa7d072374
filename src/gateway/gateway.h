#pragma once

// The gateway: a pipeline with one admit path for its three ways in (the
// HTTP ingress, Handle; the gRPC ingress, AdmitGrpc; in-process callers,
// Call):
//
//   match the route (route_table.h) -> pick the revision by the split ->
//   the revision's pool (revision_pool.h): a replica with room, or the
//   activator queue, or a refusal -> the forwarder (forwarder.h): the
//   attempt loop to the replica -> observers (exchange.h): access log,
//   metrics, any added -> the answer, encoded for HTTP or gRPC at its
//   ingress.
//
// Inside, every decision is an absl::Status (or a replica's own HTTP
// answer, passed on); the HTTP status or gRPC code is chosen only where the
// answer leaves, through net/status.h's one table, with two proxy readings
// over HTTP: a replica that failed the exchange is 502, and UNAVAILABLE
// answers carry Retry-After.
//
// A revision at zero or at its limit holds requests in its bounded queue
// and the control plane is poked to scale up (on_demand); they leave it for
// the first replica with room, or get UNAVAILABLE (503 with Retry-After)
// past the queue bound or its deadline. Per revision the gateway measures
// what the autoscaler needs (CollectStats) and exports Prometheus metrics
// (RenderMetrics).
//
// Threading: every method is thread-safe. HTTP calls to replicas run on the
// event loop the request arrived on, with no thread hand-off and nothing
// blocking; a request that waited in the queue is posted back to its loop.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "common/status.h"
#include "gateway/caller.h"
#include "gateway/exchange.h"
#include "gateway/route_table.h"
#include "net/http_types.h"

namespace osprey::gateway {

struct IncomingTrace;  // gateway/tracing.h

class Gateway : public HttpHandler, public Caller {
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
    // Observers of every exchange besides the access log and the metrics,
    // called after them (see exchange.h for what they must not do).
    std::vector<std::shared_ptr<ExchangeObserver>> observers;
    // InferenceGraphs (graph_executor.h): request header names to pass on
    // to every step (regular expressions; KServe's router
    // headers.propagate).
    std::vector<std::string> graph_propagate_headers;
  };

  explicit Gateway(Options options);
  ~Gateway() override;
  // Stops the thread that expires held requests. Call it before the HTTP
  // servers whose loops its refusals are answered on are destroyed (the
  // destructor calls it too).
  void StopReaper();

  // Replaces the route table (requests in progress keep theirs).
  void Update(std::shared_ptr<const RouteTable> table);

  // The HTTP ingress (the HTTP server's handler; needs its event loop).
  // A request on an extra listener (HttpRequest::listener_port: an Istio
  // Gateway server's port) matches the routes served there; on the server's
  // own port, those of kMainPort (route_table.h).
  void Handle(const HttpRequest& request, HttpDone done) override;

  // The gRPC ingress's way in. Routes a call by its :authority `host`, else
  // by `model` (the model name in its request), like an HTTP request by Host
  // and path; the model name finds the routes of `component` ("": the
  // services' own, "predictor": their predictors, for a transformer's calls). Exactly one of the
  // callbacks runs, on any thread: `start` with the assigned replica's gRPC target ("unix:/path")
  // and the per-route timeout, or `refuse` with the reason (NOT_FOUND, UNAVAILABLE, UNIMPLEMENTED).
  // After `start`, the caller must call FinishGrpc with the ticket once the call to the replica
  // ended.
  // `rpc_method` ("/package.Service/Method") names the call's span; a call
  // `incoming` with trace metadata continues that trace (gateway/tracing.h).
  struct GrpcTicket;
  using GrpcStart = absl::AnyInvocable<void(std::shared_ptr<GrpcTicket> ticket,
                                            const std::string& target, int timeout_ms)>;
  void AdmitGrpc(std::string_view host, std::string_view model, GrpcStart start,
                 absl::AnyInvocable<void(absl::Status)> refuse, std::string_view component = {},
                 std::string_view rpc_method = {}, const IncomingTrace* incoming = nullptr);
  // The trace metadata a ticket's call carries to its replica (traceparent,
  // and x-b3-traceid when the call had no traceparent), in place of the
  // client's traceparent; none while tracing is off.
  static const std::vector<std::pair<std::string, std::string>>& TraceMetadata(
      const GrpcTicket& ticket);
  // `code`: the call's gRPC status code as its client gets it (0: OK);
  // the sizes of its request and answer messages.
  void FinishGrpc(std::shared_ptr<GrpcTicket> ticket, int code, size_t request_bytes = 0,
                  size_t response_bytes = 0);

  // Caller (caller.h): an InferenceService called in-process.
  void Call(const CallRequest& request, CallDone done) override;

  // Per revision seen since the previous call; resets the averages.
  std::vector<RevisionStats> CollectStats();
  // Prometheus text exposition of the gateway's metrics.
  std::string RenderMetrics() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace osprey::gateway
