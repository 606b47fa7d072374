// The local controller's TrainedModels: apply, store, status (trained_model.h
// decides) and placement: the model fetched into its multi-model
// InferenceService's repository (ModelsDir), then loaded by each replica
// running there (the others load it on their first request for it). Every
// method runs with `mu` held unless it says otherwise.

#include <rapidjson/document.h>

#include "common/json_dom.h"
#include "controlplane/local/controller_impl.h"
#include "net/http_client.h"

namespace osprey::controlplane {
namespace fs = std::filesystem;
using namespace osprey::json;

namespace {

// POSTs an empty JSON body to `path` of every ready replica of the service's
// predictor; "" when each answered 200, else the first failure, naming it.
// Off the lock (supervisor snapshots are safe to take anywhere).
std::string EachReplica(Supervisor& supervisor, const std::string& ns, const std::string& isvc,
                        const std::string& path) {
  const std::string prefix = StrCat(ns, "/", isvc, "-predictor-");
  HttpClient client;
  for (const ReplicaStatus& s : supervisor.Snapshot()) {
    // {ns}/{isvc}-predictor-{digits}/{index}: not another service whose name
    // merely starts the same.
    if (!s.id.starts_with(prefix) || s.state != ReplicaState::kReady || s.port == 0) continue;
    const std::string_view number = std::string_view(s.id).substr(
        prefix.size(), s.id.rfind('/') > prefix.size() ? s.id.rfind('/') - prefix.size() : 0);
    if (number.empty() || number.find_first_not_of("0123456789") != std::string_view::npos)
      continue;
    HttpClientRequest req;
    req.method = "POST";
    req.url = StrCat("http://127.0.0.1:", s.port, path);
    req.headers = {{"Content-Type", "application/json"}};
    req.body = "{}";
    req.timeout = std::chrono::minutes(5);  // a load may take a while
    auto answer = client.Send(req);
    if (!answer.ok()) return StrCat("replica ", s.id, ": ", answer.status().message());
    if (answer->status != 200) {
      rapidjson::Document d;
      d.Parse(answer->body.data(), answer->body.size());
      std::string why =
          !d.HasParseError() && d.IsObject() && d.HasMember("error") && d["error"].IsString()
              ? d["error"].GetString()
              : answer->body;
      return StrCat("replica ", s.id, " (", answer->status, "): ", why);
    }
  }
  return "";
}

}  // namespace

std::string Controller::Impl::ModelsDir(const std::string& ns, const std::string& isvc) const {
  return StrCat(opts.data_dir, "/models/", ns, "/", isvc);
}

absl::StatusOr<Controller::ApplyResult> Controller::Impl::ApplyTrained(
    const resources::TrainedModel& tm, const std::string& json, const std::string& now,
    bool dry_run) {
  Controller::ApplyResult result;
  result.kind = "TrainedModel";
  result.namespace_ = tm.meta.namespace_;
  result.name = tm.meta.name;
  const std::string key = StrCat(result.namespace_, "/", result.name);
  auto it = trained.find(key);
  if (it != trained.end() && it->second.tm.inference_service != tm.inference_service)
    return absl::InvalidArgumentError(StrCat("spec.inferenceService: trainedmodel ", tm.meta.name,
                                             " is on ", it->second.tm.inference_service,
                                             "; it cannot move (delete it first)"));
  if (dry_run) return result;
  if (it == trained.end()) {
    TrainedEntry e;
    e.tm = tm;
    e.resource_json = json;
    e.created = now;
    it = trained.emplace(key, std::move(e)).first;
    result.action = "created";
  } else if (it->second.resource_json == json) {
    result.action = "unchanged";
    return result;
  } else {
    it->second.tm = tm;
    it->second.resource_json = json;
    ++it->second.generation;
    result.action = "configured";
  }
  SaveTrained(key, it->second);
  KindEvent(kTrainedEvents, result.namespace_, result.name, "Normal",
            result.action == "created" ? "Created" : "Updated",
            StrCat("TrainedModel generation ", it->second.generation));
  return result;
}

void Controller::Impl::SaveTrained(const std::string& key, const TrainedEntry& e) {
  auto st = store->Put(StrCat("trained/", key),
                       ObjectRecord(e.resource_json, e.generation, e.created, e.transition_times,
                                    e.status.conditions, [&](Writer& w) {
                                      Key(w, "placedGeneration");
                                      w.Int64(e.placed_generation);
                                      Field(w, "error", e.error);
                                    }));
  if (!st.ok()) {
    OSPREY_LOG(kError) << "store: trainedmodel " << key << ": " << st.message();
  }
}

absl::Status Controller::Impl::LoadTrained() {
  OSPREY_ASSIGN_OR_RETURN(auto rows, store->List("trained/"));
  for (const auto& [key, value] : rows) {
    std::optional<StoredObject> o = ReadObjectRecord(key, value, "TrainedModel");
    if (!o) continue;
    TrainedEntry e;
    e.tm = std::get<resources::TrainedModel>(o->resource);
    e.resource_json = std::move(o->resource_json);
    e.generation = o->generation;
    e.placed_generation = GetInt(o->doc, "placedGeneration");
    e.created = std::move(o->created);
    e.error = GetString(o->doc, "error");
    // Placed before: the files are in the repository (replicas load them on
    // request); failed: tried again.
    e.fetch = e.placed_generation == e.generation && e.error.empty() ? Fetch::kDone : Fetch::kIdle;
    e.transition_times = std::move(o->times);
    e.status.conditions = std::move(o->conditions);
    trained[key.substr(8)] = std::move(e);
  }
  return absl::OkStatus();
}

TrainedModelTarget Controller::Impl::TargetOf(const resources::TrainedModel& tm,
                                              const std::vector<ServingRuntime>& cluster) const {
  TrainedModelTarget t;
  const std::string& ns = tm.meta.namespace_;
  auto it = isvcs.find(StrCat(ns, "/", tm.inference_service));
  if (it == isvcs.end()) return t;
  const IsvcEntry& e = it->second;
  t.exists = true;
  for (const auto& c : e.status.conditions)
    if (c.type == "Ready") t.ready = c.status == "True";
  t.url = e.status.url;
  t.multi_model = e.isvc.predictor.model.has_value() && e.isvc.predictor.model->storage_uri.empty();
  // The latest predictor revision says which runtime serves it.
  const RevEntry* latest = nullptr;
  for (const auto& [key, r] : revisions)
    if (r.spec.namespace_ == ns && r.spec.isvc == tm.inference_service &&
        r.spec.component == "predictor" &&
        (latest == nullptr || r.spec.number > latest->spec.number))
      latest = &r;
  if (latest != nullptr) {
    t.runtime = latest->spec.runtime;
    t.memory_limit = MemoryLimit(latest->spec.container.resources_json);
    std::vector<ServingRuntime> all = RuntimesOf(ns);
    all.insert(all.end(), cluster.begin(), cluster.end());
    for (const auto& rt : all)
      if (rt.meta.name == t.runtime) {
        for (const auto& f : rt.formats) t.formats.push_back(f.name);
        break;
      }
  }
  // What it and the models placed before it ask for: a newcomer that does
  // not fit is refused, the models already there stay.
  const auto self = trained.find(StrCat(ns, "/", tm.meta.name));
  const auto order = [](const TrainedEntry& e) { return std::tie(e.created, e.tm.meta.name); };
  for (const auto& [key, other] : trained)
    if (other.tm.meta.namespace_ == ns && other.tm.inference_service == tm.inference_service &&
        (self == trained.end() || order(other) <= order(self->second)))
      t.memory_requested += other.tm.memory_bytes;
  return t;
}

void Controller::Impl::PassTrained(const std::vector<ServingRuntime>& cluster) {
  const std::string now = Now();
  for (auto& [key, e] : trained) {
    TrainedModelPlacement placement;
    placement.placed = e.fetch == Fetch::kDone && e.placed_generation == e.generation;
    placement.error = e.fetch == Fetch::kFailed ? e.error : "";
    TrainedModelPlan plan = PlanTrainedModel(e.tm, TargetOf(e.tm, cluster), placement);
    // A new generation, or a failure asked again by a changed precondition,
    // is placed again; one placement at a time.
    // A failed one is tried again after a while (a replica restarting during
    // its load, storage back).
    const bool retry = e.fetch == Fetch::kFailed &&
                       std::chrono::steady_clock::now() - e.failed_at >= std::chrono::seconds(10);
    if (plan.place && e.fetch != Fetch::kRunning &&
        (e.placed_generation != e.generation || e.fetch == Fetch::kIdle || retry))
      StartPlacement(key, e);
    e.observed_generation = e.generation;
    if (plan.status == e.status) continue;
    const bool was_ready = e.status.ready;
    StampTransitions(e.status.conditions, plan.status.conditions, now, &e.transition_times);
    e.status = std::move(plan.status);
    SaveTrained(key, e);
    if (was_ready != e.status.ready)
      KindEvent(
          kTrainedEvents, e.tm.meta.namespace_, e.tm.meta.name,
          e.status.ready ? "Normal" : "Warning", e.status.ready ? "ModelLoaded" : "ModelNotReady",
          e.status.ready
              ? StrCat("TrainedModel ", e.tm.meta.name, " is loaded on ", e.tm.inference_service)
              : e.status.conditions.back().message);
  }
}

void Controller::Impl::StartPlacement(const std::string& key, TrainedEntry& e) {
  e.fetch = Fetch::kRunning;
  const int64_t generation = e.generation;
  const std::string ns = e.tm.meta.namespace_, name = e.tm.meta.name;
  const std::string isvc = e.tm.inference_service, uri = e.tm.storage_uri;
  const std::string dir = ModelsDir(ns, isvc);
  const std::string incoming =
      StrCat(opts.data_dir, "/models/.incoming/", ns, "/", isvc, "/", name);
  KindEvent(kTrainedEvents, ns, name, "Normal", "ModelFetching",
            StrCat("fetching ", uri, " into ", isvc));
  const uint64_t memory = e.tm.memory_bytes;
  StartFetcher([this, key, generation, ns, name, isvc, uri, dir, incoming, memory] {
    storage::Options so;
    so.cache_dir = StrCat(opts.data_dir, "/cache");
    so.pvc_root = opts.pvc_root;
    // Still this placement's to do: the TrainedModel is there, unchanged.
    auto current = [&] {
      std::lock_guard<std::mutex> lock(mu);
      auto it = trained.find(key);
      return it != trained.end() && it->second.generation == generation;
    };
    std::error_code ec;
    fs::remove_all(incoming, ec);
    fs::create_directories(fs::path(incoming).parent_path(), ec);
    std::string error;
    absl::Status pulled = storage::Pull(uri, incoming, so);
    if (!pulled.ok()) {
      error = StrCat("fetching ", uri, ": ", pulled.message());
    } else {
      // Its declared memory is what the replicas' model cache accounts.
      std::ofstream(fs::path(incoming) / ".osprey-memory") << memory << "\n";
      const fs::path target = fs::path(dir) / name;
      const fs::path old = fs::path(incoming).concat(".old");
      fs::remove_all(old, ec);
      // Moved in under the controller's lock, so a delete of the TrainedModel
      // comes wholly before (nothing is moved in) or after (its cleanup
      // removes what was). Swapped in whole: a replica loading it never sees
      // half a model; the old one comes back if the new one cannot be moved in.
      std::lock_guard<std::mutex> lock(mu);
      auto it = trained.find(key);
      if (it != trained.end() && it->second.generation == generation) {
        fs::create_directories(dir, ec);
        const bool had_old = fs::exists(target, ec);
        if (had_old) fs::rename(target, old, ec);
        ec.clear();
        fs::rename(incoming, target, ec);
        if (ec) {
          error = StrCat("cannot move the model into ", dir, ": ", ec.message());
          std::error_code back;
          if (had_old) fs::rename(old, target, back);
        }
      }
    }
    fs::remove_all(fs::path(incoming).concat(".old"), ec);
    fs::remove_all(incoming, ec);
    // Loaded (or reloaded) where replicas run; the rest load it on request.
    if (error.empty() && current()) {
      error = EachReplica(*supervisor, ns, isvc, StrCat("/v2/repository/models/", name, "/load"));
      // Deleted while it loaded: the delete's unload may have come first.
      if (!current()) {
        (void)EachReplica(*supervisor, ns, isvc, StrCat("/v2/repository/models/", name, "/unload"));
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = trained.find(key);
      if (it != trained.end() && it->second.generation == generation) {
        TrainedEntry& e = it->second;
        e.fetch = error.empty() ? Fetch::kDone : Fetch::kFailed;
        e.error = error;
        e.placed_generation = generation;
        e.failed_at = std::chrono::steady_clock::now();
        SaveTrained(key, e);
        if (!error.empty()) KindEvent(kTrainedEvents, ns, name, "Warning", "FailedToLoad", error);
      } else if (it != trained.end()) {
        it->second.fetch = Fetch::kIdle;  // changed meanwhile: placed again
      }
      dirty = true;
    }
    cv.notify_all();
  });
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListTrained(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  Items out;
  for (const auto& [key, e] : trained)
    if (ns.empty() || e.tm.meta.namespace_ == ns)
      out.emplace_back(e.tm.meta.name,
                       GraphJson(e.resource_json, e.created, e.generation, e.observed_generation,
                                 GraphStatus{e.status.url, e.status.conditions, e.status.ready},
                                 e.transition_times));
  return out;
}

absl::Status Controller::Impl::DeleteTrained(const std::string& ns, const std::string& name,
                                             std::vector<std::string>*) {
  const std::string key = StrCat(ns, "/", name);
  auto it = trained.find(key);
  if (it == trained.end())
    return absl::NotFoundError(StrCat("trainedmodel ", name, " not found in namespace ", ns));
  const std::string isvc = it->second.tm.inference_service;
  trained.erase(it);
  OSPREY_RETURN_IF_ERROR(store->Delete(StrCat("trained/", key)));
  (void)store->DeletePrefix(EventPrefix(ns, kTrainedEvents, name));
  // Its files go first (no request loads it again), then the replicas unload it.
  const std::string dir = StrCat(ModelsDir(ns, isvc), "/", name);
  StartFetcher([this, ns, isvc, name, dir] {
    std::error_code ec;
    fs::remove_all(dir, ec);
    std::string error =
        EachReplica(*supervisor, ns, isvc, StrCat("/v2/repository/models/", name, "/unload"));
    if (!error.empty() && error.find("not loaded") == std::string::npos) {
      OSPREY_LOG(kWarning) << "trainedmodel " << ns << "/" << name << ": unload: " << error;
    }
  });
  return absl::OkStatus();
}

}  // namespace osprey::controlplane
