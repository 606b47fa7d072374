#include "controlplane/kube/gateway_sync.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/json_dom.h"
#include "common/logging.h"
#include "common/strings.h"
#include "controlplane/istio.h"
#include "controlplane/kube/objects.h"
#include "controlplane/kube/routes.h"
#include "controlplane/routing.h"
#include "controlplane/scaling.h"
#include "kube/informer.h"

namespace osprey::controlplane {

using kube::ObjectPtr;
using kube::ResourceRef;

namespace {

const ResourceRef kIsvcs{"serving.kserve.io", "v1beta1", "inferenceservices", true};
const ResourceRef kSlices{"discovery.k8s.io", "v1", "endpointslices", true};
const ResourceRef kDeployments{"apps", "v1", "deployments", true};
const ResourceRef kKsvcs{"serving.knative.dev", "v1", "services", true};

kube::InformerOptions Opts(const ResourceRef& ref, const std::string& ns,
                           const std::string& selector = "") {
  kube::InformerOptions o;
  o.resource = ref;
  o.namespace_ = ns;
  o.label_selector = selector;
  return o;
}

// Views parsed once per object version: a rebuild parses only what changed.
template <typename View>
class ViewCache {
 public:
  template <typename Read>
  std::vector<View> Views(const std::vector<ObjectPtr>& objects, Read read) {
    std::map<std::string, Entry> next;
    std::vector<View> out;
    out.reserve(objects.size());
    for (const auto& o : objects) {
      const std::string key = o->Key();
      auto it = entries_.find(key);
      Entry e = it != entries_.end() && it->second.version == o->resource_version
                    ? std::move(it->second)
                    : Entry{o->resource_version, read(o->doc)};
      if (e.view.has_value()) out.push_back(*e.view);
      next.emplace(key, std::move(e));
    }
    entries_ = std::move(next);
    return out;
  }

 private:
  struct Entry {
    std::string version;
    std::optional<View> view;
  };
  std::map<std::string, Entry> entries_;
};

}  // namespace

struct GatewaySync::Impl {
  Impl(kube::Client* c, GatewaySyncOptions o)
      : client(c),
        opts(std::move(o)),
        isvcs(c, Opts(kIsvcs, opts.namespace_)),
        slices(c, Opts(kSlices, opts.namespace_, opts.endpointslice_selector)),
        deployments(c,
                    Opts(kDeployments, opts.namespace_, StrCat(kManagedByLabel, "=", kManagedBy))) {
    auto changed = [this](const ObjectPtr&, const ObjectPtr&) { MarkDirty(); };
    isvcs.AddHandler(changed);
    slices.AddHandler(changed);
    deployments.AddHandler(changed);
  }

  kube::Client* client;
  GatewaySyncOptions opts;
  kube::Informer isvcs;
  kube::Informer slices;
  kube::Informer deployments;
  // Knative Services, when the cluster serves them at Start.
  std::unique_ptr<kube::Informer> ksvcs;
  // Istio's networking kinds, when the cluster serves them (Start asks):
  // VirtualServices, Gateways, ServiceEntries and DestinationRules, each
  // with the router's cache of its parsed objects.
  struct IstioKind {
    std::unique_ptr<kube::Informer> informer;
    ViewCache<resources::Resource> cache;
  };
  std::vector<IstioKind> istio;
  std::map<std::string, std::vector<std::string>> istio_problems;  // the router's
  std::set<int> istio_listeners;                                   // warned about

  std::mutex mu;
  std::condition_variable cv;
  bool running = false;
  bool dirty = true;
  std::set<std::string> activations;  // keys waiting for the scaler
  // Revisions the scaler takes to zero: routed with no endpoint from the
  // first rebuild after the count recorded here, before their scale is
  // written, so that no request races their pods' exit (it waits in the
  // queue and activates them instead). Until activated, or a decision above
  // zero.
  std::map<std::string, uint64_t> closing;
  uint64_t rebuilds = 0;  // rebuilds started
  uint64_t built = 0;     // the last one whose table the gateway has
  std::thread router;
  std::thread scaler;

  mutable std::mutex routes_mu;
  std::shared_ptr<const gateway::RouteTable> table = std::make_shared<gateway::RouteTable>();
  std::atomic<bool> published{false};

  // The router's and the scaler's own (each touched by its thread only).
  ViewCache<IsvcView> router_isvcs, scaler_isvcs;
  ViewCache<DeploymentView> router_deployments, scaler_deployments;
  ViewCache<KsvcView> router_ksvcs, scaler_ksvcs;
  ViewCache<SliceView> router_slices;
  struct Scaling {
    autoscaler::KpaState kpa;
    int last = -1;  // the last replicas written (or found in place); -1: none yet
    bool activating = false;
    int before = -1;  // the previous decision, for the log
    // It had a ready replica since it is aspired: until then it keeps the
    // scale it was made with (a slow first start is not idleness).
    bool was_ready = false;
  };
  std::map<std::string, Scaling> scaling;  // by key; the scaler's

  std::atomic<uint64_t> route_updates{0}, scale_writes{0}, scale_errors{0}, activated{0};

  void MarkDirty() {
    {
      std::lock_guard<std::mutex> lock(mu);
      dirty = true;
    }
    cv.notify_all();
  }

  // The core informers listed (Istio's are not waited for: routes without
  // them are published, and theirs follow once they list).
  bool InformersSynced() const {
    return isvcs.synced() && slices.synced() && deployments.synced() &&
           (ksvcs == nullptr || ksvcs->synced());
  }

  // Whether Osprey runs the cluster's Knative Services (objects.h
  // OspreyRunsKnative): then they are routed here.
  bool RunsKnative() {
    auto served = client->ServedResources("serving.knative.dev/v1");
    return served.ok() && OspreyRunsKnative(*served);
  }

  // Watches the Istio kinds the cluster serves (networking.istio.io, its
  // newest version of v1, v1beta1, v1alpha3, the plurals its discovery
  // document lists). The router's: asked at its start and again every
  // kIstioProbe while none is watched (the CRDs may come later).
  static constexpr std::chrono::seconds kIstioProbe{30};
  std::chrono::steady_clock::time_point istio_probed{};
  bool istio_absent_logged = false;
  void WatchIstio() {
    istio_probed = std::chrono::steady_clock::now();
    for (const char* version : {"v1", "v1beta1", "v1alpha3"}) {
      auto listed = client->ServedResources(StrCat("networking.istio.io/", version));
      if (!listed.ok()) continue;
      const std::set<std::string>& served = *listed;
      std::string watched;
      for (const char* plural :
           {"virtualservices", "gateways", "serviceentries", "destinationrules"}) {
        if (!served.contains(plural)) continue;
        IstioKind k;
        k.informer = std::make_unique<kube::Informer>(
            client,
            Opts(ResourceRef{"networking.istio.io", version, plural, true}, opts.namespace_));
        k.informer->AddHandler([this](const ObjectPtr&, const ObjectPtr&) { MarkDirty(); });
        k.informer->Start();
        istio.push_back(std::move(k));
        StrAppend(&watched, watched.empty() ? "" : ", ", plural);
      }
      if (istio.empty()) continue;
      OSPREY_LOG(kInfo) << "gateway: watching Istio's networking.istio.io/" << version << " "
                        << watched;
      return;
    }
    if (!istio_absent_logged)
      OSPREY_LOG(kInfo) << "gateway: the cluster serves no networking.istio.io (asked again every "
                        << kIstioProbe.count() << " s): no Istio routes yet";
    istio_absent_logged = true;
  }

  // The Istio objects' routes over the services' (istio.h); `routing`
  // gains ServiceEntry endpoints and DestinationRule policies. Problems are
  // logged when they change.
  std::vector<KeyedRoute> IstioRoutes(const std::vector<IsvcView>& isvc_views,
                                      const std::vector<DeploymentView>& deployment_views,
                                      ClusterRouting* routing) {
    if (istio.empty()) return {};
    std::vector<resources::Resource> objects;
    for (auto& k : istio) {
      auto parsed = k.cache.Views(k.informer->List(), [](const rapidjson::Value& doc) {
        auto r = resources::FromJson(json::ToText(doc));
        if (!r.ok()) {
          const auto meta = doc.FindMember("metadata");
          const bool has_meta = meta != doc.MemberEnd() && meta->value.IsObject();
          OSPREY_LOG(kWarning) << "gateway: " << json::GetString(doc, "kind") << " "
                               << (has_meta ? json::GetString(meta->value, "namespace") : "") << "/"
                               << (has_meta ? json::GetString(meta->value, "name") : "")
                               << " is not routed: " << r.status().message();
          return std::optional<resources::Resource>();
        }
        return std::optional<resources::Resource>(*std::move(r));
      });
      for (auto& r : parsed) objects.push_back(std::move(r));
    }
    if (objects.empty()) return {};
    IstioInput in;
    for (const auto& r : objects) {
      if (const auto* vs = std::get_if<resources::VirtualService>(&r))
        in.virtual_services.push_back(vs);
      else if (const auto* g = std::get_if<resources::IstioGateway>(&r))
        in.gateways.push_back(g);
      else if (const auto* se = std::get_if<resources::ServiceEntry>(&r))
        in.service_entries.push_back(se);
      else if (const auto* dr = std::get_if<resources::DestinationRule>(&r))
        in.destination_rules.push_back(dr);
    }
    for (const auto& v : isvc_views) AddServiceHosts(v.routing.meta, v.routing.status, &in);
    for (const auto& k : routing->knative) AddServiceHosts(k, &in);
    if (!in.destination_rules.empty())
      for (const auto& d : deployment_views)
        in.revision_labels[StrCat(d.revision.namespace_, "/", d.revision.name)] = d.pod_labels;
    IstioPlan plan = PlanIstio(in);
    std::set<int> ports;
    for (const auto& [port, listener] : plan.listeners) ports.insert(port);
    if (ports != istio_listeners) {
      istio_listeners = ports;
      for (int port : istio_listeners)
        OSPREY_LOG(kWarning) << "gateway: an Istio Gateway server is on port " << port
                             << ": in the cluster the gateway serves port 80 only (its Service "
                                "maps it; TLS is terminated before it); VirtualServices bound "
                                "there alone are not served";
    }
    for (auto& [key, r] : plan.endpoints) routing->revisions[key] = std::move(r);
    for (auto& [key, policy] : plan.policies)
      if (auto it = routing->revisions.find(key); it != routing->revisions.end())
        it->second.target.policy = policy;
    for (const auto& [vs, problems] : plan.problems)
      if (istio_problems[vs] != problems) {
        std::string message;
        for (const auto& p : problems) StrAppend(&message, message.empty() ? "" : "; ", p);
        OSPREY_LOG(kWarning) << "gateway: VirtualService " << vs << ": " << message;
      }
    istio_problems = std::move(plan.problems);
    return std::move(plan.routes);
  }

  std::vector<IsvcView> IsvcViews(ViewCache<IsvcView>& cache) {
    return cache.Views(isvcs.List(), [](const rapidjson::Value& doc) {
      return std::optional<IsvcView>(ReadInferenceService(doc));
    });
  }
  std::vector<KsvcView> KsvcViews(ViewCache<KsvcView>& cache) {
    if (ksvcs == nullptr) return {};
    return cache.Views(ksvcs->List(), [](const rapidjson::Value& doc) {
      return std::optional<KsvcView>(ReadKnativeService(doc));
    });
  }
  std::vector<DeploymentView> DeploymentViews(ViewCache<DeploymentView>& cache) {
    return cache.Views(deployments.List(),
                       [](const rapidjson::Value& doc) { return ReadDeployment(doc); });
  }

  void Rebuild() {
    std::set<std::string> closed;
    uint64_t generation = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      generation = ++rebuilds;
      for (const auto& [key, since] : closing) closed.insert(key);
    }
    auto done = [&] {
      std::lock_guard<std::mutex> lock(mu);
      built = generation;
    };
    std::vector<IsvcView> isvc_views = IsvcViews(router_isvcs);
    std::vector<DeploymentView> deployment_views = DeploymentViews(router_deployments);
    std::vector<SliceView> slice_views =
        router_slices.Views(slices.List(), [](const rapidjson::Value& doc) {
          return std::optional<SliceView>(ReadEndpointSlice(doc));
        });
    ClusterRouting routing =
        RoutingFromCluster(isvc_views, slice_views, deployment_views, KsvcViews(router_ksvcs));
    std::vector<KeyedRoute> keyed = IstioRoutes(isvc_views, deployment_views, &routing);
    for (const auto& key : closed) {
      auto it = routing.revisions.find(key);
      if (it == routing.revisions.end()) continue;
      it->second.target.ports.clear();
      it->second.target.hosts.clear();
      it->second.target.grpc_targets.clear();
    }
    auto next = std::make_shared<const gateway::RouteTable>(
        PlanRoutes(routing.services, routing.revisions, opts.platform, routing.knative, keyed));
    {
      std::lock_guard<std::mutex> lock(routes_mu);
      if (published.load() && SameRoutes(*next, *table)) {
        done();
        return;
      }
      table = next;
    }
    route_updates.fetch_add(1);
    size_t replicas = 0;
    for (const auto& r : next->revisions) replicas += r.ports.size();
    OSPREY_LOG(kDebug) << "gateway: routes for " << routing.services.size()
                       << " InferenceServices, " << routing.knative.size() << " Knative Services, "
                       << next->revisions.size() << " revisions, " << replicas << " ready replicas";
    if (opts.on_routes) opts.on_routes(next);
    published.store(true);
    done();
  }

  void Route() {
    std::unique_lock<std::mutex> lock(mu);
    while (running) {
      if (istio.empty() && std::chrono::steady_clock::now() - istio_probed >= kIstioProbe) {
        lock.unlock();
        WatchIstio();
        lock.lock();
        if (!istio.empty()) dirty = true;
      }
      cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return !running || dirty; });
      if (!running) break;
      if (!dirty || !InformersSynced()) continue;
      // A burst of changes (a rollout touches several objects) makes one table.
      cv.wait_for(lock, opts.debounce, [&] { return !running; });
      if (!running) break;
      dirty = false;
      lock.unlock();
      Rebuild();
      lock.lock();
    }
  }

  absl::Status Scale(const ScaleTarget& t, int replicas) {
    scale_writes.fetch_add(1);
    auto r =
        client->MergePatch(kube::ResourcePath(kDeployments, t.namespace_, t.deployment, "scale"),
                           StrCat(R"({"spec":{"replicas":)", replicas, "}}"));
    if (!r.ok()) scale_errors.fetch_add(1);
    return r.ok() ? absl::OkStatus() : r.status();
  }

  // Writes `w` when it says so; `what` is logged once written.
  void Write(const ScaleTarget& t, Scaling& s, const ScaleWrite& w, const std::string& what) {
    if (!w.write) {
      s.last = w.replicas;
      return;
    }
    absl::Status st = Scale(t, w.replicas);
    if (!st.ok()) {
      OSPREY_LOG(kWarning) << "gateway: scale " << t.key << " to " << w.replicas << ": "
                           << st.message();
      return;  // s.last unchanged: written again on the next decision
    }
    OSPREY_LOG(kInfo) << "gateway: " << what;
    s.last = w.replicas;
  }

  // Takes `key` out of `closing`: its endpoints are routed again.
  void Reopen(const std::string& key) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (closing.erase(key) == 0) return;
      dirty = true;
    }
    cv.notify_all();
  }

  // Whether `key`'s scale to zero may be written now: once a table without
  // its endpoints is built (the first call asks for one).
  bool Closed(const std::string& key) {
    bool now = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto [it, added] = closing.try_emplace(key, rebuilds);
      now = !added && built > it->second;
      if (added) dirty = true;
    }
    cv.notify_all();
    return now;
  }

  // Requests wait for revisions with no replica: one replica at once.
  void Activate(const std::set<std::string>& keys, const std::vector<ScaleTarget>& targets) {
    for (const auto& t : targets) {
      if (!keys.count(t.key) || !t.aspired) continue;
      Reopen(t.key);
      Scaling& s = scaling[t.key];
      s.activating = true;
      if (s.last > 0 || (s.last < 0 && t.replicas > 0)) continue;
      activated.fetch_add(1);
      Write(t, s, ScaleFor(0, /*activating=*/true, s.last, t.replicas),
            StrCat("revision ", t.key, ": 0 -> 1 replicas (Activating: a request waits)"));
    }
  }

  void Decide(const std::vector<ScaleTarget>& targets) {
    std::map<std::string, gateway::RevisionStats> stats;
    if (opts.collect_stats)
      for (auto& s : opts.collect_stats()) stats[s.key] = std::move(s);
    const auto now = autoscaler::Clock::now();
    std::set<std::string> present;
    for (const auto& t : targets) {
      present.insert(t.key);
      Scaling& s = scaling[t.key];
      if (!t.aspired) {
        // Retired: to zero, and a fresh KPA should it be aspired again.
        s.kpa = autoscaler::KpaState{};
        s.activating = false;
        s.before = -1;
        s.was_ready = false;
        Write(t, s, ScaleFor(0, false, s.last, t.replicas),
              StrCat("revision ", t.key, ": ", t.replicas,
                     " -> 0 replicas (no longer in traffic nor the latest)"));
        continue;
      }
      if (t.ready_replicas > 0) s.was_ready = true;
      if (!s.was_ready && t.replicas > 0) continue;
      autoscaler::Sample sample;
      sample.time = now;
      int waiting = 0;
      if (auto it = stats.find(t.key); it != stats.end()) {
        sample.concurrency = it->second.concurrency;
        sample.rps = it->second.rps;
        waiting = it->second.waiting;
      }
      autoscaler::KpaDecision d =
          autoscaler::Decide(t.kpa, &s.kpa, sample, t.ready_replicas, waiting, now);
      ScaleEvent event = ScaleEventFor(t.revision, s.before, d, t.kpa);
      s.before = d.desired;
      // This decision saw the held requests (waiting, or in flight once a
      // replica took them): it carries the scale from here.
      const bool activating = s.activating;
      s.activating = false;
      ScaleWrite w = ScaleFor(d.desired, activating, s.last, t.replicas);
      OSPREY_LOG(kDebug) << "gateway: KPA " << t.key << ": " << d.desired << " (" << d.reason
                         << "; " << d.observed_stable << " stable, " << d.observed_panic
                         << " panic, " << t.ready_replicas << " ready, " << waiting
                         << " waiting); at " << t.replicas << ", last written " << s.last;
      if (w.replicas > 0) {
        Reopen(t.key);
      } else if (w.write && !Closed(t.key)) {
        // Out of the routes first; written on a later decision.
        s.before = -1;
        continue;
      }
      // ScaleEventFor's "revision NAME: ..." with the namespace, as the other lines.
      std::string what = event.message;
      if (what.empty()) {
        what = StrCat("revision ", t.key, ": ", t.replicas, " -> ", w.replicas, " replicas (",
                      activating ? "Activating" : d.reason, ")");
      } else if (what.starts_with("revision ")) {
        what.insert(9, StrCat(t.namespace_, "/"));
      }
      Write(t, s, w, what);
    }
    for (auto it = scaling.begin(); it != scaling.end();)
      it = present.count(it->first) ? std::next(it) : scaling.erase(it);
  }

  void RunScaler() {
    auto next = autoscaler::Clock::now() + opts.autoscale_tick;
    std::unique_lock<std::mutex> lock(mu);
    while (running) {
      cv.wait_until(lock, next, [&] { return !running || !activations.empty(); });
      if (!running) break;
      std::set<std::string> keys;
      keys.swap(activations);
      const bool tick = autoscaler::Clock::now() >= next;
      if (tick) next = autoscaler::Clock::now() + opts.autoscale_tick;
      lock.unlock();
      if (InformersSynced()) {
        std::vector<ScaleTarget> targets =
            ScaleTargets(IsvcViews(scaler_isvcs), DeploymentViews(scaler_deployments), opts.kpa,
                         KsvcViews(scaler_ksvcs));
        if (!keys.empty()) Activate(keys, targets);
        if (tick && (!opts.may_scale || opts.may_scale())) Decide(targets);
      }
      lock.lock();
    }
  }
};

GatewaySync::GatewaySync(kube::Client* client, GatewaySyncOptions options)
    : impl_(std::make_unique<Impl>(client, std::move(options))) {}

GatewaySync::~GatewaySync() { Stop(); }

void GatewaySync::Start() {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.running) return;
    m.running = true;
  }
  if (m.ksvcs == nullptr && m.RunsKnative()) {
    m.ksvcs = std::make_unique<kube::Informer>(m.client, Opts(kKsvcs, m.opts.namespace_));
    m.ksvcs->AddHandler([&m](const ObjectPtr&, const ObjectPtr&) { m.MarkDirty(); });
  }
  m.isvcs.Start();
  m.slices.Start();
  m.deployments.Start();
  if (m.ksvcs != nullptr) m.ksvcs->Start();
  m.router = std::thread([&m] { m.Route(); });
  if (m.opts.autoscale) m.scaler = std::thread([&m] { m.RunScaler(); });
  OSPREY_LOG(kInfo) << "gateway: watching InferenceServices, "
                    << (m.ksvcs != nullptr ? "Knative Services, " : "") << "EndpointSlices in "
                    << (m.opts.namespace_.empty() ? "all namespaces" : m.opts.namespace_)
                    << (m.opts.autoscale ? "; autoscaling revisions" : "");
}

void GatewaySync::Stop() {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (!m.running) return;
    m.running = false;
  }
  m.cv.notify_all();
  if (m.router.joinable()) m.router.join();
  if (m.scaler.joinable()) m.scaler.join();
  for (kube::Informer* i : {&m.isvcs, &m.slices, &m.deployments}) i->Cancel();
  if (m.ksvcs != nullptr) m.ksvcs->Cancel();
  for (auto& k : m.istio) k.informer->Cancel();
  for (kube::Informer* i : {&m.isvcs, &m.slices, &m.deployments}) i->Stop();
  if (m.ksvcs != nullptr) m.ksvcs->Stop();
  for (auto& k : m.istio) k.informer->Stop();
}

bool GatewaySync::synced() const { return impl_->published.load(); }

void GatewaySync::Activate(const std::string& revision_key) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (!impl_->running || !impl_->opts.autoscale) return;
    impl_->activations.insert(revision_key);
  }
  impl_->cv.notify_all();
}

std::shared_ptr<const gateway::RouteTable> GatewaySync::routes() const {
  std::lock_guard<std::mutex> lock(impl_->routes_mu);
  return impl_->table;
}

GatewaySyncStats GatewaySync::stats() const {
  return {impl_->route_updates.load(), impl_->scale_writes.load(), impl_->scale_errors.load(),
          impl_->activated.load()};
}

}  // namespace osprey::controlplane
