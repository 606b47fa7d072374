#pragma once

// The gateway's routing, as data: an immutable snapshot that the control
// plane builds from its InferenceServices (and that Istio VirtualService
// rules or Knative traffic blocks map onto) and replaces as a whole on every
// change. Readers keep the shared_ptr they took for one request.
//
// A request is matched against the routes in order: host (exact, any of
// `hosts`), then the URI and header matches. When no route's host matches,
// the model name in a V1/V2 path (/v1/models/NAME..., /v2/models/NAME...)
// selects the route whose `model_name` it is. The route then splits requests
// between revisions by weight, optionally mirrors a share to another revision
// (answer discarded), with a per-route timeout and retries on connection
// failure only.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace re2 {
class RE2;
}

namespace osprey::gateway {

namespace internal {
bool RegexFullMatch(const re2::RE2& re, std::string_view s);
}

struct StringMatch {
  // kPrefixSuffix: starts with `value` and, after it, ends with `suffix`
  // (/serving/{ns}/{name}/...:explain). kRegex: `regex` (compiled from
  // `value`, RE2 syntax) matches the whole string.
  enum class Kind { kExact, kPrefix, kSuffix, kPrefixSuffix, kRegex };
  Kind kind = Kind::kPrefix;
  std::string value;
  std::string suffix;                     // kPrefixSuffix only
  std::shared_ptr<const re2::RE2> regex;  // kRegex only
  // A kRegex match of `pattern` (nullopt when it does not compile).
  static std::optional<StringMatch> Regex(const std::string& pattern);
  // The same match (a regex is known by its pattern).
  bool operator==(const StringMatch& o) const {
    return kind == o.kind && value == o.value && suffix == o.suffix;
  }
  bool Matches(std::string_view s) const {
    switch (kind) {
      case Kind::kExact:
        return s == value;
      case Kind::kPrefix:
        return s.starts_with(value);
      case Kind::kSuffix:
        return s.ends_with(value);
      case Kind::kPrefixSuffix:
        return s.size() >= value.size() + suffix.size() && s.starts_with(value) &&
               s.ends_with(suffix);
      case Kind::kRegex:
        return regex != nullptr && internal::RegexFullMatch(*regex, s);
    }
    return false;
  }
};

struct HeaderMatch {
  std::string name;  // compared case-insensitively
  StringMatch value;
};

// How a revision's replicas are used (an Istio DestinationRule's traffic
// policy, as Envoy applies a cluster's): which replica a request takes,
// how many requests may be in flight and waiting, and outlier detection,
// which ejects a replica after consecutive failures for a while.
struct PoolPolicy {
  enum class Balance {
    kLeastRequest,  // the replica with the fewest requests outstanding (the default)
    kRoundRobin,
    kRandom,
    kHash,  // by a hash of `hash_header` or `hash_query`: the same value, the same replica
  };
  Balance balance = Balance::kLeastRequest;
  std::string hash_header;  // lower case
  std::string hash_query;
  // Requests in flight across the replicas, one per connection
  // (connectionPool tcp.maxConnections): past it a request waits; 0: no
  // bound but each replica's containerConcurrency.
  int max_in_flight = 0;
  // Requests in flight or waiting (http.http2MaxRequests): past it a request
  // is refused at once (503); 0: none.
  int max_requests = 0;
  // Requests waiting for room (http.http1MaxPendingRequests); 0: the
  // gateway's queue limit. Past it a request is refused at once (503).
  int max_pending = 0;
  bool close_connections = false;  // maxRequestsPerConnection 1: no connection reuse
  // Outlier detection (each count 0: off). A replica is ejected after
  // `consecutive_5xx` answers of 500-599 in a row, or `consecutive_gateway`
  // of 502, 503 or 504 in a row (a failure to reach it, a broken exchange
  // or a timeout counts as both), for base_ejection_ms times the number of
  // its ejections; each interval_ms it spends back in the pool takes one
  // from that number. No more than max_ejection_percent of the replicas are
  // ejected at once (always at least one may be); while fewer than
  // min_health_percent are left, ejections are ignored.
  int consecutive_5xx = 0;
  int consecutive_gateway = 0;
  int64_t interval_ms = 10000;
  int64_t base_ejection_ms = 30000;
  int max_ejection_percent = 10;
  int min_health_percent = 0;
  bool outlier_detection() const { return consecutive_5xx > 0 || consecutive_gateway > 0; }
  bool operator==(const PoolPolicy&) const = default;
};

// One revision's replicas as the control plane sees them.
struct RevisionTarget {
  std::string key;              // "{namespace}/{revision}": unique
  std::string revision;         // its name
  std::vector<uint16_t> ports;  // ready replicas' HTTP ports, on `hosts`
  // Their gRPC endpoints ("unix:/path", or "host:port" on another host), by
  // the same index; "" for a replica that serves no gRPC.
  std::vector<std::string> grpc_targets;
  // Unix domain sockets their HTTP is also served on ("" for none): cheaper
  // than TCP for the gateway's calls.
  std::vector<std::string> http_sockets;
  // Their replica-link sockets (link/frame.h; "" for none, e.g. a
  // custom container): preferred over HTTP when present.
  std::vector<std::string> link_sockets;
  int container_concurrency = 0;  // hard in-flight limit per replica, 0: none
  // The replicas' hosts by the same index as `ports` (numeric addresses,
  // e.g. pod IPs); "" or absent: 127.0.0.1. A replica is known by its host
  // and port together.
  std::vector<std::string> hosts;
  std::shared_ptr<const PoolPolicy> policy;  // null: the defaults
};

// Header changes: request headers (names lower case) set (replacing),
// added, removed before forwarding; the same on the answer.
struct HeaderOps {
  std::vector<std::pair<std::string, std::string>> request_set, request_add;
  std::vector<std::string> request_remove;
  std::vector<std::pair<std::string, std::string>> response_set, response_add;
  std::vector<std::string> response_remove;
  bool empty() const { return *this == HeaderOps{}; }
  bool operator==(const HeaderOps&) const = default;
};

struct WeightedRevision {
  size_t revision = 0;  // index into RouteTable::revisions
  int percent = 0;
  // The destination's own header changes (an Istio route destination's
  // `headers`), after the route's; null: none.
  std::shared_ptr<const HeaderOps> headers;
};

// Payload logging of a component's exchanges (its InferenceService's
// `logger`): CloudEvents POSTed to `url` (gateway/observers/payload_log.h).
struct RouteLogger {
  enum class Mode { kAll, kRequest, kResponse };
  std::string url;
  Mode mode = Mode::kAll;
  std::string component;                      // whose logger: predictor, transformer or explainer
  std::vector<std::string> metadata_headers;  // request headers copied into events
  // The InferenceService's annotations named by metadataAnnotations, by name.
  std::vector<std::pair<std::string, std::string>> annotations;
  bool operator==(const RouteLogger&) const = default;
};

// What an Istio VirtualService route does besides choosing revisions:
// redirect, fault injection, header changes, the Host sent on, and retries
// beyond a refused connection. Shared by the routes one HTTPRoute makes.
struct RoutePolicy {
  struct Redirect {
    std::string uri;        // "" keeps the path
    std::string authority;  // "" keeps the host
    int code = 301;
    std::string scheme;  // "" keeps the request's (https over TLS, else http)
    int port = 0;        // 0 keeps the host's port; a changed scheme drops it
    bool operator==(const Redirect&) const = default;
  };
  std::optional<Redirect> redirect;  // answered by the gateway, nothing forwarded
  std::string authority;             // the Host sent on; "" keeps the client's
  // Fault injection, each on its share of requests (0..100).
  double delay_percent = 0;
  int delay_ms = 0;
  double abort_percent = 0;
  int abort_status = 0;
  HeaderOps headers;
  // Retries (Route::retries attempts) also on an answer of 500-599, a
  // broken exchange or a per-try timeout (5xx); of 502, 503, 504, a broken
  // exchange or a per-try timeout (gateway_error); a broken exchange
  // (reset); an answer of one of retry_statuses. per_try_timeout_ms bounds
  // each attempt (0: the route's timeout); the route's timeout bounds them
  // all.
  bool retry_5xx = false;
  bool retry_gateway_error = false;
  bool retry_reset = false;         // a broken exchange (not a timeout, not refused)
  std::vector<int> retry_statuses;  // answers retried by status (Istio's default: 503)
  int per_try_timeout_ms = 0;
  // CORS (an Istio corsPolicy): a request whose Origin one of `origins`
  // matches gets Access-Control-Allow-Origin (that origin),
  // -Allow-Credentials and -Expose-Headers on its answer; its preflight (an
  // OPTIONS request with Access-Control-Request-Method) is answered here,
  // 200 with -Allow-Methods, -Allow-Headers and -Max-Age. A preflight of
  // another origin is forwarded, or answered here without CORS headers.
  struct Cors {
    std::vector<StringMatch> origins;
    std::string allow_methods;  // comma-separated; "": the header left out
    std::string allow_headers;
    std::string expose_headers;
    int max_age_s = -1;  // -1: the header left out
    bool allow_credentials = false;
    bool forward_unmatched_preflights = true;
    bool operator==(const Cors&) const = default;
  };
  std::optional<Cors> cors;
  bool operator==(const RoutePolicy&) const = default;
};

struct Route {
  std::string namespace_;
  std::string name;  // the InferenceService
  // "" for the service's own routes (its host: the transformer when it has
  // one, else the predictor); "predictor", "transformer" or "explainer" for
  // a component's own host ({name}-predictor-{ns}.{domain}).
  std::string component;
  std::string model_name;  // path fallback (/v1/models/NAME); empty: host only
  // Lower case, without port; "*" matches any host (a path-based route).
  std::vector<std::string> hosts;
  std::optional<StringMatch> uri;
  // With a kPrefix or kPrefixSuffix `uri`: the prefix is replaced by this in the path sent
  // to the replica (/serving/default/iris/v1/... -> /v1/...).
  std::optional<std::string> rewrite;
  std::vector<HeaderMatch> headers;
  std::optional<StringMatch> method;  // the request's method; gRPC calls have none
  std::vector<HeaderMatch> query;     // query parameters by name (values as sent)
  // With an exact or regex `uri`: the path (not the query) sent to the
  // replica instead (an Istio rewrite of a whole path).
  std::optional<std::string> rewrite_path;
  std::shared_ptr<const RoutePolicy> policy;  // null: none
  // An Istio VirtualService's: matches only requests that give their method
  // (the HTTP ingress's), never a gRPC call or an in-process one.
  bool http_only = false;
  // On a "*" or "*.suffix" host: tried after the model-name fallback, so a
  // catch-all VirtualService leaves /v1/models/NAME to its service.
  bool after_fallback = false;
  // The listener ports (Istio Gateway servers' port numbers) it takes
  // requests on; kMainPort is the gateway's own HTTP port. Empty: that one.
  std::vector<int> ports;
  std::vector<WeightedRevision> split;  // percents sum to 100
  std::optional<WeightedRevision> mirror;
  int timeout_ms = 0;  // 0: the gateway's default
  int retries = 2;     // further attempts when a replica refuses the connection
  // The InferenceService's own trace sampling ratio (0..1; annotation
  // serving.osprey.dev/trace-sampling); none: the gateway's sampler decides.
  std::optional<double> trace_sampling;
  // The component's payload logger; null: none (the exchange costs nothing more).
  std::shared_ptr<const RouteLogger> logger;
  // The route's own draw counter: the n-th request takes SplitDraw(n), so the
  // observed split matches the weights over any run of requests (not only on
  // average). Each route needs its own (do not share between routes).
  std::shared_ptr<std::atomic<uint64_t>> draws = std::make_shared<std::atomic<uint64_t>>(0);
  // The same for the policy's injected delays and aborts: the share of
  // requests they hit matches their percentages over any run of requests.
  std::shared_ptr<std::atomic<uint64_t>> delay_draws = std::make_shared<std::atomic<uint64_t>>(0);
  std::shared_ptr<std::atomic<uint64_t>> abort_draws = std::make_shared<std::atomic<uint64_t>>(0);
};

// An InferenceGraph's route: a request to one of its hosts runs the graph
// inside the gateway (graph_executor.h), its steps called as a client's
// requests are.
struct GraphRoute {
  std::string namespace_;
  std::string name;
  std::vector<std::string> hosts;  // lower case, without port
  // The graph's canonical JSON (apiVersion, kind, metadata, spec) with each
  // serviceName step resolved to its InferenceService's serviceUrl, as
  // KServe's controller hands its router the graph.
  std::string spec_json;
  // The graph's own trace sampling ratio, as Route::trace_sampling.
  std::optional<double> trace_sampling;
};

struct RouteTable {
  std::vector<Route> routes;
  std::vector<RevisionTarget> revisions;
  std::vector<GraphRoute> graphs;  // matched by host before `routes`
};

// What the gateway measured of one revision (the autoscaler's input).
struct RevisionStats {
  std::string key;         // "{namespace}/{revision}"
  double concurrency = 0;  // time-averaged in flight + waiting, since the last collection
  double rps = 0;
  uint64_t requests = 0;  // answered since the last collection (the cost view counts them)
  int waiting = 0;        // held in the queue now
  int in_flight = 0;
};

// The route of a request, or nullptr (pure). `header` looks a request header
// up by name (case-insensitive), returning empty when absent. The model-name
// fallback takes the routes of `component` ("": the services' own).
// `method` and `query` (the target after '?') are what routes with method
// or query matches look at; a host "*.suffix" matches every host ending in
// ".suffix".
// The gateway's own HTTP port as an Istio Gateway names it (an ingress
// Service maps port 80 to it). Requests on other listeners (Gateway servers
// on other ports) give their port number.
inline constexpr int kMainPort = 80;
// Its own HTTPS port likewise (443). A route with no ports of its own takes
// requests on both.
inline constexpr int kMainTlsPort = 443;

template <typename HeaderLookup>
const Route* MatchRoute(const RouteTable& table, std::string_view host, std::string_view path,
                        HeaderLookup header, std::string_view component = {},
                        std::string_view method = {}, std::string_view query = {},
                        int port = kMainPort);

// The InferenceService and component of a revision named
// {service}-{component}-{digits}, as every revision is (pure); a Knative
// Service's {service}-{digits} gives the service and no component; empty
// when it is not so named.
std::pair<std::string_view, std::string_view> RevisionService(std::string_view revision);

// The request target as the route sends it to the replica (its rewrite
// applied; pure).
std::string RouteTarget(const Route& route, std::string_view target);

// The n-th draw in [0, 100) of a low-discrepancy (golden ratio) sequence:
// equidistributed, so any N consecutive draws split within O(log N / N) of
// the weights (pure).
double SplitDraw(uint64_t n);

// The entry of `split` that a draw `u` in [0, 100) falls in, by the
// cumulative percents; nullptr when they are all 0, or when `u` falls past
// a split that sums to less than 100 (pure).
const WeightedRevision* PickWeighted(const std::vector<WeightedRevision>& split, double u);

// ---- implementation of the template ----
namespace internal {
bool HostEquals(std::string_view route_host, std::string_view host);
// The value of query parameter `name` in `query` (a=1&b=2; as sent, not
// decoded); nullopt when absent.
std::optional<std::string_view> QueryParam(std::string_view query, std::string_view name);
std::string_view HostWithoutPort(std::string_view host);
std::string_view PathModel(std::string_view path);
bool HeaderNameEquals(std::string_view a, std::string_view b);
}  // namespace internal

template <typename HeaderLookup>
const Route* MatchRoute(const RouteTable& table, std::string_view host, std::string_view path,
                        HeaderLookup header, std::string_view component, std::string_view method,
                        std::string_view query, int port) {
  host = internal::HostWithoutPort(host);
  auto rest_matches = [&](const Route& r) {
    if (r.ports.empty() ? port != kMainPort && port != kMainTlsPort
                        : std::find(r.ports.begin(), r.ports.end(), port) == r.ports.end())
      return false;
    if (r.uri.has_value() && !r.uri->Matches(path)) return false;
    for (const auto& h : r.headers)
      if (!h.value.Matches(header(h.name))) return false;
    if (r.http_only && method.empty()) return false;
    if (r.method.has_value() && (method.empty() || !r.method->Matches(method))) return false;
    for (const auto& q : r.query) {
      std::optional<std::string_view> v = internal::QueryParam(query, q.name);
      if (!v || !q.value.Matches(*v)) return false;
    }
    return true;
  };
  auto host_matches = [&](std::string_view h) {
    if (h == "*") return true;
    if (h.size() > 2 && h[0] == '*' && h[1] == '.')
      return host.size() > h.size() - 1 &&
             internal::HostEquals(h.substr(1), host.substr(host.size() - (h.size() - 1)));
    return internal::HostEquals(h, host);
  };
  for (const auto& r : table.routes)
    if (!r.after_fallback)
      for (const auto& h : r.hosts)
        if (host_matches(h) && rest_matches(r)) return &r;
  std::string_view model = internal::PathModel(path);
  const Route* found = nullptr;
  // The first match, preferring the default namespace's services.
  if (!model.empty())
    for (const auto& r : table.routes)
      if (r.model_name == model && r.component == component && rest_matches(r) &&
          (found == nullptr || (r.namespace_ == "default" && found->namespace_ != "default")))
        found = &r;
  if (found != nullptr) return found;
  for (const auto& r : table.routes)
    if (r.after_fallback)
      for (const auto& h : r.hosts)
        if (host_matches(h) && rest_matches(r)) return &r;
  return nullptr;
}

}  // namespace osprey::gateway
