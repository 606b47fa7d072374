#include "controlplane/kube/operator.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "common/json_dom.h"
#include "common/logging.h"
#include "common/rfc3339.h"
#include "controlplane/knative.h"
#include "controlplane/observe.h"
#include "controlplane/views.h"
#include "resources/kinds.h"

namespace osprey::controlplane {

using kube::ObjectPtr;
using kube::ResourceRef;
using resources::InferenceService;
using resources::ServingRuntime;

namespace {

const ResourceRef kIsvcs{"serving.kserve.io", "v1beta1", "inferenceservices", true};
const ResourceRef kRuntimes{"serving.kserve.io", "v1alpha1", "servingruntimes", true};
const ResourceRef kClusterRuntimes{"serving.kserve.io", "v1alpha1", "clusterservingruntimes",
                                   false};
const ResourceRef kDeployments{"apps", "v1", "deployments", true};
const ResourceRef kServices{"", "v1", "services", true};
const ResourceRef kPods{"", "v1", "pods", true};
const ResourceRef kEvents{"", "v1", "events", true};
const ResourceRef kHpas{"autoscaling", "v2", "horizontalpodautoscalers", true};
const ResourceRef kKsvcs{"serving.knative.dev", "v1", "services", true};
constexpr char kAppliedHash[] = "serving.osprey.dev/applied";
constexpr char kKnativeServiceLabel[] = "serving.knative.dev/service";
// Work-queue keys of Knative Services: this prefix and "{ns}/{name}"
// (InferenceServices' are "{ns}/{name}").
constexpr char kKnativeKey[] = "knative/";

std::string Now() { return Rfc3339Now(); }

std::string Hex(size_t h) {
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%016zx", h);
  return buf;
}

std::string Label(const kube::Object& o, const char* key) {
  const auto& meta = o.doc["metadata"];
  if (!meta.HasMember("labels") || !meta["labels"].IsObject()) return "";
  return json::GetString(meta["labels"], key);
}

std::string Annotation(const kube::Object& o, const char* key) {
  const auto& meta = o.doc["metadata"];
  if (!meta.HasMember("annotations") || !meta["annotations"].IsObject()) return "";
  return json::GetString(meta["annotations"], key);
}

// The object's annotations as stored (readable when its spec is not).
std::map<std::string, std::string> Annotations(const kube::Object& o) {
  std::map<std::string, std::string> out;
  const auto& meta = o.doc["metadata"];
  if (!meta.HasMember("annotations") || !meta["annotations"].IsObject()) return out;
  for (const auto& m : meta["annotations"].GetObject())
    if (m.value.IsString()) out[m.name.GetString()] = m.value.GetString();
  return out;
}

// The object with the hash of its applied form in an annotation, so that an
// unchanged object is not applied again (no write at all, not even a no-op
// apply).
std::string WithHash(const std::string& object_json, const std::string& hash) {
  rapidjson::Document d;
  d.Parse(object_json.data(), object_json.size());
  auto& meta = d["metadata"];
  if (!meta.HasMember("annotations"))
    meta.AddMember("annotations", rapidjson::Value(rapidjson::kObjectType), d.GetAllocator());
  meta["annotations"].AddMember(rapidjson::Value(kAppliedHash, d.GetAllocator()),
                                rapidjson::Value(hash.c_str(), d.GetAllocator()), d.GetAllocator());
  return json::ToText(d);
}

// Whether `o` is owned by the object with `uid`.
bool OwnedBy(const kube::Object& o, const std::string& uid) {
  auto meta = o.doc.FindMember("metadata");
  if (meta == o.doc.MemberEnd() || !meta->value.IsObject()) return false;
  auto refs = meta->value.FindMember("ownerReferences");
  if (refs == meta->value.MemberEnd() || !refs->value.IsArray()) return false;
  for (const auto& r : refs->value.GetArray())
    if (json::GetString(r, "uid") == uid) return true;
  return false;
}

// Whether resourceVersion `a` is older than `b`. They are opaque to clients
// in principle; here they are etcd revisions, compared as numbers (anything
// else counts as not older).
bool RvOlder(const std::string& a, const std::string& b) {
  char* end = nullptr;
  unsigned long long x = std::strtoull(a.c_str(), &end, 10);
  if (a.empty() || *end != '\0') return false;
  unsigned long long y = std::strtoull(b.c_str(), &end, 10);
  if (b.empty() || *end != '\0') return false;
  return x < y;
}

int SpecReplicas(const kube::Object& deployment) {
  auto spec = deployment.doc.FindMember("spec");
  if (spec == deployment.doc.MemberEnd() || !spec->value.IsObject()) return 1;
  auto r = spec->value.FindMember("replicas");
  return r != spec->value.MemberEnd() && r->value.IsInt() ? r->value.GetInt() : 1;
}

}  // namespace

struct Operator::Impl {
  kube::Client* client;
  OperatorOptions opts;
  kube::Informer isvcs;
  kube::Informer runtimes;
  kube::Informer cluster_runtimes;
  kube::Informer deployments;
  kube::Informer services;
  kube::Informer pods;
  kube::Informer hpas;
  // Knative Services, when the cluster serves them (Start asks).
  std::unique_ptr<kube::Informer> ksvcs;
  kube::WorkQueue queue;
  std::vector<std::thread> workers;
  std::atomic<bool> running{false};

  // What the operator remembers of one InferenceService between passes
  // (lost on restart, rebuilt from the cluster); dropped when it is deleted
  // or replaced by one of the same name (another uid). Only the worker that
  // holds its key touches an entry; `mu` guards the map itself.
  struct RevMemory {
    RevisionObserved observed;
    bool aspired = false;
    bool known = false;
  };
  struct IsvcMemory {
    std::string uid;
    std::map<std::string, RevMemory> revisions;  // by revision name
    // The revision this operator made last of each component, until the
    // Deployments informer shows it (informers lag the operator's own
    // writes); one that cannot run is never materialised and stays here.
    std::map<std::string, RevisionSpec> pending;  // by component
    // The status last written and the resourceVersion it made, standing in
    // for the informer's copy until that catches up (a Knative Service's in
    // written_knative).
    std::string written_rv;
    StoredStatus written;
    StoredKnative written_knative;
  };
  std::mutex mu;
  std::map<std::string, IsvcMemory> memory;  // by "{ns}/{isvc}"
  std::mutex lifecycle_mu;                   // Start and Stop
  std::atomic<uint64_t> reconciles{0}, applies{0}, events{0}, errors{0};

  static kube::InformerOptions Opts(const ResourceRef& ref, const std::string& ns,
                                    const std::string& selector = "") {
    kube::InformerOptions o;
    o.resource = ref;
    o.namespace_ = ref.namespaced ? ns : "";
    o.label_selector = selector;
    return o;
  }

  Impl(kube::Client* c, OperatorOptions o)
      : client(c),
        opts(std::move(o)),
        isvcs(c, Opts(kIsvcs, opts.namespace_)),
        runtimes(c, Opts(kRuntimes, opts.namespace_)),
        cluster_runtimes(c, Opts(kClusterRuntimes, "")),
        deployments(c,
                    Opts(kDeployments, opts.namespace_, StrCat(kManagedByLabel, "=", kManagedBy))),
        services(c, Opts(kServices, opts.namespace_, StrCat(kManagedByLabel, "=", kManagedBy))),
        pods(c, Opts(kPods, opts.namespace_, StrCat(kManagedByLabel, "=", kManagedBy))),
        hpas(c, Opts(kHpas, opts.namespace_, StrCat(kManagedByLabel, "=", kManagedBy))) {
    isvcs.AddHandler([this](const ObjectPtr& now, const ObjectPtr& before) {
      queue.Add((now ? now : before)->Key());
    });
    auto owner = [this](const ObjectPtr& now, const ObjectPtr& before) {
      const kube::Object& o = now ? *now : *before;
      // An InferenceService's pods carry both labels: its own first.
      if (std::string isvc = Label(o, kIsvcLabel); !isvc.empty())
        queue.Add(StrCat(o.namespace_, "/", isvc));
      else if (std::string ksvc = Label(o, kKnativeServiceLabel); !ksvc.empty())
        queue.Add(StrCat(kKnativeKey, o.namespace_, "/", ksvc));
    };
    deployments.AddHandler(owner);
    services.AddHandler(owner);
    pods.AddHandler(owner);
    hpas.AddHandler(owner);
    // A runtime changed: every InferenceService it may serve is looked at again.
    runtimes.AddHandler([this](const ObjectPtr& now, const ObjectPtr& before) {
      if (!isvcs.synced()) return;
      const std::string& ns = (now ? now : before)->namespace_;
      for (const auto& i : isvcs.List())
        if (i->namespace_ == ns) queue.Add(i->Key());
    });
    cluster_runtimes.AddHandler([this](const ObjectPtr&, const ObjectPtr&) {
      if (!isvcs.synced()) return;
      for (const auto& i : isvcs.List()) queue.Add(i->Key());
    });
  }

  std::vector<ServingRuntime> Runtimes(const kube::Informer& from, const std::string& ns) {
    std::vector<ServingRuntime> out;
    for (const auto& o : from.List()) {
      if (!ns.empty() && o->namespace_ != ns) continue;
      auto parsed = resources::FromJson(json::ToText(o->doc));
      if (!parsed.ok() || !std::holds_alternative<ServingRuntime>(*parsed)) continue;
      out.push_back(std::get<ServingRuntime>(std::move(*parsed)));
    }
    return out;
  }

  void Event(const kube::Object& isvc, const EventRecord& e,
             const char* api_version = "serving.kserve.io/v1beta1",
             const char* kind = "InferenceService") {
    std::string name =
        StrCat(isvc.name, ".",
               Hex(std::hash<std::string>{}(StrCat(e.reason, e.message, Now(), isvc.uid))));
    rapidjson::StringBuffer buf;
    json::Writer w(buf);
    w.StartObject();
    json::Field(w, "apiVersion", "v1");
    json::Field(w, "kind", "Event");
    json::Key(w, "metadata");
    w.StartObject();
    json::Field(w, "name", name.substr(0, 253));
    json::Field(w, "namespace", isvc.namespace_);
    w.EndObject();
    json::Key(w, "involvedObject");
    w.StartObject();
    json::Field(w, "apiVersion", api_version);
    json::Field(w, "kind", kind);
    json::Field(w, "name", isvc.name);
    json::Field(w, "namespace", isvc.namespace_);
    json::Field(w, "uid", isvc.uid);
    w.EndObject();
    json::Field(w, "type", e.type);
    json::Field(w, "reason", e.reason);
    json::Field(w, "message", e.message);
    json::Field(w, "firstTimestamp", Now());
    json::Field(w, "lastTimestamp", Now());
    w.Key("count");
    w.Int(1);
    json::Key(w, "source");
    w.StartObject();
    json::Field(w, "component", "osprey-operator");
    w.EndObject();
    w.EndObject();
    if (!MayWrite().ok()) return;
    events.fetch_add(1);
    auto r = client->Call("POST", kube::ResourcePath(kEvents, isvc.namespace_),
                          std::string(buf.GetString(), buf.GetSize()));
    if (!r.ok() || r->status / 100 != 2) {
      OSPREY_LOG(kDebug) << "event " << e.reason << " for " << isvc.Key() << " not written";
    }
  }

  // Whether this operator runs the cluster's Knative Services (objects.h
  // OspreyRunsKnative).
  bool RunsKnative() {
    auto served = client->ServedResources("serving.knative.dev/v1");
    if (!served.ok()) {
      OSPREY_LOG(kInfo) << "operator: the cluster serves no serving.knative.dev/v1: Knative "
                           "Services are not watched";
      return false;
    }
    if (OspreyRunsKnative(*served)) return true;
    OSPREY_LOG(kInfo) << "operator: Knative Serving is installed (serving.knative.dev/v1 serves "
                         "revisions): its controller runs Knative Services, Osprey leaves them";
    return false;
  }

  absl::Status MayWrite() const {
    if (opts.may_write && !opts.may_write())
      return absl::UnavailableError("not the leader: writes nothing");
    return absl::OkStatus();
  }

  // Applies `body_json` unless the live object (from an informer) carries
  // the hash of `basis_json` (the object without the fields others change,
  // such as a Deployment's replicas).
  absl::Status ApplyIfChanged(const kube::Informer& informer, const ResourceRef& ref,
                              const std::string& ns, const std::string& name,
                              const std::string& basis_json, const std::string& body_json) {
    std::string hash = Hex(std::hash<std::string>{}(basis_json));
    ObjectPtr live = informer.Get(StrCat(ns, "/", name));
    if (live != nullptr && Annotation(*live, kAppliedHash) == hash) return absl::OkStatus();
    OSPREY_RETURN_IF_ERROR(MayWrite());
    applies.fetch_add(1);
    auto r =
        client->Apply(kube::ResourcePath(ref, ns, name), WithHash(body_json, hash), kFieldManager);
    return r.ok() ? absl::OkStatus() : r.status();
  }
  absl::Status ApplyIfChanged(const kube::Informer& informer, const ResourceRef& ref,
                              const std::string& ns, const std::string& name,
                              const std::string& object_json) {
    return ApplyIfChanged(informer, ref, ns, name, object_json, object_json);
  }

  // A revision's Deployment. Its replicas are the live count (so that the
  // apply never disputes the autoscaler's, which changes them through the
  // scale subresource), or the initial count when it is made.
  absl::Status ApplyDeployment(const RevisionSpec& rev, const OwnerRef& owner,
                               const ObjectPtr& live) {
    const int replicas = live != nullptr ? SpecReplicas(*live) : InitialReplicas(rev);
    return ApplyIfChanged(deployments, kDeployments, rev.namespace_, DeploymentName(rev),
                          DeploymentJson(rev, owner, opts.placement, std::nullopt),
                          DeploymentJson(rev, owner, opts.placement, replicas));
  }

  using Revisions = std::vector<std::pair<RevisionSpec, ObjectPtr>>;

  // The revisions of the owner `uid` (named `owner`, labelled `label`) in
  // `ns`, from the Deployments it owns, of `kind`.
  Revisions OwnedRevisions(const std::string& ns, const char* label, const std::string& owner,
                           const std::string& uid, const std::string& kind) {
    Revisions revs;
    for (const auto& d : deployments.List()) {
      if (d->namespace_ != ns || Label(*d, label) != owner || !OwnedBy(*d, uid)) continue;
      auto spec = RevisionOfDeployment(d->doc);
      if (spec.has_value() && spec->isvc == owner && spec->kind == kind)
        revs.emplace_back(std::move(*spec), d);
    }
    return revs;
  }

  // `revs` with the revisions made but not shown by the informer yet (each
  // component's newest), by increasing number.
  static void WithPending(IsvcMemory* im, Revisions* revs) {
    for (auto it = im->pending.begin(); it != im->pending.end();) {
      const RevisionSpec& p = it->second;
      bool shown = std::any_of(revs->begin(), revs->end(),
                               [&](const auto& r) { return r.first.name == p.name; });
      bool newest = std::all_of(revs->begin(), revs->end(), [&](const auto& r) {
        return r.first.component != p.component || r.first.number < p.number;
      });
      if (shown) {
        it = im->pending.erase(it);
        continue;
      }
      if (newest) revs->emplace_back(p, nullptr);
      ++it;
    }
    std::sort(revs->begin(), revs->end(),
              [](const auto& a, const auto& b) { return a.first.number < b.first.number; });
  }

  // The memory of `key`, fresh when the object is another one (`uid`).
  IsvcMemory* Memory(const std::string& key, const std::string& uid) {
    std::lock_guard<std::mutex> lock(mu);
    IsvcMemory* im = &memory[key];
    if (im->uid != uid) {
      *im = IsvcMemory{};
      im->uid = uid;
    }
    return im;
  }

  // What the revision's pods show, observed (ObserveRevision) after
  // `m.observed`; events go to `to_record`.
  void ObservePods(const RevisionSpec& spec, const ObjectPtr& deploy, RevMemory& m,
                   const std::string& now, std::vector<EventRecord>* to_record) {
    std::vector<PodView> pod_views;
    if (deploy != nullptr)
      for (const auto& p : pods.List())
        if (p->namespace_ == spec.namespace_ && Label(*p, kRevisionLabel) == spec.name)
          pod_views.push_back(ReadPod(p->doc));
    RevisionObservations seen =
        ObserveDeployment(spec, deploy ? &deploy->doc : nullptr, pod_views, m.aspired, now);
    // A crash's message is news only once.
    if (seen.crash_message.has_value() && *seen.crash_message == m.observed.message)
      seen.crash_message.reset();
    Observation o = ObserveRevision(spec, m.observed, seen);
    m.observed = o.observed;
    to_record->insert(to_record->end(), o.events.begin(), o.events.end());
  }

  // The object of `key` in `from` when this operator takes it; null when it
  // is gone or going (its memory forgotten: what it owns goes with it, by
  // owner references) or another controller's (by its annotation: not even
  // a refusal is written then); an error when this operator may not write.
  absl::StatusOr<ObjectPtr> Take(const kube::Informer* from, const std::string& key,
                                 const std::string& memory_key) {
    ObjectPtr obj = from != nullptr ? from->Get(key) : nullptr;
    if (obj == nullptr || obj->deleting) {
      std::lock_guard<std::mutex> lock(mu);
      memory.erase(memory_key);
      return ObjectPtr();
    }
    if (!Claimed(opts.claim, Annotations(*obj))) return ObjectPtr();
    OSPREY_RETURN_IF_ERROR(MayWrite());
    return obj;
  }

  // A Knative Service (knative.h): its revisions as Deployments, its status.
  absl::Status ReconcileKnativeService(const std::string& key) {
    reconciles.fetch_add(1);
    const std::string memory_key = StrCat(kKnativeKey, key);
    OSPREY_ASSIGN_OR_RETURN(ObjectPtr obj, Take(ksvcs.get(), key, memory_key));
    if (obj == nullptr) return absl::OkStatus();
    const std::string resource_json = json::ToText(obj->doc);
    auto parsed = resources::FromJson(resource_json);
    const StoredKnative read = ReadKnativeStatus(obj->doc);
    if (!parsed.ok() || !std::holds_alternative<resources::KnativeService>(*parsed)) {
      // Refused as Knative's webhook would: Ready False, the reason named.
      KnativeStatus s = read.status;
      const std::string message =
          parsed.ok() ? "not a Knative Service" : std::string(StatusMessage(parsed.status()));
      s.conditions = {{"ConfigurationsReady", "False", "InvalidSpec", message},
                      {"Ready", "False", "InvalidSpec", message},
                      {"RoutesReady", "False", "InvalidSpec", message}};
      auto events = WriteKnativeIfChanged(*obj, resource_json, read, s, Now());
      if (!events.ok()) return events.status();
      for (const auto& e : *events) Event(*obj, e, "serving.knative.dev/v1", "Service");
      return absl::OkStatus();
    }
    const auto& ksvc = std::get<resources::KnativeService>(*parsed);
    const std::string& ns = obj->namespace_;
    const std::string now = Now();
    IsvcMemory* im = Memory(memory_key, obj->uid);
    StoredKnative stored = read;
    if (!im->written_rv.empty()) {
      if (RvOlder(obj->resource_version, im->written_rv)) {
        stored = im->written_knative;
      } else {
        im->written_rv.clear();
      }
    }

    Revisions revs =
        OwnedRevisions(ns, kKnativeServiceLabel, obj->name, obj->uid, kKnativeServiceKind);
    WithPending(im, &revs);
    std::vector<EventRecord> to_record;
    KnativeInput in;
    in.service = &ksvc;
    in.template_json = KnativeTemplateJson(ksvc);
    in.config = &opts.platform;
    in.now = now;
    in.stored_traffic = stored.status.traffic;
    in.stored_latest_ready = stored.status.latest_ready;
    const std::string latest = revs.empty() ? "" : revs.back().first.name;
    for (const auto& [spec, deploy] : revs) {
      RevMemory& m = im->revisions[spec.name];
      if (!m.known) {
        // First look since this operator started: what the stored status says.
        m.known = true;
        const auto& traffic = stored.status.traffic;
        const bool routed = std::any_of(traffic.begin(), traffic.end(), [&](const auto& t) {
          return t.revision == spec.name && t.percent > 0;
        });
        m.observed.ever_ready = routed || stored.status.latest_ready == spec.name;
        m.observed.phase = m.observed.ever_ready ? RevisionPhase::kReady : RevisionPhase::kPending;
        m.aspired = routed || spec.name == latest;
      }
      ObservePods(spec, deploy, m, now, &to_record);
      in.revisions.push_back({spec, m.observed});
    }
    KnativePlan plan = ReconcileKnative(in);
    // A name a Deployment not of this Service's has: the next free number,
    // or (a name the template gives) a failed configuration, never an
    // overwrite.
    auto taken = [&](const std::string& name) {
      return deployments.Get(StrCat(ns, "/", name, "-deployment")) != nullptr &&
             std::none_of(revs.begin(), revs.end(),
                          [&](const auto& r) { return r.first.name == name; });
    };
    AvoidTakenName(ksvc, in.template_json, taken, now, &plan);
    OwnerRef owner{obj->name, obj->uid};
    if (plan.create) {
      const RevisionSpec& rev = *plan.create;
      OSPREY_RETURN_IF_ERROR(ApplyRevision(rev, owner, nullptr));
      // Made: remembered until the informer shows it (a failed write makes
      // it again on the retry).
      to_record.push_back({"Normal", "RevisionCreated", StrCat("revision ", rev.name)});
      im->pending[rev.component] = rev;
      im->revisions[rev.name] = {RevisionObserved{}, true, true};
    }
    // Replicas: the gateway's KPA scales aspired revisions above their
    // floor; a retired one goes to zero (kept, as Knative keeps it).
    for (const auto& [spec, deploy] : revs) {
      if (deploy == nullptr) continue;
      auto want = plan.replicas.find(spec.name);
      const bool aspired = want != plan.replicas.end();
      im->revisions[spec.name].aspired = aspired;
      OSPREY_RETURN_IF_ERROR(ApplyRevision(spec, owner, deploy));
      OSPREY_RETURN_IF_ERROR(KeepFloor(spec, *deploy, aspired, aspired ? want->second : 0));
    }
    // Its in-cluster name (status.address) leads to the gateway.
    if (std::string address = KnativeAddressServiceJson(ksvc.meta, owner, opts.placement);
        !address.empty())
      OSPREY_RETURN_IF_ERROR(ApplyIfChanged(services, kServices, ns, obj->name, address));
    auto written = WriteKnativeIfChanged(*obj, resource_json, stored, plan.status, now);
    if (!written.ok()) return written.status();
    to_record.insert(to_record.end(), written->begin(), written->end());
    for (const auto& e : to_record) Event(*obj, e, "serving.knative.dev/v1", "Service");
    return absl::OkStatus();
  }

  // Writes `status` as the Knative Service's when it differs from `stored`
  // (or the generation moved); returns the transition's events.
  absl::StatusOr<std::vector<EventRecord>> WriteKnativeIfChanged(const kube::Object& obj,
                                                                 const std::string& resource_json,
                                                                 const StoredKnative& stored,
                                                                 const KnativeStatus& status,
                                                                 const std::string& now) {
    std::map<std::string, std::string> times = stored.transition_times;
    std::vector<EventRecord> events =
        KnativeTransition(stored.status, status, obj.name, now, &times);
    if (stored.present && stored.status == status && times == stored.transition_times &&
        stored.observed_generation == obj.generation)
      return events;
    KnativeRecord record{resource_json, "", obj.generation, obj.generation, status, times};
    rapidjson::Document full;
    const std::string full_json = KnativeServiceJson(record, opts.platform);
    full.Parse(full_json.data(), full_json.size());
    rapidjson::Document body(rapidjson::kObjectType);
    auto& a = body.GetAllocator();
    body.AddMember("apiVersion", "serving.knative.dev/v1", a);
    body.AddMember("kind", "Service", a);
    rapidjson::Value meta(rapidjson::kObjectType);
    meta.AddMember("name", rapidjson::Value(obj.name.c_str(), a), a);
    meta.AddMember("namespace", rapidjson::Value(obj.namespace_.c_str(), a), a);
    body.AddMember("metadata", meta, a);
    body.AddMember("status", rapidjson::Value(full["status"], a), a);
    OSPREY_RETURN_IF_ERROR(MayWrite());
    applies.fetch_add(1);
    auto r = client->Apply(kube::ResourcePath(kKsvcs, obj.namespace_, obj.name, "status"),
                           json::ToText(body), kFieldManager);
    if (!r.ok()) return r.status();
    auto parsed = kube::ParseObject(*r);
    const std::string key = StrCat(kKnativeKey, obj.namespace_, "/", obj.name);
    {
      std::lock_guard<std::mutex> lock(mu);
      if (auto it = memory.find(key); it != memory.end() && parsed.ok()) {
        it->second.written_rv = (*parsed)->resource_version;
        it->second.written_knative = StoredKnative{status, times, obj.generation, true};
      }
    }
    return events;
  }

  absl::Status Reconcile(const std::string& key) {
    if (key.starts_with(kKnativeKey))
      return ReconcileKnativeService(key.substr(std::strlen(kKnativeKey)));
    reconciles.fetch_add(1);
    OSPREY_ASSIGN_OR_RETURN(ObjectPtr obj, Take(&isvcs, key, key));
    if (obj == nullptr) return absl::OkStatus();
    const std::string resource_json = json::ToText(obj->doc);
    auto parsed = resources::FromJson(resource_json);
    if (!parsed.ok() || !std::holds_alternative<InferenceService>(*parsed))
      return WriteInvalid(*obj, parsed.ok() ? "not an InferenceService"
                                            : std::string(StatusMessage(parsed.status())));
    const InferenceService& isvc = std::get<InferenceService>(*parsed);
    const std::string& ns = obj->namespace_;
    const std::string now = Now();
    IsvcMemory* im = Memory(key, obj->uid);
    // The stored status, or the one this operator wrote when the informer
    // has not caught up with it yet.
    StoredStatus stored = ReadStatus(obj->doc);
    if (!im->written_rv.empty()) {
      if (RvOlder(obj->resource_version, im->written_rv)) {
        stored = im->written;
      } else {
        im->written_rv.clear();
      }
    }

    // Its revisions, from the Deployments it owns.
    Revisions revs = OwnedRevisions(ns, kIsvcLabel, obj->name, obj->uid, "InferenceService");
    WithPending(im, &revs);

    std::vector<ServingRuntime> ns_runtimes = Runtimes(runtimes, ns);
    std::vector<ServingRuntime> cl_runtimes = Runtimes(cluster_runtimes, "");
    std::vector<EventRecord> to_record;

    ReconcileInput in;
    in.isvc = &isvc;
    in.spec_json = PredictorSpecJson(resource_json);
    in.namespace_runtimes = &ns_runtimes;
    in.cluster_runtimes = &cl_runtimes;
    in.config = &opts.platform;
    in.now = now;
    in.latest_rolled_out = stored.status.latest_rolled_out;
    in.previous_rolled_out = stored.status.previous_rolled_out;
    in.transformer_json = ComponentSpecJson(resource_json, "transformer");
    in.explainer_json = ComponentSpecJson(resource_json, "explainer");
    in.stored = &stored.status;
    std::map<std::string, std::string> latest_of;  // component -> its latest revision
    for (const auto& [spec, deploy] : revs) latest_of[spec.component] = spec.name;
    for (const auto& [spec, deploy] : revs) {
      RevMemory& m = im->revisions[spec.name];
      if (!m.known) {
        // First look since this operator started: what the stored status says.
        m.known = true;
        const ComponentStatus component =
            stored.status.Component(spec.component).value_or(ComponentStatus{});
        bool routed = std::any_of(component.traffic.begin(), component.traffic.end(),
                                  [&](const TrafficTarget& t) { return t.revision == spec.name; });
        m.observed.ever_ready = routed || component.latest_ready == spec.name;
        m.observed.phase = m.observed.ever_ready ? RevisionPhase::kReady : RevisionPhase::kPending;
        // A failure the status already reports is not news (no second event).
        if (!m.observed.ever_ready && spec.name == stored.status.latest_created &&
            !stored.status.failure_reason.empty()) {
          m.observed.phase = RevisionPhase::kFailed;
          m.observed.reason = stored.status.failure_reason;
          m.observed.message = stored.status.failure_message;
          m.observed.failure_time = stored.status.failure_time;
        }
        m.aspired = routed || spec.name == latest_of[spec.component];
      }
      ObservePods(spec, deploy, m, now, &to_record);
      in.revisions.push_back({spec, m.observed});
    }
    ReconcilePlan plan = controlplane::Reconcile(in);
    OwnerRef owner{obj->name, obj->uid};
    bool replan = false;
    for (const RevisionSpec& rev : plan.create) {
      KubeFailure failure = CheckRunnable(rev);
      const bool unrunnable = !rev.failure_reason.empty() || !failure.reason.empty();
      // Made before this operator started (an unrunnable revision lives in
      // memory only): the status says so already.
      const bool known = unrunnable && rev.component == "predictor" &&
                         rev.name == stored.status.latest_created &&
                         !stored.status.failure_reason.empty();
      if (!known)
        to_record.push_back(
            {"Normal", "RevisionCreated",
             StrCat(
                 "revision ", rev.name,
                 rev.runtime.empty() ? "" : StrCat(" (runtime ", rev.runtime, ")"),
                 unrunnable ? StrCat(" cannot run: ", rev.failure_message, failure.message) : "")});
      if (unrunnable) {
        im->pending[rev.component] = rev;  // never materialised: remembered here
        // A Deployment could not run it. Observed as failed, so the status
        // says why at once.
        Observation o = ObserveRevision(rev, RevisionObserved{},
                                        ObserveDeployment(rev, nullptr, {}, true, now));
        if (known) {
          o.observed.failure_time = stored.status.failure_time;
        } else {
          to_record.insert(to_record.end(), o.events.begin(), o.events.end());
        }
        im->revisions[rev.name] = {o.observed, true, true};
        in.revisions.push_back({rev, o.observed});
        replan = true;
      } else {
        OSPREY_RETURN_IF_ERROR(ApplyRevision(rev, owner, nullptr));
        // Made: remembered until the informer shows it (a failed write
        // makes it again on the retry).
        im->pending[rev.component] = rev;
        im->revisions[rev.name] = {RevisionObserved{}, true, true};
        in.revisions.push_back({rev, RevisionObserved{}});
      }
    }
    // Unrunnable revisions are observed failed at once: the status says why.
    if (replan) plan = controlplane::Reconcile(in);

    // Replicas: a Deployment is made with its initial replicas; then the
    // autoscaler owns the count (the gateway's KPA, or an HPA). The
    // operator only keeps an aspired revision at its floor and scales a
    // retired one to zero (kept, as Knative keeps retired revisions), through
    // the scale subresource.
    for (const auto& [spec, deploy] : revs) {
      if (deploy == nullptr) continue;
      const resources::Component* component = ComponentOf(isvc, spec.component);
      if (component == nullptr) component = &isvc.predictor;
      const bool hpa = UsesHpa(isvc.meta.annotations, component->annotations);
      auto want = plan.replicas.find(spec.name);
      const bool aspired = want != plan.replicas.end();
      im->revisions[spec.name].aspired = aspired;
      OSPREY_RETURN_IF_ERROR(ApplyRevision(spec, owner, deploy));
      OSPREY_RETURN_IF_ERROR(KeepFloor(spec, *deploy, aspired,
                                       !aspired ? 0
                                       : hpa    ? std::max(1, want->second)
                                                : want->second));
      const std::string hpa_key = StrCat(ns, "/", spec.name);
      if (aspired && hpa) {
        OSPREY_RETURN_IF_ERROR(
            ApplyIfChanged(hpas, kHpas, ns, spec.name,
                           HpaJson(spec, owner, want->second, component->max_replicas,
                                   component->scale_metric, component->scale_target)));
      } else if (hpas.Get(hpa_key) != nullptr) {
        OSPREY_RETURN_IF_ERROR(MayWrite());
        auto r = client->Call("DELETE", kube::ResourcePath(kHpas, ns, spec.name));
        if (!r.ok()) return r.status();
        if (r->status != 404) OSPREY_RETURN_IF_ERROR(kube::StatusOf(*r, "delete HPA"));
      }
    }

    // Status, written only when it changed.
    std::map<std::string, std::string> times = stored.transition_times;
    std::vector<EventRecord> transition = StatusTransition(stored.status, plan.status, now, &times);
    to_record.insert(to_record.end(), transition.begin(), transition.end());
    if (!stored.present || !(stored.status == plan.status) || times != stored.transition_times ||
        stored.observed_generation != obj->generation) {
      auto rv = WriteStatus(*obj, IsvcStatusJson(plan.status, times, obj->generation));
      if (!rv.ok()) return rv.status();
      im->written_rv = *rv;
      im->written = StoredStatus{plan.status, times, obj->generation, true};
    }
    for (const auto& e : to_record) Event(*obj, e);
    return absl::OkStatus();
  }

  // A revision's Deployment (`live`: null when it is made) and Service.
  absl::Status ApplyRevision(const RevisionSpec& rev, const OwnerRef& owner,
                             const ObjectPtr& live) {
    OSPREY_RETURN_IF_ERROR(ApplyDeployment(rev, owner, live));
    return ApplyIfChanged(services, kServices, rev.namespace_, rev.name,
                          ServiceJson(rev, owner, opts.placement));
  }

  // An aspired revision kept at `floor` replicas or more (the autoscaler
  // owns the count above it); a retired one scaled to zero.
  absl::Status KeepFloor(const RevisionSpec& rev, const kube::Object& deployment, bool aspired,
                         int floor) {
    const int current = SpecReplicas(deployment);
    if ((!aspired && current != 0) || (aspired && current < floor))
      return Scale(rev.namespace_, DeploymentName(rev), floor);
    return absl::OkStatus();
  }

  absl::Status Scale(const std::string& ns, const std::string& deployment, int replicas) {
    OSPREY_RETURN_IF_ERROR(MayWrite());
    applies.fetch_add(1);
    auto r = client->MergePatch(kube::ResourcePath(kDeployments, ns, deployment, "scale"),
                                StrCat(R"({"spec":{"replicas":)", replicas, "}}"));
    return r.ok() ? absl::OkStatus() : r.status();
  }

  // Returns the resourceVersion the write made.
  absl::StatusOr<std::string> WriteStatus(const kube::Object& obj, const std::string& status_json) {
    OSPREY_RETURN_IF_ERROR(MayWrite());
    std::string body = StrCat(
        R"({"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService","metadata":{"name":)",
        "\"", obj.name, R"(","namespace":")", obj.namespace_, R"("},"status":)", status_json, "}");
    applies.fetch_add(1);
    auto r = client->Apply(kube::ResourcePath(kIsvcs, obj.namespace_, obj.name, "status"), body,
                           kFieldManager);
    if (!r.ok()) return r.status();
    auto written = kube::ParseObject(*r);
    return written.ok() ? (*written)->resource_version : std::string();
  }

  absl::Status WriteInvalid(const kube::Object& obj, const std::string& message) {
    IsvcStatus s;
    s.conditions.push_back({"Ready", "False", "InvalidSpec", message});
    s.transition_status = "InvalidSpec";
    s.failure_reason = "InvalidSpec";
    s.failure_message = message;
    StoredStatus stored = ReadStatus(obj.doc);
    std::map<std::string, std::string> times = stored.transition_times;
    StatusTransition(stored.status, s, Now(), &times);
    if (stored.present && stored.status == s && stored.observed_generation == obj.generation)
      return absl::OkStatus();
    return WriteStatus(obj, IsvcStatusJson(s, times, obj.generation)).status();
  }

  void Work() {
    while (auto key = queue.Get()) {
      absl::Status s = Reconcile(*key);
      if (s.ok()) {
        queue.Forget(*key);
      } else if (kube::HasCause(s, "NamespaceTerminating")) {
        // The namespace is being deleted and takes the InferenceService with
        // it; writing into it again can only be refused the same way.
        OSPREY_LOG(kInfo) << "reconcile " << *key << ": namespace is terminating, left alone";
        queue.Forget(*key);
      } else {
        errors.fetch_add(1);
        OSPREY_LOG(kWarning) << "reconcile " << *key << ": " << s.message() << " (retry "
                             << queue.Failures(*key) + 1 << ")";
        queue.AddRateLimited(*key);
      }
      queue.Done(*key);
    }
  }
};

Operator::Operator(kube::Client* client, OperatorOptions options)
    : impl_(std::make_unique<Impl>(client, std::move(options))) {}

Operator::~Operator() { Stop(); }

absl::Status Operator::Start() {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lifecycle(m.lifecycle_mu);
  if (m.running.exchange(true)) return absl::OkStatus();
  std::vector<kube::Informer*> all = {
      &m.cluster_runtimes, &m.runtimes, &m.deployments, &m.services, &m.pods, &m.hpas, &m.isvcs};
  if (m.opts.knative && m.ksvcs == nullptr && m.RunsKnative()) {
    m.ksvcs = std::make_unique<kube::Informer>(m.client, Impl::Opts(kKsvcs, m.opts.namespace_));
    m.ksvcs->AddHandler([&m](const ObjectPtr& now, const ObjectPtr& before) {
      m.queue.Add(StrCat(kKnativeKey, (now ? now : before)->Key()));
    });
  }
  if (m.ksvcs != nullptr) all.push_back(m.ksvcs.get());
  for (kube::Informer* i : all) i->Start();
  for (kube::Informer* i : all)
    while (m.running.load() && !i->WaitForSync(std::chrono::seconds(1))) {
    }
  if (!m.running.load()) return absl::CancelledError("stopped before the informers synced");
  // Everything once: statuses are checked even when nothing changes.
  for (const auto& i : m.isvcs.List()) m.queue.Add(i->Key());
  if (m.ksvcs != nullptr)
    for (const auto& k : m.ksvcs->List()) m.queue.Add(StrCat(kKnativeKey, k->Key()));
  for (int i = 0; i < std::max(1, m.opts.workers); ++i) m.workers.emplace_back([&m] { m.Work(); });
  OSPREY_LOG(kInfo) << "operator: watching "
                    << (m.opts.namespace_.empty() ? "all namespaces" : m.opts.namespace_) << "; "
                    << m.isvcs.size() << " InferenceServices, "
                    << (m.ksvcs != nullptr ? StrCat(m.ksvcs->size(), " Knative Services, ")
                                           : std::string())
                    << m.deployments.size() << " Deployments";
  return absl::OkStatus();
}

void Operator::Stop() {
  Impl& m = *impl_;
  if (!m.running.exchange(false)) return;
  std::lock_guard<std::mutex> lifecycle(m.lifecycle_mu);  // a Start in progress ends first
  m.queue.ShutDown();
  for (auto& t : m.workers) t.join();
  m.workers.clear();
  std::vector<kube::Informer*> all = {
      &m.isvcs, &m.runtimes, &m.cluster_runtimes, &m.deployments, &m.services, &m.pods, &m.hpas};
  if (m.ksvcs != nullptr) all.push_back(m.ksvcs.get());
  for (kube::Informer* i : all) i->Cancel();
  for (kube::Informer* i : all) i->Stop();
}

bool Operator::synced() const {
  const Impl& m = *impl_;
  return m.isvcs.synced() && m.deployments.synced() && m.runtimes.synced() &&
         m.cluster_runtimes.synced() && m.pods.synced() && m.services.synced() && m.hpas.synced() &&
         (m.ksvcs == nullptr || m.ksvcs->synced());
}

OperatorStats Operator::stats() const {
  return {impl_->reconciles.load(), impl_->applies.load(), impl_->events.load(),
          impl_->errors.load()};
}

}  // namespace osprey::controlplane
