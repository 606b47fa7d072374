#include "controlplane/routing.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>

#include "common/strings.h"

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

RouteTable PlanRoutes(const std::vector<ServiceRouting>& services,
                      const std::map<std::string, RevisionRouting>& revisions,
                      const PlatformConfig& config) {
  RouteTable table;
  RevisionIndex index(revisions, &table);
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
    if (s.timeout_seconds) base.timeout_ms = *s.timeout_seconds * 1000;
    const std::string host = ServiceHost(s.meta, config);
    const std::string latest = StrCat(ns, "/", s.status.latest_created);
    auto annotation = [&](const char* key) -> std::string {
      auto it = s.meta.annotations.find(key);
      return it == s.meta.annotations.end() ? "" : it->second;
    };
    if (annotation("serving.kserve.io/enable-tag-routing") == "true") {
      if (ready_aspired(latest, false)) {
        Route r = NewRoute(base, {StrCat("latest-", host)});
        r.split = {{*index(latest), 100}};
        table.routes.push_back(std::move(r));
      }
      for (const auto& t : s.status.traffic) {
        if (t.tag != "prev") continue;
        if (auto i = index(StrCat(ns, "/", t.revision))) {
          Route r = NewRoute(base, {StrCat("prev-", host)});
          r.split = {{*i, 100}};
          table.routes.push_back(std::move(r));
        }
        break;
      }
    }
    Route main = NewRoute(base, {host});
    main.model_name = s.meta.name;
    for (const auto& t : s.status.traffic)
      if (t.percent > 0)
        if (auto i = index(StrCat(ns, "/", t.revision))) main.split.push_back({*i, t.percent});
    // Shadow testing: a share of the requests copied to the latest revision
    // (its answers discarded), e.g. while it takes no traffic (canary 0).
    const int percent = std::atoi(annotation(kMirrorAnnotation).c_str());
    if (percent > 0 && ready_aspired(latest, true))
      main.mirror = gateway::WeightedRevision{*index(latest), std::min(percent, 100)};
    table.routes.push_back(std::move(main));
  }
  return table;
}

bool SameRoutes(const RouteTable& a, const RouteTable& b) {
  auto same_weight = [](const gateway::WeightedRevision& x, const gateway::WeightedRevision& y) {
    return x.revision == y.revision && x.percent == y.percent;
  };
  auto same_route = [&](const Route& x, const Route& y) {
    return x.namespace_ == y.namespace_ && x.name == y.name && x.model_name == y.model_name &&
           x.timeout_ms == y.timeout_ms && x.hosts == y.hosts &&
           std::equal(x.split.begin(), x.split.end(), y.split.begin(), y.split.end(),
                      same_weight) &&
           x.mirror.has_value() == y.mirror.has_value() &&
           (!x.mirror || same_weight(*x.mirror, *y.mirror));
  };
  auto same_revision = [](const gateway::RevisionTarget& x, const gateway::RevisionTarget& y) {
    return x.key == y.key && x.revision == y.revision &&
           x.container_concurrency == y.container_concurrency && x.ports == y.ports &&
           x.hosts == y.hosts && x.grpc_targets == y.grpc_targets &&
           x.http_sockets == y.http_sockets && x.link_sockets == y.link_sockets;
  };
  return std::equal(a.routes.begin(), a.routes.end(), b.routes.begin(), b.routes.end(),
                    same_route) &&
         std::equal(a.revisions.begin(), a.revisions.end(), b.revisions.begin(), b.revisions.end(),
                    same_revision);
}

}  // namespace osprey::controlplane
