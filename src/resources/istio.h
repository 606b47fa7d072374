#pragma once

// Istio's networking kinds as typed values (networking.istio.io v1, v1beta1
// and v1alpha3; the apiVersion is kept as written): Gateway, VirtualService,
// ServiceEntry and DestinationRule. Parsed by ParseYaml/FromJson (resources.h) with Istio's
// validation rules and errors naming the field path. What Osprey's gateway
// does not do yet is refused by name (a field Istio has that is not listed
// here), never accepted and ignored.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "resources/object_meta.h"

namespace osprey::resources {

// Istio's StringMatch: exactly one of exact, prefix, regex (RE2, matched
// against the whole value).
struct IstioStringMatch {
  enum class Kind { kExact, kPrefix, kRegex };
  Kind kind = Kind::kExact;
  std::string value;
  bool operator==(const IstioStringMatch&) const = default;
};

// One HTTPMatchRequest: every condition given must hold.
struct IstioHttpMatch {
  std::string name;
  std::optional<IstioStringMatch> uri;
  std::optional<IstioStringMatch> method;
  std::optional<IstioStringMatch> authority;
  std::vector<std::pair<std::string, IstioStringMatch>> headers;  // names lower-cased
  std::vector<std::pair<std::string, IstioStringMatch>> query_params;
  int port = 0;  // the Gateway port the request came in on; 0: any
  bool operator==(const IstioHttpMatch&) const = default;
};

struct IstioDestination {
  std::string host;    // as written: a short name, a FQDN or a ServiceEntry host
  int port = 0;        // destination.port.number; 0 when not given
  int weight = 0;      // percent; a lone destination without one takes 100
  std::string subset;  // a subset of the host's DestinationRule; "" for all of the host
  bool operator==(const IstioDestination&) const = default;
};

struct IstioHeaderOperations {
  std::vector<std::pair<std::string, std::string>> set;
  std::vector<std::pair<std::string, std::string>> add;
  std::vector<std::string> remove;
  bool operator==(const IstioHeaderOperations&) const = default;
};

// A route's destination: where, its weight, and its own header changes
// (after the route's).
struct IstioRouteDestination : IstioDestination {
  IstioHeaderOperations request_headers;
  IstioHeaderOperations response_headers;
  bool operator==(const IstioRouteDestination&) const = default;
};

// A route's corsPolicy: which origins may call it from a browser, and what
// the answers to their preflight (OPTIONS) requests allow.
struct IstioCorsPolicy {
  std::vector<IstioStringMatch> allow_origins;  // allowOrigins (and the old allowOrigin)
  std::vector<std::string> allow_methods;
  std::vector<std::string> allow_headers;
  std::vector<std::string> expose_headers;
  int64_t max_age_ms = 0;  // 0: not given
  std::optional<bool> allow_credentials;
  // unmatchedPreflights: FORWARD (a preflight of an origin not allowed goes
  // to the destination) or IGNORE (answered here without CORS headers).
  bool forward_unmatched_preflights = true;
  bool operator==(const IstioCorsPolicy&) const = default;
};

// One HTTPRoute of a VirtualService: its matches (any; none matches every
// request) and what it does: route to weighted destinations (with rewrite,
// timeout, retries, fault injection, mirroring, header changes), or redirect.
struct IstioHttpRoute {
  std::string name;
  std::vector<IstioHttpMatch> match;
  std::vector<IstioRouteDestination> route;
  // redirect (instead of route)
  bool redirect = false;
  std::string redirect_uri;        // "" keeps the path
  std::string redirect_authority;  // "" keeps the host
  std::string redirect_scheme;     // "" keeps the request's (http or https)
  int redirect_port = 0;           // 0 keeps the host's port (a scheme change drops it)
  int redirect_code = 301;
  // rewrite: the matched uri prefix (or the whole path, for an exact or
  // regex match) becomes rewrite_uri; the Host header becomes authority.
  std::optional<std::string> rewrite_uri;
  std::string rewrite_authority;
  int64_t timeout_ms = 0;  // 0: the gateway's default
  // retries: attempts after the first, each bounded by per_try_timeout_ms,
  // on the conditions of retry_on (Envoy's names: 5xx, gateway-error,
  // connect-failure, refused-stream, reset, retriable-4xx).
  std::optional<int> retry_attempts;
  int64_t retry_per_try_timeout_ms = 0;
  std::string retry_on;
  // fault injection, each on a share of the requests (percentage.value)
  double delay_percent = 0;
  int64_t delay_ms = 0;
  double abort_percent = 0;
  int abort_http_status = 0;
  // mirroring: a copy of mirror_percent of the requests (answer discarded)
  std::optional<IstioDestination> mirror;
  double mirror_percent = 100;
  IstioHeaderOperations request_headers;
  IstioHeaderOperations response_headers;
  std::optional<IstioCorsPolicy> cors;
  bool operator==(const IstioHttpRoute&) const = default;
};

struct VirtualService {
  ObjectMeta meta;
  std::string api_version;         // networking.istio.io/{v1,v1beta1,v1alpha3}
  std::vector<std::string> hosts;  // required; "*" and "*.suffix" allowed
  // Gateways the routes apply on ("ns/name" or "name" in the service's
  // namespace); none, or "mesh": in-cluster callers.
  std::vector<std::string> gateways;
  std::vector<IstioHttpRoute> http;
  bool operator==(const VirtualService&) const = default;
};

// A server's tls: SIMPLE termination with certificate and key files
// (PASSTHROUGH, MUTUAL, ISTIO_MUTUAL, AUTO_PASSTHROUGH and credentialName
// are refused), or, on an HTTP server, httpsRedirect alone.
struct IstioServerTls {
  bool https_redirect = false;
  std::string mode;                  // SIMPLE on an HTTPS server
  std::string server_certificate;    // PEM file
  std::string private_key;           // PEM file
  std::string min_protocol_version;  // TLSV1_2 or TLSV1_3 ("" TLSV1_2)
  bool operator==(const IstioServerTls&) const = default;
};

struct IstioServer {
  int port = 0;
  std::string port_name;
  std::string protocol;  // HTTP or HTTPS (GRPC, TCP, TLS are refused for now)
  std::vector<std::string> hosts;
  std::optional<IstioServerTls> tls;
  bool operator==(const IstioServer&) const = default;
};

// A Gateway: the ingress's listeners. Locally the platform's gateway is the
// one ingress; a server on port 80 is its HTTP port (as an ingress Service
// maps 80 to its pods), one on 443 its HTTPS port (`osprey up
// --https-port`); a server on another port is listened on as written, an
// HTTPS one with TLS (the certificate chosen by SNI among the port's
// servers' hosts).
struct IstioGateway {
  ObjectMeta meta;
  std::string api_version;
  std::map<std::string, std::string> selector;
  std::vector<IstioServer> servers;
  bool operator==(const IstioGateway&) const = default;
};

struct ServiceEntryPort {
  int number = 0;
  std::string name;
  std::string protocol;
  int target_port = 0;  // 0: the same number
  bool operator==(const ServiceEntryPort&) const = default;
};

struct ServiceEntryEndpoint {
  std::string address;                        // a numeric address (127.0.0.1)
  std::map<std::string, int> ports;           // port name -> the endpoint's port
  std::map<std::string, std::string> labels;  // what DestinationRule subsets select
  bool operator==(const ServiceEntryEndpoint&) const = default;
};

// A ServiceEntry: how a destination host is reached. Osprey's way to
// declare a local endpoint (resolution STATIC with endpoints: a host such
// as productpage.default.svc.cluster.local served by a process on this
// machine).
struct ServiceEntry {
  ObjectMeta meta;
  std::string api_version;
  std::vector<std::string> hosts;
  std::vector<ServiceEntryPort> ports;
  std::string location;    // MESH_EXTERNAL | MESH_INTERNAL
  std::string resolution;  // STATIC (DNS and NONE are refused for now)
  std::vector<ServiceEntryEndpoint> endpoints;
  bool operator==(const ServiceEntry&) const = default;
};

// A DestinationRule's trafficPolicy, block by block (a subset's block
// replaces the host's whole block of the same name).
struct IstioLoadBalancer {
  // simple: ROUND_ROBIN, LEAST_REQUEST (LEAST_CONN is its old name), RANDOM;
  // "" with consistentHash.
  std::string simple;
  // consistentHash: the replica is chosen by a hash of this request header
  // (lower case) or query parameter; exactly one is set with it.
  std::string hash_header;
  std::string hash_query;
  bool operator==(const IstioLoadBalancer&) const = default;
};

struct IstioConnectionPool {
  int max_connections = 0;              // tcp.maxConnections; 0: unset
  int http1_max_pending_requests = 0;   // 0: unset
  int http2_max_requests = 0;           // 0: unset
  int max_requests_per_connection = 0;  // 0: unset; 1: no connection reuse
  bool operator==(const IstioConnectionPool&) const = default;
};

// outlierDetection with Istio's defaults filled in.
struct IstioOutlierDetection {
  int consecutive_5xx_errors = 5;      // 0: off
  int consecutive_gateway_errors = 0;  // 0: off (consecutiveErrors is its old name)
  int64_t interval_ms = 10000;
  int64_t base_ejection_time_ms = 30000;
  int max_ejection_percent = 10;
  int min_health_percent = 0;
  bool operator==(const IstioOutlierDetection&) const = default;
};

struct IstioTrafficPolicy {
  std::optional<IstioLoadBalancer> load_balancer;
  std::optional<IstioConnectionPool> connection_pool;
  std::optional<IstioOutlierDetection> outlier_detection;
  bool operator==(const IstioTrafficPolicy&) const = default;
};

struct IstioSubset {
  std::string name;
  std::map<std::string, std::string> labels;  // what the subset's endpoints (revisions) carry
  IstioTrafficPolicy traffic_policy;
  bool operator==(const IstioSubset&) const = default;
};

// A DestinationRule: how a host's replicas are used once a route chose it
// (load balancing, connection-pool limits, outlier detection) and the named
// subsets of them that VirtualService destinations pick.
struct DestinationRule {
  ObjectMeta meta;
  std::string api_version;
  std::string host;  // lower case; a short name, a FQDN, or "*.suffix"
  IstioTrafficPolicy traffic_policy;
  std::vector<IstioSubset> subsets;
  // The namespaces whose clients it applies to: "*" (and none given) all,
  // "." its own, or names.
  std::vector<std::string> export_to;
  bool operator==(const DestinationRule&) const = default;
};

}  // namespace osprey::resources
