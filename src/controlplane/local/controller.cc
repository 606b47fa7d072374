#include "controlplane/local/controller.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iterator>

#include "common/json_dom.h"
#include "controlplane/local/controller_impl.h"
#include "controlplane/model_server.h"

namespace osprey::controlplane {
namespace fs = std::filesystem;
using namespace osprey::json;

void Controller::Impl::MarkDirty() {
  {
    std::lock_guard<std::mutex> lock(mu);
    dirty = true;
  }
  cv.notify_all();
}

LocalCommand Controller::Impl::Place(const RevisionSpec& spec) const {
  return spec.failure_reason.empty() ? PlaceLocally(spec, opts.local) : LocalCommand{};
}

bool Controller::Impl::Runnable(const RevEntry& r) {
  return r.spec.failure_reason.empty() && r.local.failure_reason.empty();
}

std::string Controller::Impl::LogPath(const std::string& ns, const std::string& rev, int i) const {
  return StrCat(opts.data_dir, "/logs/", ns, "/", rev, "/", i, ".log");
}

void Controller::Impl::SetSpecJsons(IsvcEntry& e) {
  e.spec_json = PredictorSpecJson(e.resource_json);
  e.transformer_json = ComponentSpecJson(e.resource_json, "transformer");
  e.explainer_json = ComponentSpecJson(e.resource_json, "explainer");
}

std::string Controller::Impl::ReplicaSocket(const std::string& id, const char* kind) const {
  char name[40];
  std::snprintf(name, sizeof(name), "%016zx.%s.sock", std::hash<std::string>{}(id), kind);
  std::string path = StrCat(opts.data_dir, "/run/", name);
  if (path.size() > 100) path = StrCat("/tmp/osprey-", ::getuid(), "-", name);
  return path;
}

ReplicaSpec Controller::Impl::MakeReplica(const std::string& rev_key, const RevEntry& r,
                                          int index) const {
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

void Controller::Impl::StartFetcher(std::function<void()> work) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  fetchers.push_back({std::thread([work = std::move(work), done] {
                        work();
                        done->store(true);
                      }),
                      done});
}

void Controller::Impl::ReapFetchers() {
  for (auto it = fetchers.begin(); it != fetchers.end();) {
    if (!it->done->load()) {
      ++it;
      continue;
    }
    it->thread.join();  // finished: returns at once
    it = fetchers.erase(it);
  }
}

void Controller::Impl::StartFetch(const std::string& rev_key, RevEntry& r) {
  r.fetch = Fetch::kRunning;
  r.progress = storage::Progress{};
  r.progress.uri = r.spec.storage_uri;
  r.progress.phase = "starting";
  RevisionEvent(r.spec, "Normal", "ModelFetching",
                StrCat("revision ", r.spec.name, ": fetching ", r.spec.storage_uri));
  std::string uri = r.spec.storage_uri;
  StartFetcher([this, rev_key, uri] {
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
          RevisionEvent(r.spec, "Normal", "ModelFetched",
                        StrCat("revision ", r.spec.name, ": model in ", *dir));
        else
          RevisionEvent(r.spec, "Warning", "StorageFailed",
                        StrCat("revision ", r.spec.name, ": ", r.fetch_error));
      }
      dirty = true;
    }
    cv.notify_all();
  });
}

void Controller::Impl::Observe(const std::string& rev_key, RevEntry& r,
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
    if (s.state == ReplicaState::kBackoff || (s.restarts > 0 && s.state != ReplicaState::kReady)) {
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
  for (const auto& e : o.events) RevisionEvent(r.spec, e.type, e.reason, e.message);
  if (o.phase_changed) SaveRevision(rev_key, r);
}

std::vector<ServingRuntime> Controller::Impl::RuntimesOf(const std::string& ns) const {
  std::vector<ServingRuntime> out;
  for (const auto& [key, e] : runtimes)
    if (e.runtime.meta.namespace_ == ns && !e.runtime.cluster) out.push_back(e.runtime);
  return out;
}

void Controller::Impl::Pass(const std::vector<ReplicaStatus>& replicas,
                            std::vector<ReplicaSpec>* to_start, std::vector<std::string>* to_stop) {
  std::vector<ServingRuntime> cluster;
  for (const auto& [key, e] : runtimes)
    if (e.runtime.cluster) cluster.push_back(e.runtime);
  std::set<std::string> live;  // replica ids that should exist
  const std::string now = Now();
  std::vector<Routed> routed;

  for (auto& [isvc_key, entry] : isvcs) {
    const std::string& ns = entry.isvc.meta.namespace_;
    std::vector<std::string> rev_keys;
    for (auto& [rev_key, r] : revisions)
      if (r.spec.kind != kKnativeServiceKind && r.spec.namespace_ == ns &&
          r.spec.isvc == entry.isvc.meta.name)
        rev_keys.push_back(rev_key);
    std::sort(rev_keys.begin(), rev_keys.end(), [&](const auto& a, const auto& b) {
      return revisions[a].spec.number < revisions[b].spec.number;
    });
    for (const auto& k : rev_keys) Observe(k, revisions[k], replicas);

    std::vector<ServingRuntime> ns_runtimes = RuntimesOf(ns);
    ReconcileInput in;
    in.isvc = &entry.isvc;
    in.spec_json = entry.spec_json;
    in.transformer_json = entry.transformer_json;
    in.explainer_json = entry.explainer_json;
    in.stored = &entry.status;
    for (const auto& k : rev_keys)
      in.revisions.push_back({revisions[k].spec, revisions[k].observed});
    in.namespace_runtimes = &ns_runtimes;
    in.cluster_runtimes = &cluster;
    in.config = &opts.platform;
    in.now = now;
    in.latest_rolled_out = entry.status.latest_rolled_out;
    in.previous_rolled_out = entry.status.previous_rolled_out;
    ReconcilePlan plan = Reconcile(in);

    for (const RevisionSpec& created : plan.create) {
      std::string rev_key = StrCat(ns, "/", created.name);
      RevEntry r;
      r.spec = created;
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
    route.aspired = RunRevisions(rev_keys, plan.replicas, entry.isvc, replicas, &live, to_start);
    UpdateStatus(isvc_key, entry, plan.status);
    entry.observed_generation = entry.generation;
    routed.push_back(std::move(route));
  }
  std::vector<KnativeRouting> knative;
  PassKnative(replicas, &live, to_start, &knative);
  // A replica that leaves is out of the routes at once, stopped after the
  // drain delay (retire.h).
  std::vector<ReplicaPresence> present;
  for (const auto& s : replicas)
    present.push_back({s.id, s.state == ReplicaState::kReady, s.state == ReplicaState::kStopping});
  for (auto& id : ReplicasToStop(present, live, std::chrono::steady_clock::now(),
                                 opts.replica_drain_delay, &retiring))
    to_stop->push_back(std::move(id));
  PassGraphs(cluster);
  PassTrained(cluster);
  ReapFetchers();
  PublishRoutes(routed, knative, replicas, live);
}

std::vector<std::string> Controller::Impl::RunRevisions(const std::vector<std::string>& rev_keys,
                                                        const std::map<std::string, int>& plan,
                                                        const InferenceService& owner,
                                                        const std::vector<ReplicaStatus>& replicas,
                                                        std::set<std::string>* live,
                                                        std::vector<ReplicaSpec>* to_start) {
  std::vector<std::string> aspired;
  for (const auto& rev_key : rev_keys) {
    RevEntry& r = revisions[rev_key];
    auto want = plan.find(r.spec.name);
    r.aspired = want != plan.end();
    if (!r.aspired) {
      r.desired = 0;
      r.kpa = autoscaler::KpaState{};
      r.decided = false;
      r.adopted = 0;
      continue;
    }
    // One that cannot run here takes no route, fetch or replica.
    if (!Runnable(r)) continue;
    aspired.push_back(rev_key);
    r.min_replicas = want->second;
    r.desired = DesiredReplicas(owner, r);
    RunRevision(rev_key, r, replicas, live, to_start);
  }
  return aspired;
}

void Controller::Impl::RunRevision(const std::string& rev_key, RevEntry& r,
                                   const std::vector<ReplicaStatus>& replicas,
                                   std::set<std::string>* live,
                                   std::vector<ReplicaSpec>* to_start) {
  if (r.desired == 0) return;
  if (r.spec.storage_uri.empty()) {
    r.fetch = Fetch::kDone;
    // A multi-model predictor serves its TrainedModels' repository.
    if (ServesMultiModel(r.spec) && r.model_dir.empty()) {
      r.model_dir = ModelsDir(r.spec.namespace_, r.spec.isvc);
      std::error_code ec;
      fs::create_directories(r.model_dir, ec);
    }
  } else if (r.fetch == Fetch::kIdle) {
    StartFetch(rev_key, r);
  }
  if (r.fetch != Fetch::kDone) return;
  for (int i = 0; i < r.desired; ++i) {
    std::string id = StrCat(rev_key, "/", i);
    live->insert(id);
    bool exists = std::any_of(replicas.begin(), replicas.end(),
                              [&](const ReplicaStatus& s) { return s.id == id; });
    if (!exists) to_start->push_back(MakeReplica(rev_key, r, i));
  }
}

const InferenceService* Controller::Impl::OwnerOf(const RevEntry& r) const {
  const std::string key = StrCat(r.spec.namespace_, "/", r.spec.isvc);
  if (r.spec.kind == kKnativeServiceKind) {
    auto it = ksvcs.find(key);
    return it == ksvcs.end() ? nullptr : &it->second.owner;
  }
  auto it = isvcs.find(key);
  return it == isvcs.end() ? nullptr : &it->second.isvc;
}

int Controller::Impl::DesiredReplicas(const InferenceService& isvc, const RevEntry& r) const {
  return controlplane::DesiredReplicas(KpaSpecFor(isvc, r), {.decided = r.decided,
                                                             .decision = r.decision.desired,
                                                             .adopted = r.adopted,
                                                             .activating = r.activate,
                                                             .ever_ready = r.observed.ever_ready});
}

const resources::Component& Controller::Impl::PredictorOf(const InferenceService& isvc,
                                                          const RevEntry& r) {
  const resources::Component* current = ComponentOf(isvc, r.spec.component);
  if (current == nullptr) current = &isvc.predictor;
  if (!r.predictor.has_value()) {
    if (std::optional<resources::Component> found = RevisionComponent(r.spec)) {
      r.predictor = std::move(*found);
    } else {
      if (r.predictor_unparsed) return *current;
      r.predictor_unparsed = true;
      OSPREY_LOG(kWarning) << "revision " << r.spec.name
                           << ": stored spec does not parse; using the current one";
      return *current;
    }
  }
  return *r.predictor;
}

autoscaler::KpaSpec Controller::Impl::KpaSpecFor(const InferenceService& isvc,
                                                 const RevEntry& r) const {
  return controlplane::KpaSpecFor(opts.kpa, isvc.meta.annotations, PredictorOf(isvc, r),
                                  r.min_replicas);
}

void Controller::Impl::PublishRoutes(const std::vector<Routed>& routed,
                                     const std::vector<KnativeRouting>& knative,
                                     const std::vector<ReplicaStatus>& replicas,
                                     const std::set<std::string>& live) {
  std::vector<ServiceRouting> services;
  std::map<std::string, RevisionRouting> targets;
  for (const auto& item : routed) {
    const IsvcEntry& e = *item.entry;
    ServiceRouting s{e.isvc.meta, e.isvc.predictor.timeout_seconds};
    if (e.isvc.transformer) s.transformer_timeout_seconds = e.isvc.transformer->timeout_seconds;
    if (e.isvc.explainer) s.explainer_timeout_seconds = e.isvc.explainer->timeout_seconds;
    s.predictor_logger = e.isvc.predictor.logger;
    if (e.isvc.transformer) s.transformer_logger = e.isvc.transformer->logger;
    if (e.isvc.explainer) s.explainer_logger = e.isvc.explainer->logger;
    s.status = e.status;
    s.aspired = item.aspired;
    // The predictor's latest revision names the served model.
    const std::string latest =
        StrCat(e.isvc.meta.namespace_, "/", s.status.Component("predictor")->latest_created);
    if (auto rev = revisions.find(latest); rev != revisions.end())
      s.served_model_name = ServedModelName(rev->second.spec);
    services.push_back(std::move(s));
  }
  for (const auto& [rev_key, r] : revisions) {
    const InferenceService* owner = OwnerOf(r);
    if (owner == nullptr) continue;
    RevisionRouting& t = targets[rev_key];
    t.aspired = r.aspired && Runnable(r);
    t.phase = r.observed.phase;
    t.target.key = rev_key;
    t.target.revision = r.spec.name;
    t.target.container_concurrency = PredictorOf(*owner, r).container_concurrency;
    auto uses = [&](std::string_view placeholder) {
      return std::any_of(r.local.argv.begin(), r.local.argv.end(),
                         [&](const auto& a) { return a.find(placeholder) != std::string::npos; });
    };
    const bool grpc = uses("{{.GrpcSocket}}");
    const bool grpc_port = uses("{{.GrpcPort}}");
    const bool http_socket = uses("{{.HttpSocket}}");
    const bool link_socket = uses("{{.LinkSocket}}");
    for (const auto& s : replicas)
      if (s.state == ReplicaState::kReady && live.count(s.id) &&
          s.id.compare(0, rev_key.size() + 1, rev_key + "/") == 0) {
        t.target.ports.push_back(s.port);
        t.target.grpc_targets.push_back(grpc        ? StrCat("unix:", ReplicaSocket(s.id, "grpc"))
                                        : grpc_port ? StrCat("127.0.0.1:", s.grpc_port)
                                                    : "");
        t.target.http_sockets.push_back(http_socket ? ReplicaSocket(s.id, "http") : "");
        t.target.link_sockets.push_back(link_socket ? ReplicaSocket(s.id, "link") : "");
      }
  }
  const std::vector<KeyedRoute> keyed = PlanIstioRoutes(routed, knative, &targets);
  auto table =
      std::make_shared<RouteTable>(PlanRoutes(services, targets, opts.platform, knative, keyed));
  table->graphs = GraphRoutes();
  {
    std::lock_guard<std::mutex> lock(routes_mu);
    if (SameRoutes(*table, *routes) && SameGraphRoutes(table->graphs, routes->graphs)) return;
    routes = table;
  }
  if (opts.on_routes) opts.on_routes(table);
}

void Controller::Impl::Autoscale(const std::vector<gateway::RevisionStats>& stats) {
  const auto now = autoscaler::Clock::now();
  std::map<std::string, const gateway::RevisionStats*> by_key;
  for (const auto& s : stats) by_key[s.key] = &s;
  for (auto& [key, r] : revisions) {
    if (!r.aspired || !Runnable(r)) continue;
    const InferenceService* owner = OwnerOf(r);
    if (owner == nullptr) continue;
    autoscaler::KpaSpec spec = KpaSpecFor(*owner, r);
    autoscaler::Sample sample;
    sample.time = now;
    int waiting = 0;
    if (auto it = by_key.find(key); it != by_key.end()) {
      sample.concurrency = it->second->concurrency;
      sample.rps = it->second->rps;
      waiting = it->second->waiting;
    }
    const int before = r.decided ? r.decision.desired : r.adopted > 0 ? r.adopted : -1;
    r.decision = autoscaler::Decide(spec, &r.kpa, sample, r.observed.ready_replicas, waiting, now);
    r.decided = true;
    r.adopted = 0;
    // This decision saw the requests the activator held (waiting, or in
    // flight once a replica took them): it carries the scale from here.
    r.activate = false;
    ScaleEvent scaled = ScaleEventFor(r.spec.name, before, r.decision, spec);
    if (!scaled.reason.empty()) RevisionEvent(r.spec, "Normal", scaled.reason, scaled.message);
  }
}

void Controller::Impl::Account(const std::vector<gateway::RevisionStats>& stats,
                               const std::vector<ReplicaStatus>& replicas,
                               const std::map<int, ProcessUsage>& trees) {
  const auto now = std::chrono::steady_clock::now();
  const bool first = last_accounted == std::chrono::steady_clock::time_point{};
  const double seconds = first ? 0 : std::chrono::duration<double>(now - last_accounted).count();
  last_accounted = now;
  std::map<std::string, const gateway::RevisionStats*> by_key;
  for (const auto& s : stats) by_key[s.key] = &s;
  std::map<std::string, UsageSample> samples;  // by revision key
  std::map<std::string, double> seen_cpu;
  for (const auto& s : replicas) {
    const std::string rev_key = s.id.substr(0, s.id.rfind('/'));
    UsageSample& sample = samples[rev_key];
    auto tree = trees.find(s.pid);
    if (s.pid <= 0 || tree == trees.end()) continue;
    ++sample.replicas;
    sample.memory_bytes += tree->second.rss_bytes;
    // CPU since the last tick; a process first seen counts from its start.
    const std::string id = StrCat(s.id, "@", s.pid);
    auto before = replica_cpu.find(id);
    const double used =
        tree->second.cpu_seconds - (before != replica_cpu.end() ? before->second : 0);
    sample.cpu_seconds += std::max(0.0, used);
    seen_cpu[id] = tree->second.cpu_seconds;
  }
  replica_cpu = std::move(seen_cpu);
  for (auto it = costs.begin(); it != costs.end();) {
    if (revisions.contains(it->first)) {
      ++it;
      continue;
    }
    (void)store->Delete(StrCat("cost/", it->first));
    it = costs.erase(it);
  }
  // The first tick sets the CPU baselines of replicas already running (their
  // CPU before it is a previous run's, restored with its totals); the
  // requests the gateway counted before it are kept.
  if (first)
    for (auto& [key, sample] : samples) sample.cpu_seconds = 0;
  for (auto& [key, r] : revisions) {
    if (!r.aspired && !samples.contains(key)) continue;
    UsageSample sample = samples[key];
    sample.seconds = seconds;
    if (auto it = by_key.find(key); it != by_key.end()) {
      sample.requests = static_cast<double>(it->second->requests);
      sample.concurrency = it->second->concurrency;
      sample.waiting = it->second->waiting;
    }
    auto [entry, created] = costs.try_emplace(key, opts.cost_window);
    CostEntry& c = entry->second;
    c.ledger.Add(sample, now);
    c.last = sample;
    // Advice on what the last window saw, once half of it was observed.
    const InferenceService* owner = OwnerOf(r);
    if (owner == nullptr || !Runnable(r)) continue;
    const autoscaler::KpaSpec kpa = KpaSpecFor(*owner, r);
    SizingSettings settings;
    settings.min_replicas = kpa.min_scale;
    settings.max_replicas = kpa.max_scale;
    // Only a concurrency target is judged against concurrency.
    settings.target = kpa.metric == autoscaler::KpaSpec::Metric::kConcurrency ? kpa.target : 0;
    settings.container_concurrency = PredictorOf(*owner, r).container_concurrency;
    if (r.spec.batcher.has_value()) {
      settings.batcher_max_batch_size = r.spec.batcher->max_batch_size;
      settings.batcher_max_latency_ms = r.spec.batcher->max_latency_ms;
    }
    std::vector<Advice> advice =
        RightSizing(settings, c.ledger.Window(now),
                    std::chrono::duration<double>(opts.cost_window).count() / 2);
    for (const Advice& a : advice)
      if (std::find(c.advice.begin(), c.advice.end(), a) == c.advice.end() &&
          std::none_of(c.advice.begin(), c.advice.end(),
                       [&](const Advice& b) { return b.reason == a.reason; }))
        RevisionEvent(r.spec, "Normal", a.reason,
                      StrCat("revision ", r.spec.name, ": ", a.message));
    c.advice = std::move(advice);
  }
  if (now - last_cost_save >= std::chrono::minutes(1)) {
    last_cost_save = now;
    SaveCosts();
  }
}

void Controller::Impl::UpdateStatus(const std::string& key, IsvcEntry& e,
                                    const IsvcStatus& status) {
  if (status == e.status) return;
  for (const auto& ev : StatusTransition(e.status, status, Now(), &e.transition_times))
    Event(e.isvc.meta.namespace_, e.isvc.meta.name, ev.type, ev.reason, ev.message);
  e.status = status;
  SaveIsvc(key, e);
}

void Controller::Impl::Run() {
  auto next_autoscale = autoscaler::Clock::now() + opts.autoscale_tick;
  std::unique_lock<std::mutex> lock(mu);
  while (!stopping) {
    cv.wait_for(lock, opts.tick, [&] { return dirty || stopping; });
    if (stopping) break;
    dirty = false;
    lock.unlock();
    std::vector<ReplicaStatus> replicas = supervisor->Snapshot();
    std::optional<std::vector<gateway::RevisionStats>> stats;
    std::map<int, ProcessUsage> trees;
    if (autoscaler::Clock::now() >= next_autoscale) {
      next_autoscale = autoscaler::Clock::now() + opts.autoscale_tick;
      stats = opts.collect_stats ? opts.collect_stats() : std::vector<gateway::RevisionStats>{};
      std::vector<int> pids;
      for (const auto& s : replicas)
        if (s.pid > 0) pids.push_back(s.pid);
      trees = ReadProcessTrees(pids);
    }
    lock.lock();
    if (stats.has_value()) {
      Autoscale(*stats);
      Account(*stats, replicas, trees);
    }
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
      (void)raw->store->Put(key, StrCat("{\"pid\":", s.pid, ",\"port\":", s.port,
                                        ",\"grpc_port\":", s.grpc_port, "}"));
    }
    raw->MarkDirty();
  };
  impl->supervisor = std::make_unique<Supervisor>(so);
  impl->Readopt();
  impl->loop = std::thread([raw] { raw->Run(); });
  impl->drift_loop = std::thread([raw] { raw->RunDriftPoller(); });
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
  if (impl_->drift_loop.joinable()) impl_->drift_loop.join();
  if (stop_replicas) impl_->supervisor->Shutdown();
  std::vector<Impl::Fetcher> fetchers;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->SaveCosts();  // what ran since the last minute's save
    fetchers.swap(impl_->fetchers);
  }
  for (auto& f : fetchers)
    if (f.thread.joinable()) f.thread.join();
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
