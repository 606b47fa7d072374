// The local controller's InferenceGraphs: apply, store, status and routes
// (graph_status.h decides; this file keeps the records). Every method runs
// with `mu` held.

#include <rapidjson/document.h>

#include "common/json_dom.h"
#include "controlplane/local/controller_impl.h"
#include "controlplane/observe.h"

namespace osprey::controlplane {
using namespace osprey::json;

absl::StatusOr<Controller::ApplyResult> Controller::Impl::ApplyGraph(
    const resources::InferenceGraph& graph, const std::string& json, const std::string& now,
    bool dry_run) {
  Controller::ApplyResult result;
  result.kind = "InferenceGraph";
  result.namespace_ = graph.meta.namespace_;
  result.name = graph.meta.name;
  const std::string key = StrCat(result.namespace_, "/", result.name);
  auto it = graphs.find(key);
  if (dry_run) return result;
  if (it == graphs.end()) {
    GraphEntry e;
    e.graph = graph;
    e.resource_json = json;
    e.created = now;
    it = graphs.emplace(key, std::move(e)).first;
    result.action = "created";
  } else if (it->second.resource_json == json) {
    result.action = "unchanged";
    return result;
  } else {
    it->second.graph = graph;
    it->second.resource_json = json;
    ++it->second.generation;
    result.action = "configured";
  }
  SaveGraph(key, it->second);
  GraphEvent(result.namespace_, result.name, "Normal",
             result.action == "created" ? "Created" : "Updated",
             StrCat("InferenceGraph generation ", it->second.generation));
  return result;
}

void Controller::Impl::SaveGraph(const std::string& key, const GraphEntry& e) {
  auto st =
      store->Put(StrCat("graph/", key), ObjectRecord(e.resource_json, e.generation, e.created,
                                                     e.transition_times, e.status.conditions));
  if (!st.ok()) {
    OSPREY_LOG(kError) << "store: graph " << key << ": " << st.message();
  }
}

absl::Status Controller::Impl::LoadGraphs() {
  OSPREY_ASSIGN_OR_RETURN(auto rows, store->List("graph/"));
  for (const auto& [key, value] : rows) {
    std::optional<StoredObject> o = ReadObjectRecord(key, value, "InferenceGraph");
    if (!o) continue;
    GraphEntry e;
    e.graph = std::get<resources::InferenceGraph>(o->resource);
    e.resource_json = std::move(o->resource_json);
    e.generation = o->generation;
    e.created = std::move(o->created);
    e.transition_times = std::move(o->times);
    // The status as last seen (its url and route come with the first pass).
    e.status.conditions = std::move(o->conditions);
    for (const auto& c : e.status.conditions)
      if (c.type == "Ready") e.status.ready = c.status == "True";
    graphs[key.substr(6)] = std::move(e);
  }
  return absl::OkStatus();
}

void Controller::Impl::PassGraphs(const std::vector<ServingRuntime>& cluster_runtimes) {
  if (graphs.empty()) return;
  // The InferenceServices of each namespace a graph is in, as graphs see them.
  std::map<std::string, std::map<std::string, GraphServiceView>> views;
  for (const auto& [key, g] : graphs) views[g.graph.meta.namespace_];
  for (auto& [ns, services] : views) {
    const std::vector<ServingRuntime> ns_runtimes = RuntimesOf(ns);
    for (const auto& [key, e] : isvcs)
      if (e.isvc.meta.namespace_ == ns)
        services[e.isvc.meta.name] =
            GraphServiceViewOf(e.isvc, e.status, ns_runtimes, cluster_runtimes, opts.platform);
  }
  const std::string now = Now();
  for (auto& [key, e] : graphs) {
    GraphPlan plan = PlanGraph(e.graph, views[e.graph.meta.namespace_], opts.platform);
    e.route = std::move(plan.route);
    e.observed_generation = e.generation;
    if (plan.status == e.status) continue;
    const bool was_ready = e.status.ready;
    StampTransitions(e.status.conditions, plan.status.conditions, now, &e.transition_times);
    e.status = std::move(plan.status);
    SaveGraph(key, e);
    if (was_ready != e.status.ready)
      GraphEvent(e.graph.meta.namespace_, e.graph.meta.name, e.status.ready ? "Normal" : "Warning",
                 e.status.ready ? "InferenceGraphReady" : "InferenceGraphNotReady",
                 e.status.ready ? StrCat("InferenceGraph [", e.graph.meta.name, "] is Ready")
                                : e.status.conditions[1].message);
  }
}

std::vector<gateway::GraphRoute> Controller::Impl::GraphRoutes() const {
  std::vector<gateway::GraphRoute> out;
  for (const auto& [key, e] : graphs)
    if (e.route) out.push_back(*e.route);
  return out;
}

bool Controller::Impl::SameGraphRoutes(const std::vector<gateway::GraphRoute>& a,
                                       const std::vector<gateway::GraphRoute>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.namespace_ == y.namespace_ && x.name == y.name && x.hosts == y.hosts &&
           x.spec_json == y.spec_json;
  });
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListGraphs(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  Items out;
  for (const auto& [key, e] : graphs)
    if (ns.empty() || e.graph.meta.namespace_ == ns)
      out.emplace_back(e.graph.meta.name,
                       GraphJson(e.resource_json, e.created, e.generation, e.observed_generation,
                                 e.status, e.transition_times));
  return out;
}

absl::Status Controller::Impl::DeleteGraph(const std::string& ns, const std::string& name,
                                           std::vector<std::string>*) {
  const std::string key = StrCat(ns, "/", name);
  if (!graphs.erase(key))
    return absl::NotFoundError(StrCat("inferencegraph ", name, " not found in namespace ", ns));
  OSPREY_RETURN_IF_ERROR(store->Delete(StrCat("graph/", key)));
  (void)store->DeletePrefix(EventPrefix(ns, kGraphEvents, name));
  return absl::OkStatus();
}

}  // namespace osprey::controlplane
