#include <rapidjson/document.h>

#include <fstream>

#include "common/json_dom.h"
#include "controlplane/local/controller_impl.h"
#include "resources/kinds.h"

namespace osprey::controlplane {
namespace fs = std::filesystem;
using namespace osprey::json;

const Controller::Impl::KindOps* Controller::Impl::OpsOf(std::string_view plural) {
  static const KindOps kOps[] = {
      {"inferenceservices", &Impl::ListIsvcs, &Impl::DeleteIsvc},
      {"servingruntimes", &Impl::ListRuntimes, &Impl::DeleteRuntime},
      {"clusterservingruntimes", &Impl::ListClusterRuntimes, &Impl::DeleteClusterRuntime},
      {"inferencegraphs", &Impl::ListGraphs, &Impl::DeleteGraph},
      {"trainedmodels", &Impl::ListTrained, &Impl::DeleteTrained},
      {"services", &Impl::ListKsvcs, &Impl::DeleteKsvc},
      {"configurations", &Impl::ListConfigurations, nullptr},
      {"routes", &Impl::ListRoutes, nullptr},
      {"deployments", &Impl::ListDeployments, nullptr},
      {"virtualservices", &Impl::ListVirtualServices, &Impl::DeleteVirtualService},
      {"gateways", &Impl::ListGateways, &Impl::DeleteGateway},
      {"serviceentries", &Impl::ListServiceEntries, &Impl::DeleteServiceEntry},
      {"destinationrules", &Impl::ListDestinationRules, &Impl::DeleteDestinationRule},
      {"revisions", &Impl::ListRevisions, nullptr},
      {"podautoscalers", &Impl::ListAutoscalers, nullptr},
      {"events", &Impl::ListEvents, nullptr},
  };
  for (const auto& o : kOps)
    if (o.plural == plural) return &o;
  return nullptr;
}

std::vector<std::pair<std::string, bool>> Controller::KindsServed() {
  std::vector<std::pair<std::string, bool>> out;
  for (const auto& k : resources::Kinds())
    if (const Impl::KindOps* ops = Impl::OpsOf(k.plural))
      out.emplace_back(std::string(k.plural), ops->remove != nullptr);
  return out;
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ItemsOf(std::string_view kind,
                                                                  const std::string& ns) {
  const KindOps* ops = OpsOf(kind);
  if (ops == nullptr) return absl::NotFoundError(StrCat("unknown resource kind ", kind));
  std::vector<ReplicaStatus> replicas = supervisor->Snapshot();
  std::lock_guard<std::mutex> lock(mu);
  return (this->*ops->list)(ns, replicas);
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListIsvcs(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  Items out;
  for (const auto& [key, e] : isvcs)
    if (ns.empty() || e.isvc.meta.namespace_ == ns)
      out.emplace_back(e.isvc.meta.name, IsvcJson(RecordOf(e)));
  return out;
}

Controller::Impl::Items Controller::Impl::RuntimeItems(const std::string& ns, bool cluster) const {
  Items out;
  for (const auto& [key, e] : runtimes)
    if (e.runtime.cluster == cluster && (cluster || ns.empty() || e.runtime.meta.namespace_ == ns))
      out.emplace_back(e.runtime.meta.name, RuntimeJson(e.resource_json, e.created, e.builtin));
  return out;
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListRuntimes(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  return RuntimeItems(ns, false);
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListClusterRuntimes(
    const std::string&, const std::vector<ReplicaStatus>&) const {
  return RuntimeItems("", true);
}

std::vector<const Controller::Impl::RevEntry*> Controller::Impl::SortedRevisions(
    const std::string& ns) const {
  std::vector<const RevEntry*> revs;
  for (const auto& [key, r] : revisions)
    if (ns.empty() || r.spec.namespace_ == ns) revs.push_back(&r);
  std::sort(revs.begin(), revs.end(), [](auto* a, auto* b) {
    return std::tie(a->spec.namespace_, a->spec.isvc, a->spec.number) <
           std::tie(b->spec.namespace_, b->spec.isvc, b->spec.number);
  });
  return revs;
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListRevisions(
    const std::string& ns, const std::vector<ReplicaStatus>& replicas) const {
  Items out;
  for (const auto* r : SortedRevisions(ns))
    out.emplace_back(r->spec.name, RevisionJson(RecordOf(*r, replicas)));
  return out;
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListAutoscalers(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  Items out;
  for (const auto& [key, r] : revisions)
    if (r.aspired && Runnable(r) && (ns.empty() || r.spec.namespace_ == ns))
      out.emplace_back(r.spec.name, PodAutoscalerJson(AutoscalerOf(r)));
  return out;
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListEvents(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  OSPREY_ASSIGN_OR_RETURN(auto rows,
                          store->List(ns.empty() ? "event/" : StrCat("event/", ns, "/")));
  Items out;
  for (const auto& [key, value] : rows) {
    // event/{ns}/{kind}/{object}/{seq}
    std::string rest = key.substr(6);
    rapidjson::Document d;
    if (d.Parse(value.data(), value.size()).HasParseError()) continue;
    d.AddMember("namespace",
                rapidjson::Value(rest.substr(0, rest.find('/')).c_str(), d.GetAllocator()),
                d.GetAllocator());
    d.AddMember("seq", rapidjson::Value(rest.substr(rest.rfind('/') + 1).c_str(), d.GetAllocator()),
                d.GetAllocator());
    out.emplace_back(GetString(d, "object"), ToText(d));
  }
  return out;
}

absl::Status Controller::Impl::DeleteIsvc(const std::string& ns, const std::string& name,
                                          std::vector<std::string>* replica_prefixes) {
  std::string key = StrCat(ns, "/", name);
  if (!isvcs.erase(key))
    return absl::NotFoundError(StrCat("inferenceservice ", name, " not found in namespace ", ns));
  OSPREY_RETURN_IF_ERROR(store->Delete(StrCat("isvc/", key)));
  EraseRevisionsOf("InferenceService", ns, name, replica_prefixes);
  (void)store->DeletePrefix(EventPrefix(ns, kIsvcEvents, name));
  return absl::OkStatus();
}

void Controller::Impl::EraseRevisionsOf(std::string_view kind, const std::string& ns,
                                        const std::string& owner,
                                        std::vector<std::string>* replica_prefixes) {
  for (auto it = revisions.begin(); it != revisions.end();) {
    const RevisionSpec& spec = it->second.spec;
    if (spec.kind == kind && spec.namespace_ == ns && spec.isvc == owner) {
      replica_prefixes->push_back(StrCat(it->first, "/"));
      (void)store->Delete(StrCat("revision/", it->first));
      it = revisions.erase(it);
    } else {
      ++it;
    }
  }
}

absl::Status Controller::Impl::DeleteRuntimeIn(const std::string& ns, const std::string& name,
                                               bool cluster) {
  std::string key = StrCat(cluster ? "" : ns, "/", name);
  auto it = runtimes.find(key);
  if (it == runtimes.end())
    return absl::NotFoundError(
        StrCat(cluster ? "clusterservingruntime " : "servingruntime ", name, " not found"));
  if (it->second.builtin)
    return absl::FailedPreconditionError(
        StrCat("clusterservingruntime ", name,
               " is built in; disable it by applying one with spec.disabled: true"));
  OSPREY_RETURN_IF_ERROR(store->Delete(StrCat("runtime/", key)));
  runtimes.erase(it);
  return absl::OkStatus();
}

absl::Status Controller::Impl::DeleteRuntime(const std::string& ns, const std::string& name,
                                             std::vector<std::string>*) {
  return DeleteRuntimeIn(ns, name, false);
}

absl::Status Controller::Impl::DeleteClusterRuntime(const std::string& ns, const std::string& name,
                                                    std::vector<std::string>*) {
  return DeleteRuntimeIn(ns, name, true);
}

IsvcRecord Controller::Impl::RecordOf(const IsvcEntry& e) {
  return {e.resource_json,       e.created, e.generation,
          e.observed_generation, e.status,  e.transition_times};
}

RevisionRecord Controller::Impl::RecordOf(const RevEntry& r,
                                          const std::vector<ReplicaStatus>& replicas) const {
  RevisionRecord out;
  out.spec = r.spec;
  out.observed = r.observed;
  out.desired = r.desired;
  out.model_dir = r.model_dir;
  out.command = r.local.argv;
  out.readiness_path = r.local.health_path;
  if (!r.model_dir.empty())
    for (auto& a : out.command)
      for (size_t at; (at = a.find("{{.ModelDir}}")) != std::string::npos;)
        a.replace(at, 13, r.model_dir);
  out.storage.uri = r.spec.storage_uri;
  out.storage.phase = r.fetch == Fetch::kDone      ? "done"
                      : r.fetch == Fetch::kFailed  ? "failed"
                      : r.fetch == Fetch::kRunning ? r.progress.phase
                                                   : "idle";
  out.storage.bytes_done = r.progress.bytes_done;
  out.storage.bytes_total = r.progress.bytes_total;
  out.storage.files_done = r.progress.files_done;
  out.storage.error = r.fetch_error;
  const std::string prefix = StrCat(r.spec.namespace_, "/", r.spec.name, "/");
  for (const auto& s : replicas)
    if (s.id.starts_with(prefix))
      out.replicas.push_back({s.id, s.pid, s.port, std::string(ReplicaStateName(s.state)),
                              s.restarts, s.last_exit, s.adopted});
  return out;
}

AutoscalerRecord Controller::Impl::AutoscalerOf(const RevEntry& r) {
  return {r.spec.name,
          r.spec.namespace_,
          r.spec.created,
          r.desired,
          r.observed.replicas,
          r.observed.ready_replicas,
          r.decided ? r.decision.reason : "Initial",
          r.decision.observed_stable,
          r.decision.observed_panic,
          r.kpa.panicking};
}

absl::StatusOr<std::vector<Controller::ApplyResult>> Controller::Apply(
    std::string_view yaml, const std::string& default_namespace, const std::string& base_dir,
    bool dry_run) {
  OSPREY_ASSIGN_OR_RETURN(auto parsed, resources::ParseYaml(yaml));
  if (parsed.empty()) return absl::InvalidArgumentError("no resource in the input");
  for (auto& r : parsed) {
    std::visit(
        [&](auto& obj) {
          if (!default_namespace.empty() && obj.meta.namespace_ == "default")
            obj.meta.namespace_ = default_namespace;
        },
        r);
    // A relative bare path is relative to the manifest (the CLI sends its
    // directory), never to wherever `osprey up` happens to run.
    auto absolute = [&](std::string& uri) {
      if (!uri.empty() && uri.find("://") == std::string::npos && uri[0] != '/' &&
          !base_dir.empty())
        uri = fs::weakly_canonical(fs::path(base_dir) / uri).string();
    };
    if (auto* isvc = std::get_if<InferenceService>(&r)) {
      if (isvc->predictor.model.has_value()) absolute(isvc->predictor.model->storage_uri);
      for (auto& c : isvc->predictor.containers)
        for (auto& e : c.env)
          if (e.name == "STORAGE_URI") absolute(e.value);
      // The drift reference is a storage URI too (monitoring.h).
      for (auto* annotations : {&isvc->meta.annotations, &isvc->predictor.annotations})
        if (auto it = annotations->find(kDriftReferenceAnnotation);
            it != annotations->end() && !it->second.starts_with("first:"))
          absolute(it->second);
    }
  }
  std::vector<ApplyResult> results;
  const std::string now = Now();
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (const auto& r : parsed) {
      ApplyResult result;
      result.kind = std::string(resources::KindOf(r));
      std::string json = resources::ToJson(r);
      if (const auto* isvc = std::get_if<InferenceService>(&r)) {
        result.namespace_ = isvc->meta.namespace_;
        result.name = isvc->meta.name;
        std::string key = StrCat(result.namespace_, "/", result.name);
        if (impl_->ksvcs.contains(key))
          return absl::AlreadyExistsError(StrCat("InferenceService ", result.name,
                                                 ": metadata.name: a Knative Service of "
                                                 "this name exists in namespace ",
                                                 result.namespace_,
                                                 " (their hosts and paths would collide)"));
        for (const auto& component : ComponentsOf(*isvc))
          if (impl_->ksvcs.contains(StrCat(key, "-", component)))
            return absl::AlreadyExistsError(StrCat("InferenceService ", result.name,
                                                   ": the Knative Service ", result.name, "-",
                                                   component, " in namespace ", result.namespace_,
                                                   " has the name of its ", component));
        if (dry_run) {
          results.push_back(std::move(result));
          continue;
        }
        auto it = impl_->isvcs.find(key);
        if (it == impl_->isvcs.end()) {
          Impl::IsvcEntry e;
          e.isvc = *isvc;
          e.resource_json = json;
          Impl::SetSpecJsons(e);
          e.created = now;
          it = impl_->isvcs.emplace(key, std::move(e)).first;
          result.action = "created";
        } else if (it->second.resource_json == json) {
          result.action = "unchanged";
        } else {
          it->second.isvc = *isvc;
          it->second.resource_json = json;
          Impl::SetSpecJsons(it->second);
          ++it->second.generation;
          result.action = "configured";
        }
        if (result.action != "unchanged") {
          impl_->SaveIsvc(key, it->second);
          impl_->Event(result.namespace_, result.name, "Normal",
                       result.action == "created" ? "Created" : "Updated",
                       StrCat("generation ", it->second.generation));
        }
      } else if (const auto* graph = std::get_if<resources::InferenceGraph>(&r)) {
        OSPREY_ASSIGN_OR_RETURN(result, impl_->ApplyGraph(*graph, json, now, dry_run));
      } else if (const auto* tm = std::get_if<resources::TrainedModel>(&r)) {
        OSPREY_ASSIGN_OR_RETURN(result, impl_->ApplyTrained(*tm, json, now, dry_run));
      } else if (const auto* ksvc = std::get_if<resources::KnativeService>(&r)) {
        OSPREY_ASSIGN_OR_RETURN(result, impl_->ApplyKnative(*ksvc, json, now, dry_run));
      } else if (resources::IsIstio(r)) {
        OSPREY_ASSIGN_OR_RETURN(result, impl_->ApplyIstio(r, json, now, dry_run));
      } else {
        const auto& rt = std::get<ServingRuntime>(r);
        result.namespace_ = rt.meta.namespace_;
        result.name = rt.meta.name;
        std::string key = StrCat(rt.cluster ? "" : rt.meta.namespace_, "/", rt.meta.name);
        auto it = impl_->runtimes.find(key);
        if (dry_run) {
          // nothing checked across objects; nothing stored
        } else if (it != impl_->runtimes.end() && !it->second.builtin &&
                   it->second.resource_json == json) {
          result.action = "unchanged";
        } else {
          result.action =
              it == impl_->runtimes.end() || it->second.builtin ? "created" : "configured";
          Impl::RuntimeEntry e;
          e.runtime = rt;
          e.resource_json = json;
          e.created = result.action == "created" ? now : it->second.created;
          impl_->runtimes[key] = e;
          auto st = impl_->store->Put(
              StrCat("runtime/", key),
              StrCat("{\"resource\":", json, ",\"created\":\"", e.created, "\"}"));
          if (!st.ok()) return st;
        }
      }
      results.push_back(std::move(result));
    }
    if (dry_run) return results;
    impl_->dirty = true;
  }
  impl_->cv.notify_all();
  return results;
}

absl::Status Controller::Delete(std::string_view kind, const std::string& ns,
                                const std::string& name) {
  const Impl::KindOps* ops = Impl::OpsOf(kind);
  if (ops == nullptr || ops->remove == nullptr)
    return absl::InvalidArgumentError(StrCat("cannot delete resources of kind ", kind));
  std::vector<std::string> replica_prefixes;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    OSPREY_RETURN_IF_ERROR((impl_.get()->*ops->remove)(ns, name, &replica_prefixes));
    impl_->dirty = true;
  }
  impl_->cv.notify_all();
  for (const auto& s : impl_->supervisor->Snapshot())
    for (const auto& p : replica_prefixes)
      if (s.id.starts_with(p)) impl_->supervisor->Stop(s.id);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Controller::List(std::string_view kind, const std::string& ns) {
  OSPREY_ASSIGN_OR_RETURN(auto items, impl_->ItemsOf(kind, ns));
  std::vector<std::string> rendered;
  rendered.reserve(items.size());
  for (auto& [name, json] : items) rendered.push_back(std::move(json));
  if (const resources::KindInfo* k = resources::FindKind(kind);
      k != nullptr && k->group != "osprey")
    return ListJson(*k, rendered);
  return ListJson(rendered);
}

std::string Controller::LogFile(const std::string& ns, const std::string& rev, int index) const {
  return impl_->LogPath(ns, rev, index);
}

absl::StatusOr<std::vector<std::string>> Controller::Objects(std::string_view kind) {
  OSPREY_ASSIGN_OR_RETURN(auto items, impl_->ItemsOf(kind, ""));
  std::vector<std::string> out;
  out.reserve(items.size());
  for (auto& [name, json] : items) out.push_back(std::move(json));
  return out;
}

Store* Controller::store() { return impl_->store.get(); }

absl::StatusOr<std::string> Controller::Get(std::string_view kind, const std::string& ns,
                                            const std::string& name) {
  OSPREY_ASSIGN_OR_RETURN(auto items, impl_->ItemsOf(kind, ns));
  for (auto& [item_name, json] : items)
    if (item_name == name) return std::move(json);
  const resources::KindInfo* k = resources::FindKind(kind);
  if (k != nullptr && k->cluster)
    return absl::NotFoundError(StrCat(k->singular, " \"", name, "\" not found"));
  return absl::NotFoundError(StrCat(k != nullptr ? k->singular : kind, " \"", name,
                                    "\" not found in namespace \"", ns, "\""));
}

absl::StatusOr<std::string> Controller::Logs(const std::string& ns, const std::string& name,
                                             const std::string& revision, int tail_lines) {
  std::string rev_name = revision;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->isvcs.find(StrCat(ns, "/", name));
    auto ksvc = impl_->ksvcs.find(StrCat(ns, "/", name));
    if (it == impl_->isvcs.end() && ksvc == impl_->ksvcs.end())
      return absl::NotFoundError(
          StrCat("inferenceservice or service \"", name, "\" not found in namespace \"", ns, "\""));
    if (rev_name.empty())
      rev_name = it != impl_->isvcs.end() ? it->second.status.latest_created
                                          : ksvc->second.status.latest_created;
  }
  std::string dir = StrCat(impl_->opts.data_dir, "/logs/", ns, "/", rev_name);
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return absl::NotFoundError(StrCat("revision ", rev_name, " has no logs yet"));
  std::vector<fs::path> files;
  for (const auto& f : fs::directory_iterator(dir, ec)) files.push_back(f.path());
  std::sort(files.begin(), files.end());
  std::string out;
  for (const auto& f : files) {
    if (files.size() > 1) StrAppend(&out, "==> ", rev_name, "/", f.stem().string(), " <==\n");
    for (const auto& line : TailLines(f.string(), tail_lines)) StrAppend(&out, line, "\n");
  }
  return out;
}

}  // namespace osprey::controlplane
