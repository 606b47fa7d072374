#pragma once

// The cluster as `osprey gateway` reads it, as pure functions over JSON:
// InferenceServices (their status says where traffic goes), the
// EndpointSlices of each revision's Service (where its ready replicas are)
// and the revisions' Deployments (their spec, what the autoscaler scales).
//
// Routes: a revision's replicas are the ready endpoints of the
// EndpointSlices labelled kubernetes.io/service-name={revision} in the
// InferenceService's namespace (the Service the operator makes per
// revision, objects.h): the first address of each, its port named http and,
// when there is one, the port named grpc. Each InferenceService routes as
// `osprey up` routes it (routing.h) from its status: the revisions in
// status traffic, and the latest created one, are aspired (in the route
// table even with no replica, so that their requests wait in the gateway's
// queue while they scale up).
//
// Knative Services route as on `osprey up` (routing.h KnativeRouting) from
// their status, their revisions' replicas found the same way.
//
// Autoscaling: each of Osprey's revision Deployments whose InferenceService
// is not scaled by an HPA (serving.kserve.io/autoscalerClass: hpa) is a
// scale target: with its KPA settings (scaling.h) while aspired, to zero
// once not.

#include <rapidjson/fwd.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "autoscaler/kpa.h"
#include "controlplane/reconciler.h"
#include "controlplane/routing.h"
#include "resources/resources.h"

namespace osprey::controlplane {

inline constexpr char kServiceNameLabel[] = "kubernetes.io/service-name";

// One ready endpoint of a revision's Service.
struct Endpoint {
  std::string address;  // numeric IPv4 or IPv6, as the slice has it
  uint16_t http_port = 0;
  uint16_t grpc_port = 0;  // 0: the Service has no grpc port
  bool operator==(const Endpoint&) const = default;
};

// An EndpointSlice's ready endpoints (conditions.ready true, or absent,
// which Kubernetes reads as ready; terminating endpoints are not ready).
// FQDN slices and endpoints without an http port have none.
struct SliceView {
  std::string namespace_;
  std::string service;  // its kubernetes.io/service-name label
  std::vector<Endpoint> ready;
};
SliceView ReadEndpointSlice(const rapidjson::Value& slice);

// An InferenceService as the gateway routes and scales it.
struct IsvcView {
  // meta, spec.predictor.timeout, status, and the aspired revision keys
  // ("{ns}/{revision}"): those in status traffic, then the latest created.
  ServiceRouting routing;
  // Its spec; nullopt when it does not parse (it is still routed by its
  // status, and not scaled).
  std::optional<resources::InferenceService> spec;
  // The component of that name in the spec (nullptr: none, or no spec).
  const resources::Component* Component(std::string_view name) const {
    return spec ? ComponentOf(*spec, name) : nullptr;
  }
};
IsvcView ReadInferenceService(const rapidjson::Value& isvc);

// A Knative Service as the gateway routes and scales it.
struct KsvcView {
  // meta, spec.template.spec.timeoutSeconds, the status's traffic, and the
  // aspired revision keys: those in status traffic, then the latest created.
  KnativeRouting routing;
  std::string latest_ready;
  // Its spec; nullopt when it does not parse (routed by its status, not scaled).
  std::optional<resources::KnativeService> spec;
};
KsvcView ReadKnativeService(const rapidjson::Value& ksvc);

// One of Osprey's revision Deployments.
struct DeploymentView {
  std::string name;
  RevisionSpec revision;
  int replicas = 0;        // spec.replicas (1 when absent, as Kubernetes defaults it)
  int ready_replicas = 0;  // status.readyReplicas
  // Its pods' labels (istio.h RevisionPodLabels), what DestinationRule subsets select.
  std::map<std::string, std::string> pod_labels;
};
// nullopt when it is not one of Osprey's (objects.h RevisionOfDeployment).
std::optional<DeploymentView> ReadDeployment(const rapidjson::Value& deployment);

// What PlanRoutes takes. Each aspired revision's target: its ready
// endpoints (deduplicated over its slices, in slice order), its
// containerConcurrency (from its own spec when its Deployment is known,
// else the InferenceService's), and its phase: ready when it has ready
// endpoints, takes traffic or is the latest ready one.
// Knative Services' revisions alike (their containerConcurrency from the
// template).
struct ClusterRouting {
  std::vector<ServiceRouting> services;
  std::vector<KnativeRouting> knative;
  std::map<std::string, RevisionRouting> revisions;
};
ClusterRouting RoutingFromCluster(const std::vector<IsvcView>& isvcs,
                                  const std::vector<SliceView>& slices,
                                  const std::vector<DeploymentView>& deployments,
                                  const std::vector<KsvcView>& ksvcs = {});

// A Deployment the gateway's autoscaler scales.
struct ScaleTarget {
  std::string key;  // "{ns}/{revision}"
  std::string namespace_;
  std::string revision;
  std::string deployment;
  bool aspired = false;     // false: to zero
  autoscaler::KpaSpec kpa;  // while aspired: KpaSpecFor over `defaults`
  int replicas = 0;
  int ready_replicas = 0;
};
// Every Deployment of `deployments` whose InferenceService is in `isvcs`,
// parses, and is not scaled by an HPA, or whose Knative Service is in
// `ksvcs` (its KPA settings: the revision's template's annotations); by
// key. Aspired: named by its owner's status (traffic, latest created), or
// newer than every revision the status names (made just before the status
// says so).
std::vector<ScaleTarget> ScaleTargets(const std::vector<IsvcView>& isvcs,
                                      const std::vector<DeploymentView>& deployments,
                                      const autoscaler::KpaSpec& defaults,
                                      const std::vector<KsvcView>& ksvcs = {});

// The replicas an autoscaler decision asks for, and whether to write them:
// only when they differ from the last ones written (`last`), or, before any
// (`last` -1), from what the Deployment runs (`current`). A request held
// for the revision (`activating`) asks for at least one.
struct ScaleWrite {
  int replicas = 0;
  bool write = false;
};
ScaleWrite ScaleFor(int desired, bool activating, int last, int current);

}  // namespace osprey::controlplane
