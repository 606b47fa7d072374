#include "controlplane/graph_status.h"

#include "common/json_dom.h"
#include "common/strings.h"
#include "controlplane/routing.h"
#include "controlplane/views.h"

namespace osprey::controlplane {
namespace {

using json::Field;
using json::FieldIfSet;
using json::Key;

// The value of --model_name in a container's args (--model_name=x or
// --model_name x), as KServe's getModelNameFromArgs reads it.
std::string ModelNameFromArgs(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].starts_with("--model_name=")) return args[i].substr(13);
    if (args[i] == "--model_name" && i + 1 < args.size()) return args[i + 1];
  }
  return "";
}

std::string ModelName(const resources::InferenceService& isvc) {
  if (isvc.transformer && !isvc.transformer->containers.empty())
    if (std::string n = ModelNameFromArgs(isvc.transformer->containers[0].args); !n.empty())
      return n;
  const resources::Component& p = isvc.predictor;
  if (p.model) {
    for (const auto& e : p.model->env)
      if (e.name == "MLSERVER_MODEL_NAME") return e.value;
    if (std::string n = ModelNameFromArgs(p.model->args); !n.empty()) return n;
  } else if (!p.containers.empty()) {
    if (std::string n = ModelNameFromArgs(p.containers[0].args); !n.empty()) return n;
  }
  return isvc.meta.name;
}

std::string Protocol(const resources::InferenceService& isvc,
                     const std::vector<resources::ServingRuntime>& ns_runtimes,
                     const std::vector<resources::ServingRuntime>& cluster_runtimes) {
  if (isvc.transformer) return "v1";  // a custom transformer speaks v1 unless told otherwise
  const auto& model = isvc.predictor.model;
  if (!model) return "v1";
  std::string protocol(resources::ProtocolOf(*model));
  if (!model->runtime.empty() && model->protocol_version.empty()) {
    const resources::ServingRuntime* rt = nullptr;
    for (const auto* list : {&ns_runtimes, &cluster_runtimes})
      for (const auto& r : *list)
        if (rt == nullptr && r.meta.name == model->runtime) rt = &r;
    if (rt != nullptr)
      for (const auto& p : rt->protocol_versions)
        if (p == "v1" || p == "v2") return p;
  }
  return protocol;
}

}  // namespace

GraphServiceView GraphServiceViewOf(const resources::InferenceService& isvc,
                                    const IsvcStatus& status,
                                    const std::vector<resources::ServingRuntime>& ns_runtimes,
                                    const std::vector<resources::ServingRuntime>& cluster_runtimes,
                                    const PlatformConfig& config) {
  GraphServiceView v;
  const std::string& ready =
      status.transformer ? status.transformer->latest_ready : status.latest_ready;
  if (ready.empty()) return v;
  v.url = ServiceUrl(isvc.meta, config);
  const std::string model = ModelName(isvc);
  const std::string protocol = Protocol(isvc, ns_runtimes, cluster_runtimes);
  if (protocol == "v1") v.predict_path = StrCat("/v1/models/", model, ":predict");
  if (protocol == "v2") v.predict_path = StrCat("/v2/models/", model, "/infer");
  return v;
}

GraphPlan PlanGraph(const resources::InferenceGraph& graph,
                    const std::map<std::string, GraphServiceView>& services,
                    const PlatformConfig& config) {
  GraphPlan plan;
  resources::InferenceGraph resolved = graph;
  std::string reason, message;
  for (auto& [node, router] : resolved.nodes) {
    for (auto& step : router.steps) {
      if (step.service_name.empty() || !step.service_url.empty()) continue;
      auto it = services.find(step.service_name);
      if (it == services.end()) {
        reason = "ServiceNotFound";
        message = StrCat("Failed to find graph service ", step.service_name);
      } else if (it->second.url.empty()) {
        reason = "ServiceNotReady";
        message = StrCat("service ", step.service_name, " is not ready");
      } else {
        step.service_url = StrCat(it->second.url, it->second.predict_path);
        step.service_name.clear();  // the router sees the URL (KServe sets it beside the name)
        continue;
      }
      break;
    }
    if (!reason.empty()) break;
  }
  if (!reason.empty()) {
    for (const char* type : {"ConfigurationsReady", "Ready", "RoutesReady"})
      plan.status.conditions.push_back({type, "False", reason, message});
    plan.status.conditions.push_back({"Stopped", "False", "", ""});
    return plan;
  }
  for (const char* type : {"ConfigurationsReady", "Ready", "RoutesReady"})
    plan.status.conditions.push_back({type, "True", "", ""});
  plan.status.conditions.push_back({"Stopped", "False", "", ""});
  plan.status.url = ServiceUrl(graph.meta, config);
  plan.status.ready = true;
  gateway::GraphRoute route;
  route.namespace_ = graph.meta.namespace_;
  route.name = graph.meta.name;
  std::string host = ServiceHost(graph.meta, config);
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  route.hosts = {std::move(host)};
  route.spec_json = resources::ToJson(resources::Resource(resolved));
  route.trace_sampling = TraceSamplingOf(graph.meta.annotations);
  plan.route = std::move(route);
  return plan;
}

std::string GraphJson(const std::string& resource_json, const std::string& created,
                      int64_t generation, int64_t observed_generation, const GraphStatus& status,
                      const std::map<std::string, std::string>& transition_times) {
  rapidjson::Document d;
  d.Parse(resource_json.data(), resource_json.size());
  if (d.HasParseError() || !d.IsObject()) return resource_json;
  auto& a = d.GetAllocator();
  if (d.HasMember("metadata") && d["metadata"].IsObject()) {
    d["metadata"].AddMember("creationTimestamp", rapidjson::Value(created.c_str(), a), a);
    d["metadata"].AddMember("generation", rapidjson::Value(static_cast<int64_t>(generation)), a);
  }
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  FieldIfSet(w, "url", status.url);
  WriteConditionList(w, status.conditions, transition_times);
  Key(w, "observedGeneration");
  w.Int64(observed_generation);
  w.EndObject();
  rapidjson::Document s;
  s.Parse(buf.GetString(), buf.GetSize());
  d.AddMember("status", rapidjson::Value(s, a), a);
  return json::ToText(d);
}

}  // namespace osprey::controlplane
