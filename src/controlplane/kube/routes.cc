#include "controlplane/kube/routes.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <variant>

#include "common/json_dom.h"
#include "common/strings.h"
#include "controlplane/istio.h"
#include "controlplane/knative.h"
#include "controlplane/kube/objects.h"
#include "controlplane/scaling.h"

namespace osprey::controlplane {
namespace {

using json::GetString;

const rapidjson::Value& Obj(const rapidjson::Value& v, const char* key) {
  static const rapidjson::Value kEmpty(rapidjson::kObjectType);
  if (!v.IsObject()) return kEmpty;
  auto it = v.FindMember(key);
  return it != v.MemberEnd() && it->value.IsObject() ? it->value : kEmpty;
}

const rapidjson::Value* Array(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject()) return nullptr;
  auto it = v.FindMember(key);
  return it != v.MemberEnd() && it->value.IsArray() ? &it->value : nullptr;
}

std::map<std::string, std::string> StringMap(const rapidjson::Value& v) {
  std::map<std::string, std::string> out;
  if (!v.IsObject()) return out;
  for (const auto& m : v.GetObject())
    if (m.value.IsString()) out[m.name.GetString()] = m.value.GetString();
  return out;
}

// The bool member `key`; `absent` when it is not there (or not a bool).
bool Bool(const rapidjson::Value& v, const char* key, bool absent) {
  if (!v.IsObject()) return absent;
  auto it = v.FindMember(key);
  return it != v.MemberEnd() && it->value.IsBool() ? it->value.GetBool() : absent;
}

uint16_t Port(const rapidjson::Value& p) {
  auto it = p.FindMember("port");
  if (it == p.MemberEnd() || !it->value.IsInt()) return 0;
  const int port = it->value.GetInt();
  return port > 0 && port < 65536 ? static_cast<uint16_t>(port) : 0;
}

std::string GrpcTarget(const Endpoint& e) {
  if (e.grpc_port == 0) return "";
  // An IPv6 address is bracketed in a gRPC target.
  return e.address.find(':') == std::string::npos ? StrCat(e.address, ":", e.grpc_port)
                                                  : StrCat("[", e.address, "]:", e.grpc_port);
}

}  // namespace

SliceView ReadEndpointSlice(const rapidjson::Value& slice) {
  SliceView v;
  const auto& meta = Obj(slice, "metadata");
  v.namespace_ = GetString(meta, "namespace");
  v.service = GetString(Obj(meta, "labels"), kServiceNameLabel);
  const std::string type = GetString(slice, "addressType");
  if (type != "IPv4" && type != "IPv6") return v;
  uint16_t http = 0, grpc = 0;
  const rapidjson::Value* ports = Array(slice, "ports");
  if (ports != nullptr) {
    for (const auto& p : ports->GetArray()) {
      if (!p.IsObject()) continue;
      const std::string name = GetString(p, "name");
      if (name == "http") http = Port(p);
      if (name == "grpc") grpc = Port(p);
    }
    // A Service with one unnamed port: that is its HTTP.
    if (http == 0 && ports->Size() == 1 && (*ports)[0].IsObject() &&
        GetString((*ports)[0], "name").empty())
      http = Port((*ports)[0]);
  }
  if (http == 0) return v;
  const rapidjson::Value* endpoints = Array(slice, "endpoints");
  if (endpoints == nullptr) return v;
  for (const auto& e : endpoints->GetArray()) {
    const auto& conditions = Obj(e, "conditions");
    // Kubernetes: an absent ready condition means ready; a terminating
    // endpoint is never ready.
    if (!Bool(conditions, "ready", true) || Bool(conditions, "terminating", false)) continue;
    const rapidjson::Value* addresses = Array(e, "addresses");
    if (addresses == nullptr || addresses->Empty() || !(*addresses)[0].IsString()) continue;
    v.ready.push_back({(*addresses)[0].GetString(), http, grpc});
  }
  return v;
}

IsvcView ReadInferenceService(const rapidjson::Value& isvc) {
  IsvcView v;
  ServiceRouting& r = v.routing;
  auto parsed = resources::FromJson(json::ToText(isvc));
  if (parsed.ok() && std::holds_alternative<resources::InferenceService>(*parsed)) {
    auto& i = std::get<resources::InferenceService>(*parsed);
    r.meta = i.meta;
    r.timeout_seconds = i.predictor.timeout_seconds;
    if (i.transformer) r.transformer_timeout_seconds = i.transformer->timeout_seconds;
    if (i.explainer) r.explainer_timeout_seconds = i.explainer->timeout_seconds;
    r.predictor_logger = i.predictor.logger;
    if (i.transformer) r.transformer_logger = i.transformer->logger;
    if (i.explainer) r.explainer_logger = i.explainer->logger;
    v.spec = std::move(i);
  } else {
    const auto& meta = Obj(isvc, "metadata");
    r.meta.name = GetString(meta, "name");
    r.meta.namespace_ = GetString(meta, "namespace");
    r.meta.labels = StringMap(Obj(meta, "labels"));
    r.meta.annotations = StringMap(Obj(meta, "annotations"));
  }
  r.status = ReadStatus(isvc).status;
  const std::string& ns = r.meta.namespace_;
  auto aspire = [&](const std::string& revision) {
    if (revision.empty()) return;
    std::string key = StrCat(ns, "/", revision);
    if (std::find(r.aspired.begin(), r.aspired.end(), key) == r.aspired.end())
      r.aspired.push_back(std::move(key));
  };
  for (const char* name : {"predictor", "transformer", "explainer"}) {
    std::optional<ComponentStatus> c = r.status.Component(name);
    if (!c.has_value()) continue;
    for (const auto& t : c->traffic) aspire(t.revision);
    aspire(c->latest_created);
  }
  return v;
}

KsvcView ReadKnativeService(const rapidjson::Value& ksvc) {
  KsvcView v;
  KnativeRouting& r = v.routing;
  auto parsed = resources::FromJson(json::ToText(ksvc));
  if (parsed.ok() && std::holds_alternative<resources::KnativeService>(*parsed)) {
    auto& k = std::get<resources::KnativeService>(*parsed);
    r.meta = k.meta;
    r.timeout_seconds = k.revision.timeout_seconds;
    v.spec = std::move(k);
  } else {
    const auto& meta = Obj(ksvc, "metadata");
    r.meta.name = GetString(meta, "name");
    r.meta.namespace_ = GetString(meta, "namespace");
    r.meta.labels = StringMap(Obj(meta, "labels"));
    r.meta.annotations = StringMap(Obj(meta, "annotations"));
  }
  StoredKnative stored = ReadKnativeStatus(ksvc);
  r.traffic = std::move(stored.status.traffic);
  v.latest_ready = stored.status.latest_ready;
  auto aspire = [&](const std::string& revision) {
    if (revision.empty()) return;
    std::string key = StrCat(r.meta.namespace_, "/", revision);
    if (std::find(r.aspired.begin(), r.aspired.end(), key) == r.aspired.end())
      r.aspired.push_back(std::move(key));
  };
  for (const auto& t : r.traffic) aspire(t.revision);
  aspire(stored.status.latest_created);
  return v;
}

std::optional<DeploymentView> ReadDeployment(const rapidjson::Value& deployment) {
  std::optional<RevisionSpec> rev = RevisionOfDeployment(deployment);
  if (!rev.has_value()) return std::nullopt;
  DeploymentView v;
  v.name = GetString(Obj(deployment, "metadata"), "name");
  v.revision = std::move(*rev);
  const auto& spec = Obj(deployment, "spec");
  auto replicas = spec.FindMember("replicas");
  v.replicas =
      replicas != spec.MemberEnd() && replicas->value.IsInt() ? replicas->value.GetInt() : 1;
  v.ready_replicas = static_cast<int>(json::GetInt(Obj(deployment, "status"), "readyReplicas"));
  const std::optional<resources::Component> c = RevisionComponent(v.revision);
  v.pod_labels = RevisionPodLabels(v.revision, c ? &*c : nullptr);
  return v;
}

namespace {

// "transformer" of "iris-transformer-00002" (revisions are
// {isvc}-{component}-{number}); "predictor" when the name says nothing else.
std::string ComponentOfRevision(const std::string& revision, const std::string& isvc) {
  if (revision.size() > isvc.size() + 1 && revision.starts_with(isvc) &&
      revision[isvc.size()] == '-') {
    std::string_view rest = std::string_view(revision).substr(isvc.size() + 1);
    for (const char* name : {"transformer", "explainer"})
      if (rest.starts_with(name) && rest.size() > std::strlen(name) &&
          rest[std::strlen(name)] == '-')
        return name;
  }
  return "predictor";
}

}  // namespace

ClusterRouting RoutingFromCluster(const std::vector<IsvcView>& isvcs,
                                  const std::vector<SliceView>& slices,
                                  const std::vector<DeploymentView>& deployments,
                                  const std::vector<KsvcView>& ksvcs) {
  ClusterRouting out;
  std::map<std::string, std::vector<const SliceView*>> slices_of;  // by "{ns}/{service}"
  for (const auto& s : slices)
    if (!s.service.empty()) slices_of[StrCat(s.namespace_, "/", s.service)].push_back(&s);
  std::map<std::string, const DeploymentView*> deployment_of;  // by "{ns}/{revision}"
  for (const auto& d : deployments)
    deployment_of[StrCat(d.revision.namespace_, "/", d.revision.name)] = &d;

  // An aspired revision's target: its ready endpoints, and its own
  // containerConcurrency when its Deployment is known (else `concurrency`);
  // ready when it has endpoints, is `routed` or is the latest ready one.
  auto add = [&](const std::string& key, const std::string& revision, int concurrency,
                 const std::vector<TrafficTarget>& traffic, const std::string& latest_ready) {
    RevisionRouting& r = out.revisions[key];
    r.aspired = true;
    gateway::RevisionTarget& t = r.target;
    t.key = key;
    t.revision = revision;
    t.container_concurrency = concurrency;
    if (auto d = deployment_of.find(key); d != deployment_of.end())
      if (auto p = RevisionComponent(d->second->revision))
        t.container_concurrency = p->container_concurrency;
    std::set<std::pair<std::string, uint16_t>> seen;
    if (auto it = slices_of.find(key); it != slices_of.end())
      for (const SliceView* slice : it->second)
        for (const Endpoint& e : slice->ready) {
          if (!seen.insert({e.address, e.http_port}).second) continue;
          t.hosts.push_back(e.address);
          t.ports.push_back(e.http_port);
          t.grpc_targets.push_back(GrpcTarget(e));
        }
    const bool routed = std::any_of(traffic.begin(), traffic.end(), [&](const TrafficTarget& tt) {
      return tt.revision == revision;
    });
    r.phase = !t.ports.empty() || routed || latest_ready == revision ? RevisionPhase::kReady
                                                                     : RevisionPhase::kPending;
  };
  for (const auto& isvc : isvcs) {
    const ServiceRouting& s = isvc.routing;
    out.services.push_back(s);
    const std::string& ns = s.meta.namespace_;
    for (const auto& key : s.aspired) {
      const std::string revision = key.substr(ns.size() + 1);
      const std::string component = ComponentOfRevision(revision, s.meta.name);
      const resources::Component* current = isvc.Component(component);
      const ComponentStatus c = s.status.Component(component).value_or(ComponentStatus{});
      add(key, revision, current ? current->container_concurrency : 0, c.traffic, c.latest_ready);
    }
  }
  for (const auto& k : ksvcs) {
    const KnativeRouting& s = k.routing;
    out.knative.push_back(s);
    for (const auto& key : s.aspired)
      add(key, key.substr(s.meta.namespace_.size() + 1),
          k.spec ? k.spec->revision.container_concurrency : 0, s.traffic, k.latest_ready);
  }
  return out;
}

std::vector<ScaleTarget> ScaleTargets(const std::vector<IsvcView>& isvcs,
                                      const std::vector<DeploymentView>& deployments,
                                      const autoscaler::KpaSpec& defaults,
                                      const std::vector<KsvcView>& ksvcs) {
  std::map<std::string, const IsvcView*> by_key;
  for (const auto& i : isvcs)
    by_key[StrCat(i.routing.meta.namespace_, "/", i.routing.meta.name)] = &i;
  std::map<std::string, const KsvcView*> ksvc_of;
  for (const auto& k : ksvcs)
    ksvc_of[StrCat(k.routing.meta.namespace_, "/", k.routing.meta.name)] = &k;
  // The newest revision each owner's status names, by owner and component:
  // a Deployment newer than that is the operator's latest, made just before
  // the status says so (the status is written after it): aspired, not
  // scaled away in between.
  auto owner_of = [](const RevisionSpec& r) {
    return StrCat(r.kind, "/", r.namespace_, "/", r.isvc, "/", r.component);
  };
  std::set<std::string> named;
  for (const auto& i : isvcs) named.insert(i.routing.aspired.begin(), i.routing.aspired.end());
  for (const auto& k : ksvcs) named.insert(k.routing.aspired.begin(), k.routing.aspired.end());
  std::map<std::string, int> newest_named;
  for (const auto& d : deployments)
    if (named.contains(StrCat(d.revision.namespace_, "/", d.revision.name))) {
      int& n = newest_named[owner_of(d.revision)];
      n = std::max(n, d.revision.number);
    }
  std::vector<ScaleTarget> out;
  auto target = [&](const DeploymentView& d, const std::vector<std::string>& aspired) {
    ScaleTarget t;
    t.key = StrCat(d.revision.namespace_, "/", d.revision.name);
    t.namespace_ = d.revision.namespace_;
    t.revision = d.revision.name;
    t.deployment = d.name;
    t.aspired = std::find(aspired.begin(), aspired.end(), t.key) != aspired.end() ||
                d.revision.number > newest_named[owner_of(d.revision)];
    t.replicas = d.replicas;
    t.ready_replicas = d.ready_replicas;
    return t;
  };
  for (const auto& d : deployments) {
    const RevisionSpec& rev = d.revision;
    if (rev.kind == kKnativeServiceKind) {
      auto k = ksvc_of.find(StrCat(rev.namespace_, "/", rev.isvc));
      if (k == ksvc_of.end()) continue;
      ScaleTarget t = target(d, k->second->routing.aspired);
      if (t.aspired) {
        // Knative scales by the template's annotations only: the
        // revision's own (the Service's when it cannot be read back; a
        // Service that does not parse still has its revisions scaled).
        std::optional<resources::Component> own = RevisionComponent(rev);
        const resources::Component* c = own               ? &*own
                                        : k->second->spec ? &k->second->spec->revision
                                                          : nullptr;
        if (c == nullptr) continue;
        t.kpa = KpaSpecFor(defaults, {}, *c, rev.min_replicas);
      }
      out.push_back(std::move(t));
      continue;
    }
    auto it = by_key.find(StrCat(rev.namespace_, "/", rev.isvc));
    if (it == by_key.end()) continue;
    const IsvcView& isvc = *it->second;
    const resources::Component* component = isvc.Component(rev.component);
    if (component == nullptr) continue;
    if (UsesHpa(isvc.routing.meta.annotations, component->annotations)) continue;
    ScaleTarget t = target(d, isvc.routing.aspired);
    if (t.aspired) {
      std::optional<resources::Component> own = RevisionComponent(rev);
      t.kpa = KpaSpecFor(defaults, isvc.routing.meta.annotations, own ? *own : *component,
                         rev.min_replicas);
    }
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(),
            [](const ScaleTarget& a, const ScaleTarget& b) { return a.key < b.key; });
  return out;
}

ScaleWrite ScaleFor(int desired, bool activating, int last, int current) {
  ScaleWrite w;
  w.replicas = activating ? std::max(desired, 1) : desired;
  // The first decision is compared with what runs; later ones with the
  // decision before (what the informer shows may lag the last write).
  w.write = last < 0 ? w.replicas != current : w.replicas != last;
  return w;
}

}  // namespace osprey::controlplane
