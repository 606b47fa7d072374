#pragma once

// The gateway's entry point: finds the InferenceService a request is for, by
// Host ({name}-{namespace}.{domain}) or, failing that, by the model name in a
// V1/V2 path (/v1/models/{name}..., /v2/models/{name}...), and forwards it to
// a ready replica of the revision that takes its traffic (round robin).
//
// Forwarding runs on a pool of proxy threads, each with its own keep-alive
// connections to the replicas; the HTTP server's loops never block on a
// replica. A connection failure before the request was sent is retried on
// another replica; nothing is retried once a replica may have seen it.

#include <functional>
#include <memory>
#include <string>

#include "gateway/route_table.h"
#include "server/http_types.h"

namespace osprey::gateway {

class EntryHandler : public HttpHandler {
 public:
  struct Options {
    int proxy_threads = 16;
    int default_timeout_seconds = 60;
  };
  using RouteSource = std::function<std::shared_ptr<const RouteTable>()>;

  EntryHandler(Options options, RouteSource routes);
  ~EntryHandler() override;
  void Handle(const HttpRequest& request, HttpDone done) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The target of a request, or nullptr: by host first, then by the model name
// in the path (a name served in several namespaces prefers "default").
const RouteTarget* FindTarget(const RouteTable& table, std::string_view host,
                              std::string_view path);

}  // namespace osprey::gateway
