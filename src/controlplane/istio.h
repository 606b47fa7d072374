#pragma once

// Istio's VirtualServices as gateway routes, a pure function: (virtual
// services, gateways, service entries, where each in-cluster service's
// requests go) -> routes and the endpoints they reach.
//
// A VirtualService applies when it names no gateway (or "mesh": callers on
// this machine reach the same gateway), or when a Gateway it names exists
// ("name" in its namespace, or "namespace/name"). Each HTTPRoute becomes
// one gateway route per match (Istio's matches are alternatives), in the
// order written, on the service's hosts ("*" and "*.suffix" included), with
// its uri (exact, prefix, regex), header, method and query matches; a
// destination host resolves, in the service's namespace, to a Knative
// Service or an InferenceService of that name (its routed traffic, weights
// multiplied through) or to a ServiceEntry's endpoints (Osprey's way to
// declare a local endpoint). Routes of VirtualServices with exact hosts come
// before every InferenceService's and Knative Service's routes, those with
// wildcard hosts after them.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "controlplane/routing.h"
#include "resources/resources.h"

namespace osprey::controlplane {

struct IstioInput {
  std::vector<const resources::VirtualService*> virtual_services;
  std::vector<const resources::IstioGateway*> gateways;
  std::vector<const resources::ServiceEntry*> service_entries;
  // Where requests to each in-cluster service go, by its
  // "{name}.{ns}.svc.cluster.local": its routed revisions and percents.
  std::map<std::string, std::vector<KeyShare>> services;
};

struct IstioPlan {
  std::vector<KeyedRoute> routes;
  // ServiceEntry endpoints as revision targets, by key
  // ("{ns}/serviceentry:{name}:{port}").
  std::map<std::string, RevisionRouting> endpoints;
  // Per VirtualService ("ns/name"): what it could not do (a gateway or
  // destination it names that does not exist); empty when it is whole.
  std::map<std::string, std::vector<std::string>> problems;
};

IstioPlan PlanIstio(const IstioInput& input);

// A destination host as the FQDN it names from namespace `ns`: "reviews" ->
// reviews.{ns}.svc.cluster.local, "reviews.prod" -> reviews.prod.svc.cluster.local;
// any other name as written.
std::string IstioFqdn(const std::string& host, const std::string& ns);

// Each destination's weight times its split's percents, to whole percents
// (largest remainder); a destination with no split leaves its weight
// unserved (the route answers 503 for that share); empty when none has any.
std::vector<KeyShare> CombineShares(
    const std::vector<std::pair<int, std::vector<KeyShare>>>& by_weight);

}  // namespace osprey::controlplane
