#include "controlplane/istio.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <tuple>

#include "common/strings.h"
#include "controlplane/knative.h"

namespace osprey::controlplane {
namespace {

using resources::IstioStringMatch;

std::optional<gateway::StringMatch> ToMatch(const IstioStringMatch& m) {
  switch (m.kind) {
    case IstioStringMatch::Kind::kExact:
      return gateway::StringMatch{gateway::StringMatch::Kind::kExact, m.value};
    case IstioStringMatch::Kind::kPrefix:
      return gateway::StringMatch{gateway::StringMatch::Kind::kPrefix, m.value};
    case IstioStringMatch::Kind::kRegex:
      return gateway::StringMatch::Regex(m.value);
  }
  return std::nullopt;
}

bool Wildcard(const std::string& host) { return host == "*" || host.starts_with("*."); }

gateway::HeaderOps HeaderOpsOf(const resources::IstioHeaderOperations& request,
                               const resources::IstioHeaderOperations& response) {
  gateway::HeaderOps o;
  o.request_set = request.set;
  o.request_add = request.add;
  o.request_remove = request.remove;
  o.response_set = response.set;
  o.response_add = response.add;
  o.response_remove = response.remove;
  return o;
}

bool Selects(const std::map<std::string, std::string>& selector,
             const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

// Exact shares (`exact`, by key, in `order`) as whole percents summing to
// `target`, by largest remainder; zero shares left out.
std::vector<KeyShare> Apportion(const std::vector<std::string>& order,
                                std::map<std::string, double>& exact, int target) {
  std::vector<KeyShare> out;
  int assigned = 0;
  std::vector<std::pair<double, size_t>> remainders;
  for (const auto& key : order) {
    const double scaled = exact[key];
    const int whole = static_cast<int>(std::floor(scaled));
    remainders.emplace_back(scaled - whole, out.size());
    out.emplace_back(key, whole);
    assigned += whole;
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = 0; assigned < target && i < remainders.size(); ++i, ++assigned)
    ++out[remainders[i].second].second;
  std::erase_if(out, [](const KeyShare& s) { return s.second == 0; });
  return out;
}

// `shares` scaled to sum to 100.
std::vector<KeyShare> Rescale(const std::vector<KeyShare>& shares) {
  int total = 0;
  for (const auto& [key, percent] : shares) total += percent;
  if (total <= 0) return {};
  std::vector<std::string> order;
  std::map<std::string, double> exact;
  for (const auto& [key, percent] : shares) {
    order.push_back(key);
    exact[key] = 100.0 * percent / total;
  }
  return Apportion(order, exact, 100);
}

// Istio's root namespace: its DestinationRules apply to every client.
constexpr char kRootNamespace[] = "istio-system";

// How well a rule fits a host for a client: its namespace first (the
// client's, the host's, the root's), then how exactly its host names it.
using RuleRank = std::tuple<int, size_t>;

// The DestinationRule of `fqdn` for a client in `client_ns` (istio.h), or
// null; `rank` says how well it fits.
const resources::DestinationRule* RuleFor(
    const std::vector<const resources::DestinationRule*>& rules, const std::string& fqdn,
    const std::string& client_ns, RuleRank* rank = nullptr) {
  // The host's own namespace: {name}.{ns}.svc.cluster.local.
  std::string host_ns;
  if (fqdn.ends_with(".svc.cluster.local")) {
    const size_t first = fqdn.find('.');
    host_ns = fqdn.substr(first + 1, fqdn.find('.', first + 1) - first - 1);
  }
  const resources::DestinationRule* best = nullptr;
  RuleRank best_rank{};
  for (const auto* dr : rules) {
    const std::string& ns = dr->meta.namespace_;
    const int place = ns == client_ns ? 3 : ns == host_ns ? 2 : ns == kRootNamespace ? 1 : 0;
    if (place == 0) continue;
    const auto& to = dr->export_to;
    if (!to.empty() && std::find(to.begin(), to.end(), "*") == to.end() &&
        std::find(to.begin(), to.end(), client_ns) == to.end() &&
        !(ns == client_ns && std::find(to.begin(), to.end(), ".") != to.end()))
      continue;
    size_t specificity = 0;
    if (dr->host.starts_with("*.")) {
      if (!fqdn.ends_with(dr->host.substr(1)) || fqdn.size() <= dr->host.size() - 1) continue;
      specificity = dr->host.size();
    } else if (IstioFqdn(dr->host, ns) == fqdn || dr->host == fqdn) {
      specificity = std::string::npos;
    } else {
      continue;
    }
    const RuleRank r{place, specificity};
    // Equal ranks: the first by namespace and name (the input's order).
    if (best == nullptr || r > best_rank) {
      best = dr;
      best_rank = r;
    }
  }
  if (rank != nullptr) *rank = best_rank;
  return best;
}

}  // namespace

void AddServiceHosts(const resources::ObjectMeta& meta, const IsvcStatus& status, IstioInput* in) {
  auto shares = [&](const std::vector<TrafficTarget>& traffic) {
    std::vector<KeyShare> out;
    for (const auto& t : traffic)
      if (t.percent > 0) out.emplace_back(StrCat(meta.namespace_, "/", t.revision), t.percent);
    return out;
  };
  const std::string tail = StrCat(".", meta.namespace_, ".svc.cluster.local");
  const std::optional<ComponentStatus> entry =
      status.transformer ? status.transformer : status.Component("predictor");
  if (entry) in->services[StrCat(meta.name, tail)] = shares(entry->traffic);
  for (const char* component : {"predictor", "transformer", "explainer"})
    if (std::optional<ComponentStatus> c = status.Component(component))
      in->services[StrCat(meta.name, "-", component, tail)] = shares(c->traffic);
}

void AddServiceHosts(const KnativeRouting& k, IstioInput* in) {
  std::vector<KeyShare> out;
  for (const auto& t : k.traffic)
    if (t.percent > 0) out.emplace_back(StrCat(k.meta.namespace_, "/", t.revision), t.percent);
  in->services[StrCat(k.meta.name, ".", k.meta.namespace_, ".svc.cluster.local")] = std::move(out);
}

std::map<std::string, std::string> RevisionPodLabels(const RevisionSpec& rev,
                                                     const resources::Component* component) {
  std::map<std::string, std::string> labels;
  if (component != nullptr) labels = component->labels;
  labels["serving.knative.dev/revision"] = rev.name;
  if (rev.kind == kKnativeServiceKind) {
    labels["serving.knative.dev/service"] = rev.isvc;
    labels["serving.knative.dev/configuration"] = rev.isvc;
  } else {
    // As the cluster's pods carry them (kube/objects.h).
    const std::string config = StrCat(rev.isvc, "-", rev.component);
    labels["serving.kserve.io/inferenceservice"] = rev.isvc;
    labels["component"] = rev.component;
    labels["serving.knative.dev/service"] = config;
    labels["serving.knative.dev/configuration"] = config;
    labels["app"] = rev.name;
  }
  return labels;
}

std::shared_ptr<const gateway::PoolPolicy> PoolPolicyOf(
    const resources::IstioTrafficPolicy& host, const resources::IstioTrafficPolicy* subset) {
  resources::IstioTrafficPolicy p = host;
  if (subset != nullptr) {
    if (subset->load_balancer) p.load_balancer = subset->load_balancer;
    if (subset->connection_pool) p.connection_pool = subset->connection_pool;
    if (subset->outlier_detection) p.outlier_detection = subset->outlier_detection;
  }
  if (p == resources::IstioTrafficPolicy{}) return nullptr;
  auto out = std::make_shared<gateway::PoolPolicy>();
  using Balance = gateway::PoolPolicy::Balance;
  if (const auto& lb = p.load_balancer) {
    if (lb->simple == "ROUND_ROBIN") out->balance = Balance::kRoundRobin;
    if (lb->simple == "RANDOM") out->balance = Balance::kRandom;
    if (!lb->hash_header.empty() || !lb->hash_query.empty()) {
      out->balance = Balance::kHash;
      out->hash_header = lb->hash_header;
      out->hash_query = lb->hash_query;
    }
  }
  if (const auto& cp = p.connection_pool) {
    out->max_in_flight = cp->max_connections;
    out->max_requests = cp->http2_max_requests;
    out->max_pending = cp->http1_max_pending_requests;
    out->close_connections = cp->max_requests_per_connection == 1;
  }
  if (const auto& od = p.outlier_detection) {
    out->consecutive_5xx = od->consecutive_5xx_errors;
    out->consecutive_gateway = od->consecutive_gateway_errors;
    out->interval_ms = od->interval_ms;
    out->base_ejection_ms = od->base_ejection_time_ms;
    out->max_ejection_percent = od->max_ejection_percent;
    out->min_health_percent = od->min_health_percent;
  }
  return out;
}

std::string IstioFqdn(const std::string& host, const std::string& ns) {
  const size_t dots = std::count(host.begin(), host.end(), '.');
  if (dots == 0) return StrCat(host, ".", ns, ".svc.cluster.local");
  if (dots == 1) return StrCat(host, ".svc.cluster.local");
  if (host.ends_with(".svc")) return StrCat(host, ".cluster.local");
  return host;
}

std::vector<KeyShare> CombineShares(
    const std::vector<std::pair<int, std::vector<KeyShare>>>& by_weight) {
  // Exact shares in hundredths of a percent, then whole percents by largest
  // remainder so that they sum to 100.
  std::map<std::string, double> exact;
  std::vector<std::string> order;
  double total = 0;
  for (const auto& [weight, shares] : by_weight)
    for (const auto& [key, percent] : shares) {
      if (weight <= 0 || percent <= 0) continue;
      if (!exact.contains(key)) order.push_back(key);
      exact[key] += weight * percent / 100.0;
      total += weight * percent / 100.0;
    }
  if (total <= 0) return {};
  // What no destination serves stays unserved (answered 503, as Envoy does).
  return Apportion(order, exact, static_cast<int>(std::lround(std::min(total, 100.0))));
}

IstioPlan PlanIstio(const IstioInput& in) {
  IstioPlan plan;
  // ServiceEntry hosts -> the endpoints of each of their ports.
  std::map<std::string, const resources::ServiceEntry*> entries;  // host (and FQDN) -> entry
  for (const auto* se : in.service_entries)
    for (const auto& h : se->hosts) {
      entries.emplace(h, se);
      entries.emplace(IstioFqdn(h, se->meta.namespace_), se);
    }
  // Policies of subsets, by key: applied over the hosts' own.
  std::map<std::string, std::shared_ptr<const gateway::PoolPolicy>> subset_policies;
  // Which ServiceEntry each endpoint key is of.
  std::map<std::string, const resources::ServiceEntry*> endpoint_entries;
  auto endpoint_key = [&](const resources::ServiceEntry& se,
                          const resources::ServiceEntryPort& port,
                          const resources::IstioSubset* subset) {
    // ':' is in no object name: the key is no revision's.
    const std::string revision =
        StrCat("serviceentry:", se.meta.name, ":", port.number,
               subset != nullptr ? StrCat(":", subset->name) : std::string());
    const std::string key = StrCat(se.meta.namespace_, "/", revision);
    if (!plan.endpoints.contains(key)) {
      endpoint_entries[key] = &se;
      RevisionRouting& r = plan.endpoints[key];
      r.aspired = true;
      r.phase = RevisionPhase::kReady;
      r.target.key = key;
      r.target.revision = revision;
      for (const auto& e : se.endpoints) {
        if (subset != nullptr && !Selects(subset->labels, e.labels)) continue;
        auto named = e.ports.find(port.name);
        const int p = named != e.ports.end()  ? named->second
                      : port.target_port != 0 ? port.target_port
                                              : port.number;
        r.target.ports.push_back(static_cast<uint16_t>(p));
        r.target.hosts.push_back(e.address);
        r.target.grpc_targets.emplace_back();
        r.target.http_sockets.emplace_back();
        r.target.link_sockets.emplace_back();
      }
    }
    return key;
  };
  // The subset a destination names, from the host's DestinationRule; null
  // with a problem when there is none.
  auto subset_of = [&](const resources::IstioDestination& d, const std::string& fqdn,
                       const std::string& ns, const resources::DestinationRule** rule,
                       std::vector<std::string>* problems) -> const resources::IstioSubset* {
    *rule = RuleFor(in.destination_rules, fqdn, ns);
    if (*rule != nullptr)
      for (const auto& s : (*rule)->subsets)
        if (s.name == d.subset) return &s;
    problems->push_back(*rule == nullptr ? StrCat("destination ", d.host, " subset ", d.subset,
                                                  ": no DestinationRule for ", fqdn)
                                         : StrCat("destination ", d.host, " subset ", d.subset,
                                                  ": DestinationRule ", (*rule)->meta.namespace_,
                                                  "/", (*rule)->meta.name, " has no such subset"));
    return nullptr;
  };
  auto labels_text = [](const std::map<std::string, std::string>& labels) {
    std::string out;
    for (const auto& [k, v] : labels) StrAppend(&out, out.empty() ? "" : ",", k, "=", v);
    return out;
  };
  // A destination's revisions and percents; empty with a problem when unknown.
  auto resolve = [&](const resources::IstioDestination& d, const std::string& ns,
                     std::vector<std::string>* problems) -> std::vector<KeyShare> {
    const std::string fqdn = IstioFqdn(d.host, ns);
    if (auto s = in.services.find(fqdn); s != in.services.end()) {
      if (d.subset.empty()) return s->second;
      const resources::DestinationRule* rule = nullptr;
      const resources::IstioSubset* subset = subset_of(d, fqdn, ns, &rule, problems);
      if (subset == nullptr) return {};
      std::vector<KeyShare> picked;
      for (const auto& share : s->second) {
        auto labels = in.revision_labels.find(share.first);
        if (labels != in.revision_labels.end() && Selects(subset->labels, labels->second))
          picked.push_back(share);
      }
      if (picked.empty()) {
        problems->push_back(StrCat("destination ", d.host, " subset ", d.subset, " (",
                                   labels_text(subset->labels),
                                   ") selects none of the revisions it routes"));
        return {};
      }
      // A revision is one pool: the first subset's policy over it holds.
      if (auto policy = PoolPolicyOf(rule->traffic_policy, &subset->traffic_policy))
        for (const auto& share : picked) {
          auto [it, fresh] = subset_policies.emplace(share.first, policy);
          if (!fresh && *it->second != *policy)
            problems->push_back(StrCat("destination ", d.host, " subset ", d.subset, ": revision ",
                                       share.first.substr(share.first.find('/') + 1),
                                       " already has another subset's traffic policy, which "
                                       "holds"));
        }
      return Rescale(picked);
    }
    // The namespace's own first; a host as written only when it is a full name.
    auto e = entries.find(fqdn);
    if (e == entries.end() && d.host.find('.') != std::string::npos) e = entries.find(d.host);
    if (e != entries.end()) {
      const resources::ServiceEntry& se = *e->second;
      const resources::ServiceEntryPort* port = nullptr;
      for (const auto& p : se.ports)
        if (d.port == 0 ? port == nullptr : p.number == d.port) port = &p;
      if (port == nullptr || (d.port == 0 && se.ports.size() > 1)) {
        problems->push_back(StrCat(
            "destination ", d.host,
            d.port == 0
                ? ": give destination.port.number (the "
                  "ServiceEntry has several ports)"
                : StrCat(": port ", d.port, " is not a port of ServiceEntry ", se.meta.name)));
        return {};
      }
      if (d.subset.empty()) return {{endpoint_key(se, *port, nullptr), 100}};
      const resources::DestinationRule* rule = nullptr;
      const resources::IstioSubset* subset = subset_of(d, fqdn, ns, &rule, problems);
      if (subset == nullptr) return {};
      const std::string key = endpoint_key(se, *port, subset);
      if (plan.endpoints[key].target.ports.empty()) {
        plan.endpoints.erase(key);
        problems->push_back(StrCat("destination ", d.host, " subset ", d.subset, " (",
                                   labels_text(subset->labels),
                                   ") selects no endpoint of ServiceEntry ", se.meta.name));
        return {};
      }
      if (auto policy = PoolPolicyOf(rule->traffic_policy, &subset->traffic_policy))
        subset_policies[key] = policy;
      return {{key, 100}};
    }
    problems->push_back(StrCat("destination ", d.host, " (", fqdn,
                               ") is not a Knative Service, an InferenceService or a "
                               "ServiceEntry host"));
    return {};
  };

  for (const auto* vs : in.virtual_services) {
    const std::string& ns = vs->meta.namespace_;
    std::vector<std::string>& problems = plan.problems[StrCat(ns, "/", vs->meta.name)];
    bool bound = vs->gateways.empty();
    // The listener ports its routes take requests on (its gateways' servers';
    // mesh: the gateway's own); empty: the gateway's own.
    std::vector<int> ports;
    std::vector<int> gateway_ports;  // of its Gateways only
    bool mesh = vs->gateways.empty();
    auto add_port = [&](int p) {
      if (std::find(ports.begin(), ports.end(), p) == ports.end()) ports.push_back(p);
    };
    for (const auto& g : vs->gateways) {
      if (g == "mesh") {
        bound = true;
        mesh = true;
        add_port(gateway::kMainPort);
        continue;
      }
      const size_t slash = g.find('/');
      const std::string gns = slash == std::string::npos ? ns : g.substr(0, slash);
      const std::string gname = slash == std::string::npos ? g : g.substr(slash + 1);
      const resources::IstioGateway* found = nullptr;
      for (const auto* gw : in.gateways)
        if (gw->meta.namespace_ == gns && gw->meta.name == gname) found = gw;
      if (found != nullptr) {
        bound = true;
        for (const auto& server : found->servers) {
          add_port(server.port);
          gateway_ports.push_back(server.port);
        }
      } else {
        problems.push_back(StrCat("gateway ", gns, "/", gname, " does not exist"));
      }
    }
    if (!bound) continue;
    // Bound to nothing (mesh): the gateway's own HTTP port, not its HTTPS one.
    if (ports.empty()) ports.push_back(gateway::kMainPort);
    std::sort(ports.begin(), ports.end());
    std::vector<std::string> exact_hosts, wildcard_hosts;
    for (const auto& h : vs->hosts) {
      if (Wildcard(h)) {
        wildcard_hosts.push_back(h);
        continue;
      }
      exact_hosts.push_back(h);
      // A short name is also the service's in-cluster names, as Istio expands it.
      if (h.find('.') == std::string::npos)
        for (const char* tail : {"", ".svc", ".svc.cluster.local"})
          exact_hosts.push_back(StrCat(h, ".", ns, tail));
    }
    for (const auto& h : vs->http) {
      auto policy = std::make_shared<gateway::RoutePolicy>();
      if (h.redirect)
        policy->redirect =
            gateway::RoutePolicy::Redirect{h.redirect_uri, h.redirect_authority, h.redirect_code,
                                           h.redirect_scheme, h.redirect_port};
      policy->authority = h.rewrite_authority;
      if (h.delay_ms > 0) {
        policy->delay_percent = h.delay_percent;
        policy->delay_ms = static_cast<int>(h.delay_ms);
      }
      if (h.abort_http_status > 0) {
        policy->abort_percent = h.abort_percent;
        policy->abort_status = h.abort_http_status;
      }
      policy->headers = HeaderOpsOf(h.request_headers, h.response_headers);
      auto retry_on = [&](std::string_view cond) {
        std::string_view rest = h.retry_on;
        while (!rest.empty()) {
          const size_t comma = rest.find(',');
          std::string_view c = rest.substr(0, comma);
          while (!c.empty() && c.front() == ' ') c.remove_prefix(1);
          while (!c.empty() && c.back() == ' ') c.remove_suffix(1);
          if (c == cond) return true;
          if (comma == std::string_view::npos) break;
          rest.remove_prefix(comma + 1);
        }
        return false;
      };
      policy->retry_5xx = retry_on("5xx");
      policy->retry_gateway_error = retry_on("gateway-error");
      policy->retry_reset = retry_on("reset");
      if (retry_on("retriable-4xx")) policy->retry_statuses.push_back(409);
      // Istio's default retryOn retries an answer of 503 (retriable-status-codes).
      if (h.retry_on.empty()) policy->retry_statuses.push_back(503);
      policy->per_try_timeout_ms = static_cast<int>(h.retry_per_try_timeout_ms);
      if (const auto& c = h.cors) {
        auto join = [](const std::vector<std::string>& list) {
          std::string out;
          for (const auto& s : list) StrAppend(&out, out.empty() ? "" : ",", s);
          return out;
        };
        gateway::RoutePolicy::Cors cors;
        for (const auto& o : c->allow_origins) {
          // "*" written as an exact origin: any origin.
          if (o.kind == IstioStringMatch::Kind::kExact && o.value == "*") {
            cors.origins.push_back({gateway::StringMatch::Kind::kPrefix, ""});
          } else if (auto m = ToMatch(o)) {
            cors.origins.push_back(std::move(*m));
          }
        }
        cors.allow_methods = join(c->allow_methods);
        cors.allow_headers = join(c->allow_headers);
        cors.expose_headers = join(c->expose_headers);
        if (c->max_age_ms > 0) cors.max_age_s = static_cast<int>(c->max_age_ms / 1000);
        cors.allow_credentials = c->allow_credentials.value_or(false);
        cors.forward_unmatched_preflights = c->forward_unmatched_preflights;
        policy->cors = std::move(cors);
      }

      std::vector<std::pair<int, std::vector<KeyShare>>> weighted;
      // Each destination's own header changes, by the revisions it reaches.
      std::map<std::string, std::shared_ptr<const gateway::HeaderOps>> split_headers;
      std::map<std::string, gateway::HeaderOps> reached;  // every destination's, empty ones too
      for (const auto& d : h.route) {
        weighted.emplace_back(d.weight, resolve(d, ns, &problems));
        const gateway::HeaderOps ops = HeaderOpsOf(d.request_headers, d.response_headers);
        auto shared = ops.empty() ? nullptr : std::make_shared<const gateway::HeaderOps>(ops);
        for (const auto& [key, percent] : weighted.back().second) {
          auto [it, fresh] = reached.emplace(key, ops);
          if (!fresh) {
            if (it->second != ops)
              problems.push_back(StrCat(
                  "destination ", d.host, ": another destination of the route reaches revision ",
                  key.substr(key.find('/') + 1), " with other headers, which hold"));
            continue;
          }
          if (shared != nullptr) split_headers.emplace(key, shared);
        }
      }
      std::vector<KeyShare> split = CombineShares(weighted);
      std::optional<KeyShare> mirror;
      if (h.mirror) {
        std::vector<KeyShare> m = resolve(*h.mirror, ns, &problems);
        if (!m.empty())
          mirror = KeyShare{m.front().first, static_cast<int>(std::lround(h.mirror_percent))};
      }

      gateway::Route base;
      base.namespace_ = ns;
      base.name = vs->meta.name;
      base.component = "virtualservice";
      if (h.timeout_ms > 0) base.timeout_ms = static_cast<int>(h.timeout_ms);
      if (h.retry_attempts) base.retries = *h.retry_attempts;
      base.policy = policy;
      base.http_only = true;
      std::vector<const resources::IstioHttpMatch*> matches;
      for (const auto& m : h.match) matches.push_back(&m);
      if (matches.empty()) matches.push_back(nullptr);
      for (const auto* m : matches) {
        gateway::Route r = base;
        r.draws = std::make_shared<std::atomic<uint64_t>>(0);
        r.ports = ports;
        // A match on the port narrows the route to that listener of its
        // Gateways; for in-mesh callers (bound to mesh, or to nothing) the
        // port is the service's, which every call here has.
        if (m != nullptr && m->port != 0 && !gateway_ports.empty()) {
          if (std::find(gateway_ports.begin(), gateway_ports.end(), m->port) !=
              gateway_ports.end()) {
            r.ports = std::vector<int>{m->port};
          } else if (mesh) {
            r.ports = {gateway::kMainPort};  // an in-mesh service port: the gateway's own
          } else {
            problems.push_back(StrCat("a match on port ", m->port,
                                      " is on no port of the VirtualService's gateways"));
            continue;
          }
        }
        bool prefix_uri = false;
        if (m != nullptr) {
          if (m->uri) {
            r.uri = ToMatch(*m->uri);
            prefix_uri = m->uri->kind == IstioStringMatch::Kind::kPrefix;
          }
          if (m->method) r.method = ToMatch(*m->method);
          if (m->authority)
            if (auto a = ToMatch(*m->authority)) r.headers.push_back({"host", *a});
          for (const auto& [name, sm] : m->headers)
            if (auto v = ToMatch(sm)) r.headers.push_back({name, *v});
          for (const auto& [name, sm] : m->query_params)
            if (auto v = ToMatch(sm)) r.query.push_back({name, *v});
        }
        if (h.rewrite_uri) {
          // Without a uri match Istio matches prefix "/": the rewrite
          // replaces that prefix; after an exact or regex match, the path.
          if (!r.uri.has_value()) {
            r.uri = gateway::StringMatch{gateway::StringMatch::Kind::kPrefix, "/"};
            prefix_uri = true;
          }
          if (prefix_uri) {
            r.rewrite = *h.rewrite_uri;
          } else {
            r.rewrite_path = *h.rewrite_uri;
          }
        }
        for (auto* hosts : {&exact_hosts, &wildcard_hosts}) {
          if (hosts->empty()) continue;
          KeyedRoute out;
          out.route = r;
          out.route.draws = std::make_shared<std::atomic<uint64_t>>(0);
          out.route.delay_draws = std::make_shared<std::atomic<uint64_t>>(0);
          out.route.abort_draws = std::make_shared<std::atomic<uint64_t>>(0);
          out.route.hosts = *hosts;
          out.split = split;
          out.split_headers = split_headers;
          out.mirror = mirror;
          out.wildcard = hosts == &wildcard_hosts;
          out.route.after_fallback = out.wildcard;
          plan.routes.push_back(std::move(out));
        }
      }
    }
  }
  // Gateway servers on other ports than the gateway's own HTTP port are
  // listened on; HTTP servers with httpsRedirect answer with a redirect
  // before any route.
  for (const auto* g : in.gateways) {
    const std::string gateway_key = StrCat(g->meta.namespace_, "/", g->meta.name);
    for (const auto& server : g->servers) {
      const bool https = server.protocol == "HTTPS";
      if (https && server.port == gateway::kMainPort) {
        plan.gateway_problems[gateway_key].push_back(
            StrCat("server on port 80 is HTTPS: port 80 is the gateway's HTTP port (serve HTTPS "
                   "on 443)"));
        continue;
      }
      if (server.port != gateway::kMainPort) {
        auto [it, fresh] = plan.listeners.try_emplace(server.port);
        if (fresh) it->second.https = https;
        if (it->second.https != https) {
          plan.gateway_problems[gateway_key].push_back(StrCat(
              "server on port ", server.port, " (", server.protocol,
              ") is left out: another Gateway's server there is ", https ? "HTTP" : "HTTPS"));
          continue;
        }
        if (https) {
          it->second.certificates.push_back(
              {server.hosts, server.tls->server_certificate, server.tls->private_key});
          // One port, one handshake policy: the strictest of its servers'.
          if (server.tls->min_protocol_version == "TLSV1_3") it->second.tls13_only = true;
        }
      }
      if (!https && server.tls.has_value() && server.tls->https_redirect) {
        KeyedRoute out;
        out.route.ports = {server.port};
        out.route.hosts = server.hosts;
        auto policy = std::make_shared<gateway::RoutePolicy>();
        const int https_port = in.https_port != 0 ? in.https_port : gateway::kMainTlsPort;
        policy->redirect = gateway::RoutePolicy::Redirect{
            "", "", 301, "https", https_port == gateway::kMainTlsPort ? 0 : https_port};
        out.route.policy = policy;
        out.route.http_only = true;  // gRPC and in-process calls are not redirected
        out.route.draws = std::make_shared<std::atomic<uint64_t>>(0);
        out.route.delay_draws = std::make_shared<std::atomic<uint64_t>>(0);
        out.route.abort_draws = std::make_shared<std::atomic<uint64_t>>(0);
        plan.https_redirects.push_back(std::move(out));
      }
    }
  }

  // Each host's own DestinationRule policy, over every revision it reaches;
  // then the subsets' over theirs.
  if (!in.destination_rules.empty()) {
    // A revision several hosts reach (an InferenceService's own host and its
    // predictor's) takes the best-fitting rule of them.
    std::map<std::string, RuleRank> ranks;
    for (const auto& [fqdn, shares] : in.services) {
      const size_t dot = fqdn.find('.');
      const std::string ns = fqdn.substr(dot + 1, fqdn.find('.', dot + 1) - dot - 1);
      RuleRank rank;
      const resources::DestinationRule* rule = RuleFor(in.destination_rules, fqdn, ns, &rank);
      if (rule == nullptr) continue;
      auto policy = PoolPolicyOf(rule->traffic_policy, nullptr);
      for (const auto& share : shares) {
        auto [it, fresh] = ranks.emplace(share.first, rank);
        if (!fresh && it->second >= rank) continue;
        it->second = rank;
        if (policy != nullptr) {
          plan.policies[share.first] = policy;
        } else {
          plan.policies.erase(share.first);
        }
      }
    }
    for (const auto& [key, se] : endpoint_entries) {
      if (subset_policies.contains(key)) continue;
      for (const auto& h : se->hosts) {
        const resources::DestinationRule* rule =
            RuleFor(in.destination_rules, IstioFqdn(h, se->meta.namespace_), se->meta.namespace_);
        if (rule == nullptr && h.find('.') != std::string::npos)
          rule = RuleFor(in.destination_rules, h, se->meta.namespace_);
        if (rule == nullptr) continue;
        if (auto policy = PoolPolicyOf(rule->traffic_policy, nullptr)) plan.policies[key] = policy;
        break;
      }
    }
    for (auto& [key, policy] : subset_policies) plan.policies[key] = policy;
  }
  std::erase_if(plan.problems, [](const auto& p) { return p.second.empty(); });
  return plan;
}

}  // namespace osprey::controlplane
