#include "controlplane/controller.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "autoscaler/kpa.h"
#include "common/json_dom.h"
#include "common/logging.h"
#include "controlplane/local/placement.h"
#include "controlplane/observe.h"
#include "controlplane/retire.h"
#include "controlplane/routing.h"
#include "controlplane/scaling.h"
#include "controlplane/store.h"
#include "controlplane/views.h"
#include "resources/kinds.h"
#include "controlplane/supervisor.h"
#include "storage/storage.h"

namespace osprey::controlplane {
namespace {

namespace fs = std::filesystem;
using resources::InferenceService;
using resources::ServingRuntime;
using namespace osprey::json;

std::string Now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

RevisionPhase PhaseFromName(std::string_view name) {
  for (auto p : {RevisionPhase::kPending, RevisionPhase::kDownloading, RevisionPhase::kLoading,
                 RevisionPhase::kReady, RevisionPhase::kFailed, RevisionPhase::kRetired})
    if (RevisionPhaseName(p) == name) return p;
  return RevisionPhase::kPending;
}

// The last `n` non-empty lines of a file.
std::vector<std::string> TailLines(const std::string& path, int n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff start = std::max<std::streamoff>(0, size - 256 * 1024);
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(std::move(line));
    pos = nl + 1;
  }
  if (static_cast<int>(lines.size()) > n) lines.erase(lines.begin(), lines.end() - n);
  return lines;
}

}  // namespace

struct Controller::Impl {
  using Fetch = FetchState;

  struct IsvcEntry {
    InferenceService isvc;
    std::string resource_json;  // canonical JSON as applied
    std::string spec_json;      // canonical JSON of spec.predictor
    int64_t generation = 1;
    // The generation the status was last computed for: a client waiting for
    // its change compares the two.
    int64_t observed_generation = 0;
    std::string created;
    IsvcStatus status;
    std::map<std::string, std::string> transition_times;  // condition type -> time
  };
  struct RuntimeEntry {
    ServingRuntime runtime;
    std::string resource_json;
    std::string created;
    bool builtin = false;
  };
  struct RevEntry {
    RevisionSpec spec;
    // How it runs here (placement.h); a failure there is observed as the
    // revision's failure.
    LocalCommand local;
    // The predictor as this revision was made (spec.spec_json): its
    // containerConcurrency and scaling settings hold for it, not those of a
    // later spec (a canary's old revision keeps its own). Parsed on first use.
    mutable std::optional<resources::Component> predictor;
    mutable bool predictor_unparsed = false;  // logged once
    RevisionObserved observed;
    std::string model_dir;
    Fetch fetch = Fetch::kIdle;
    storage::Progress progress;
    std::string fetch_error;
    int desired = 0;
    // Aspired: in the InferenceService's traffic, or its latest revision.
    bool aspired = false;
    int min_replicas = 0;
    autoscaler::KpaState kpa;
    autoscaler::KpaDecision decision;
    bool decided = false;
    // The scale a previous run had reached, from the replicas re-adopted,
    // kept until the first decision of this run (a restart alone stops none).
    int adopted = 0;
    bool activate = false;   // the gateway holds requests for it
    std::string crash_read;  // replica id and restart count whose log the message has
  };

  Options opts;
  std::unique_ptr<Store> store;
  std::unique_ptr<Supervisor> supervisor;

  mutable std::mutex mu;
  std::condition_variable cv;
  bool dirty = true;
  bool stopping = false;
  std::map<std::string, IsvcEntry> isvcs;        // "ns/name"
  std::map<std::string, RuntimeEntry> runtimes;  // "ns/name"; ns "" for cluster runtimes
  std::map<std::string, RevEntry> revisions;     // "ns/name"
  std::vector<std::thread> fetchers;
  std::map<std::string, std::chrono::steady_clock::time_point> retiring;  // replica id -> since
  std::atomic<uint64_t> event_seq{0};
  std::thread loop;

  mutable std::mutex routes_mu;
  std::shared_ptr<const RouteTable> routes = std::make_shared<RouteTable>();

  void MarkDirty() {
    {
      std::lock_guard<std::mutex> lock(mu);
      dirty = true;
    }
    cv.notify_all();
  }

  // The revision as a local process; nothing for one that cannot be served.
  LocalCommand Place(const RevisionSpec& spec) const {
    return spec.failure_reason.empty() ? PlaceLocally(spec, opts.local) : LocalCommand{};
  }
  static bool Runnable(const RevEntry& r) {
    return r.spec.failure_reason.empty() && r.local.failure_reason.empty();
  }

  std::string LogPath(const std::string& ns, const std::string& rev, int i) const {
    return StrCat(opts.data_dir, "/logs/", ns, "/", rev, "/", i, ".log");
  }

  // ---- events ----
  void Event(const std::string& ns, const std::string& object, std::string_view type,
             std::string_view reason, std::string_view message) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    Field(w, "time", Now());
    Field(w, "object", object);
    Field(w, "type", type);
    Field(w, "reason", reason);
    Field(w, "message", message);
    w.EndObject();
    char seq[32];
    std::snprintf(
        seq, sizeof(seq), "%020llu",
        static_cast<unsigned long long>(std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                                .count() *
                                            16 +
                                        (event_seq.fetch_add(1) % 16)));
    (void)store->Put(StrCat("event/", ns, "/", object, "/", seq), buf.GetString());
    OSPREY_LOG(kInfo) << ns << "/" << object << ": " << reason << ": " << message;
  }

  // ---- persistence ----
  void SaveIsvc(const std::string& key, const IsvcEntry& e) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    Key(w, "resource");
    Raw(w, e.resource_json);
    Key(w, "generation");
    w.Int64(e.generation);
    Field(w, "created", e.created);
    Key(w, "transitionTimes");
    w.StartObject();
    for (const auto& [k, v] : e.transition_times) Field(w, k, v);
    w.EndObject();
    Field(w, "latestRolledoutRevision", e.status.latest_rolled_out);
    Field(w, "previousRolledoutRevision", e.status.previous_rolled_out);
    w.EndObject();
    auto st = store->Put(StrCat("isvc/", key), buf.GetString());
    if (!st.ok()) {
      OSPREY_LOG(kError) << st.message();
    }
  }

  void SaveRevision(const std::string& key, const RevEntry& r) {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    Key(w, "spec");
    Raw(w, RevisionSpecJson(r.spec));
    Field(w, "phase", RevisionPhaseName(r.observed.phase));
    Field(w, "reason", r.observed.reason);
    Field(w, "message", r.observed.message);
    Field(w, "failureTime", r.observed.failure_time);
    Key(w, "everReady");
    w.Bool(r.observed.ever_ready);
    Field(w, "modelDir", r.model_dir);
    w.EndObject();
    auto st = store->Put(StrCat("revision/", key), buf.GetString());
    if (!st.ok()) {
      OSPREY_LOG(kError) << st.message();
    }
  }

  absl::Status Load() {
    OSPREY_ASSIGN_OR_RETURN(auto isvc_rows, store->List("isvc/"));
    for (const auto& [key, value] : isvc_rows) {
      rapidjson::Document d;
      if (d.Parse(value.data(), value.size()).HasParseError()) continue;
      auto resource = resources::FromJson(ToText(d["resource"]));
      if (!resource.ok() || !std::holds_alternative<InferenceService>(*resource)) {
        OSPREY_LOG(kError) << "store: " << key << " is unreadable, skipped";
        continue;
      }
      IsvcEntry e;
      e.isvc = std::get<InferenceService>(*resource);
      e.resource_json = resources::ToJson(*resource);
      e.spec_json = PredictorJson(e.resource_json);
      e.generation = GetInt(d, "generation");
      e.created = GetString(d, "created");
      if (auto it = d.FindMember("transitionTimes"); it != d.MemberEnd() && it->value.IsObject())
        for (const auto& m : it->value.GetObject())
          if (m.value.IsString()) e.transition_times[m.name.GetString()] = m.value.GetString();
      e.status.latest_rolled_out = GetString(d, "latestRolledoutRevision");
      e.status.previous_rolled_out = GetString(d, "previousRolledoutRevision");
      isvcs[key.substr(5)] = std::move(e);
    }
    OSPREY_ASSIGN_OR_RETURN(auto rt_rows, store->List("runtime/"));
    for (const auto& [key, value] : rt_rows) {
      rapidjson::Document d;
      if (d.Parse(value.data(), value.size()).HasParseError()) continue;
      auto resource = resources::FromJson(ToText(d["resource"]));
      if (!resource.ok() || !std::holds_alternative<ServingRuntime>(*resource)) continue;
      RuntimeEntry e;
      e.runtime = std::get<ServingRuntime>(*resource);
      e.resource_json = resources::ToJson(*resource);
      e.created = GetString(d, "created");
      runtimes[key.substr(8)] = std::move(e);
    }
    OSPREY_ASSIGN_OR_RETURN(auto rev_rows, store->List("revision/"));
    for (const auto& [key, value] : rev_rows) {
      rapidjson::Document d;
      if (d.Parse(value.data(), value.size()).HasParseError() || !d.HasMember("spec")) continue;
      RevEntry r;
      auto spec = ParseRevisionSpec(ToText(d["spec"]));
      if (!spec.ok()) continue;
      r.spec = std::move(*spec);
      r.local = Place(r.spec);
      r.observed.phase = PhaseFromName(GetString(d, "phase"));
      r.observed.reason = GetString(d, "reason");
      r.observed.message = GetString(d, "message");
      r.observed.failure_time = GetString(d, "failureTime");
      r.observed.ever_ready =
          d.HasMember("everReady") && d["everReady"].IsBool() && d["everReady"].GetBool();
      r.model_dir = GetString(d, "modelDir");
      // A model fetched before is taken from where it lies (the cache keeps
      // it): no second download.
      if (!r.model_dir.empty() && fs::exists(r.model_dir)) r.fetch = Fetch::kDone;
      revisions[key.substr(9)] = std::move(r);
    }
    // Built-in cluster runtimes, dated from the platform's first start.
    std::string installed;
    if (auto v = store->Get("meta/installed"); v.ok()) {
      installed = *v;
    } else {
      installed = Now();
      OSPREY_RETURN_IF_ERROR(store->Put("meta/installed", installed));
    }
    for (const auto& rt : resources::BuiltinClusterRuntimes()) {
      std::string key = StrCat("/", rt.meta.name);
      if (runtimes.count(key)) continue;  // replaced by the user's own
      RuntimeEntry e;
      e.runtime = rt;
      e.resource_json = resources::ToJson(resources::Resource(rt));
      e.created = installed;
      e.builtin = true;
      runtimes[key] = std::move(e);
    }
    return absl::OkStatus();
  }

  // Replicas still running from a previous run are taken over.
  void Readopt() {
    auto rows = store->List("replica/");
    if (!rows.ok()) return;
    for (const auto& [key, value] : *rows) {
      std::string id = key.substr(8);  // ns/rev/i
      rapidjson::Document d;
      bool adopted = false;
      if (!d.Parse(value.data(), value.size()).HasParseError()) {
        size_t last = id.rfind('/');
        std::string rev_key = id.substr(0, last);
        int index = std::atoi(id.c_str() + last + 1);
        auto it = revisions.find(rev_key);
        if (it != revisions.end() && it->second.fetch == Fetch::kDone) {
          ReplicaSpec spec = MakeReplica(rev_key, it->second, index);
          adopted = supervisor->Adopt(spec, static_cast<int>(GetInt(d, "pid")),
                                      static_cast<uint16_t>(GetInt(d, "port")));
          // Replicas are kept by index (0..scale-1): the scale reached is
          // the highest adopted index + 1 (a dead one below it restarts).
          if (adopted) it->second.adopted = std::max(it->second.adopted, index + 1);
        }
      }
      OSPREY_LOG(kInfo) << "replica " << id << (adopted ? " re-adopted" : " not running: restarts");
      if (!adopted) (void)store->Delete(key);
    }
  }

  static std::string PredictorJson(const std::string& resource_json) {
    rapidjson::Document d;
    d.Parse(resource_json.data(), resource_json.size());
    if (d.HasParseError() || !d.HasMember("spec") || !d["spec"].HasMember("predictor")) return "{}";
    // Traffic is not part of a revision: changing the canary percent moves
    // traffic between the existing revisions.
    d["spec"]["predictor"].RemoveMember("canaryTrafficPercent");
    return ToText(d["spec"]["predictor"]);
  }

  // Where replica `id` serves gRPC, or HTTP for the gateway: a short path
  // (Unix socket paths hold ~107 bytes).
  std::string ReplicaSocket(const std::string& id, const char* kind) const {
    char name[40];
    std::snprintf(name, sizeof(name), "%016zx.%s.sock", std::hash<std::string>{}(id), kind);
    std::string path = StrCat(opts.data_dir, "/run/", name);
    if (path.size() > 100) path = StrCat("/tmp/osprey-", ::getuid(), "-", name);
    return path;
  }

  ReplicaSpec MakeReplica(const std::string& rev_key, const RevEntry& r, int index) const {
    ReplicaSpec spec;
    spec.id = StrCat(rev_key, "/", index);
    std::string model_dir = r.model_dir.empty() ? opts.data_dir : r.model_dir;
    const std::string grpc_socket = ReplicaSocket(spec.id, "grpc");
    const std::string http_socket = ReplicaSocket(spec.id, "http");
    const std::string link_socket = ReplicaSocket(spec.id, "link");
    auto fill = [&](std::string s) {
      for (size_t at; (at = s.find("{{.ModelDir}}")) != std::string::npos;)
        s.replace(at, 13, model_dir);
      for (size_t at; (at = s.find("{{.GrpcSocket}}")) != std::string::npos;)
        s.replace(at, 15, grpc_socket);
      for (size_t at; (at = s.find("{{.HttpSocket}}")) != std::string::npos;)
        s.replace(at, 15, http_socket);
      for (size_t at; (at = s.find("{{.LinkSocket}}")) != std::string::npos;)
        s.replace(at, 15, link_socket);
      return s;
    };
    for (const auto& a : r.local.argv) spec.argv.push_back(fill(a));
    for (const auto& [n, v] : r.local.env) spec.env.emplace_back(n, fill(v));
    if (!r.spec.storage_uri.empty()) spec.env.emplace_back("STORAGE_URI", r.spec.storage_uri);
    spec.workdir = r.model_dir.empty() ? opts.data_dir : r.model_dir;
    spec.log_path = LogPath(r.spec.namespace_, r.spec.name, index);
    spec.health_path = r.local.health_path;
    return spec;
  }

  void StartFetch(const std::string& rev_key, RevEntry& r) {
    r.fetch = Fetch::kRunning;
    r.progress = storage::Progress{};
    r.progress.uri = r.spec.storage_uri;
    r.progress.phase = "starting";
    Event(r.spec.namespace_, r.spec.isvc, "Normal", "ModelFetching",
          StrCat("revision ", r.spec.name, ": fetching ", r.spec.storage_uri));
    std::string uri = r.spec.storage_uri;
    fetchers.emplace_back([this, rev_key, uri] {
      storage::Options so;
      so.cache_dir = StrCat(opts.data_dir, "/cache");
      so.pvc_root = opts.pvc_root;
      so.on_progress = [this, rev_key](const storage::Progress& p) {
        std::lock_guard<std::mutex> lock(mu);
        auto it = revisions.find(rev_key);
        if (it != revisions.end()) it->second.progress = p;
      };
      auto dir = storage::Fetch(uri, so);
      {
        std::lock_guard<std::mutex> lock(mu);
        auto it = revisions.find(rev_key);
        if (it != revisions.end()) {
          RevEntry& r = it->second;
          if (dir.ok()) {
            r.fetch = Fetch::kDone;
            r.model_dir = *dir;
            r.progress.phase = "done";
          } else {
            r.fetch = Fetch::kFailed;
            r.fetch_error = std::string(dir.status().message());
          }
          SaveRevision(rev_key, r);
          if (dir.ok())
            Event(r.spec.namespace_, r.spec.isvc, "Normal", "ModelFetched",
                  StrCat("revision ", r.spec.name, ": model in ", *dir));
          else
            Event(r.spec.namespace_, r.spec.isvc, "Warning", "StorageFailed",
                  StrCat("revision ", r.spec.name, ": ", r.fetch_error));
        }
        dirty = true;
      }
      cv.notify_all();
    });
  }

  // What the replicas of a revision show, from a supervisor snapshot: the
  // observations for ObserveRevision (observe.h), which decides the phase.
  void Observe(const std::string& rev_key, RevEntry& r,
               const std::vector<ReplicaStatus>& replicas) {
    RevisionObservations in;
    const bool spec_failed = !r.spec.failure_reason.empty();
    in.unrunnable_reason = spec_failed ? r.spec.failure_reason : r.local.failure_reason;
    in.unrunnable_message = spec_failed ? r.spec.failure_message : r.local.failure_message;
    in.has_storage = !r.spec.storage_uri.empty();
    in.fetch = r.fetch;
    in.fetch_error = r.fetch_error;
    in.aspired = r.aspired;
    in.now = Now();
    const ReplicaStatus* crashed = nullptr;
    std::string prefix = StrCat(rev_key, "/");
    for (const auto& s : replicas) {
      if (!s.id.starts_with(prefix) || s.state == ReplicaState::kStopping) continue;
      ++in.replicas;
      if (s.state == ReplicaState::kReady) ++in.ready_replicas;
      if (s.state == ReplicaState::kBackoff ||
          (s.restarts > 0 && s.state != ReplicaState::kReady)) {
        ++in.failed_replicas;
        crashed = &s;
      }
    }
    in.crashed = crashed != nullptr;
    if (crashed != nullptr) {
      // The log is read once per crash, not on every pass.
      std::string crash = StrCat(crashed->id, "#", crashed->restarts);
      if (crash != r.crash_read) {
        r.crash_read = std::move(crash);
        int index = std::atoi(crashed->id.c_str() + crashed->id.rfind('/') + 1);
        std::string message = crashed->last_exit;
        for (const auto& line : TailLines(LogPath(r.spec.namespace_, r.spec.name, index), 3))
          StrAppend(&message, message.empty() ? "" : "; ", line);
        in.crash_message = std::move(message);
      }
    }
    Observation o = ObserveRevision(r.spec, r.observed, in);
    r.observed = std::move(o.observed);
    for (const auto& e : o.events) Event(r.spec.namespace_, r.spec.isvc, e.type, e.reason, e.message);
    if (o.phase_changed) SaveRevision(rev_key, r);
  }

  std::vector<ServingRuntime> RuntimesOf(const std::string& ns) const {
    std::vector<ServingRuntime> out;
    for (const auto& [key, e] : runtimes)
      if (e.runtime.meta.namespace_ == ns && !e.runtime.cluster) out.push_back(e.runtime);
    return out;
  }

  // One pass over every InferenceService. Called with `mu` held.
  void Pass(const std::vector<ReplicaStatus>& replicas, std::vector<ReplicaSpec>* to_start,
            std::vector<std::string>* to_stop) {
    std::vector<ServingRuntime> cluster;
    for (const auto& [key, e] : runtimes)
      if (e.runtime.cluster) cluster.push_back(e.runtime);
    std::set<std::string> live;  // replica ids that should exist
    const std::string now = Now();
    struct Routed {
      const IsvcEntry* entry;
      std::vector<std::string> aspired;  // revision keys
    };
    std::vector<Routed> routed;

    for (auto& [isvc_key, entry] : isvcs) {
      const std::string& ns = entry.isvc.meta.namespace_;
      std::vector<std::string> rev_keys;
      for (auto& [rev_key, r] : revisions)
        if (r.spec.namespace_ == ns && r.spec.isvc == entry.isvc.meta.name)
          rev_keys.push_back(rev_key);
      std::sort(rev_keys.begin(), rev_keys.end(), [&](const auto& a, const auto& b) {
        return revisions[a].spec.number < revisions[b].spec.number;
      });
      for (const auto& k : rev_keys) Observe(k, revisions[k], replicas);

      std::vector<ServingRuntime> ns_runtimes = RuntimesOf(ns);
      ReconcileInput in;
      in.isvc = &entry.isvc;
      in.spec_json = entry.spec_json;
      for (const auto& k : rev_keys)
        in.revisions.push_back({revisions[k].spec, revisions[k].observed});
      in.namespace_runtimes = &ns_runtimes;
      in.cluster_runtimes = &cluster;
      in.config = &opts.platform;
      in.now = now;
      in.latest_rolled_out = entry.status.latest_rolled_out;
      in.previous_rolled_out = entry.status.previous_rolled_out;
      ReconcilePlan plan = Reconcile(in);

      if (plan.create.has_value()) {
        std::string rev_key = StrCat(ns, "/", plan.create->name);
        RevEntry r;
        r.spec = *plan.create;
        r.local = Place(r.spec);
        revisions[rev_key] = r;
        rev_keys.push_back(rev_key);
        SaveRevision(rev_key, revisions[rev_key]);
        const std::string& failure =
            r.spec.failure_reason.empty() ? r.local.failure_message : r.spec.failure_message;
        Event(ns, entry.isvc.meta.name, "Normal", "RevisionCreated",
              StrCat("revision ", r.spec.name,
                     r.spec.runtime.empty() ? "" : StrCat(" (runtime ", r.spec.runtime, ")"),
                     failure.empty() ? "" : StrCat(" cannot run: ", failure)));
      }

      Routed route{&entry, {}};
      for (const auto& rev_key : rev_keys) {
        RevEntry& r = revisions[rev_key];
        auto want = plan.replicas.find(r.spec.name);
        r.aspired = want != plan.replicas.end();
        if (!r.aspired) {
          r.desired = 0;
          r.kpa = autoscaler::KpaState{};
          r.decided = false;
          r.adopted = 0;
          continue;
        }
        route.aspired.push_back(rev_key);
        if (!Runnable(r)) continue;
        r.min_replicas = want->second;
        r.desired = DesiredReplicas(entry.isvc, r);
        if (r.desired == 0) continue;
        if (r.spec.storage_uri.empty()) {
          r.fetch = Fetch::kDone;
        } else if (r.fetch == Fetch::kIdle) {
          StartFetch(rev_key, r);
        }
        if (r.fetch != Fetch::kDone) continue;
        for (int i = 0; i < r.desired; ++i) {
          std::string id = StrCat(rev_key, "/", i);
          live.insert(id);
          bool exists = std::any_of(replicas.begin(), replicas.end(),
                                    [&](const ReplicaStatus& s) { return s.id == id; });
          if (!exists) to_start->push_back(MakeReplica(rev_key, r, i));
        }
      }
      UpdateStatus(isvc_key, entry, plan.status);
      entry.observed_generation = entry.generation;
      routed.push_back(std::move(route));
    }
    // A replica that leaves is out of the routes at once, stopped after the
    // drain delay (retire.h).
    std::vector<ReplicaPresence> present;
    for (const auto& s : replicas)
      present.push_back({s.id, s.state == ReplicaState::kReady, s.state == ReplicaState::kStopping});
    for (auto& id : ReplicasToStop(present, live, std::chrono::steady_clock::now(),
                                   opts.replica_drain_delay, &retiring))
      to_stop->push_back(std::move(id));
    PublishRoutes(routed, replicas, live);
  }

  // Replicas a revision should run now: the autoscaler's last decision
  // (before the first: the initial scale, or what a previous run left
  // running), at least one while requests wait for it.
  int DesiredReplicas(const InferenceService& isvc, const RevEntry& r) const {
    return controlplane::DesiredReplicas(
        KpaSpecFor(isvc, r), {.decided = r.decided,
                              .decision = r.decision.desired,
                              .adopted = r.adopted,
                              .activating = r.activate});
  }

  // The predictor revision `r` was made from; the current one if its stored
  // spec does not parse (it always should).
  static const resources::Component& PredictorOf(const InferenceService& isvc, const RevEntry& r) {
    if (!r.predictor.has_value()) {
      auto parsed = resources::FromJson(
          StrCat(R"({"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService",)",
                 R"("metadata":{"name":"r","namespace":"n"},"spec":{"predictor":)",
                 r.spec.spec_json.empty() ? "{}" : r.spec.spec_json, "}}"));
      if (parsed.ok() && std::holds_alternative<InferenceService>(*parsed)) {
        r.predictor = std::get<InferenceService>(*parsed).predictor;
      } else {
        if (r.predictor_unparsed) return isvc.predictor;
        r.predictor_unparsed = true;
        OSPREY_LOG(kWarning) << "revision " << r.spec.name << ": stored spec does not parse ("
                             << (parsed.ok() ? "not an InferenceService"
                                             : parsed.status().message())
                             << "); using the current one";
        return isvc.predictor;
      }
    }
    return *r.predictor;
  }

  autoscaler::KpaSpec KpaSpecFor(const InferenceService& isvc, const RevEntry& r) const {
    return controlplane::KpaSpecFor(opts.kpa, isvc.meta.annotations, PredictorOf(isvc, r),
                                    r.min_replicas);
  }

  // The route table (routing.h) over where the replicas are: only replicas
  // that stay get traffic, so one about to be stopped is out of the table
  // before its SIGTERM. Published only when it changed.
  template <typename RoutedList>
  void PublishRoutes(const RoutedList& routed, const std::vector<ReplicaStatus>& replicas,
                     const std::set<std::string>& live) {
    std::vector<ServiceRouting> services;
    std::map<std::string, RevisionRouting> targets;
    for (const auto& item : routed) {
      const IsvcEntry& e = *item.entry;
      services.push_back({e.isvc.meta, e.isvc.predictor.timeout_seconds, e.status, item.aspired});
    }
    for (const auto& [rev_key, r] : revisions) {
      auto isvc = isvcs.find(StrCat(r.spec.namespace_, "/", r.spec.isvc));
      if (isvc == isvcs.end()) continue;
      RevisionRouting& t = targets[rev_key];
      t.aspired = r.aspired;
      t.phase = r.observed.phase;
      t.target.key = rev_key;
      t.target.revision = r.spec.name;
      t.target.container_concurrency = PredictorOf(isvc->second.isvc, r).container_concurrency;
      auto uses = [&](std::string_view placeholder) {
        return std::any_of(r.local.argv.begin(), r.local.argv.end(),
                           [&](const auto& a) { return a.find(placeholder) != std::string::npos; });
      };
      const bool grpc = uses("{{.GrpcSocket}}");
      const bool http_socket = uses("{{.HttpSocket}}");
      const bool link_socket = uses("{{.LinkSocket}}");
      for (const auto& s : replicas)
        if (s.state == ReplicaState::kReady && live.count(s.id) &&
            s.id.compare(0, rev_key.size() + 1, rev_key + "/") == 0) {
          t.target.ports.push_back(s.port);
          t.target.grpc_targets.push_back(grpc ? StrCat("unix:", ReplicaSocket(s.id, "grpc"))
                                               : "");
          t.target.http_sockets.push_back(http_socket ? ReplicaSocket(s.id, "http") : "");
          t.target.link_sockets.push_back(link_socket ? ReplicaSocket(s.id, "link") : "");
        }
    }
    auto table = std::make_shared<RouteTable>(PlanRoutes(services, targets, opts.platform));
    {
      std::lock_guard<std::mutex> lock(routes_mu);
      if (SameRoutes(*table, *routes)) return;
      routes = table;
    }
    if (opts.on_routes) opts.on_routes(table);
  }

  // One autoscaler tick: the gateway's measurements into each aspired
  // revision's decider. Called with `mu` held.
  void Autoscale(const std::vector<gateway::RevisionStats>& stats) {
    const auto now = autoscaler::Clock::now();
    std::map<std::string, const gateway::RevisionStats*> by_key;
    for (const auto& s : stats) by_key[s.key] = &s;
    for (auto& [key, r] : revisions) {
      if (!r.aspired || !Runnable(r)) continue;
      auto isvc = isvcs.find(StrCat(r.spec.namespace_, "/", r.spec.isvc));
      if (isvc == isvcs.end()) continue;
      autoscaler::KpaSpec spec = KpaSpecFor(isvc->second.isvc, r);
      autoscaler::Sample sample;
      sample.time = now;
      int waiting = 0;
      if (auto it = by_key.find(key); it != by_key.end()) {
        sample.concurrency = it->second->concurrency;
        sample.rps = it->second->rps;
        waiting = it->second->waiting;
      }
      const int before = r.decided ? r.decision.desired : r.adopted > 0 ? r.adopted : -1;
      r.decision =
          autoscaler::Decide(spec, &r.kpa, sample, r.observed.ready_replicas, waiting, now);
      r.decided = true;
      r.adopted = 0;
      // This decision saw the requests the activator held (waiting, or in
      // flight once a replica took them): it carries the scale from here.
      r.activate = false;
      if (before >= 0 && before != r.decision.desired) {
        char observed[64];
        std::snprintf(observed, sizeof(observed), "%.2f stable, %.2f panic",
                      r.decision.observed_stable, r.decision.observed_panic);
        Event(r.spec.namespace_, r.spec.isvc, "Normal",
              r.decision.desired == 0 ? "ScaledToZero" : "Scaled",
              StrCat("revision ", r.spec.name, ": ", before, " -> ", r.decision.desired,
                     " replicas (", r.decision.reason, "; observed ",
                     spec.metric == autoscaler::KpaSpec::Metric::kRps ? "rps " : "concurrency ",
                     observed, ", target ", spec.target, " x ", spec.utilization, ")"));
      }
    }
  }

  void UpdateStatus(const std::string& key, IsvcEntry& e, const IsvcStatus& status) {
    if (status == e.status) return;
    const std::string now = Now();
    bool was_ready = false;
    for (const auto& c : e.status.conditions)
      if (c.type == "Ready") was_ready = c.status == "True";
    for (const auto& c : status.conditions) {
      auto old = std::find_if(e.status.conditions.begin(), e.status.conditions.end(),
                              [&](const Condition& o) { return o.type == c.type; });
      if (old == e.status.conditions.end() || old->status != c.status ||
          !e.transition_times.count(c.type))
        e.transition_times[c.type] = now;
      if (c.type == "Ready" && (c.status == "True") != was_ready)
        Event(e.isvc.meta.namespace_, e.isvc.meta.name, c.status == "True" ? "Normal" : "Warning",
              c.status == "True" ? "InferenceServiceReady" : "InferenceServiceNotReady",
              c.status == "True" ? StrCat("serving at ", status.url)
                                 : StrCat(c.reason, ": ", c.message));
    }
    e.status = status;
    SaveIsvc(key, e);
  }

  void Run() {
    auto next_autoscale = autoscaler::Clock::now() + opts.autoscale_tick;
    std::unique_lock<std::mutex> lock(mu);
    while (!stopping) {
      cv.wait_for(lock, opts.tick, [&] { return dirty || stopping; });
      if (stopping) break;
      dirty = false;
      lock.unlock();
      std::vector<ReplicaStatus> replicas = supervisor->Snapshot();
      std::optional<std::vector<gateway::RevisionStats>> stats;
      if (autoscaler::Clock::now() >= next_autoscale) {
        next_autoscale = autoscaler::Clock::now() + opts.autoscale_tick;
        stats = opts.collect_stats ? opts.collect_stats() : std::vector<gateway::RevisionStats>{};
      }
      lock.lock();
      if (stats.has_value()) Autoscale(*stats);
      std::vector<ReplicaSpec> to_start;
      std::vector<std::string> to_stop;
      Pass(replicas, &to_start, &to_stop);
      lock.unlock();
      for (const auto& spec : to_start) {
        auto st = supervisor->Start(spec);
        if (!st.ok()) {
          OSPREY_LOG(kError) << "replica " << spec.id << ": " << st.message();
        }
      }
      for (const auto& id : to_stop) supervisor->Stop(id);
      lock.lock();
      // Decisions come on their own clock, whether or not anything changed.
      if (autoscaler::Clock::now() >= next_autoscale) dirty = true;
    }
  }

  // ---- kinds: what the controller does for each of resources::Kinds() ----
  using Items = std::vector<std::pair<std::string, std::string>>;  // name, rendered JSON
  struct KindOps {
    std::string_view plural;
    // The kind's objects in namespace `ns` ("": every namespace). Called
    // with `mu` held.
    absl::StatusOr<Items> (Impl::*list)(const std::string& ns,
                                        const std::vector<ReplicaStatus>& replicas) const;
    // Deletes one; adds the prefixes of replicas to stop. nullptr: the
    // platform's own kind, not deleted through the API. Called with `mu` held.
    absl::Status (Impl::*remove)(const std::string& ns, const std::string& name,
                                 std::vector<std::string>* replica_prefixes);
  };
  static const KindOps* OpsOf(std::string_view plural) {
    static const KindOps kOps[] = {
        {"inferenceservices", &Impl::ListIsvcs, &Impl::DeleteIsvc},
        {"servingruntimes", &Impl::ListRuntimes, &Impl::DeleteRuntime},
        {"clusterservingruntimes", &Impl::ListClusterRuntimes, &Impl::DeleteClusterRuntime},
        {"revisions", &Impl::ListRevisions, nullptr},
        {"podautoscalers", &Impl::ListAutoscalers, nullptr},
        {"events", &Impl::ListEvents, nullptr},
    };
    for (const auto& o : kOps)
      if (o.plural == plural) return &o;
    return nullptr;
  }

  absl::StatusOr<Items> ItemsOf(std::string_view kind, const std::string& ns) {
    const KindOps* ops = OpsOf(kind);
    if (ops == nullptr) return absl::NotFoundError(StrCat("unknown resource kind ", kind));
    std::vector<ReplicaStatus> replicas = supervisor->Snapshot();
    std::lock_guard<std::mutex> lock(mu);
    return (this->*ops->list)(ns, replicas);
  }

  absl::StatusOr<Items> ListIsvcs(const std::string& ns, const std::vector<ReplicaStatus>&) const {
    Items out;
    for (const auto& [key, e] : isvcs)
      if (ns.empty() || e.isvc.meta.namespace_ == ns)
        out.emplace_back(e.isvc.meta.name, IsvcJson(RecordOf(e)));
    return out;
  }
  Items RuntimeItems(const std::string& ns, bool cluster) const {
    Items out;
    for (const auto& [key, e] : runtimes)
      if (e.runtime.cluster == cluster && (cluster || ns.empty() || e.runtime.meta.namespace_ == ns))
        out.emplace_back(e.runtime.meta.name, RuntimeJson(e.resource_json, e.created, e.builtin));
    return out;
  }
  absl::StatusOr<Items> ListRuntimes(const std::string& ns,
                                     const std::vector<ReplicaStatus>&) const {
    return RuntimeItems(ns, false);
  }
  absl::StatusOr<Items> ListClusterRuntimes(const std::string&,
                                            const std::vector<ReplicaStatus>&) const {
    return RuntimeItems("", true);
  }
  absl::StatusOr<Items> ListRevisions(const std::string& ns,
                                      const std::vector<ReplicaStatus>& replicas) const {
    std::vector<const RevEntry*> revs;
    for (const auto& [key, r] : revisions)
      if (ns.empty() || r.spec.namespace_ == ns) revs.push_back(&r);
    std::sort(revs.begin(), revs.end(), [](auto* a, auto* b) {
      return std::tie(a->spec.namespace_, a->spec.isvc, a->spec.number) <
             std::tie(b->spec.namespace_, b->spec.isvc, b->spec.number);
    });
    Items out;
    for (const auto* r : revs) out.emplace_back(r->spec.name, RevisionJson(RecordOf(*r, replicas)));
    return out;
  }
  absl::StatusOr<Items> ListAutoscalers(const std::string& ns,
                                        const std::vector<ReplicaStatus>&) const {
    Items out;
    for (const auto& [key, r] : revisions)
      if (r.aspired && (ns.empty() || r.spec.namespace_ == ns))
        out.emplace_back(r.spec.name, PodAutoscalerJson(AutoscalerOf(r)));
    return out;
  }
  absl::StatusOr<Items> ListEvents(const std::string& ns, const std::vector<ReplicaStatus>&) const {
    OSPREY_ASSIGN_OR_RETURN(auto rows, store->List(ns.empty() ? "event/" : StrCat("event/", ns, "/")));
    Items out;
    for (const auto& [key, value] : rows) {
      // event/{ns}/{object}/{seq}
      std::string rest = key.substr(6);
      rapidjson::Document d;
      if (d.Parse(value.data(), value.size()).HasParseError()) continue;
      d.AddMember("namespace",
                  rapidjson::Value(rest.substr(0, rest.find('/')).c_str(), d.GetAllocator()),
                  d.GetAllocator());
      out.emplace_back(GetString(d, "object"), ToText(d));
    }
    return out;
  }

  absl::Status DeleteIsvc(const std::string& ns, const std::string& name,
                          std::vector<std::string>* replica_prefixes) {
    std::string key = StrCat(ns, "/", name);
    if (!isvcs.erase(key))
      return absl::NotFoundError(StrCat("inferenceservice ", name, " not found in namespace ", ns));
    OSPREY_RETURN_IF_ERROR(store->Delete(StrCat("isvc/", key)));
    for (auto it = revisions.begin(); it != revisions.end();) {
      if (it->second.spec.namespace_ == ns && it->second.spec.isvc == name) {
        replica_prefixes->push_back(StrCat(it->first, "/"));
        (void)store->Delete(StrCat("revision/", it->first));
        it = revisions.erase(it);
      } else {
        ++it;
      }
    }
    (void)store->DeletePrefix(StrCat("event/", ns, "/", name, "/"));
    return absl::OkStatus();
  }
  absl::Status DeleteRuntimeIn(const std::string& ns, const std::string& name, bool cluster) {
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
  absl::Status DeleteRuntime(const std::string& ns, const std::string& name,
                             std::vector<std::string>*) {
    return DeleteRuntimeIn(ns, name, false);
  }
  absl::Status DeleteClusterRuntime(const std::string& ns, const std::string& name,
                                    std::vector<std::string>*) {
    return DeleteRuntimeIn(ns, name, true);
  }

  // ---- API views (views.h) ----
  static IsvcRecord RecordOf(const IsvcEntry& e) {
    return {e.resource_json, e.created, e.generation, e.observed_generation, e.status,
            e.transition_times};
  }

  RevisionRecord RecordOf(const RevEntry& r, const std::vector<ReplicaStatus>& replicas) const {
    RevisionRecord out;
    out.spec = r.spec;
    out.observed = r.observed;
    out.desired = r.desired;
    out.model_dir = r.model_dir;
    out.command = r.local.argv;
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

  static AutoscalerRecord AutoscalerOf(const RevEntry& r) {
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
};

Controller::Controller(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<Controller>> Controller::Start(Options options) {
  auto impl = std::make_unique<Impl>();
  impl->opts = std::move(options);
  std::error_code ec;
  fs::create_directories(impl->opts.data_dir + "/run", ec);
  if (ec)
    return absl::FailedPreconditionError(
        StrCat("cannot create data directory ", impl->opts.data_dir, ": ", ec.message()));
  ::chmod(impl->opts.data_dir.c_str(), 0700);
  OSPREY_ASSIGN_OR_RETURN(impl->store, Store::Open(StrCat(impl->opts.data_dir, "/osprey.db")));
  OSPREY_RETURN_IF_ERROR(impl->Load());
  Impl* raw = impl.get();
  Supervisor::Options so;
  so.stop_grace = impl->opts.replica_stop_grace;
  // A starting replica is probed often: readiness is on the cold-start path.
  so.probe_interval = std::chrono::milliseconds(10);
  so.startup_timeout = impl->opts.replica_startup_timeout;
  so.on_change = [raw](const ReplicaStatus& s) {
    std::string key = StrCat("replica/", s.id);
    if (s.removed || s.state == ReplicaState::kStopping) {
      (void)raw->store->Delete(key);
    } else if (s.pid != 0) {
      (void)raw->store->Put(key, StrCat("{\"pid\":", s.pid, ",\"port\":", s.port, "}"));
    }
    raw->MarkDirty();
  };
  impl->supervisor = std::make_unique<Supervisor>(so);
  impl->Readopt();
  impl->loop = std::thread([raw] { raw->Run(); });
  return std::unique_ptr<Controller>(new Controller(std::move(impl)));
}

Controller::~Controller() { Shutdown(false); }

void Controller::Shutdown(bool stop_replicas) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopping && !impl_->loop.joinable()) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->loop.joinable()) impl_->loop.join();
  if (stop_replicas) impl_->supervisor->Shutdown();
  std::vector<std::thread> fetchers;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    fetchers.swap(impl_->fetchers);
  }
  for (auto& t : fetchers)
    if (t.joinable()) t.join();
}

absl::StatusOr<std::vector<Controller::ApplyResult>> Controller::Apply(
    std::string_view yaml, const std::string& default_namespace, const std::string& base_dir) {
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
        auto it = impl_->isvcs.find(key);
        if (it == impl_->isvcs.end()) {
          Impl::IsvcEntry e;
          e.isvc = *isvc;
          e.resource_json = json;
          e.spec_json = Impl::PredictorJson(json);
          e.created = now;
          it = impl_->isvcs.emplace(key, std::move(e)).first;
          result.action = "created";
        } else if (it->second.resource_json == json) {
          result.action = "unchanged";
        } else {
          it->second.isvc = *isvc;
          it->second.resource_json = json;
          it->second.spec_json = Impl::PredictorJson(json);
          ++it->second.generation;
          result.action = "configured";
        }
        if (result.action != "unchanged") {
          impl_->SaveIsvc(key, it->second);
          impl_->Event(result.namespace_, result.name, "Normal",
                       result.action == "created" ? "Created" : "Updated",
                       StrCat("generation ", it->second.generation));
        }
      } else {
        const auto& rt = std::get<ServingRuntime>(r);
        result.namespace_ = rt.meta.namespace_;
        result.name = rt.meta.name;
        std::string key = StrCat(rt.cluster ? "" : rt.meta.namespace_, "/", rt.meta.name);
        auto it = impl_->runtimes.find(key);
        if (it != impl_->runtimes.end() && !it->second.builtin &&
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
  return ListJson(rendered);
}

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
    if (it == impl_->isvcs.end())
      return absl::NotFoundError(
          StrCat("inferenceservice \"", name, "\" not found in namespace \"", ns, "\""));
    if (rev_name.empty()) rev_name = it->second.status.latest_created;
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

void Controller::Activate(const std::string& revision_key) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->revisions.find(revision_key);
    if (it == impl_->revisions.end() || it->second.activate) return;
    it->second.activate = true;
    impl_->dirty = true;
  }
  impl_->cv.notify_all();
}

std::shared_ptr<const RouteTable> Controller::Routes() const {
  std::lock_guard<std::mutex> lock(impl_->routes_mu);
  return impl_->routes;
}

}  // namespace osprey::controlplane
