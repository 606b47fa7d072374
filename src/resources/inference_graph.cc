// InferenceGraph: parsing with KServe's webhook rules, and canonical JSON.
// ParseResource (parse.cc) and ToJson (serialize.cc) call in here.

#include <set>

#include "common/json_dom.h"
#include "resources/graph_internal.h"
#include "resources/resources.h"

namespace osprey::resources::internal {
namespace {

absl::Status ReadInt64(const Value& parent, std::string_view key, std::string_view path,
                       std::optional<int64_t>* out) {
  const Value* v = parent.Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (v->kind != Value::Kind::kInt)
    return Error(v, Field(path, key), StrCat("expected an integer, got ", Describe(*v)));
  *out = v->i;
  return absl::OkStatus();
}

absl::Status ReadInt(const Value& parent, std::string_view key, std::string_view path,
                     std::optional<int>* out) {
  std::optional<int64_t> v;
  OSPREY_RETURN_IF_ERROR(ReadInt64(parent, key, path, &v));
  if (v && (*v < INT32_MIN || *v > INT32_MAX))
    return Error(parent.Find(key), Field(path, key), "out of range");
  if (v) *out = static_cast<int>(*v);
  return absl::OkStatus();
}

absl::Status ParseStep(const Value& v, const std::string& path, InferenceStep* s) {
  static const FieldSet kFields = {"name",       "nodeName",  "serviceName",
                                   "serviceUrl", "data",      "mapPredictionsToInstances",
                                   "weight",     "condition", "dependency"};
  OSPREY_RETURN_IF_ERROR(ExpectMap(v, path));
  OSPREY_RETURN_IF_ERROR(CheckFields(v, path, kFields));
  OSPREY_RETURN_IF_ERROR(ReadString(v, "name", path, &s->name));
  OSPREY_RETURN_IF_ERROR(ReadString(v, "nodeName", path, &s->node_name));
  OSPREY_RETURN_IF_ERROR(ReadString(v, "serviceName", path, &s->service_name));
  OSPREY_RETURN_IF_ERROR(ReadString(v, "serviceUrl", path, &s->service_url));
  OSPREY_RETURN_IF_ERROR(ReadString(v, "data", path, &s->data));
  if (const Value* m = v.Find("mapPredictionsToInstances"); m != nullptr) {
    if (m->kind != Value::Kind::kBool)
      return Error(m, Field(path, "mapPredictionsToInstances"),
                   StrCat("expected true or false, got ", Describe(*m)));
    s->map_predictions_to_instances = m->b;
  }
  OSPREY_RETURN_IF_ERROR(ReadInt64(v, "weight", path, &s->weight));
  OSPREY_RETURN_IF_ERROR(ReadString(v, "condition", path, &s->condition));
  OSPREY_RETURN_IF_ERROR(ReadString(v, "dependency", path, &s->dependency));
  if (!s->dependency.empty() && s->dependency != "Soft" && s->dependency != "Hard")
    return Error(v.Find("dependency"), Field(path, "dependency"),
                 StrCat("\"", s->dependency, "\" is invalid: must be Soft or Hard"));
  const int targets = !s->node_name.empty() + !s->service_name.empty() + !s->service_url.empty();
  if (targets == 0)
    return Error(&v, path, "one of nodeName, serviceName or serviceUrl is required");
  if (targets > 1)
    return Error(&v, path, "only one of nodeName, serviceName or serviceUrl may be given");
  return absl::OkStatus();
}

absl::Status ParseRouter(const Value& v, const std::string& path, InferenceRouter* r) {
  OSPREY_RETURN_IF_ERROR(ExpectMap(v, path));
  OSPREY_RETURN_IF_ERROR(CheckFields(v, path, {"routerType", "steps"}));
  OSPREY_RETURN_IF_ERROR(ReadString(v, "routerType", path, &r->router_type));
  if (r->router_type.empty()) return Error(&v, Field(path, "routerType"), "required");
  if (r->router_type != "Sequence" && r->router_type != "Splitter" &&
      r->router_type != "Ensemble" && r->router_type != "Switch")
    return Error(v.Find("routerType"), Field(path, "routerType"),
                 StrCat("\"", r->router_type,
                        "\" is invalid: must be one of Sequence, Splitter, Ensemble, Switch"));
  if (const Value* steps = v.Find("steps"); steps != nullptr) {
    const std::string at = Field(path, "steps");
    if (steps->kind != Value::Kind::kList)
      return Error(steps, at, StrCat("expected a list, got ", Describe(*steps)));
    std::set<std::string> names;
    for (size_t i = 0; i < steps->list.size(); ++i) {
      InferenceStep s;
      const std::string step_path = StrCat(at, "[", i, "]");
      OSPREY_RETURN_IF_ERROR(ParseStep(steps->list[i], step_path, &s));
      if (!s.name.empty() && !names.insert(s.name).second)
        return Error(&steps->list[i], Field(step_path, "name"),
                     StrCat("\"", s.name, "\" is the name of an earlier step of this node"));
      r->steps.push_back(std::move(s));
    }
  }
  if (r->router_type == "Splitter") {
    int64_t sum = 0;
    for (size_t i = 0; i < r->steps.size(); ++i) {
      if (!r->steps[i].weight)
        return Error(&v, StrCat(path, ".steps[", i, "].weight"), "required for a Splitter");
      if (*r->steps[i].weight < 0 || *r->steps[i].weight > 100)
        return Error(v.Find("steps"), StrCat(path, ".steps[", i, "].weight"),
                     StrCat("must be between 0 and 100, got ", *r->steps[i].weight));
      sum += *r->steps[i].weight;
    }
    if (sum != 100)
      return Error(v.Find("steps"), Field(path, "steps"),
                   StrCat("the weights of a Splitter's steps must sum to 100, got ", sum));
  }
  return absl::OkStatus();
}

}  // namespace

// Longest timeout a graph may set (a year): far past any request, and a
// deadline this far from now cannot overflow the clock.
constexpr int64_t kMaxGraphTimeout = 365 * 24 * 3600;

absl::StatusOr<InferenceGraph> ParseInferenceGraph(const Value& doc) {
  InferenceGraph g;
  OSPREY_RETURN_IF_ERROR(ParseGraphMeta(doc, &g.meta));
  const Value* spec = doc.Find("spec");
  if (spec == nullptr) return Error(&doc, "spec.nodes", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*spec, "spec"));
  static const FieldSet kSpecFields = {
      "nodes",        "resources",   "affinity",          "timeout",     "routerTimeouts",
      "minReplicas",  "maxReplicas", "scaleTarget",       "scaleMetric", "tolerations",
      "nodeSelector", "nodeName",    "serviceAccountName"};
  OSPREY_RETURN_IF_ERROR(CheckFields(*spec, "spec", kSpecFields));
  const Value* nodes = spec->Find("nodes");
  if (nodes == nullptr) return Error(spec, "spec.nodes", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*nodes, "spec.nodes"));
  for (const auto& [name, node] : nodes->map) {
    InferenceRouter r;
    OSPREY_RETURN_IF_ERROR(ParseRouter(node, StrCat("spec.nodes.", name), &r));
    g.nodes[name] = std::move(r);
  }
  if (!g.nodes.count("root"))
    return Error(nodes, "spec.nodes.root",
                 "required: an InferenceGraph enters at its node named root");
  for (const auto& [name, node] : g.nodes)
    for (size_t i = 0; i < node.steps.size(); ++i)
      if (!node.steps[i].node_name.empty() && !g.nodes.count(node.steps[i].node_name))
        return Error(nodes->Find(name), StrCat("spec.nodes.", name, ".steps[", i, "].nodeName"),
                     StrCat("no node is named \"", node.steps[i].node_name, "\""));
  OSPREY_RETURN_IF_ERROR(ReadInt64(*spec, "timeout", "spec", &g.timeout_seconds));
  if (g.timeout_seconds && (*g.timeout_seconds <= 0 || *g.timeout_seconds > kMaxGraphTimeout))
    return Error(spec->Find("timeout"), "spec.timeout",
                 StrCat("must be between 1 and ", kMaxGraphTimeout, " seconds"));
  if (const Value* t = spec->Find("routerTimeouts"); t != nullptr) {
    OSPREY_RETURN_IF_ERROR(ExpectMap(*t, "spec.routerTimeouts"));
    OSPREY_RETURN_IF_ERROR(CheckFields(
        *t, "spec.routerTimeouts", {"serverRead", "serverWrite", "serverIdle", "serviceClient"}));
    RouterTimeouts rt;
    const char* path = "spec.routerTimeouts";
    OSPREY_RETURN_IF_ERROR(ReadInt64(*t, "serverRead", path, &rt.server_read));
    OSPREY_RETURN_IF_ERROR(ReadInt64(*t, "serverWrite", path, &rt.server_write));
    OSPREY_RETURN_IF_ERROR(ReadInt64(*t, "serverIdle", path, &rt.server_idle));
    OSPREY_RETURN_IF_ERROR(ReadInt64(*t, "serviceClient", path, &rt.service_client));
    if (rt.service_client && (*rt.service_client <= 0 || *rt.service_client > kMaxGraphTimeout))
      return Error(t->Find("serviceClient"), "spec.routerTimeouts.serviceClient",
                   StrCat("must be between 1 and ", kMaxGraphTimeout, " seconds"));
    g.router_timeouts = rt;
  }
  OSPREY_RETURN_IF_ERROR(ReadInt(*spec, "minReplicas", "spec", &g.min_replicas));
  std::optional<int> max_replicas;
  OSPREY_RETURN_IF_ERROR(ReadInt(*spec, "maxReplicas", "spec", &max_replicas));
  g.max_replicas = max_replicas.value_or(0);
  OSPREY_RETURN_IF_ERROR(ReadInt(*spec, "scaleTarget", "spec", &g.scale_target));
  OSPREY_RETURN_IF_ERROR(ReadString(*spec, "scaleMetric", "spec", &g.scale_metric));
  if (!g.scale_metric.empty() && g.scale_metric != "cpu" && g.scale_metric != "memory" &&
      g.scale_metric != "concurrency" && g.scale_metric != "rps")
    return Error(spec->Find("scaleMetric"), "spec.scaleMetric",
                 StrCat("\"", g.scale_metric,
                        "\" is invalid: must be one of cpu, memory, concurrency, rps"));
  if (const Value* res = spec->Find("resources"); res != nullptr) {
    OSPREY_RETURN_IF_ERROR(ExpectMap(*res, "spec.resources"));
    g.resources_json = ToCompactJson(*res);
  }
  return g;
}

void InferenceGraphJson(json::Writer& w, const InferenceGraph& g) {
  using json::Field;
  using json::FieldIfSet;
  using json::Key;
  Field(w, "apiVersion", "serving.kserve.io/v1alpha1");
  Field(w, "kind", "InferenceGraph");
  Key(w, "metadata");
  w.StartObject();
  FieldIfSet(w, "name", g.meta.name);
  FieldIfSet(w, "namespace", g.meta.namespace_);
  for (const auto* m : {&g.meta.labels, &g.meta.annotations}) {
    if (m->empty()) continue;
    Key(w, m == &g.meta.labels ? "labels" : "annotations");
    w.StartObject();
    for (const auto& [k, v] : *m) Field(w, k, v);
    w.EndObject();
  }
  w.EndObject();
  Key(w, "spec");
  w.StartObject();
  Key(w, "nodes");
  w.StartObject();
  for (const auto& [name, node] : g.nodes) {
    Key(w, name);
    w.StartObject();
    Field(w, "routerType", node.router_type);
    if (!node.steps.empty()) {
      Key(w, "steps");
      w.StartArray();
      for (const InferenceStep& s : node.steps) {
        w.StartObject();
        FieldIfSet(w, "name", s.name);
        FieldIfSet(w, "nodeName", s.node_name);
        FieldIfSet(w, "serviceName", s.service_name);
        FieldIfSet(w, "serviceUrl", s.service_url);
        FieldIfSet(w, "data", s.data);
        if (s.map_predictions_to_instances) {
          Key(w, "mapPredictionsToInstances");
          w.Bool(true);
        }
        if (s.weight) {
          Key(w, "weight");
          w.Int64(*s.weight);
        }
        FieldIfSet(w, "condition", s.condition);
        FieldIfSet(w, "dependency", s.dependency);
        w.EndObject();
      }
      w.EndArray();
    }
    w.EndObject();
  }
  w.EndObject();
  if (!g.resources_json.empty() && g.resources_json != "{}") {
    Key(w, "resources");
    w.RawValue(g.resources_json.data(), g.resources_json.size(), rapidjson::kObjectType);
  }
  auto int64_field = [&](const char* key, const std::optional<int64_t>& v) {
    if (!v) return;
    Key(w, key);
    w.Int64(*v);
  };
  int64_field("timeout", g.timeout_seconds);
  if (g.router_timeouts) {
    Key(w, "routerTimeouts");
    w.StartObject();
    int64_field("serverRead", g.router_timeouts->server_read);
    int64_field("serverWrite", g.router_timeouts->server_write);
    int64_field("serverIdle", g.router_timeouts->server_idle);
    int64_field("serviceClient", g.router_timeouts->service_client);
    w.EndObject();
  }
  if (g.min_replicas) {
    Key(w, "minReplicas");
    w.Int(*g.min_replicas);
  }
  if (g.max_replicas != 0) {
    Key(w, "maxReplicas");
    w.Int(g.max_replicas);
  }
  if (g.scale_target) {
    Key(w, "scaleTarget");
    w.Int(*g.scale_target);
  }
  FieldIfSet(w, "scaleMetric", g.scale_metric);
  w.EndObject();
}

}  // namespace osprey::resources::internal
