#pragma once

// The local control plane's executor: keeps InferenceServices, runtimes and
// revisions in the store, runs the reconciler's plans (model downloads through
// the storage initializer, replica processes through the supervisor), writes
// back KServe-shaped status, and publishes the route table the gateway reads.
//
// Threading: public methods are thread-safe. One reconcile thread runs passes
// when something changed (apply, delete, a replica or download state change)
// and on a short tick; downloads run on their own threads.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "autoscaler/kpa.h"
#include "common/status.h"
#include "controlplane/istio.h"
#include "controlplane/local/placement.h"
#include "controlplane/reconciler.h"
#include "gateway/route_table.h"

namespace osprey::controlplane {

using gateway::RouteTable;
class Store;

class Controller {
 public:
  struct Options {
    std::string data_dir;  // store, logs and model cache live here
    PlatformConfig platform;
    LocalConfig local;  // how revisions run here
    std::string pvc_root;
    std::chrono::milliseconds tick{200};
    std::chrono::milliseconds replica_stop_grace{10000};
    // Between a replica leaving the routes and its SIGTERM.
    std::chrono::milliseconds replica_drain_delay{1000};
    std::chrono::milliseconds replica_startup_timeout{120000};
    // Autoscaling: the KPA defaults (windows, grace, rates) and how often the
    // gateway's measurements are collected for a decision.
    autoscaler::KpaSpec kpa;
    std::chrono::milliseconds autoscale_tick{2000};
    std::function<std::vector<gateway::RevisionStats>()> collect_stats;
    // How often the replicas' drift detectors are read (events, Drift()).
    std::chrono::milliseconds drift_poll{2000};
    // The cost view's recent window ("the last hour"; tests shorten it), and
    // how much of it must be observed before right-sizing advice is given.
    std::chrono::milliseconds cost_window{std::chrono::hours(1)};
    // Receives every new route table (the gateway's Update).
    std::function<void(std::shared_ptr<const RouteTable>)> on_routes;
    // The ports of Istio Gateway servers besides the gateway's own HTTP
    // port (istio.h Listener: HTTP, or HTTPS with certificates), each time
    // they change: listened on by the gateway; returns why a port could not
    // be listened on, by port.
    std::function<std::map<int, std::string>(const std::map<int, Listener>&)> on_listeners;
    // Where on_listeners serves port 443 (0: 443 itself): httpsRedirect points there.
    int https_port = 0;
  };

  // Opens the store, loads what it holds, re-adopts replicas still running
  // from a previous run, and starts reconciling.
  static absl::StatusOr<std::unique_ptr<Controller>> Start(Options options);
  ~Controller();

  struct ApplyResult {
    std::string kind;
    std::string namespace_;
    std::string name;
    std::string action;  // created | configured | unchanged
  };
  // Parses (KServe YAML, one or more documents), validates all documents
  // before storing any. Relative bare-path storageUris are taken relative to
  // `base_dir`; documents without a namespace get `default_namespace`.
  // `dry_run`: every check (against what is stored too), nothing stored (and
  // no action in the results).
  absl::StatusOr<std::vector<ApplyResult>> Apply(std::string_view yaml,
                                                 const std::string& default_namespace,
                                                 const std::string& base_dir, bool dry_run = false);
  absl::Status Delete(std::string_view kind, const std::string& ns, const std::string& name);

  // JSON documents as the API returns them (resource + metadata + status).
  // kind: inferenceservices | servingruntimes | clusterservingruntimes |
  // revisions | podautoscalers | events. ns "" lists every namespace.
  absl::StatusOr<std::string> List(std::string_view kind, const std::string& ns);
  absl::StatusOr<std::string> Get(std::string_view kind, const std::string& ns,
                                  const std::string& name);
  // Where replica `index` of revision `rev` writes its output.
  std::string LogFile(const std::string& ns, const std::string& rev, int index) const;
  // Every object of `kind` in every namespace, each as Get renders it.
  absl::StatusOr<std::vector<std::string>> Objects(std::string_view kind);
  // The store, where the API keeps its own records of objects (api_meta.h).
  Store* store();
  // The last `tail_lines` lines of the replicas' logs of an InferenceService
  // (its latest revision unless `revision` is given).
  absl::StatusOr<std::string> Logs(const std::string& ns, const std::string& name,
                                   const std::string& revision, int tail_lines);

  // The drift detection of an InferenceService as last read from its
  // replicas: {"name", "namespace", "enabled", "revision", "polled", "drift",
  // "windowsTested", "minPValue", "threshold", "outliersTotal", "replicas":
  // [{"replica", "state": the replica's /drift JSON}]}; "enabled" false
  // without serving.osprey.dev/drift-reference. NotFound for no such service.
  absl::StatusOr<std::string> Drift(const std::string& ns, const std::string& name);
  // The cost view (cost.h) of namespace `ns` ("": all), of one
  // InferenceService when `name` is given: per revision, its replica-seconds,
  // CPU-seconds, memory (average, peak, now), requests and CPU-seconds per
  // 1,000 requests, over the last window and since first seen, with its
  // right-sizing advice. JSON {"windowSeconds", "items": [...]}.
  absl::StatusOr<std::string> Cost(const std::string& ns, const std::string& name);
  // The same numbers as Prometheus series.
  std::string CostMetrics();

  std::shared_ptr<const RouteTable> Routes() const;

  // The kinds (resources::Kinds() plurals) List and Get serve, and whether
  // Delete takes each.
  static std::vector<std::pair<std::string, bool>> KindsServed();
  // The gateway holds requests for this revision ("{ns}/{revision}") and it
  // has no ready replica: scale it up now, not at the next autoscaler tick.
  void Activate(const std::string& revision_key);

  // Stops reconciling; with `stop_replicas`, stops every replica gracefully
  // (else they keep running, to be re-adopted by the next start).
  void Shutdown(bool stop_replicas);

 private:
  struct Impl;
  explicit Controller(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace osprey::controlplane
