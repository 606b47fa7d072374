#pragma once

// Runs InferenceGraphs inside the gateway: a request whose Host is a graph's
// (RouteTable::graphs) is answered by the graph's planner (graph_plan.h),
// whose calls go out on the request's own event loop: to a URL the gateway
// routes (an InferenceService's host, as serviceName steps resolve to)
// through the in-process Caller, with everything a client's request gets
// (traffic split, activator queue and scale from zero, timeouts,
// observers) and no extra hop; to any other http:// URL through the
// outbound HTTP client (net/http_upstream.h).
//
// Each step's request carries what KServe's router sends: the request's
// headers whose canonical names match one of the propagation patterns
// (regular expressions, unanchored, as the router's PROPAGATE_HEADERS),
// Content-Type (application/json unless propagated), and the request's
// x-request-id (made up when it has none), so that the steps of one graph
// request share it in the access log.
//
// Timeouts: spec.timeout bounds the whole request (Knative's revision
// timeout; Options::default_timeout when absent): past it the graph answers
// 504. spec.routerTimeouts.serviceClient bounds each step's call: a step
// past it got no answer (500, as the router's HTTP client errs).
//
// Threading: thread-safe; Update replaces the graphs as a whole (requests
// in progress keep theirs).

#include <chrono>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <vector>

#include "gateway/caller.h"
#include "gateway/graph_plan.h"
#include "gateway/route_table.h"
#include "net/http_types.h"

namespace osprey::gateway {

class GraphExecutor {
 public:
  struct Options {
    // Header name patterns to propagate to every step (KServe's router
    // config headers.propagate; none by default, as KServe's).
    std::vector<std::string> propagate_headers;
    std::chrono::seconds default_timeout{300};
  };

  // `caller` (the gateway) must outlive the executor. Invalid patterns are
  // logged and left out.
  GraphExecutor(Caller* caller, Options options);
  ~GraphExecutor();

  // The graphs of `table` (compiled once per change of a graph's JSON; a
  // graph that does not compile is logged and left unrouted).
  void Update(std::shared_ptr<const RouteTable> table);

  // Whether some graph is routed (a cheap check for the gateway's hot path).
  bool any() const { return any_.load(std::memory_order_relaxed); }

  // When `request`'s Host is a graph's: runs it, answers through `done`
  // (moved from) and returns true. Otherwise false, `done` untouched. Needs
  // the HTTP server's event loop (request.io_context).
  bool Handle(const HttpRequest& request, HttpDone& done);

 private:
  struct State;
  struct Run;
  std::shared_ptr<const State> Current() const;

  Caller* caller_;
  Options options_;
  std::vector<std::regex> patterns_;
  mutable std::mutex mu_;
  std::shared_ptr<const State> state_;
  std::atomic<bool> any_{false};
};

}  // namespace osprey::gateway
