#pragma once

// The Kubernetes side of `osprey gateway`: informers on InferenceServices,
// EndpointSlices and Osprey's revision Deployments feed the gateway its
// route table, and the gateway's measurements feed a KPA per revision that
// scales the revision's Deployment (the parts of Knative's activator and
// autoscaler that live outside the gateway itself). The gateway is reached
// through two callbacks only, as `osprey up`'s controller reaches it.
//
// Knative: when the cluster serves serving.knative.dev/v1 Services at
// Start, they route as on `osprey up` (their status says where traffic
// goes) and their revisions scale like InferenceServices'.
//
// Istio: when the cluster serves networking.istio.io, its VirtualServices,
// Gateways, ServiceEntries and DestinationRules route here as they do on
// `osprey up` (istio.h): one gateway serves Istio's and KServe's routes.
//
// Routes: any change of the watched objects rebuilds the table (after a
// short debounce, so that a burst of changes makes one table) with the
// pure functions of routes.h and routing.h, and hands it over only when
// SameRoutes says it routes differently.
//
// Scale: every `autoscale_tick`, each scale target (routes.h) gets a KPA
// decision (autoscaler/kpa.h) on the gateway's measurements of its
// revision; a changed decision is written through the Deployment's scale
// subresource; a revision starting for the first time keeps the scale it
// was made with until a replica is ready (a slow first start is not
// idleness). Before the scale of a revision to zero is written, the
// revision is routed with no endpoint, so that a request arriving then
// waits in the queue (and activates it) rather than racing its pods' exit.
// A revision no longer aspired is scaled to zero. A request
// held for a revision at zero (Activate) scales it to one at once, without
// waiting for the tick. With `may_scale` set (leader election), only the
// leader decides; any gateway still activates.
//
// Threading: Start, Stop and the accessors from any thread; Activate never
// blocks (it is called on the gateway's threads). The callbacks run on the
// sync's own threads.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autoscaler/kpa.h"
#include "common/status.h"
#include "controlplane/reconciler.h"
#include "gateway/route_table.h"
#include "kube/client.h"

namespace osprey::controlplane {

struct GatewaySyncOptions {
  std::string namespace_;  // "" watches every namespace
  // Which EndpointSlices to watch ("" every one). The EndpointSlice
  // controller copies a Service's labels onto its slices, so
  // app.kubernetes.io/managed-by=osprey keeps to the revisions' own.
  std::string endpointslice_selector;
  PlatformConfig platform;
  std::chrono::milliseconds debounce{5};
  // The gateway: takes each new table, and gives its measurements.
  std::function<void(std::shared_ptr<const gateway::RouteTable>)> on_routes;
  std::function<std::vector<gateway::RevisionStats>()> collect_stats;
  bool autoscale = true;
  autoscaler::KpaSpec kpa;  // the defaults under each revision's own settings
  std::chrono::milliseconds autoscale_tick{2000};
  std::function<bool()> may_scale;  // unset: always
};

struct GatewaySyncStats {
  uint64_t route_updates = 0;  // tables handed to the gateway
  uint64_t scale_writes = 0;   // scale subresource patches sent
  uint64_t scale_errors = 0;   // of them, failed (retried on the next decision)
  uint64_t activations = 0;    // revisions scaled up from zero for a held request
};

class GatewaySync {
 public:
  GatewaySync(kube::Client* client, GatewaySyncOptions options);
  ~GatewaySync();
  GatewaySync(const GatewaySync&) = delete;
  GatewaySync& operator=(const GatewaySync&) = delete;

  // Starts the informers and the sync's threads; returns at once. The first
  // table is handed over once every informer listed (synced()).
  void Start();
  void Stop();
  // The informers listed and the first table was handed over.
  bool synced() const;
  // A request waits for `revision_key` ("{ns}/{revision}") with no replica.
  void Activate(const std::string& revision_key);
  // The last table handed over (an empty one before the first).
  std::shared_ptr<const gateway::RouteTable> routes() const;
  GatewaySyncStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace osprey::controlplane
