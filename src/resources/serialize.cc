// Canonical JSON of the typed objects (RapidJSON) and JSON -> YAML
// (yaml-cpp's Emitter).

#include <exception>

#include "common/json_dom.h"
#include "common/json_numbers.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "resources/graph_internal.h"
#include "resources/resources.h"
#include "resources/value.h"
#include "yaml-cpp/yaml.h"

namespace osprey::resources {
namespace {

using json::Key;
using json::Writer;
void String(Writer& w, std::string_view s) { json::Str(w, s); }
// Canonical JSON leaves empty strings out.
void StringField(Writer& w, std::string_view key, std::string_view value) {
  json::FieldIfSet(w, key, value);
}
void IntField(Writer& w, std::string_view key, int value) {
  Key(w, key);
  w.Int(value);
}
void StringList(Writer& w, std::string_view key, const std::vector<std::string>& list) {
  if (list.empty()) return;
  Key(w, key);
  w.StartArray();
  for (const std::string& s : list) String(w, s);
  w.EndArray();
}
void StringMap(Writer& w, std::string_view key, const std::map<std::string, std::string>& map) {
  if (map.empty()) return;
  Key(w, key);
  w.StartObject();
  for (const auto& [k, v] : map) {
    Key(w, k);
    String(w, v);
  }
  w.EndObject();
}
// A JSON object kept as text (resources, an explainer's settings); {} is
// written only when `always`.
void RawObject(Writer& w, std::string_view key, std::string_view json, bool always = false) {
  if (json.empty()) json = "{}";
  if (json == "{}" && !always) return;
  Key(w, key);
  w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
}
void Env(Writer& w, const std::vector<EnvVar>& env) {
  if (env.empty()) return;
  Key(w, "env");
  w.StartArray();
  for (const EnvVar& e : env) {
    w.StartObject();
    StringField(w, "name", e.name);
    if (e.value_from.empty()) {
      StringField(w, "value", e.value);
    } else {
      Key(w, "valueFrom");
      w.RawValue(e.value_from.data(), e.value_from.size(), rapidjson::kObjectType);
    }
    w.EndObject();
  }
  w.EndArray();
}

// The members of a JSON object kept as text (fields given as written).
void Members(Writer& w, std::string_view object_json) {
  if (object_json.empty()) return;
  rapidjson::Document d;
  d.Parse(object_json.data(), object_json.size());
  if (d.HasParseError() || !d.IsObject()) return;
  for (auto& m : d.GetObject()) {
    Key(w, std::string_view(m.name.GetString(), m.name.GetStringLength()));
    m.value.Accept(w);
  }
}

void Containers(Writer& w, const std::vector<Container>& containers) {
  Key(w, "containers");
  w.StartArray();
  for (const Container& c : containers) {
    w.StartObject();
    StringField(w, "name", c.name);
    StringField(w, "image", c.image);
    StringList(w, "command", c.command);
    StringList(w, "args", c.args);
    Env(w, c.env);
    RawObject(w, "resources", c.resources_json);
    RawObject(w, "readinessProbe", c.readiness_probe_json);
    if (!c.ports.empty()) {
      Key(w, "ports");
      w.StartArray();
      for (const auto& p : c.ports) {
        w.StartObject();
        if (!p.name.empty()) StringField(w, "name", p.name);
        Key(w, "containerPort");
        w.Int(p.container_port);
        StringField(w, "protocol", p.protocol);
        w.EndObject();
      }
      w.EndArray();
    }
    Members(w, c.extra_json);
    w.EndObject();
  }
  w.EndArray();
}

void Model(Writer& w, const ModelSpec& m, bool legacy) {
  w.StartObject();
  if (!legacy) {
    Key(w, "modelFormat");
    w.StartObject();
    StringField(w, "name", m.format.name);
    StringField(w, "version", m.format.version);
    w.EndObject();
    StringField(w, "runtime", m.runtime);
  }
  StringField(w, "storageUri", m.storage_uri);
  StringField(w, "protocolVersion", m.protocol_version);
  StringList(w, "args", m.args);
  Env(w, m.env);
  RawObject(w, "resources", m.resources_json);
  w.EndObject();
}

void ComponentJson(Writer& w, const Component& c) {
  w.StartObject();
  IntField(w, "minReplicas", c.min_replicas);
  if (c.max_replicas != 0) IntField(w, "maxReplicas", c.max_replicas);
  if (c.scale_target) IntField(w, "scaleTarget", *c.scale_target);
  StringField(w, "scaleMetric", c.scale_metric);
  if (c.container_concurrency != 0) IntField(w, "containerConcurrency", c.container_concurrency);
  if (c.timeout_seconds) IntField(w, "timeout", *c.timeout_seconds);
  if (c.canary_traffic_percent) IntField(w, "canaryTrafficPercent", *c.canary_traffic_percent);
  if (c.logger) {
    Key(w, "logger");
    w.StartObject();
    StringField(w, "url", c.logger->url);
    StringField(w, "mode", c.logger->mode);
    StringList(w, "metadataHeaders", c.logger->metadata_headers);
    StringList(w, "metadataAnnotations", c.logger->metadata_annotations);
    w.EndObject();
  }
  if (c.batcher) {
    Key(w, "batcher");
    w.StartObject();
    IntField(w, "maxBatchSize", c.batcher->max_batch_size);
    IntField(w, "maxLatency", c.batcher->max_latency_ms);
    w.EndObject();
  }
  StringMap(w, "labels", c.labels);
  StringMap(w, "annotations", c.annotations);
  if (c.model) {
    Key(w, c.legacy_key.empty() ? "model" : c.legacy_key);
    Model(w, *c.model, !c.legacy_key.empty());
  }
  if (!c.explainer_type.empty()) RawObject(w, c.explainer_type, c.explainer_json, true);
  if (!c.worker_spec_json.empty()) RawObject(w, "workerSpec", c.worker_spec_json);
  if (!c.containers.empty()) Containers(w, c.containers);
  Members(w, c.pod_json);
  w.EndObject();
}

void Meta(Writer& w, const ObjectMeta& m) {
  Key(w, "metadata");
  w.StartObject();
  StringField(w, "name", m.name);
  StringField(w, "namespace", m.namespace_);
  StringMap(w, "labels", m.labels);
  StringMap(w, "annotations", m.annotations);
  w.EndObject();
}

void IsvcJson(Writer& w, const InferenceService& isvc) {
  StringField(w, "apiVersion", "serving.kserve.io/v1beta1");
  StringField(w, "kind", "InferenceService");
  Meta(w, isvc.meta);
  Key(w, "spec");
  w.StartObject();
  Key(w, "predictor");
  ComponentJson(w, isvc.predictor);
  if (isvc.transformer) {
    Key(w, "transformer");
    ComponentJson(w, *isvc.transformer);
  }
  if (isvc.explainer) {
    Key(w, "explainer");
    ComponentJson(w, *isvc.explainer);
  }
  w.EndObject();
}

void TrainedModelJson(Writer& w, const TrainedModel& tm) {
  StringField(w, "apiVersion", "serving.kserve.io/v1alpha1");
  StringField(w, "kind", "TrainedModel");
  Meta(w, tm.meta);
  Key(w, "spec");
  w.StartObject();
  StringField(w, "inferenceService", tm.inference_service);
  Key(w, "model");
  w.StartObject();
  StringField(w, "storageUri", tm.storage_uri);
  StringField(w, "framework", tm.framework);
  StringField(w, "memory", tm.memory);
  w.EndObject();
  w.EndObject();
}

void KnativeServiceJson(Writer& w, const KnativeService& ks) {
  StringField(w, "apiVersion", "serving.knative.dev/v1");
  StringField(w, "kind", "Service");
  Meta(w, ks.meta);
  Key(w, "spec");
  w.StartObject();
  Key(w, "template");
  w.StartObject();
  const Component& c = ks.revision;
  if (!ks.revision_name.empty() || !c.labels.empty() || !c.annotations.empty()) {
    Key(w, "metadata");
    w.StartObject();
    StringField(w, "name", ks.revision_name);
    StringMap(w, "labels", c.labels);
    StringMap(w, "annotations", c.annotations);
    w.EndObject();
  }
  Key(w, "spec");
  w.StartObject();
  IntField(w, "containerConcurrency", c.container_concurrency);
  IntField(w, "timeoutSeconds", c.timeout_seconds.value_or(300));
  Containers(w, c.containers);
  Members(w, c.pod_json);
  w.EndObject();
  w.EndObject();
  Key(w, "traffic");
  w.StartArray();
  for (const KnativeTrafficTarget& t : ks.traffic) {
    w.StartObject();
    StringField(w, "tag", t.tag);
    StringField(w, "revisionName", t.revision_name);
    Key(w, "latestRevision");
    w.Bool(t.latest_revision);
    IntField(w, "percent", t.percent);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

void RuntimeJson(Writer& w, const ServingRuntime& rt) {
  StringField(w, "apiVersion", "serving.kserve.io/v1alpha1");
  StringField(w, "kind", rt.cluster ? "ClusterServingRuntime" : "ServingRuntime");
  Meta(w, rt.meta);
  Key(w, "spec");
  w.StartObject();
  Key(w, "supportedModelFormats");
  w.StartArray();
  for (const SupportedModelFormat& f : rt.formats) {
    w.StartObject();
    StringField(w, "name", f.name);
    StringField(w, "version", f.version);
    Key(w, "autoSelect");
    w.Bool(f.auto_select);
    if (f.priority) IntField(w, "priority", *f.priority);
    w.EndObject();
  }
  w.EndArray();
  StringList(w, "protocolVersions", rt.protocol_versions);
  Key(w, "multiModel");
  w.Bool(rt.multi_model);
  Key(w, "disabled");
  w.Bool(rt.disabled);
  if (rt.multi_node) {
    Key(w, "workerSpec");
    w.StartObject();
    w.EndObject();
  }
  Containers(w, rt.containers);
  w.EndObject();
}

// YAML 1.1 booleans: a YAML 1.1 reader (kubectl's) would take these unquoted
// words for true or false.
bool IsYaml11Bool(std::string_view s) {
  static constexpr std::string_view kWords[] = {"y",  "Y",   "yes", "Yes", "YES", "n",
                                                "N",  "no",  "No",  "NO",  "on",  "On",
                                                "ON", "off", "Off", "OFF"};
  for (std::string_view w : kWords) {
    if (s == w) return true;
  }
  return false;
}

void EmitString(YAML::Emitter& out, std::string_view s) {
  std::string str(s);
  if (internal::PlainScalarKind(s) != internal::Value::Kind::kString || IsYaml11Bool(s)) {
    out << YAML::DoubleQuoted << str;
  } else {
    out << str;
  }
}

// Deeper than any object of this library; bounds the recursion.
constexpr int kMaxDepth = 128;

absl::Status EmitYaml(YAML::Emitter& out, const rapidjson::Value& v, int depth) {
  if (depth > kMaxDepth) {
    return absl::InvalidArgumentError(StrCat("JSON nested deeper than ", kMaxDepth, " levels"));
  }
  switch (v.GetType()) {
    case rapidjson::kNullType:
      out << YAML::Null;
      return absl::OkStatus();
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      out << v.GetBool();
      return absl::OkStatus();
    case rapidjson::kNumberType:
      if (v.IsInt64()) {
        out << v.GetInt64();
      } else if (v.IsUint64()) {
        out << v.GetUint64();
      } else {
        // The shortest form that reads back the same, and still as a float.
        std::string text = StrCat(v.GetDouble());
        if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
        out << text;
      }
      return absl::OkStatus();
    case rapidjson::kStringType:
      EmitString(out, std::string_view(v.GetString(), v.GetStringLength()));
      return absl::OkStatus();
    case rapidjson::kArrayType:
      if (v.Empty()) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const auto& item : v.GetArray()) {
        OSPREY_RETURN_IF_ERROR(EmitYaml(out, item, depth + 1));
      }
      out << YAML::EndSeq;
      return absl::OkStatus();
    case rapidjson::kObjectType:
      if (v.ObjectEmpty()) out << YAML::Flow;
      out << YAML::BeginMap;
      for (const auto& m : v.GetObject()) {
        out << YAML::Key;
        EmitString(out, std::string_view(m.name.GetString(), m.name.GetStringLength()));
        out << YAML::Value;
        OSPREY_RETURN_IF_ERROR(EmitYaml(out, m.value, depth + 1));
      }
      out << YAML::EndMap;
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace

std::string ToJson(const Resource& r) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  if (const auto* isvc = std::get_if<InferenceService>(&r)) {
    IsvcJson(w, *isvc);
  } else if (const auto* graph = std::get_if<InferenceGraph>(&r)) {
    internal::InferenceGraphJson(w, *graph);
  } else if (const auto* tm = std::get_if<TrainedModel>(&r)) {
    TrainedModelJson(w, *tm);
  } else if (const auto* ks = std::get_if<KnativeService>(&r)) {
    KnativeServiceJson(w, *ks);
  } else if (IsIstio(r)) {
    internal::IstioJson(w, r);
  } else {
    RuntimeJson(w, std::get<ServingRuntime>(r));
  }
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

absl::StatusOr<std::string> YamlToJson(std::string_view yaml) {
  OSPREY_ASSIGN_OR_RETURN(auto documents, internal::ParseYamlDocuments(yaml));
  std::vector<const internal::Value*> objects;
  for (const auto& d : documents)
    if (!d.is_null()) objects.push_back(&d);
  if (objects.size() != 1)
    return absl::InvalidArgumentError(
        StrCat("the body must hold exactly one object (it holds ", objects.size(), ")"));
  if (objects[0]->kind != internal::Value::Kind::kMap)
    return absl::InvalidArgumentError("the body is not an object");
  return internal::ToCompactJson(*objects[0]);
}

absl::StatusOr<std::string> JsonToYaml(std::string_view json) {
  rapidjson::Document doc;
  constexpr unsigned kFlags = rapidjson::kParseFullPrecisionFlag | rapidjson::kParseIterativeFlag;
  // Numbers RapidJSON's full-precision parser misreads, written as what they denote.
  ParseSafely<kFlags>(doc, json);
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(StrCat("invalid JSON at offset ", doc.GetErrorOffset(), ": ",
                                             rapidjson::GetParseError_En(doc.GetParseError())));
  }
  // The Emitter reports through good()/GetLastError(); catch anything it
  // might throw all the same, so that no exception leaves this library.
  try {
    YAML::Emitter out;
    out.SetIndent(2);
    out.SetSeqFormat(YAML::Block);
    out.SetMapFormat(YAML::Block);
    out.SetBoolFormat(YAML::TrueFalseBool);
    out.SetNullFormat(YAML::LowerNull);
    OSPREY_RETURN_IF_ERROR(EmitYaml(out, doc, 0));
    if (!out.good()) {
      return absl::InternalError(StrCat("YAML emitter: ", out.GetLastError()));
    }
    return StrCat(out.c_str(), "\n");
  } catch (const std::exception& e) {
    return absl::InternalError(StrCat("YAML emitter: ", e.what()));
  }
}

}  // namespace osprey::resources
