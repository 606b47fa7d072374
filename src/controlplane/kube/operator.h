#pragma once

// `osprey operator`: KServe's InferenceService (serving.kserve.io/v1beta1),
// ServingRuntime and ClusterServingRuntime (v1alpha1) reconciled on
// Kubernetes with the same plan as `osprey up` (reconciler, observe, views:
// no rule of its own). Informers keep the objects in memory; a work queue
// keyed by namespace/name hands each InferenceService to one worker at a
// time; writes are server-side applies as field manager "osprey" (conflicts
// are reported, never forced) and only when something changed.
//
// Knative Services (serving.knative.dev/v1 Service), when the cluster serves
// that kind at the operator's start and `knative` is on: each template
// change a revision (knative.h decides, as on `osprey up`), run as a
// Deployment and a Service owned by the Knative Service (objects.h), its
// status (url, conditions, latest revisions, traffic) written as Knative's
// controller writes it; the gateway routes and scales them. A cluster that
// runs Knative Serving's own controller turns this off (or gives Osprey
// only annotated Services with Claim::kAnnotated).

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "controlplane/kube/objects.h"
#include "controlplane/reconciler.h"
#include "kube/client.h"
#include "kube/informer.h"
#include "kube/workqueue.h"

namespace osprey::controlplane {

struct OperatorOptions {
  std::string namespace_;  // "" watches every namespace
  int workers = 4;
  Claim claim = Claim::kAll;
  bool knative = true;  // take Knative Services when the cluster serves them
  KubePlacementConfig placement;
  PlatformConfig platform;
  // Asked before every write; false refuses it (a leader that may have lost
  // its lease writes nothing). Unset: always.
  std::function<bool()> may_write;
};

struct OperatorStats {
  uint64_t reconciles = 0;
  uint64_t applies = 0;  // server-side applies sent (objects and status)
  uint64_t events = 0;
  uint64_t errors = 0;
};

class Operator {
 public:
  Operator(kube::Client* client, OperatorOptions options);
  ~Operator();

  // Starts the informers, waits for their first lists, then the workers
  // (blocks until then; Stop from another thread ends the wait).
  absl::Status Start();
  void Stop();
  bool synced() const;
  OperatorStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace osprey::controlplane
