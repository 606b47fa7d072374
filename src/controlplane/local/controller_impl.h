#pragma once

// Private to the local controller (controller.h): the state behind
// Controller and its methods, defined in three files: controller.cc (the
// reconcile loop: observe, reconcile, scale, route, start and stop
// replicas), records.cc (the store: records, loading, re-adoption, events)
// and controller_api.cc (apply, delete and the API's reads, one entry per
// kind). Every method that touches the maps runs with `mu` held unless it
// says otherwise.

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
#include "controlplane/cost.h"
#include "controlplane/graph_status.h"
#include "controlplane/istio.h"
#include "controlplane/knative.h"
#include "controlplane/local/controller.h"
#include "controlplane/local/placement.h"
#include "controlplane/local/proc_usage.h"
#include "controlplane/local/store.h"
#include "controlplane/local/supervisor.h"
#include "controlplane/monitoring.h"
#include "controlplane/observe.h"
#include "controlplane/retire.h"
#include "controlplane/routing.h"
#include "controlplane/scaling.h"
#include "controlplane/trained_model.h"
#include "controlplane/views.h"
#include "storage/storage.h"

namespace osprey::controlplane {

using resources::InferenceService;
using resources::ServingRuntime;

// RFC 3339, now.
std::string Now();
RevisionPhase PhaseFromName(std::string_view name);
// The last `n` non-empty lines of a file.
std::vector<std::string> TailLines(const std::string& path, int n);
// A record's status conditions under "conditions", so that a restart keeps
// them (no transition time reset, no Ready event repeated).
void WriteConditions(json::Writer& w, const std::vector<Condition>& conditions);
std::vector<Condition> ReadConditions(const rapidjson::Value& record);
// A record's condition transition times under "transitionTimes" (type -> time).
using TransitionTimes = std::map<std::string, std::string>;
void WriteTransitionTimes(json::Writer& w, const TransitionTimes& times);
TransitionTimes ReadTransitionTimes(const rapidjson::Value& record);
// The store record of an applied object: its resource as applied, its
// generation, when it was created, its conditions and their transition
// times; `more` adds the kind's own fields to the same object.
std::string ObjectRecord(const std::string& resource_json, int64_t generation,
                         const std::string& created, const TransitionTimes& times,
                         const std::vector<Condition>& conditions,
                         const std::function<void(json::Writer&)>& more = {});
// One read back (its kind's own fields stay in `doc`); nullopt, logged, when
// it does not parse or holds another kind than `kind`.
struct StoredObject {
  rapidjson::Document doc;
  resources::Resource resource;
  std::string resource_json;  // canonical
  int64_t generation = 1;
  std::string created;
  TransitionTimes times;
  std::vector<Condition> conditions;
};
std::optional<StoredObject> ReadObjectRecord(const std::string& key, const std::string& value,
                                             std::string_view kind);
// Stamps `now` on each condition of `after` that is new or changed its status
// since `before`.
void StampTransitions(const std::vector<Condition>& before, const std::vector<Condition>& after,
                      const std::string& now, TransitionTimes* times);

struct Controller::Impl {
  using Fetch = FetchState;

  struct IsvcEntry {
    InferenceService isvc;
    std::string resource_json;     // canonical JSON as applied
    std::string spec_json;         // canonical JSON of spec.predictor
    std::string transformer_json;  // of spec.transformer, "" without one
    std::string explainer_json;    // of spec.explainer, "" without one
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
  // An InferenceService of a pass and its aspired revisions, for the routes.
  struct Routed {
    const IsvcEntry* entry;
    std::vector<std::string> aspired;  // revision keys
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
  // InferenceGraphs (controller_graphs.cc).
  struct GraphEntry {
    resources::InferenceGraph graph;
    std::string resource_json;  // canonical JSON as applied
    std::string created;
    int64_t generation = 1;
    int64_t observed_generation = 0;
    GraphStatus status;
    std::map<std::string, std::string> transition_times;  // condition type -> time
    std::optional<gateway::GraphRoute> route;             // while Ready
  };
  std::map<std::string, GraphEntry> graphs;  // "ns/name"
  // TrainedModels (controller_trained.cc).
  struct TrainedEntry {
    resources::TrainedModel tm;
    std::string resource_json;  // canonical JSON as applied
    std::string created;
    int64_t generation = 1;
    int64_t observed_generation = 0;
    TrainedModelStatus status;
    std::map<std::string, std::string> transition_times;  // condition type -> time
    Fetch fetch = Fetch::kIdle;     // its placement: fetch, then load on the replicas
    int64_t placed_generation = 0;  // of the last placement that ended
    std::string error;              // why it failed
    std::chrono::steady_clock::time_point failed_at{};  // when the last placement failed
  };
  std::map<std::string, TrainedEntry> trained;  // "ns/name"
  // Knative Services (controller_knative.cc).
  struct KsvcEntry {
    resources::KnativeService ksvc;
    // The same as an InferenceService whose predictor is the template: what
    // the revisions' scaling and routing read of their owner (OwnerOf).
    InferenceService owner;
    std::string resource_json;  // canonical JSON as applied
    std::string template_json;  // KnativeTemplateJson
    std::string created;
    int64_t generation = 1;
    int64_t observed_generation = 0;
    KnativeStatus status;
    std::map<std::string, std::string> transition_times;  // condition type -> time
  };
  std::map<std::string, KsvcEntry> ksvcs;  // "ns/name"
  // The cost view (cost.h), by revision key: its ledger, its last sample
  // (what `osprey top` shows) and its current advice.
  struct CostEntry {
    explicit CostEntry(std::chrono::steady_clock::duration window) : ledger(window) {}
    UsageLedger ledger;
    UsageSample last;
    std::vector<Advice> advice;
  };
  std::map<std::string, CostEntry> costs;
  std::map<std::string, double> replica_cpu;  // "replica id@pid" -> CPU-seconds last seen
  std::chrono::steady_clock::time_point last_accounted{};
  std::chrono::steady_clock::time_point last_cost_save{};
  // The ledgers' totals, saved about once a minute (cost/{rev key}) and read
  // back at start, so that "since created" survives a restart.
  void SaveCosts();
  void LoadCosts();
  // One accounting tick (with the autoscaler's): each aspired revision's
  // usage since the last, from the replicas' process trees and the gateway's
  // stats; advice events when a revision's advice changes.
  void Account(const std::vector<gateway::RevisionStats>& stats,
               const std::vector<ReplicaStatus>& replicas,
               const std::map<int, ProcessUsage>& trees);
  // Drift detection (controller_drift.cc): what the replicas of a service's
  // monitored revision reported last, by "ns/name".
  struct DriftState {
    std::string revision;
    std::optional<DriftReport> report;                          // merged
    std::vector<std::pair<std::string, std::string>> replicas;  // id, /drift JSON
    std::string polled;                                         // RFC 3339
  };
  std::map<std::string, DriftState> drift;
  std::thread drift_loop;
  // Polls the replicas' drift detectors until `stopping`.
  void RunDriftPoller();
  // Threads that fetch models and place TrainedModels (StartFetcher); the
  // finished ones are joined by each pass (ReapFetchers), the rest at
  // shutdown. A finished thread kept unjoined would keep its stack.
  struct Fetcher {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Fetcher> fetchers;
  // Runs `work` on a fetcher thread (it takes `mu` itself when it needs it).
  void StartFetcher(std::function<void()> work);
  void ReapFetchers();
  std::map<std::string, std::chrono::steady_clock::time_point> retiring;  // replica id -> since
  std::atomic<uint64_t> event_seq{0};
  std::thread loop;

  mutable std::mutex routes_mu;
  std::shared_ptr<const RouteTable> routes = std::make_shared<RouteTable>();

  void MarkDirty();

  // The revision as a local process; nothing for one that cannot be served.
  LocalCommand Place(const RevisionSpec& spec) const;
  static bool Runnable(const RevEntry& r);

  std::string LogPath(const std::string& ns, const std::string& rev, int i) const;

  // ---- events ----
  // Stored under event/{ns}/{kind}/{object}/{seq}: an InferenceService and an
  // InferenceGraph of one name keep their own.
  static constexpr std::string_view kIsvcEvents = "InferenceService";
  static constexpr std::string_view kGraphEvents = "InferenceGraph";
  static constexpr std::string_view kTrainedEvents = "TrainedModel";
  static constexpr std::string_view kKsvcEvents = "Service";
  static std::string EventPrefix(std::string_view ns, std::string_view kind,
                                 std::string_view object);
  void Event(const std::string& ns, const std::string& object, std::string_view type,
             std::string_view reason, std::string_view message) {
    KindEvent(kIsvcEvents, ns, object, type, reason, message);
  }
  void GraphEvent(const std::string& ns, const std::string& graph, std::string_view type,
                  std::string_view reason, std::string_view message) {
    KindEvent(kGraphEvents, ns, graph, type, reason, message);
  }
  // An event of a revision's owner (its InferenceService or Knative Service).
  void RevisionEvent(const RevisionSpec& rev, std::string_view type, std::string_view reason,
                     std::string_view message) {
    KindEvent(rev.kind == kKnativeServiceKind ? kKsvcEvents : kIsvcEvents, rev.namespace_, rev.isvc,
              type, reason, message);
  }
  void KindEvent(std::string_view kind, const std::string& ns, const std::string& object,
                 std::string_view type, std::string_view reason, std::string_view message);

  // ---- persistence ----
  void SaveIsvc(const std::string& key, const IsvcEntry& e);

  void SaveRevision(const std::string& key, const RevEntry& r);

  absl::Status Load();

  // Replicas still running from a previous run are taken over.
  void Readopt();

  // spec_json, transformer_json and explainer_json from resource_json.
  static void SetSpecJsons(IsvcEntry& e);

  // Where replica `id` serves gRPC, or HTTP for the gateway: a short path
  // (Unix socket paths hold ~107 bytes).
  std::string ReplicaSocket(const std::string& id, const char* kind) const;

  ReplicaSpec MakeReplica(const std::string& rev_key, const RevEntry& r, int index) const;

  void StartFetch(const std::string& rev_key, RevEntry& r);

  // What the replicas of a revision show, from a supervisor snapshot: the
  // observations for ObserveRevision (observe.h), which decides the phase.
  void Observe(const std::string& rev_key, RevEntry& r, const std::vector<ReplicaStatus>& replicas);

  std::vector<ServingRuntime> RuntimesOf(const std::string& ns) const;

  // One pass over every InferenceService. Called with `mu` held.
  void Pass(const std::vector<ReplicaStatus>& replicas, std::vector<ReplicaSpec>* to_start,
            std::vector<std::string>* to_stop);

  // Replicas a revision should run now: the autoscaler's last decision
  // (before the first: the initial scale, or what a previous run left
  // running), at least one while requests wait for it.
  int DesiredReplicas(const InferenceService& isvc, const RevEntry& r) const;

  // The component spec revision `r` was made from (its predictor,
  // transformer or explainer); the current one if its stored spec does not
  // parse (it always should).
  static const resources::Component& PredictorOf(const InferenceService& isvc, const RevEntry& r);

  autoscaler::KpaSpec KpaSpecFor(const InferenceService& isvc, const RevEntry& r) const;

  // The route table (routing.h) over where the replicas are: only replicas
  // that stay get traffic, so one about to be stopped is out of the table
  // before its SIGTERM. Published only when it changed.
  void PublishRoutes(const std::vector<Routed>& routed, const std::vector<KnativeRouting>& knative,
                     const std::vector<ReplicaStatus>& replicas, const std::set<std::string>& live);

  // One autoscaler tick: the gateway's measurements into each aspired
  // revision's decider. Called with `mu` held.
  void Autoscale(const std::vector<gateway::RevisionStats>& stats);

  void UpdateStatus(const std::string& key, IsvcEntry& e, const IsvcStatus& status);

  void Run();

  using Items = std::vector<std::pair<std::string, std::string>>;  // name, rendered JSON

  // ---- InferenceGraphs (controller_graphs.cc) ----
  // Each Apply* checks the object against what is stored and, unless
  // `dry_run`, stores it.
  absl::StatusOr<Controller::ApplyResult> ApplyGraph(const resources::InferenceGraph& graph,
                                                     const std::string& json,
                                                     const std::string& now, bool dry_run);
  void SaveGraph(const std::string& key, const GraphEntry& e);
  absl::Status LoadGraphs();
  // Each graph's status and route from the InferenceServices' (graph_status.h).
  void PassGraphs(const std::vector<ServingRuntime>& cluster_runtimes);
  std::vector<gateway::GraphRoute> GraphRoutes() const;
  static bool SameGraphRoutes(const std::vector<gateway::GraphRoute>& a,
                              const std::vector<gateway::GraphRoute>& b);
  absl::StatusOr<Items> ListGraphs(const std::string& ns, const std::vector<ReplicaStatus>&) const;
  absl::Status DeleteGraph(const std::string& ns, const std::string& name,
                           std::vector<std::string>*);

  // ---- TrainedModels (controller_trained.cc) ----
  // A multi-model InferenceService's model repository (its replicas' model
  // directory, ServesMultiModel): where its TrainedModels land.
  std::string ModelsDir(const std::string& ns, const std::string& isvc) const;
  absl::StatusOr<Controller::ApplyResult> ApplyTrained(const resources::TrainedModel& tm,
                                                       const std::string& json,
                                                       const std::string& now, bool dry_run);
  void SaveTrained(const std::string& key, const TrainedEntry& e);
  absl::Status LoadTrained();
  TrainedModelTarget TargetOf(const resources::TrainedModel& tm,
                              const std::vector<ServingRuntime>& cluster) const;
  // Each TrainedModel's status (trained_model.h); placements started.
  void PassTrained(const std::vector<ServingRuntime>& cluster);
  // Fetches the model into ModelsDir and asks the replicas running there to
  // load it, on a fetcher thread; the result lands in the entry.
  void StartPlacement(const std::string& key, TrainedEntry& e);
  absl::StatusOr<Items> ListTrained(const std::string& ns, const std::vector<ReplicaStatus>&) const;
  absl::Status DeleteTrained(const std::string& ns, const std::string& name,
                             std::vector<std::string>*);

  // ---- Knative Services (controller_knative.cc) ----
  static void SetOwner(KsvcEntry& e);
  absl::StatusOr<Controller::ApplyResult> ApplyKnative(const resources::KnativeService& ksvc,
                                                       const std::string& json,
                                                       const std::string& now, bool dry_run);
  void SaveKsvc(const std::string& key, const KsvcEntry& e);
  absl::Status LoadKsvcs();
  // One pass over every Knative Service (as Pass does for InferenceServices).
  void PassKnative(const std::vector<ReplicaStatus>& replicas, std::set<std::string>* live,
                   std::vector<ReplicaSpec>* to_start, std::vector<KnativeRouting>* routed);
  // Every Knative Service of `ns` ("": all) by name: those applied, and each
  // InferenceService component as the one KServe makes ({isvc}-{component}).
  std::vector<std::pair<std::string, KnativeRecord>> KnativeRecords(const std::string& ns) const;
  absl::StatusOr<Items> ListKsvcs(const std::string& ns, const std::vector<ReplicaStatus>&) const;
  absl::StatusOr<Items> ListConfigurations(const std::string& ns,
                                           const std::vector<ReplicaStatus>&) const;
  absl::StatusOr<Items> ListRoutes(const std::string& ns, const std::vector<ReplicaStatus>&) const;
  absl::StatusOr<Items> ListDeployments(const std::string& ns,
                                        const std::vector<ReplicaStatus>&) const;
  absl::Status DeleteKsvc(const std::string& ns, const std::string& name,
                          std::vector<std::string>* replica_prefixes);
  static KnativeRecord RecordOf(const KsvcEntry& e);
  // The owner a revision scales and routes by: its InferenceService, or its
  // Knative Service's template as one; nullptr when it is gone.
  const InferenceService* OwnerOf(const RevEntry& r) const;
  // Marks each of `rev_keys` aspired or not by `plan` (revision name ->
  // minimum replicas) and runs the aspired ones that can run (RunRevision);
  // returns those, for the routes.
  std::vector<std::string> RunRevisions(const std::vector<std::string>& rev_keys,
                                        const std::map<std::string, int>& plan,
                                        const InferenceService& owner,
                                        const std::vector<ReplicaStatus>& replicas,
                                        std::set<std::string>* live,
                                        std::vector<ReplicaSpec>* to_start);
  // Forgets the revisions of an owner (`kind` as RevisionSpec::kind), from
  // the store too; adds the prefixes of their replicas to stop.
  void EraseRevisionsOf(std::string_view kind, const std::string& ns, const std::string& owner,
                        std::vector<std::string>* replica_prefixes);
  // Starts what an aspired revision needs this pass: its model fetch, its
  // replicas up to r.desired (ids added to `live`).
  void RunRevision(const std::string& rev_key, RevEntry& r,
                   const std::vector<ReplicaStatus>& replicas, std::set<std::string>* live,
                   std::vector<ReplicaSpec>* to_start);

  // ---- Istio's VirtualServices, Gateways, ServiceEntries, DestinationRules (controller_istio.cc)
  // ----
  struct IstioEntry {
    resources::Resource resource;
    std::string resource_json;  // canonical JSON as applied
    std::string created;
  };
  // By "{Kind}/{ns}/{name}".
  std::map<std::string, IstioEntry> istio;
  // What each VirtualService could not do, as last reported (events on change).
  std::map<std::string, std::vector<std::string>> istio_problems;
  static constexpr std::string_view kVirtualServiceEvents = "VirtualService";
  static constexpr std::string_view kGatewayEvents = "Gateway";
  // The Gateway server ports listened on (Options::on_listeners), and the
  // change to them.
  std::map<int, Listener> listeners;
  std::map<std::string, std::string> listener_stamps;  // certificate files: mtime/size
  std::map<std::string, std::vector<std::string>> gateway_problems;  // told on each Gateway
  std::set<int> listener_failed;  // of them, those that could not be listened on
  std::chrono::steady_clock::time_point listener_tried{};
  void SetListeners(const std::map<int, Listener>& wanted);
  absl::StatusOr<Controller::ApplyResult> ApplyIstio(const resources::Resource& r,
                                                     const std::string& json,
                                                     const std::string& now, bool dry_run);
  absl::Status LoadIstio();
  // The VirtualServices' routes over the services' routed traffic (istio.h);
  // problems become events. `revisions` gains the ServiceEntry endpoints.
  std::vector<KeyedRoute> PlanIstioRoutes(const std::vector<Routed>& routed,
                                          const std::vector<KnativeRouting>& knative,
                                          std::map<std::string, RevisionRouting>* revisions);
  Items IstioItems(std::string_view kind, const std::string& ns) const;
  absl::StatusOr<Items> ListVirtualServices(const std::string& ns,
                                            const std::vector<ReplicaStatus>&) const;
  absl::StatusOr<Items> ListGateways(const std::string& ns,
                                     const std::vector<ReplicaStatus>&) const;
  absl::StatusOr<Items> ListServiceEntries(const std::string& ns,
                                           const std::vector<ReplicaStatus>&) const;
  absl::StatusOr<Items> ListDestinationRules(const std::string& ns,
                                             const std::vector<ReplicaStatus>&) const;
  absl::Status DeleteIstio(std::string_view kind, const std::string& ns, const std::string& name);
  absl::Status DeleteVirtualService(const std::string& ns, const std::string& name,
                                    std::vector<std::string>*);
  absl::Status DeleteGateway(const std::string& ns, const std::string& name,
                             std::vector<std::string>*);
  absl::Status DeleteServiceEntry(const std::string& ns, const std::string& name,
                                  std::vector<std::string>*);
  absl::Status DeleteDestinationRule(const std::string& ns, const std::string& name,
                                     std::vector<std::string>*);

  // ---- kinds: what the controller does for each of resources::Kinds() ----
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
  static const KindOps* OpsOf(std::string_view plural);

  absl::StatusOr<Items> ItemsOf(std::string_view kind, const std::string& ns);

  absl::StatusOr<Items> ListIsvcs(const std::string& ns, const std::vector<ReplicaStatus>&) const;
  Items RuntimeItems(const std::string& ns, bool cluster) const;
  absl::StatusOr<Items> ListRuntimes(const std::string& ns,
                                     const std::vector<ReplicaStatus>&) const;
  absl::StatusOr<Items> ListClusterRuntimes(const std::string&,
                                            const std::vector<ReplicaStatus>&) const;
  // The revisions of namespace `ns` ("": all), by namespace, owner and number.
  std::vector<const RevEntry*> SortedRevisions(const std::string& ns) const;
  absl::StatusOr<Items> ListRevisions(const std::string& ns,
                                      const std::vector<ReplicaStatus>& replicas) const;
  absl::StatusOr<Items> ListAutoscalers(const std::string& ns,
                                        const std::vector<ReplicaStatus>&) const;
  absl::StatusOr<Items> ListEvents(const std::string& ns, const std::vector<ReplicaStatus>&) const;

  absl::Status DeleteIsvc(const std::string& ns, const std::string& name,
                          std::vector<std::string>* replica_prefixes);
  absl::Status DeleteRuntimeIn(const std::string& ns, const std::string& name, bool cluster);
  absl::Status DeleteRuntime(const std::string& ns, const std::string& name,
                             std::vector<std::string>*);
  absl::Status DeleteClusterRuntime(const std::string& ns, const std::string& name,
                                    std::vector<std::string>*);

  // ---- API views (views.h) ----
  static IsvcRecord RecordOf(const IsvcEntry& e);

  RevisionRecord RecordOf(const RevEntry& r, const std::vector<ReplicaStatus>& replicas) const;

  static AutoscalerRecord AutoscalerOf(const RevEntry& r);
};

}  // namespace osprey::controlplane
