// The local controller's Knative Services: apply, store, the pass that runs
// their revisions (knative.h decides), and their views (Service,
// Configuration, Route) and every revision's Deployment. Every method runs
// with `mu` held.

#include <rapidjson/document.h>

#include "common/json_dom.h"
#include "controlplane/local/controller_impl.h"
#include "controlplane/observe.h"

namespace osprey::controlplane {
using namespace osprey::json;

void Controller::Impl::SetOwner(KsvcEntry& e) {
  e.template_json = KnativeTemplateJson(e.ksvc);
  e.owner = InferenceService{};
  e.owner.meta = e.ksvc.meta;
  e.owner.meta.annotations.clear();  // Knative scales by the template's annotations only
  e.owner.predictor = e.ksvc.revision;
}

absl::StatusOr<Controller::ApplyResult> Controller::Impl::ApplyKnative(
    const resources::KnativeService& ksvc, const std::string& json, const std::string& now,
    bool dry_run) {
  Controller::ApplyResult result;
  result.kind = "Service";
  result.namespace_ = ksvc.meta.namespace_;
  result.name = ksvc.meta.name;
  const std::string& ns = ksvc.meta.namespace_;
  // An InferenceService's components are Knative Services of these names
  // on a KServe cluster; here they are its own, and their revision names too.
  for (const char* component : {"-predictor", "-transformer", "-explainer"}) {
    const std::string_view name = ksvc.meta.name;
    if (!name.ends_with(component)) continue;
    const std::string isvc(name.substr(0, name.size() - std::string_view(component).size()));
    if (isvcs.contains(StrCat(ns, "/", isvc)))
      return absl::AlreadyExistsError(
          StrCat("Service ", name, ": metadata.name: the InferenceService ", isvc, " in namespace ",
                 ns, " owns this name (its ", component + 1, ")"));
  }
  if (isvcs.contains(StrCat(ns, "/", ksvc.meta.name)))
    return absl::AlreadyExistsError(StrCat("Service ", ksvc.meta.name,
                                           ": metadata.name: an InferenceService of this name "
                                           "exists in namespace ",
                                           ns, " (their hosts and paths would collide)"));
  if (!ksvc.revision_name.empty()) {
    // {isvc}-{component}-{digits} names an InferenceService's revisions.
    const std::string_view name = ksvc.revision_name;
    const size_t dash = name.rfind('-');
    const bool digits = dash != std::string_view::npos && dash + 1 < name.size() &&
                        name.find_first_not_of("0123456789", dash + 1) == std::string_view::npos;
    for (const char* component : {"-predictor", "-transformer", "-explainer"})
      if (digits && name.substr(0, dash).ends_with(component))
        return absl::InvalidArgumentError(StrCat("Service ", ksvc.meta.name,
                                                 ": spec.template.metadata.name: \"", name,
                                                 "\" is invalid: {name}", component,
                                                 "-{digits} is how InferenceService revisions "
                                                 "are named"));
    auto rev = revisions.find(StrCat(ns, "/", ksvc.revision_name));
    if (rev != revisions.end()) {
      const RevisionSpec& spec = rev->second.spec;
      if (spec.kind != kKnativeServiceKind || spec.isvc != ksvc.meta.name)
        return absl::AlreadyExistsError(
            StrCat("Service ", ksvc.meta.name, ": spec.template.metadata.name: revision ",
                   ksvc.revision_name, " belongs to ",
                   spec.kind == kKnativeServiceKind ? "Service " : "InferenceService ", spec.isvc));
      if (spec.spec_json != KnativeTemplateJson(ksvc))
        return absl::InvalidArgumentError(
            StrCat("Service ", ksvc.meta.name, ": spec.template.metadata.name: revision ",
                   ksvc.revision_name,
                   " exists with another template; a changed template needs a new name (or none)"));
    }
  }
  if (dry_run) return result;
  const std::string key = StrCat(ns, "/", ksvc.meta.name);
  auto it = ksvcs.find(key);
  if (it == ksvcs.end()) {
    KsvcEntry e;
    e.ksvc = ksvc;
    e.resource_json = json;
    e.created = now;
    SetOwner(e);
    it = ksvcs.emplace(key, std::move(e)).first;
    result.action = "created";
  } else if (it->second.resource_json == json) {
    result.action = "unchanged";
    return result;
  } else {
    it->second.ksvc = ksvc;
    it->second.resource_json = json;
    SetOwner(it->second);
    ++it->second.generation;
    result.action = "configured";
  }
  SaveKsvc(key, it->second);
  KindEvent(kKsvcEvents, ns, ksvc.meta.name, "Normal",
            result.action == "created" ? "Created" : "Updated",
            StrCat("Service generation ", it->second.generation));
  return result;
}

void Controller::Impl::SaveKsvc(const std::string& key, const KsvcEntry& e) {
  auto more = [&](Writer& w) {
    Field(w, "latestReadyRevisionName", e.status.latest_ready);
    // What the route serves survives a restart: no revision loses its
    // traffic while the first pass waits for readiness.
    Key(w, "traffic");
    w.StartArray();
    for (const auto& t : e.status.traffic) {
      w.StartObject();
      Field(w, "revisionName", t.revision);
      Key(w, "percent");
      w.Int(t.percent);
      Field(w, "tag", t.tag);
      Key(w, "latestRevision");
      w.Bool(t.latest);
      w.EndObject();
    }
    w.EndArray();
  };
  auto st =
      store->Put(StrCat("ksvc/", key), ObjectRecord(e.resource_json, e.generation, e.created,
                                                    e.transition_times, e.status.conditions, more));
  if (!st.ok()) {
    OSPREY_LOG(kError) << "store: Service " << key << ": " << st.message();
  }
}

absl::Status Controller::Impl::LoadKsvcs() {
  OSPREY_ASSIGN_OR_RETURN(auto rows, store->List("ksvc/"));
  for (const auto& [key, value] : rows) {
    std::optional<StoredObject> o = ReadObjectRecord(key, value, "Service");
    if (!o) continue;
    KsvcEntry e;
    e.ksvc = std::get<resources::KnativeService>(o->resource);
    e.resource_json = std::move(o->resource_json);
    SetOwner(e);
    e.generation = o->generation;
    e.created = std::move(o->created);
    e.transition_times = std::move(o->times);
    e.status.conditions = std::move(o->conditions);
    e.status.latest_ready = GetString(o->doc, "latestReadyRevisionName");
    const rapidjson::Value& d = o->doc;
    if (auto t = d.FindMember("traffic"); t != d.MemberEnd() && t->value.IsArray())
      for (const auto& v : t->value.GetArray())
        e.status.traffic.push_back({GetString(v, "revisionName"),
                                    static_cast<int>(GetInt(v, "percent")), GetString(v, "tag"),
                                    v.HasMember("latestRevision") && v["latestRevision"].IsBool() &&
                                        v["latestRevision"].GetBool()});
    ksvcs[key.substr(5)] = std::move(e);
  }
  return absl::OkStatus();
}

void Controller::Impl::PassKnative(const std::vector<ReplicaStatus>& replicas,
                                   std::set<std::string>* live, std::vector<ReplicaSpec>* to_start,
                                   std::vector<KnativeRouting>* routed) {
  const std::string now = Now();
  for (auto& [key, e] : ksvcs) {
    const std::string& ns = e.ksvc.meta.namespace_;
    std::vector<std::string> rev_keys;
    for (auto& [rev_key, r] : revisions)
      if (r.spec.kind == kKnativeServiceKind && r.spec.namespace_ == ns &&
          r.spec.isvc == e.ksvc.meta.name)
        rev_keys.push_back(rev_key);
    std::sort(rev_keys.begin(), rev_keys.end(), [&](const auto& a, const auto& b) {
      return revisions[a].spec.number < revisions[b].spec.number;
    });
    for (const auto& k : rev_keys) Observe(k, revisions[k], replicas);

    KnativeInput in;
    in.service = &e.ksvc;
    in.template_json = e.template_json;
    for (const auto& k : rev_keys)
      in.revisions.push_back({revisions[k].spec, revisions[k].observed});
    in.config = &opts.platform;
    in.now = now;
    in.stored_traffic = e.status.traffic;
    in.stored_latest_ready = e.status.latest_ready;
    KnativePlan plan = ReconcileKnative(in);

    // A name another owner's revision has: the next free number, or (a
    // name the template gives) a failed configuration, never an overwrite.
    AvoidTakenName(
        e.ksvc, e.template_json,
        [&](const std::string& name) { return revisions.contains(StrCat(ns, "/", name)); }, now,
        &plan);

    if (plan.create) {
      const std::string rev_key = StrCat(ns, "/", plan.create->name);
      RevEntry r;
      r.spec = *plan.create;
      r.local = Place(r.spec);
      revisions[rev_key] = r;
      rev_keys.push_back(rev_key);
      SaveRevision(rev_key, revisions[rev_key]);
      RevisionEvent(r.spec, "Normal", "RevisionCreated",
                    StrCat("revision ", r.spec.name,
                           r.local.failure_message.empty()
                               ? ""
                               : StrCat(" cannot run: ", r.local.failure_message)));
    }

    KnativeRouting route;
    route.meta = e.ksvc.meta;
    route.timeout_seconds = e.ksvc.revision.timeout_seconds;
    route.aspired = RunRevisions(rev_keys, plan.replicas, e.owner, replicas, live, to_start);
    e.observed_generation = e.generation;
    if (!(plan.status == e.status)) {
      std::vector<EventRecord> events =
          KnativeTransition(e.status, plan.status, e.ksvc.meta.name, now, &e.transition_times);
      e.status = plan.status;
      SaveKsvc(key, e);
      for (const auto& ev : events)
        KindEvent(kKsvcEvents, ns, e.ksvc.meta.name, ev.type, ev.reason, ev.message);
    }
    route.traffic = e.status.traffic;
    routed->push_back(std::move(route));
  }
}

KnativeRecord Controller::Impl::RecordOf(const KsvcEntry& e) {
  return {e.resource_json,       e.created, e.generation,
          e.observed_generation, e.status,  e.transition_times};
}

std::vector<std::pair<std::string, KnativeRecord>> Controller::Impl::KnativeRecords(
    const std::string& ns) const {
  std::vector<std::pair<std::string, KnativeRecord>> out;
  for (const auto& [key, e] : ksvcs)
    if (ns.empty() || e.ksvc.meta.namespace_ == ns) out.emplace_back(e.ksvc.meta.name, RecordOf(e));
  // Each InferenceService component, as the Knative Service KServe makes for it.
  for (const auto& [key, e] : isvcs) {
    const resources::ObjectMeta& meta = e.isvc.meta;
    if (!ns.empty() && meta.namespace_ != ns) continue;
    for (const char* component : {"predictor", "transformer", "explainer"}) {
      std::optional<ComponentStatus> c = e.status.Component(component);
      if (!c) continue;
      std::string type = StrCat(component, "Ready");
      type[0] = static_cast<char>(type[0] - 'a' + 'A');
      const Condition* ready = nullptr;
      for (const auto& cond : e.status.conditions)
        if (cond.type == type) ready = &cond;
      auto latest = revisions.find(StrCat(meta.namespace_, "/", c->latest_created));
      auto time = e.transition_times.find(type);
      out.emplace_back(
          StrCat(meta.name, "-", component),
          ComponentAsKnative(meta, component, *c, ready,
                             latest != revisions.end() ? &latest->second.spec : nullptr, e.created,
                             e.generation, time != e.transition_times.end() ? time->second : ""));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListKsvcs(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  Items out;
  for (const auto& [name, r] : KnativeRecords(ns))
    out.emplace_back(name, KnativeServiceJson(r, opts.platform));
  return out;
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListConfigurations(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  Items out;
  for (const auto& [name, r] : KnativeRecords(ns)) out.emplace_back(name, ConfigurationJson(r));
  return out;
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListRoutes(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  Items out;
  for (const auto& [name, r] : KnativeRecords(ns))
    out.emplace_back(name, RouteJson(r, opts.platform));
  return out;
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListDeployments(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  Items out;
  for (const auto* r : SortedRevisions(ns)) {
    DeploymentRecord d;
    d.revision = r->spec.name;
    d.namespace_ = r->spec.namespace_;
    d.created = r->spec.created;
    if (r->spec.kind == kKnativeServiceKind) {
      d.labels = {{"serving.knative.dev/service", r->spec.isvc},
                  {"serving.knative.dev/revision", r->spec.name}};
    } else {
      d.labels = {{"serving.kserve.io/inferenceservice", r->spec.isvc},
                  {"component", r->spec.component},
                  {"serving.knative.dev/revision", r->spec.name}};
    }
    d.desired = r->aspired ? r->desired : 0;
    d.replicas = r->observed.replicas;
    d.ready = r->observed.ready_replicas;
    out.emplace_back(StrCat(r->spec.name, "-deployment"), DeploymentJson(d));
  }
  return out;
}

absl::Status Controller::Impl::DeleteKsvc(const std::string& ns, const std::string& name,
                                          std::vector<std::string>* replica_prefixes) {
  const std::string key = StrCat(ns, "/", name);
  if (!ksvcs.erase(key))
    return absl::NotFoundError(StrCat("service ", name, " not found in namespace ", ns));
  OSPREY_RETURN_IF_ERROR(store->Delete(StrCat("ksvc/", key)));
  EraseRevisionsOf(kKnativeServiceKind, ns, name, replica_prefixes);
  (void)store->DeletePrefix(EventPrefix(ns, kKsvcEvents, name));
  return absl::OkStatus();
}

}  // namespace osprey::controlplane
