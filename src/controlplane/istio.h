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
//
// DestinationRules: a host's rule is the one whose host names it exactly
// (else the longest "*.suffix" that covers it), the client's namespace's
// first, then the host's own, then any (by namespace and name). Its traffic
// policy becomes the PoolPolicy of every revision (or ServiceEntry
// endpoint set) the host reaches. A destination's `subset` picks, by its
// labels, the ServiceEntry endpoints that carry them (a pool of their own,
// keyed "{ns}/serviceentry:{name}:{port}:{subset}") or the host's routed
// revisions that carry them (their percents scaled to 100); the subset's
// trafficPolicy blocks replace the host's blocks of the same name for them.

#include <map>
#include <memory>
#include <optional>
#include <set>
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
  std::vector<const resources::DestinationRule*> destination_rules;
  // Each revision's labels, by key (what subsets select).
  std::map<std::string, std::map<std::string, std::string>> revision_labels;
  // Where requests to each in-cluster service go, by its
  // "{name}.{ns}.svc.cluster.local": its routed revisions and percents.
  std::map<std::string, std::vector<KeyShare>> services;
  // Where the gateway's own HTTPS port (443) is served; 0: 443 itself.
  int https_port = 0;
};

// A certificate of an HTTPS listener, for its server's hosts (SNI).
struct ListenerCertificate {
  std::vector<std::string> hosts;
  std::string certificate;  // PEM file
  std::string private_key;  // PEM file
  bool operator==(const ListenerCertificate&) const = default;
};

// A port the gateway listens on for Gateway servers: plain HTTP, or HTTPS
// with the certificates of its servers.
struct Listener {
  bool https = false;
  std::vector<ListenerCertificate> certificates;
  bool tls13_only = false;  // a server there asks minProtocolVersion TLSV1_3
  bool operator==(const Listener&) const = default;
};

struct IstioPlan {
  std::vector<KeyedRoute> routes;
  // HTTP servers' httpsRedirect: a 301 to https for their hosts on their
  // port, to go before every other route where TLS ends at the gateway
  // (`osprey up`); not where it ends before it (a cluster's load balancer).
  std::vector<KeyedRoute> https_redirects;
  // ServiceEntry endpoints as revision targets, by key
  // ("{ns}/serviceentry:{name}:{port}").
  std::map<std::string, RevisionRouting> endpoints;
  // Gateway server ports other than 80 (the gateway's own HTTP port), by
  // number: each a listener of the gateway (443: its own HTTPS port),
  // serving the routes of the VirtualServices bound to a Gateway with a
  // server there. The first server on a port (Gateways in input order)
  // decides its protocol; a server of the other protocol there is left out
  // with a gateway problem, as is an HTTPS server on port 80.
  std::map<int, Listener> listeners;
  // Per Gateway ("ns/name"): its servers that are not served, and why.
  std::map<std::string, std::vector<std::string>> gateway_problems;
  // DestinationRule traffic policies by revision (or endpoint) key.
  std::map<std::string, std::shared_ptr<const gateway::PoolPolicy>> policies;
  // Per VirtualService ("ns/name"): what it could not do (a gateway or
  // destination it names that does not exist); empty when it is whole.
  std::map<std::string, std::vector<std::string>> problems;
};

IstioPlan PlanIstio(const IstioInput& input);

// The in-cluster hosts of an InferenceService (its entry component's
// {name}.{ns}.svc.cluster.local and each component's
// {name}-{component}.{ns}...) and of a Knative Service, with their routed
// revisions and percents, into in->services (pure).
void AddServiceHosts(const resources::ObjectMeta& meta, const IsvcStatus& status, IstioInput* in);
void AddServiceHosts(const KnativeRouting& knative, IstioInput* in);

// A revision's labels as its pods carry them, which DestinationRule subsets
// select: its component's (or Knative template's) own labels and the
// serving.knative.dev/revision, service and configuration (or
// serving.kserve.io/inferenceservice and component) ones (pure).
std::map<std::string, std::string> RevisionPodLabels(const RevisionSpec& rev,
                                                     const resources::Component* component);

// A DestinationRule's traffic policy as the gateway applies it, `subset`'s
// blocks replacing the host's (pure); null when neither sets anything.
std::shared_ptr<const gateway::PoolPolicy> PoolPolicyOf(
    const resources::IstioTrafficPolicy& host, const resources::IstioTrafficPolicy* subset);

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
