#pragma once

// The control plane's REST API (JSON), served by the HTTP server. Osprey's
// kinds (resources/kinds.h) are served as a Kubernetes API server serves
// them, so kubectl and client libraries work against `osprey up`
// (kube_api.h: discovery, Status errors, Table answers):
//
//   GET    /version, /api, /api/v1, /apis, /apis/GROUP, /apis/GROUP/VERSION
//   GET    /apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME]   (a Table when Accept asks;
//          labelSelector, fieldSelector, limit/continue; ?watch=1 streams changes from
//          resourceVersion, with bookmarks; watch.h)
//   POST   /apis/GROUP/VERSION/namespaces/NS/PLURAL            create (409 if it exists)
//   PUT    /apis/GROUP/VERSION/namespaces/NS/PLURAL/NAME       update (404 if it does not)
//   PATCH  /apis/GROUP/VERSION/namespaces/NS/PLURAL/NAME       merge or JSON patch, or
//          server-side apply (managedFields and conflicts: field_manager.h)
//   GET    /apis/GROUP/VERSION/namespaces/NS/PLURAL/NAME/status (the status subresource)
//   GET    /openapi/v3, /openapi/v3/apis/GROUP/VERSION         (kubectl: validate on the server)
//   DELETE /apis/GROUP/VERSION/namespaces/NS/PLURAL/NAME       (finalizers honoured:
//          deletionTimestamp set, gone when the last is removed; preconditions)
//   (cluster-scoped kinds without /namespaces/NS)
//
// and Osprey's own:
//
//   POST   /osprey/v1/apply?namespace=NS          body: KServe YAML (multi-document)
//   GET    /osprey/v1[/namespaces/NS]/events
//   GET    /osprey/v1/namespaces/NS/inferenceservices/NAME/logs?revision=R&tail=N
//   GET    /osprey/v1[/namespaces/NS]/cost, .../inferenceservices/NAME/{cost,drift}
//   GET    /osprey/v1/prometheus/targets          Prometheus HTTP service discovery: this API
//                                                 and every ready replica, labelled
//   GET    /metrics                               the gateway's metrics and the platform's
//                                                 (Prometheus text)
//   GET    /healthz, /livez, /readyz
//
// Everything needs "Authorization: Bearer <token>" (401 otherwise) except
// health, /version, /metrics and the Prometheus targets. Errors under /api
// and /apis are Kubernetes Status objects (reason and code); elsewhere
// {"error": "..."} with the status code of their Status.

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "controlplane/local/api_meta.h"
#include "controlplane/local/controller.h"
#include "controlplane/local/field_manager.h"
#include "controlplane/local/watch.h"
#include "net/http_types.h"
#include "resources/kinds.h"

namespace osprey::controlplane {

// Replica logs sent (kubectl logs) and followed (-f): each file is read on
// this thread, at most 1 MiB per pass and only as fast as its client takes
// it, then every 200 ms for what it gained, until the stream ends.
class LogFollowers {
 public:
  ~LogFollowers() { Stop(); }
  // Sends `path` from `offset` on `stream`; with `follow`, what it gains
  // after, until the stream ends; else the answer ends at the file's end.
  // Either way at most `limit` bytes.
  void Follow(std::string path, uint64_t offset, bool follow, uint64_t limit,
              std::shared_ptr<HttpStream> stream);
  void Stop();

 private:
  struct Follower {
    std::string path;
    uint64_t offset;
    uint64_t end;  // where the answer ends: a byte limit, or the file's size when not followed
    bool follow;
    std::shared_ptr<HttpStream> stream;
  };
  void Run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Follower> followers_;
  bool stopped_ = false;
  std::thread thread_;
};

class ApiHandler : public HttpHandler {
 public:
  // `metrics` renders the gateway's Prometheus metrics for GET /metrics.
  ApiHandler(Controller* controller, std::string token, std::function<std::string()> metrics,
             WatchHub::Options watch_options = {});
  ~ApiHandler() override;
  void Handle(const HttpRequest& request, HttpDone done) override;
  // Ends every watch and followed log (their answers end); call before the
  // HTTP server drains.
  void StopWatches() {
    hub_.Stop();
    followers_.Stop();
  }

 private:
  HttpResponse Route(const HttpRequest& request);
  // Every object of a kind, as the watch hub lists it: Osprey's kinds with
  // their API metadata, replicas as core Pods, the platform's events as core
  // Events.
  absl::StatusOr<std::vector<ObjectView>> Objects(const resources::KindInfo& kind);
  HttpResponse Resource(const HttpRequest& request, const std::vector<std::string_view>& path,
                        std::map<std::string, std::string>& params);
  struct WriteOptions {
    bool dry_run = false;
    std::string manager;  // who writes (fieldManager), owner of the fields it changes
    // A server-side apply: who owns which field after it.
    std::optional<fields::Managed> applied;
  };
  HttpResponse Write(const std::string& body, const resources::KindInfo& kind,
                     const std::string& ns, const std::string& path_name,
                     const WriteOptions& options);
  HttpResponse Patch(const HttpRequest& request, const resources::KindInfo& kind,
                     const std::string& ns, const std::string& name,
                     std::map<std::string, std::string>& params, bool dry_run);
  HttpResponse Delete(const HttpRequest& request, const resources::KindInfo& kind,
                      const std::string& ns, const std::string& name,
                      std::map<std::string, std::string>& params);
  static HttpResponse KubeError(const absl::Status& status,
                                const resources::KindInfo* kind = nullptr,
                                std::string_view name = {});
  static HttpResponse KubeJson(absl::StatusOr<std::string> json);
  // The object as the hub has it now (with its resourceVersion).
  std::optional<ObjectView> Current(const resources::KindInfo& kind, const std::string& ns,
                                    const std::string& name);
  static HttpResponse Conflict(const resources::KindInfo& kind, std::string_view name);
  static HttpResponse BadRequest(std::string_view message, const resources::KindInfo* kind,
                                 std::string_view name);
  HttpResponse PodLog(const std::string& ns, const std::string& pod,
                      std::map<std::string, std::string>& params);
  HttpResponse Read(const HttpRequest& request, const resources::KindInfo& kind,
                    const std::string& ns, const std::string& name,
                    std::map<std::string, std::string>& params);
  Controller* controller_;
  std::string token_;
  std::function<std::string()> metrics_;
  // Held by each write (create, update, patch, apply, delete), so that its
  // checks (exists, resourceVersion, field conflicts, finalizers) and the
  // change they guard are one step.
  std::mutex writes_;
  ApiMetadata meta_;  // before hub_, whose listings it decorates
  WatchHub hub_;
  LogFollowers followers_;
};

}  // namespace osprey::controlplane
