#include "controlplane/knative.h"

#include <algorithm>
#include <cstdio>

#include "common/strings.h"

namespace osprey::controlplane {

std::string KnativeTemplateJson(const resources::KnativeService& service) {
  resources::KnativeService t;
  t.meta.name = service.meta.name;
  t.meta.namespace_ = service.meta.namespace_;
  t.revision_name = service.revision_name;
  t.revision = service.revision;
  t.serving_container = service.serving_container;
  t.traffic = {{.latest_revision = true, .percent = 100}};
  return resources::ToJson(t);
}

std::string KnativeHost(const resources::ObjectMeta& meta, const PlatformConfig& config,
                        std::string_view tag) {
  return StrCat(tag.empty() ? "" : StrCat(tag, "-"), meta.name, ".", meta.namespace_, ".",
                config.domain);
}

std::string KnativeUrl(const resources::ObjectMeta& meta, const PlatformConfig& config,
                       std::string_view tag) {
  std::string url = StrCat("http://", KnativeHost(meta, config, tag));
  if (config.gateway_port != 80) StrAppend(&url, ":", config.gateway_port);
  return url;
}

std::vector<std::string> KnativeLocalHosts(const resources::ObjectMeta& meta) {
  const std::string base = StrCat(meta.name, ".", meta.namespace_);
  return {StrCat(base, ".svc.cluster.local"), StrCat(base, ".svc"), base};
}

std::string KnativeRevisionName(const resources::KnativeService& service, int number) {
  if (!service.revision_name.empty()) return service.revision_name;
  char digits[16];
  std::snprintf(digits, sizeof(digits), "%05d", number);
  return StrCat(service.meta.name, "-", digits);
}

RevisionSpec KnativeRevision(const resources::KnativeService& service,
                             const std::string& template_json, const std::string& name, int number,
                             const std::string& now) {
  RevisionSpec r;
  r.name = name;
  r.namespace_ = service.meta.namespace_;
  r.isvc = service.meta.name;
  r.component.clear();
  r.kind = kKnativeServiceKind;
  r.number = number;
  r.spec_json = template_json;
  r.created = now;
  r.protocol.clear();
  r.container = service.revision.containers[service.serving_container];
  r.min_replicas = service.revision.min_replicas;
  r.max_replicas = service.revision.max_replicas;
  return r;
}

namespace {

Condition Cond(std::string type, std::string status, std::string reason = {},
               std::string message = {}) {
  return {std::move(type), std::move(status), std::move(reason), std::move(message)};
}

}  // namespace

KnativePlan ReconcileKnative(const KnativeInput& in) {
  const resources::KnativeService& svc = *in.service;
  KnativePlan plan;
  KnativeStatus& st = plan.status;
  st.url = KnativeUrl(svc.meta, *in.config);
  st.address = StrCat("http://", KnativeLocalHosts(svc.meta)[0]);

  // The revision the current template made, or a new one.
  const RevisionView* latest = nullptr;
  if (!svc.revision_name.empty()) {
    for (const auto& r : in.revisions)
      if (r.spec.name == svc.revision_name) latest = &r;
  } else if (!in.revisions.empty() && in.revisions.back().spec.spec_json == in.template_json) {
    latest = &in.revisions.back();
  }
  RevisionObserved latest_observed;
  if (latest != nullptr) {
    st.latest_created = latest->spec.name;
    latest_observed = latest->observed;
  } else {
    const int number = in.revisions.empty() ? 1 : in.revisions.back().spec.number + 1;
    plan.create =
        KnativeRevision(svc, in.template_json, KnativeRevisionName(svc, number), number, in.now);
    st.latest_created = plan.create->name;
  }
  std::map<std::string, const RevisionView*> by_name;
  for (const auto& r : in.revisions) by_name[r.spec.name] = &r;
  // Routable: ready, or ready once and scaled away since (not failed).
  auto routable = [&](const std::string& name) {
    auto it = by_name.find(name);
    if (it == by_name.end()) return false;
    const RevisionObserved& o = it->second->observed;
    return o.phase == RevisionPhase::kReady || (o.ever_ready && o.phase != RevisionPhase::kFailed);
  };
  auto failed = [&](const std::string& name) {
    auto it = by_name.find(name);
    return it != by_name.end() && it->second->observed.phase == RevisionPhase::kFailed;
  };
  if (latest_observed.phase == RevisionPhase::kReady) {
    st.latest_ready = st.latest_created;
  } else if (routable(in.stored_latest_ready)) {
    st.latest_ready = in.stored_latest_ready;
  } else {
    // None reported yet (or it is gone): the newest routable one.
    for (const auto& r : in.revisions)
      if (routable(r.spec.name)) st.latest_ready = r.spec.name;
  }

  Condition config_ready;
  if (latest_observed.phase == RevisionPhase::kReady) {
    config_ready = Cond("ConfigurationsReady", "True");
  } else if (latest_observed.phase == RevisionPhase::kFailed) {
    config_ready = Cond(
        "ConfigurationsReady", "False", "RevisionFailed",
        StrCat("Revision \"", st.latest_created, "\" failed with message: ",
               latest_observed.message.empty() ? latest_observed.reason : latest_observed.message,
               "."));
  } else {
    config_ready = Cond(
        "ConfigurationsReady", "Unknown", "RevisionMissing",
        StrCat("Configuration \"", svc.meta.name, "\" is waiting for a Revision to become ready."));
  }

  // The traffic block, resolved; kept as last resolved while it cannot be.
  std::vector<TrafficTarget> resolved;
  Condition routes_ready = Cond("RoutesReady", "True");
  for (const auto& t : svc.traffic) {
    TrafficTarget target{t.latest_revision ? st.latest_ready : t.revision_name, t.percent, t.tag,
                         t.latest_revision};
    if (t.latest_revision && st.latest_ready.empty()) {
      routes_ready = Cond("RoutesReady", "Unknown", "RevisionMissing",
                          StrCat("Configuration \"", svc.meta.name,
                                 "\" is waiting for a Revision to become ready."));
    } else if (!t.latest_revision && !by_name.contains(t.revision_name) &&
               !(plan.create && plan.create->name == t.revision_name)) {
      routes_ready =
          Cond("RoutesReady", "False", "RevisionMissing",
               StrCat("Revision \"", t.revision_name, "\" referenced in traffic not found."));
    } else if (!t.latest_revision && failed(t.revision_name) && routes_ready.status != "False") {
      routes_ready =
          Cond("RoutesReady", "False", "RevisionFailed",
               StrCat("Revision \"", t.revision_name, "\" referenced in traffic failed."));
    } else if (!t.latest_revision && !routable(t.revision_name) && routes_ready.status == "True") {
      routes_ready = Cond("RoutesReady", "Unknown", "RevisionMissing",
                          StrCat("Revision \"", t.revision_name, "\" is not ready."));
    }
    resolved.push_back(std::move(target));
  }
  st.traffic = routes_ready.status == "True" ? resolved : in.stored_traffic;

  // Running: the latest created, what the route serves, what the spec names.
  auto aspire = [&](const std::string& name) {
    if (name.empty()) return;
    if (plan.create && plan.create->name == name) {
      plan.replicas[name] = plan.create->min_replicas;
    } else if (auto it = by_name.find(name); it != by_name.end()) {
      plan.replicas[name] = it->second->spec.min_replicas;
    }
  };
  aspire(st.latest_created);
  for (const auto& t : st.traffic) aspire(t.revision);
  for (const auto& t : svc.traffic) aspire(t.revision_name);

  Condition ready_cond = Cond("Ready", "True");
  for (const Condition* c : {&config_ready, &routes_ready}) {
    if (c->status == "True" || ready_cond.status == "False") continue;
    ready_cond = Cond("Ready", c->status, c->reason, c->message);
  }
  st.conditions = {config_ready, ready_cond, routes_ready};
  return plan;
}

void AvoidTakenName(const resources::KnativeService& service, const std::string& template_json,
                    const std::function<bool(const std::string&)>& taken, const std::string& now,
                    KnativePlan* plan) {
  if (!plan->create || !taken(plan->create->name)) return;
  const std::string name = plan->create->name;
  plan->replicas.erase(name);
  if (service.revision_name.empty()) {
    int number = plan->create->number;
    while (taken(KnativeRevisionName(service, number))) ++number;
    *plan->create =
        KnativeRevision(service, template_json, KnativeRevisionName(service, number), number, now);
    plan->replicas[plan->create->name] = plan->create->min_replicas;
    plan->status.latest_created = plan->create->name;
    return;
  }
  plan->create.reset();
  const std::string message =
      StrCat("Revision \"", name, "\" could not be created: the name is taken");
  for (auto& c : plan->status.conditions)
    if (c.type == "ConfigurationsReady" || c.type == "Ready")
      c = {c.type, "False", "RevisionCreationFailed", message};
}

std::vector<EventRecord> KnativeTransition(const KnativeStatus& before, const KnativeStatus& after,
                                           const std::string& name, const std::string& now,
                                           std::map<std::string, std::string>* times) {
  for (const auto& c : after.conditions) {
    auto was = std::find_if(before.conditions.begin(), before.conditions.end(),
                            [&](const Condition& b) { return b.type == c.type; });
    if (was == before.conditions.end() || was->status != c.status || !times->contains(c.type))
      (*times)[c.type] = now;
  }
  auto ready = [](const KnativeStatus& s) -> const Condition* {
    for (const auto& c : s.conditions)
      if (c.type == "Ready") return &c;
    return nullptr;
  };
  const Condition* now_ready = ready(after);
  const bool was = ready(before) != nullptr && ready(before)->status == "True";
  const bool is = now_ready != nullptr && now_ready->status == "True";
  if (was == is) return {};
  if (is) return {{"Normal", "ServiceReady", StrCat("Service ", name, " is Ready")}};
  return {{"Warning", "ServiceNotReady", now_ready != nullptr ? now_ready->message : ""}};
}

}  // namespace osprey::controlplane
