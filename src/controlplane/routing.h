#pragma once

// The gateway's route table from the InferenceServices' status, as a pure
// function. One route per InferenceService (its host, and its name for path
// routing) split as status.traffic says; with tag routing on
// (serving.kserve.io/enable-tag-routing: "true") a latest- host for the latest
// created revision and a prev- host for the revision tagged prev; with
// serving.osprey.dev/mirror-percent N, N% of the main route's requests copied
// to the latest revision once it is ready (answers discarded). Where a
// revision's replicas are (ports, sockets) is the executor's part: it hands
// each revision's gateway target in ready-made.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/reconciler.h"
#include "gateway/route_table.h"

namespace osprey::controlplane {

// Osprey's annotation for shadow traffic.
inline constexpr char kMirrorAnnotation[] = "serving.osprey.dev/mirror-percent";

struct RevisionRouting {
  // Key "{ns}/{revision}", name, containerConcurrency and the ready replicas
  // that stay (one about to be stopped is already left out).
  gateway::RevisionTarget target;
  bool aspired = false;
  RevisionPhase phase = RevisionPhase::kPending;
};

struct ServiceRouting {
  resources::ObjectMeta meta;
  std::optional<int> timeout_seconds;  // spec.predictor.timeout
  IsvcStatus status;
  std::vector<std::string> aspired;  // revision keys: in the table even without traffic
};

// `revisions` by key. A traffic entry whose revision is unknown is left out.
gateway::RouteTable PlanRoutes(const std::vector<ServiceRouting>& services,
                               const std::map<std::string, RevisionRouting>& revisions,
                               const PlatformConfig& config);

// Whether two tables route alike (routes, splits, mirrors, timeouts, revision
// endpoints and limits). A table is republished only when it changed: a
// route's draw sequence restarts with a new table.
bool SameRoutes(const gateway::RouteTable& a, const gateway::RouteTable& b);

}  // namespace osprey::controlplane
