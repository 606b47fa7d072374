#include "controlplane/routing.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdlib>
#include <memory>

#include "common/strings.h"
#include "controlplane/knative.h"

namespace osprey::controlplane {
namespace {

using gateway::Route;
using gateway::RouteTable;

// Adds revisions to the table on first use; their index in it.
class RevisionIndex {
 public:
  RevisionIndex(const std::map<std::string, RevisionRouting>& revisions, RouteTable* table)
      : revisions_(revisions), table_(table) {}

  std::optional<size_t> operator()(const std::string& key) {
    if (auto it = index_.find(key); it != index_.end()) return it->second;
    auto r = revisions_.find(key);
    if (r == revisions_.end()) return std::nullopt;
    table_->revisions.push_back(r->second.target);
    return index_[key] = table_->revisions.size() - 1;
  }

 private:
  const std::map<std::string, RevisionRouting>& revisions_;
  RouteTable* table_;
  std::map<std::string, size_t> index_;
};

Route NewRoute(const Route& base, std::vector<std::string> hosts) {
  Route r = base;
  r.draws = std::make_shared<std::atomic<uint64_t>>(0);
  r.hosts = std::move(hosts);
  return r;
}

}  // namespace

std::optional<double> TraceSamplingOf(const std::map<std::string, std::string>& annotations) {
  auto it = annotations.find(kTraceSamplingAnnotation);
  if (it == annotations.end()) return std::nullopt;
  std::string_view text = it->second;
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  double v = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !(v >= 0) ||
      !(v <= 1))
    return std::nullopt;
  return v;
}

RouteTable PlanRoutes(const std::vector<ServiceRouting>& services,
                      const std::map<std::string, RevisionRouting>& revisions,
                      const PlatformConfig& config, const std::vector<KnativeRouting>& knative,
                      const std::vector<KeyedRoute>& keyed) {
  RouteTable table;
  RevisionIndex index(revisions, &table);
  // Wildcard routes by specificity, as Istio picks hosts: the longest
  // suffix first, "*" last (stable: the order written within one).
  std::vector<const KeyedRoute*> ordered;
  for (const auto& k : keyed) ordered.push_back(&k);
  auto specificity = [](const KeyedRoute* k) {
    size_t longest = 0;
    for (const auto& h : k->route.hosts) longest = std::max(longest, h == "*" ? 0 : h.size());
    return longest;
  };
  auto rank = [&](const KeyedRoute* k) {
    return k->wildcard ? -static_cast<long>(specificity(k)) : 0L;
  };
  std::stable_sort(ordered.begin(), ordered.end(),
                   [&](const auto* a, const auto* b) { return rank(a) < rank(b); });
  auto add_keyed = [&](bool wildcard) {
    for (const KeyedRoute* kp : ordered) {
      const KeyedRoute& k = *kp;
      if (k.wildcard != wildcard) continue;
      Route r = k.route;
      r.split.clear();
      for (const auto& [key, percent] : k.split)
        if (auto i = index(key)) {
          auto h = k.split_headers.find(key);
          r.split.push_back({*i, percent, h != k.split_headers.end() ? h->second : nullptr});
        }
      r.mirror.reset();
      if (k.mirror)
        if (auto i = index(k.mirror->first))
          r.mirror = gateway::WeightedRevision{*i, k.mirror->second};
      table.routes.push_back(std::move(r));
    }
  };
  add_keyed(false);
  for (const auto& k : knative) {
    const std::string& ns = k.meta.namespace_;
    for (const auto& key : k.aspired) index(key);
    Route base;
    base.namespace_ = ns;
    base.name = k.meta.name;
    base.trace_sampling = TraceSamplingOf(k.meta.annotations);
    if (k.timeout_seconds) base.timeout_ms = *k.timeout_seconds * 1000;
    for (const auto& t : k.traffic) {
      if (t.tag.empty()) continue;
      if (auto i = index(StrCat(ns, "/", t.revision))) {
        Route r = NewRoute(base, {KnativeHost(k.meta, config, t.tag)});
        r.split = {{*i, 100}};
        table.routes.push_back(std::move(r));
      }
    }
    std::vector<std::string> hosts = {KnativeHost(k.meta, config)};
    for (auto& h : KnativeLocalHosts(k.meta)) hosts.push_back(std::move(h));
    Route main = NewRoute(base, std::move(hosts));
    for (const auto& t : k.traffic)
      if (t.percent > 0)
        if (auto i = index(StrCat(ns, "/", t.revision))) main.split.push_back({*i, t.percent});
    Route by_path = NewRoute(main, {"*"});
    by_path.uri = gateway::StringMatch{gateway::StringMatch::Kind::kPrefix,
                                       StrCat("/serving/", ns, "/", k.meta.name, "/")};
    by_path.rewrite = "/";
    table.routes.push_back(std::move(by_path));
    table.routes.push_back(std::move(main));
  }
  auto ready_aspired = [&](const std::string& key, bool need_ready) {
    auto it = revisions.find(key);
    return it != revisions.end() && it->second.aspired &&
           (!need_ready || it->second.phase == RevisionPhase::kReady);
  };
  for (const auto& s : services) {
    const std::string& ns = s.meta.namespace_;
    for (const auto& k : s.aspired) index(k);
    Route base;
    base.namespace_ = ns;
    base.name = s.meta.name;
    const std::string host = ServiceHost(s.meta, config);
    auto annotation = [&](const char* key) -> std::string {
      auto it = s.meta.annotations.find(key);
      return it == s.meta.annotations.end() ? "" : it->second;
    };
    const bool tag_routing = annotation("serving.kserve.io/enable-tag-routing") == "true";
    base.trace_sampling = TraceSamplingOf(s.meta.annotations);
    auto with_timeout = [&](Route r, const std::optional<int>& seconds) {
      if (seconds) r.timeout_ms = *seconds * 1000;
      return r;
    };
    auto split_of = [&](const ComponentStatus& c) {
      std::vector<gateway::WeightedRevision> split;
      for (const auto& t : c.traffic)
        if (t.percent > 0)
          if (auto i = index(StrCat(ns, "/", t.revision))) split.push_back({*i, t.percent});
      return split;
    };
    // latest- and prev- hosts of a component's revisions.
    auto tag_routes = [&](const Route& r0, const ComponentStatus& c, const std::string& on) {
      const std::string latest = StrCat(ns, "/", c.latest_created);
      if (ready_aspired(latest, false)) {
        Route r = NewRoute(r0, {StrCat("latest-", on)});
        r.split = {{*index(latest), 100}};
        table.routes.push_back(std::move(r));
      }
      for (const auto& t : c.traffic) {
        if (t.tag != "prev") continue;
        if (auto i = index(StrCat(ns, "/", t.revision))) {
          Route r = NewRoute(r0, {StrCat("prev-", on)});
          r.split = {{*i, 100}};
          table.routes.push_back(std::move(r));
        }
        break;
      }
    };
    // A path-based route on any host: /serving/{ns}/{name}/... (KServe's
    // path template), the prefix cut off for the replica.
    auto path_route = [&](const Route& r0, const std::string& name) {
      Route r = NewRoute(r0, {"*"});
      r.model_name.clear();
      r.uri = gateway::StringMatch{gateway::StringMatch::Kind::kPrefix,
                                   StrCat("/serving/", ns, "/", name, "/")};
      r.rewrite = "/";
      return r;
    };

    auto route_logger = [&](const std::optional<resources::Logger>& l,
                            const char* component) -> std::shared_ptr<const gateway::RouteLogger> {
      if (!l) return nullptr;
      auto r = std::make_shared<gateway::RouteLogger>();
      r->url = l->url;
      r->component = component;
      r->mode = l->mode == "request"    ? gateway::RouteLogger::Mode::kRequest
                : l->mode == "response" ? gateway::RouteLogger::Mode::kResponse
                                        : gateway::RouteLogger::Mode::kAll;
      r->metadata_headers = l->metadata_headers;
      for (const auto& a : l->metadata_annotations)
        if (auto it = s.meta.annotations.find(a); it != s.meta.annotations.end())
          r->annotations.emplace_back(a, it->second);
      return r;
    };
    const auto predictor_logger = route_logger(s.predictor_logger, "predictor");
    const auto transformer_logger = route_logger(s.transformer_logger, "transformer");
    const auto explainer_logger = route_logger(s.explainer_logger, "explainer");

    const ComponentStatus predictor = *s.status.Component("predictor");
    const std::string& predictor_model =
        s.served_model_name.empty() ? s.meta.name : s.served_model_name;
    const std::optional<ComponentStatus>& transformer = s.status.transformer;
    const std::optional<ComponentStatus>& explainer = s.status.explainer;
    // Requests enter at the transformer when there is one.
    const ComponentStatus& entry = transformer ? *transformer : predictor;
    const std::optional<int>& entry_timeout =
        transformer ? s.transformer_timeout_seconds : s.timeout_seconds;

    // Each component's own host ({name}-{component}-{ns}.{domain}), its
    // tag hosts, and its path; a transformer or explainer calls the
    // predictor there.
    struct Part {
      const char* name;
      const ComponentStatus* status;
      const std::optional<int>* timeout;
      const std::shared_ptr<const gateway::RouteLogger>* logger;
    };
    std::vector<Part> parts = {{"predictor", &predictor, &s.timeout_seconds, &predictor_logger}};
    if (transformer)
      parts.push_back(
          {"transformer", &*transformer, &s.transformer_timeout_seconds, &transformer_logger});
    if (explainer)
      parts.push_back({"explainer", &*explainer, &s.explainer_timeout_seconds, &explainer_logger});
    for (const Part& part : parts) {
      Route r0 = with_timeout(base, *part.timeout);
      r0.component = part.name;
      r0.logger = *part.logger;
      const std::string component_host = ComponentHost(s.meta, part.name, config);
      if (tag_routing) tag_routes(r0, *part.status, component_host);
      Route r = NewRoute(r0, {component_host});
      r.model_name = std::string(part.name) == "predictor" ? predictor_model : s.meta.name;
      r.split = split_of(*part.status);
      table.routes.push_back(path_route(r, StrCat(s.meta.name, "-", part.name)));
      table.routes.push_back(std::move(r));
    }

    // The service's own host: tags of its entry component, :explain to the
    // explainer (KServe routes /v1/models/{name}:explain there), the rest to
    // the entry component.
    Route own = with_timeout(base, entry_timeout);
    own.logger = transformer ? transformer_logger : predictor_logger;
    if (tag_routing) tag_routes(own, entry, host);
    if (explainer) {
      Route r = with_timeout(NewRoute(base, {host}), s.explainer_timeout_seconds);
      r.logger = explainer_logger;
      r.model_name = s.meta.name;  // /v1/models/{name}:explain on any host, too
      r.uri = gateway::StringMatch{gateway::StringMatch::Kind::kSuffix, ":explain"};
      r.split = split_of(*explainer);
      Route by_path = path_route(r, s.meta.name);
      by_path.uri->kind = gateway::StringMatch::Kind::kPrefixSuffix;
      by_path.uri->suffix = ":explain";
      table.routes.push_back(std::move(by_path));
      table.routes.push_back(std::move(r));
    }
    Route main = NewRoute(own, {host});
    main.model_name = transformer ? s.meta.name : predictor_model;
    main.split = split_of(entry);
    // Shadow testing: a share of the requests copied to the latest revision
    // (its answers discarded), e.g. while it takes no traffic (canary 0).
    const std::string latest = StrCat(ns, "/", entry.latest_created);
    const int percent = std::atoi(annotation(kMirrorAnnotation).c_str());
    if (percent > 0 && ready_aspired(latest, true))
      main.mirror = gateway::WeightedRevision{*index(latest), std::min(percent, 100)};
    table.routes.push_back(path_route(main, s.meta.name));
    table.routes.push_back(std::move(main));
  }
  add_keyed(true);
  return table;
}

bool SameRoutes(const RouteTable& a, const RouteTable& b) {
  auto same_weight = [](const gateway::WeightedRevision& x, const gateway::WeightedRevision& y) {
    return x.revision == y.revision && x.percent == y.percent &&
           (x.headers == y.headers || (x.headers && y.headers && *x.headers == *y.headers));
  };
  auto same_match = [](const gateway::StringMatch& u, const gateway::StringMatch& v) {
    return u.kind == v.kind && u.value == v.value && u.suffix == v.suffix;
  };
  auto same_matches = [&](const std::vector<gateway::HeaderMatch>& u,
                          const std::vector<gateway::HeaderMatch>& v) {
    return std::equal(u.begin(), u.end(), v.begin(), v.end(), [&](const auto& a, const auto& b) {
      return a.name == b.name && same_match(a.value, b.value);
    });
  };
  auto same_route = [&](const Route& x, const Route& y) {
    auto same_uri = [&](const std::optional<gateway::StringMatch>& u,
                        const std::optional<gateway::StringMatch>& v) {
      return u.has_value() == v.has_value() && (!u || same_match(*u, *v));
    };
    return x.namespace_ == y.namespace_ && x.name == y.name && x.component == y.component &&
           x.model_name == y.model_name && x.timeout_ms == y.timeout_ms && x.hosts == y.hosts &&
           x.trace_sampling == y.trace_sampling && same_uri(x.uri, y.uri) &&
           x.rewrite == y.rewrite &&
           std::equal(x.split.begin(), x.split.end(), y.split.begin(), y.split.end(),
                      same_weight) &&
           x.mirror.has_value() == y.mirror.has_value() &&
           (!x.mirror || same_weight(*x.mirror, *y.mirror)) &&
           (x.logger == y.logger || (x.logger && y.logger && *x.logger == *y.logger)) &&
           x.retries == y.retries && same_uri(x.method, y.method) &&
           x.rewrite_path == y.rewrite_path && same_matches(x.headers, y.headers) &&
           same_matches(x.query, y.query) && x.ports == y.ports &&
           (x.policy == y.policy || (x.policy && y.policy && *x.policy == *y.policy));
  };
  auto same_revision = [](const gateway::RevisionTarget& x, const gateway::RevisionTarget& y) {
    return x.key == y.key && x.revision == y.revision &&
           x.container_concurrency == y.container_concurrency && x.ports == y.ports &&
           x.hosts == y.hosts && x.grpc_targets == y.grpc_targets &&
           x.http_sockets == y.http_sockets && x.link_sockets == y.link_sockets &&
           (x.policy == y.policy || (x.policy && y.policy && *x.policy == *y.policy));
  };
  return std::equal(a.routes.begin(), a.routes.end(), b.routes.begin(), b.routes.end(),
                    same_route) &&
         std::equal(a.revisions.begin(), a.revisions.end(), b.revisions.begin(), b.revisions.end(),
                    same_revision);
}

}  // namespace osprey::controlplane
