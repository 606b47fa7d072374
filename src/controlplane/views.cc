#include "controlplane/views.h"

#include "common/json_dom.h"
#include "common/strings.h"
#include "controlplane/monitoring.h"

namespace osprey::controlplane {
namespace {

using namespace osprey::json;

// Opens an object with apiVersion, kind and a metadata object; the caller
// adds more metadata fields, then closes the metadata with EndObject.
void StartObjectWithMetadata(Writer& w, std::string_view api_version, std::string_view kind,
                             std::string_view name, std::string_view ns, std::string_view created) {
  w.StartObject();
  Field(w, "apiVersion", api_version);
  Field(w, "kind", kind);
  Key(w, "metadata");
  w.StartObject();
  Field(w, "name", name);
  Field(w, "namespace", ns);
  Field(w, "creationTimestamp", created);
}

void WriteEnv(Writer& w, const std::vector<resources::EnvVar>& env) {
  Key(w, "env");
  w.StartArray();
  for (const auto& e : env) {
    w.StartObject();
    Field(w, "name", e.name);
    if (e.value_from.empty()) {
      Field(w, "value", e.value);
    } else {
      Key(w, "valueFrom");
      w.RawValue(e.value_from.data(), e.value_from.size(), rapidjson::kObjectType);
    }
    w.EndObject();
  }
  w.EndArray();
}

std::string_view ProbeName(resources::Container::Probe p) {
  using Probe = resources::Container::Probe;
  return p == Probe::kHttpGet     ? "httpGet"
         : p == Probe::kTcpSocket ? "tcpSocket"
         : p == Probe::kOther     ? "other"
                                  : "";
}

}  // namespace

void WriteConditionList(Writer& w, const std::vector<Condition>& conditions,
                        const std::map<std::string, std::string>& transition_times) {
  Key(w, "conditions");
  w.StartArray();
  for (const auto& c : conditions) {
    w.StartObject();
    auto t = transition_times.find(c.type);
    if (t != transition_times.end()) Field(w, "lastTransitionTime", t->second);
    FieldIfSet(w, "message", c.message);
    FieldIfSet(w, "reason", c.reason);
    Field(w, "status", c.status);
    Field(w, "type", c.type);
    w.EndObject();
  }
  w.EndArray();
}

std::string RevisionSpecJson(const RevisionSpec& s) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  Field(w, "name", s.name);
  Field(w, "namespace", s.namespace_);
  Field(w, "isvc", s.isvc);
  Field(w, "component", s.component);
  if (s.kind != "InferenceService") Field(w, "kind", s.kind);
  Key(w, "number");
  w.Int(s.number);
  Key(w, "spec");
  Raw(w, s.spec_json);
  Field(w, "created", s.created);
  Field(w, "runtime", s.runtime);
  Field(w, "modelFormat", s.model_format);
  Field(w, "storageUri", s.storage_uri);
  Field(w, "protocolVersion", s.protocol);
  Key(w, "container");
  w.StartObject();
  Field(w, "name", s.container.name);
  Field(w, "image", s.container.image);
  Strings(w, "command", s.container.command);
  Strings(w, "args", s.container.args);
  WriteEnv(w, s.container.env);
  // Kubernetes' fields as given; Osprey's reading of the probe beside them.
  if (!s.container.readiness_probe_json.empty()) {
    Key(w, "readinessProbe");
    Raw(w, s.container.readiness_probe_json);
  }
  if (!s.container.resources_json.empty() && s.container.resources_json != "{}") {
    Key(w, "resources");
    Raw(w, s.container.resources_json);
  }
  if (!s.container.ports.empty()) {
    Key(w, "ports");
    w.StartArray();
    for (const auto& p : s.container.ports) {
      w.StartObject();
      FieldIfSet(w, "name", p.name);
      Key(w, "containerPort");
      w.Int(p.container_port);
      FieldIfSet(w, "protocol", p.protocol);
      w.EndObject();
    }
    w.EndArray();
  }
  if (!s.container.extra_json.empty()) {
    Key(w, "extra");
    Raw(w, s.container.extra_json);
  }
  Key(w, "ospreyReadiness");
  w.StartObject();
  FieldIfSet(w, "handler", ProbeName(s.container.probe));
  FieldIfSet(w, "path", s.container.probe_path);
  w.EndObject();
  w.EndObject();
  if (s.batcher.has_value()) {
    Key(w, "batcher");
    w.StartObject();
    Key(w, "maxBatchSize");
    w.Int(s.batcher->max_batch_size);
    Key(w, "maxLatency");
    w.Int(s.batcher->max_latency_ms);
    w.EndObject();
  }
  Key(w, "minReplicas");
  w.Int(s.min_replicas);
  Key(w, "maxReplicas");
  w.Int(s.max_replicas);
  Field(w, "failureReason", s.failure_reason);
  Field(w, "failureMessage", s.failure_message);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

static RevisionSpec RevisionSpecFromJson(const rapidjson::Value& v) {
  using Probe = resources::Container::Probe;
  RevisionSpec s;
  s.name = GetString(v, "name");
  s.namespace_ = GetString(v, "namespace");
  s.isvc = GetString(v, "isvc");
  s.component = GetString(v, "component");
  if (std::string kind = GetString(v, "kind"); !kind.empty()) s.kind = kind;
  s.number = static_cast<int>(GetInt(v, "number"));
  if (auto it = v.FindMember("spec"); it != v.MemberEnd()) s.spec_json = ToText(it->value);
  s.created = GetString(v, "created");
  s.runtime = GetString(v, "runtime");
  s.model_format = GetString(v, "modelFormat");
  s.storage_uri = GetString(v, "storageUri");
  s.protocol = GetString(v, "protocolVersion");
  auto env = [](const rapidjson::Value& v, std::vector<resources::EnvVar>* out) {
    if (auto it = v.FindMember("env"); it != v.MemberEnd() && it->value.IsArray())
      for (const auto& e : it->value.GetArray()) {
        std::string from;
        if (auto f = e.FindMember("valueFrom"); f != e.MemberEnd() && f->value.IsObject())
          from = ToText(f->value);
        out->push_back({GetString(e, "name"), GetString(e, "value"), std::move(from)});
      }
  };
  if (auto it = v.FindMember("container"); it != v.MemberEnd() && it->value.IsObject()) {
    const auto& c = it->value;
    s.container.name = GetString(c, "name");
    s.container.image = GetString(c, "image");
    s.container.command = GetStrings(c, "command");
    s.container.args = GetStrings(c, "args");
    env(c, &s.container.env);
    if (auto p = c.FindMember("readinessProbe"); p != c.MemberEnd() && p->value.IsObject())
      s.container.readiness_probe_json = ToText(p->value);
    if (auto p = c.FindMember("resources"); p != c.MemberEnd() && p->value.IsObject())
      s.container.resources_json = ToText(p->value);
    if (auto p = c.FindMember("extra"); p != c.MemberEnd() && p->value.IsObject())
      s.container.extra_json = ToText(p->value);
    if (auto p = c.FindMember("ports"); p != c.MemberEnd() && p->value.IsArray())
      for (const auto& port : p->value.GetArray())
        s.container.ports.push_back({GetString(port, "name"),
                                     static_cast<int>(GetInt(port, "containerPort")),
                                     GetString(port, "protocol")});
    const rapidjson::Value& check = c.HasMember("ospreyReadiness") ? c["ospreyReadiness"] : c;
    const std::string probe = GetString(check, "handler");
    s.container.probe = probe == "httpGet"     ? Probe::kHttpGet
                        : probe == "tcpSocket" ? Probe::kTcpSocket
                        : probe == "other"     ? Probe::kOther
                                               : Probe::kNone;
    s.container.probe_path = GetString(check, "path");
  } else {
    // A revision stored before revisions were kept in KServe's terms: its
    // local command as the container's, its readiness path as the probe
    // (placement leaves both as they are).
    s.container.name = "kserve-container";
    s.container.command = GetStrings(v, "command");
    env(v, &s.container.env);
    s.container.probe_path = GetString(v, "healthPath");
    s.container.probe = s.container.probe_path.empty() ? Probe::kTcpSocket : Probe::kHttpGet;
  }
  if (auto it = v.FindMember("batcher"); it != v.MemberEnd() && it->value.IsObject())
    s.batcher = resources::Batcher{static_cast<int>(GetInt(it->value, "maxBatchSize")),
                                   static_cast<int>(GetInt(it->value, "maxLatency"))};
  s.min_replicas = static_cast<int>(GetInt(v, "minReplicas"));
  s.max_replicas = static_cast<int>(GetInt(v, "maxReplicas"));
  s.failure_reason = GetString(v, "failureReason");
  s.failure_message = GetString(v, "failureMessage");
  return s;
}

absl::StatusOr<RevisionSpec> ParseRevisionSpec(std::string_view json) {
  rapidjson::Document d;
  if (d.Parse(json.data(), json.size()).HasParseError() || !d.IsObject())
    return absl::InvalidArgumentError("revision record does not parse");
  return RevisionSpecFromJson(d);
}

namespace {

// One entry of status.components.
void WriteComponentStatus(Writer& w, const ComponentStatus& s) {
  w.StartObject();
  FieldIfSet(w, "url", s.url);
  FieldIfSet(w, "latestCreatedRevision", s.latest_created);
  FieldIfSet(w, "latestReadyRevision", s.latest_ready);
  FieldIfSet(w, "latestRolledoutRevision", s.latest_rolled_out);
  FieldIfSet(w, "previousRolledoutRevision", s.previous_rolled_out);
  Key(w, "traffic");
  w.StartArray();
  for (const auto& t : s.traffic) {
    w.StartObject();
    Key(w, "latestRevision");
    w.Bool(t.latest);
    Key(w, "percent");
    w.Int(t.percent);
    Field(w, "revisionName", t.revision);
    FieldIfSet(w, "tag", t.tag);
    if (!t.tag.empty() && !s.url.empty()) {
      std::string url = s.url;
      url.insert(url.find("://") + 3, t.tag + "-");
      Field(w, "url", url);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

// The status of an InferenceService, as KServe writes it.
void WriteIsvcStatus(Writer& w, const IsvcStatus& s,
                     const std::map<std::string, std::string>& transition_times,
                     int64_t observed_generation) {
  w.StartObject();
  FieldIfSet(w, "url", s.url);
  Key(w, "address");
  w.StartObject();
  FieldIfSet(w, "url", s.url);
  w.EndObject();
  WriteConditionList(w, s.conditions, transition_times);
  Key(w, "components");
  w.StartObject();
  for (const char* name : {"predictor", "transformer", "explainer"}) {
    std::optional<ComponentStatus> c = s.Component(name);
    if (!c.has_value()) continue;
    if (c->url.empty()) c->url = s.url;  // a status made before component URLs
    Key(w, name);
    WriteComponentStatus(w, *c);
  }
  w.EndObject();
  Key(w, "modelStatus");
  w.StartObject();
  Key(w, "copies");
  w.StartObject();
  Key(w, "failedCopies");
  w.Int(s.failed_copies);
  Key(w, "totalCopies");
  w.Int(s.total_copies);
  w.EndObject();
  Key(w, "states");
  w.StartObject();
  FieldIfSet(w, "activeModelState", s.active_model_state);
  FieldIfSet(w, "targetModelState", s.target_model_state);
  w.EndObject();
  FieldIfSet(w, "transitionStatus", s.transition_status);
  if (!s.failure_reason.empty()) {
    Key(w, "lastFailureInfo");
    w.StartObject();
    Field(w, "reason", s.failure_reason);
    Field(w, "message", s.failure_message);
    FieldIfSet(w, "time", s.failure_time);
    w.EndObject();
  }
  w.EndObject();
  Key(w, "observedGeneration");
  w.Int64(observed_generation);
  w.EndObject();
}

}  // namespace

std::string PredictorSpecJson(std::string_view isvc_json) {
  std::string json = ComponentSpecJson(isvc_json, "predictor");
  if (json.empty()) json = "{}";
  // The service's drift and outlier annotations are part of the revision.
  std::map<std::string, std::string> annotations;
  rapidjson::Document d;
  d.Parse(isvc_json.data(), isvc_json.size());
  if (!d.HasParseError() && d.IsObject() && d.HasMember("metadata") && d["metadata"].IsObject() &&
      d["metadata"].HasMember("annotations") && d["metadata"]["annotations"].IsObject())
    for (const auto& m : d["metadata"]["annotations"].GetObject())
      if (m.value.IsString()) annotations.emplace(m.name.GetString(), m.value.GetString());
  return WithMonitorAnnotations(json, annotations);
}

std::string ComponentSpecJson(std::string_view isvc_json, const char* component) {
  rapidjson::Document d;
  d.Parse(isvc_json.data(), isvc_json.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("spec") || !d["spec"].IsObject() ||
      !d["spec"].HasMember(component) || !d["spec"][component].IsObject())
    return "";
  d["spec"][component].RemoveMember("canaryTrafficPercent");
  return ToText(d["spec"][component]);
}

std::string IsvcJson(const IsvcRecord& e) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  rapidjson::Document d;
  d.Parse(e.resource_json.data(), e.resource_json.size());
  w.StartObject();
  for (auto& m : d.GetObject()) {
    if (std::string_view(m.name.GetString()) == "metadata") {
      Key(w, "metadata");
      w.StartObject();
      for (auto& mm : m.value.GetObject()) {
        Key(w, mm.name.GetString());
        mm.value.Accept(w);
      }
      Field(w, "creationTimestamp", e.created);
      Key(w, "generation");
      w.Int64(e.generation);
      w.EndObject();
      continue;
    }
    Key(w, m.name.GetString());
    m.value.Accept(w);
  }
  Key(w, "status");
  WriteIsvcStatus(w, e.status, e.transition_times, e.observed_generation);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string IsvcStatusJson(const IsvcStatus& s,
                           const std::map<std::string, std::string>& transition_times,
                           int64_t observed_generation) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  WriteIsvcStatus(w, s, transition_times, observed_generation);
  return std::string(buf.GetString(), buf.GetSize());
}

std::string RuntimeJson(const std::string& resource_json, const std::string& created,
                        bool builtin) {
  rapidjson::Document d;
  d.Parse(resource_json.data(), resource_json.size());
  if (d.HasParseError()) return resource_json;
  if (d.HasMember("metadata") && d["metadata"].IsObject()) {
    d["metadata"].AddMember("creationTimestamp",
                            rapidjson::Value(created.c_str(), d.GetAllocator()), d.GetAllocator());
    if (builtin) {
      rapidjson::Value labels(rapidjson::kObjectType);
      if (d["metadata"].HasMember("labels")) d["metadata"].RemoveMember("labels");
      labels.AddMember("osprey.dev/builtin", "true", d.GetAllocator());
      d["metadata"].AddMember("labels", labels, d.GetAllocator());
    }
  }
  return ToText(d);
}

std::string RevisionJson(const RevisionRecord& r) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  StartObjectWithMetadata(w, "serving.knative.dev/v1", "Revision", r.spec.name, r.spec.namespace_,
                          r.spec.created);
  Key(w, "labels");
  w.StartObject();
  if (r.spec.kind == kKnativeServiceKind) {
    Field(w, "serving.knative.dev/service", r.spec.isvc);
    Field(w, "serving.knative.dev/configuration", r.spec.isvc);
  } else {
    Field(w, "serving.kserve.io/inferenceservice", r.spec.isvc);
    Field(w, "component", r.spec.component);
  }
  w.EndObject();
  w.EndObject();
  Key(w, "spec");
  Raw(w, RevisionSpecJson(r.spec));
  Key(w, "status");
  w.StartObject();
  Field(w, "phase", RevisionPhaseName(r.observed.phase));
  FieldIfSet(w, "reason", r.observed.reason);
  FieldIfSet(w, "message", r.observed.message);
  Key(w, "desiredReplicas");
  w.Int(r.desired);
  Key(w, "replicas");
  w.Int(r.observed.replicas);
  Key(w, "readyReplicas");
  w.Int(r.observed.ready_replicas);
  FieldIfSet(w, "modelDir", r.model_dir);
  if (!r.command.empty() || !r.readiness_path.empty()) {
    // How it runs on this machine ({{.Port}} and the sockets are per replica).
    Key(w, "local");
    w.StartObject();
    Strings(w, "command", r.command);
    FieldIfSet(w, "readinessPath", r.readiness_path);
    w.EndObject();
  }
  Key(w, "storage");
  w.StartObject();
  FieldIfSet(w, "uri", r.storage.uri);
  Field(w, "phase", r.storage.phase);
  Key(w, "bytesDone");
  w.Uint64(r.storage.bytes_done);
  Key(w, "bytesTotal");
  w.Uint64(r.storage.bytes_total);
  Key(w, "filesDone");
  w.Int(r.storage.files_done);
  FieldIfSet(w, "error", r.storage.error);
  w.EndObject();
  Key(w, "replicaStatuses");
  w.StartArray();
  for (const auto& s : r.replicas) {
    w.StartObject();
    Field(w, "id", s.id);
    Key(w, "pid");
    w.Int(s.pid);
    Key(w, "port");
    w.Int(s.port);
    Field(w, "state", s.state);
    Key(w, "restarts");
    w.Int(s.restarts);
    FieldIfSet(w, "lastExit", s.last_exit);
    Key(w, "adopted");
    w.Bool(s.adopted);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string PodAutoscalerJson(const AutoscalerRecord& r) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  StartObjectWithMetadata(w, "autoscaling.internal.knative.dev/v1alpha1", "PodAutoscaler",
                          r.revision, r.namespace_, r.created);
  w.EndObject();
  Key(w, "status");
  w.StartObject();
  Key(w, "desiredScale");
  w.Int(r.desired);
  Key(w, "actualScale");
  w.Int(r.actual);
  Key(w, "readyScale");
  w.Int(r.ready);
  const bool idle = r.desired == 0 && r.actual == 0;
  Field(w, "ready", idle ? "False" : r.ready > 0 ? "True" : "Unknown");
  Field(w, "reason", idle ? "NoTraffic" : r.reason);
  Key(w, "observedStableValue");
  w.Double(r.observed_stable);
  Key(w, "observedPanicValue");
  w.Double(r.observed_panic);
  Key(w, "panicking");
  w.Bool(r.panicking);
  w.EndObject();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

namespace {

void WriteKnativeTraffic(Writer& w, const KnativeRecord& r, const resources::ObjectMeta& meta,
                         const PlatformConfig& config) {
  Key(w, "traffic");
  w.StartArray();
  for (const auto& t : r.status.traffic) {
    w.StartObject();
    Key(w, "latestRevision");
    w.Bool(t.latest);
    Key(w, "percent");
    w.Int(t.percent);
    Field(w, "revisionName", t.revision);
    FieldIfSet(w, "tag", t.tag);
    if (!t.tag.empty() && r.tag_before_url) {
      if (const size_t scheme = r.status.url.find("://"); scheme != std::string::npos) {
        std::string url = r.status.url;
        url.insert(scheme + 3, StrCat(t.tag, "-"));
        Field(w, "url", url);
      }
    } else if (!t.tag.empty()) {
      Field(w, "url", KnativeUrl(meta, config, t.tag));
    }
    w.EndObject();
  }
  w.EndArray();
}

// The resource as applied with its metadata completed; `spec_key` "" copies
// the spec, else only spec[spec_key] under "spec" (a Configuration's
// template). Leaves the object open for the status.
void WriteKnativeObject(Writer& w, const KnativeRecord& r, std::string_view kind,
                        std::string_view spec_key, resources::ObjectMeta* meta) {
  rapidjson::Document d;
  d.Parse(r.resource_json.data(), r.resource_json.size());
  if (d.HasParseError() || !d.IsObject()) d.SetObject();
  w.StartObject();
  Field(w, "apiVersion", "serving.knative.dev/v1");
  Field(w, "kind", kind);
  Key(w, "metadata");
  w.StartObject();
  if (d.HasMember("metadata") && d["metadata"].IsObject())
    for (auto& m : d["metadata"].GetObject()) {
      Key(w, m.name.GetString());
      m.value.Accept(w);
    }
  Field(w, "creationTimestamp", r.created);
  Key(w, "generation");
  w.Int64(r.generation);
  w.EndObject();
  if (d.HasMember("metadata") && d["metadata"].IsObject()) {
    meta->name = GetString(d["metadata"], "name");
    meta->namespace_ = GetString(d["metadata"], "namespace");
  }
  if (d.HasMember("spec") && d["spec"].IsObject()) {
    Key(w, "spec");
    if (spec_key.empty()) {
      d["spec"].Accept(w);
    } else {
      w.StartObject();
      const std::string key(spec_key);
      if (d["spec"].HasMember(key.c_str())) {
        Key(w, spec_key);
        d["spec"][key.c_str()].Accept(w);
      }
      w.EndObject();
    }
  }
}

}  // namespace

namespace {

// The Service, or the Configuration or Route it owns: `condition` is the
// Service's condition the object reports as its Ready ("" for the Service:
// all of them).
std::string KnativeObjectJson(const KnativeRecord& r, const PlatformConfig& config,
                              std::string_view kind, std::string_view spec_key,
                              std::string_view condition) {
  const bool service = kind == "Service";
  const bool route = kind == "Route";
  rapidjson::StringBuffer buf;
  Writer w(buf);
  resources::ObjectMeta meta;
  WriteKnativeObject(w, r, kind, spec_key, &meta);
  Key(w, "status");
  w.StartObject();
  if (service || route) {
    FieldIfSet(w, "url", r.status.url);
    Key(w, "address");
    w.StartObject();
    FieldIfSet(w, "url", r.status.address);
    w.EndObject();
  }
  if (service) {
    WriteConditionList(w, r.status.conditions, r.transition_times);
  } else {
    std::vector<Condition> ready;
    for (const auto& c : r.status.conditions)
      if (c.type == condition) ready.push_back({"Ready", c.status, c.reason, c.message});
    std::map<std::string, std::string> times;
    if (auto t = r.transition_times.find(std::string(condition)); t != r.transition_times.end())
      times["Ready"] = t->second;
    WriteConditionList(w, ready, times);
  }
  if (!route) {
    FieldIfSet(w, "latestCreatedRevisionName", r.status.latest_created);
    FieldIfSet(w, "latestReadyRevisionName", r.status.latest_ready);
  }
  Key(w, "observedGeneration");
  w.Int64(r.observed_generation);
  if (service || route) WriteKnativeTraffic(w, r, meta, config);
  w.EndObject();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace

KnativeRecord ComponentAsKnative(const resources::ObjectMeta& isvc, std::string_view component,
                                 const ComponentStatus& status, const Condition* ready,
                                 const RevisionSpec* latest, const std::string& created,
                                 int64_t generation, const std::string& ready_time) {
  KnativeRecord r;
  r.created = created;
  r.generation = generation;
  r.observed_generation = generation;
  const std::string name = StrCat(isvc.name, "-", component);
  resources::KnativeService ks;
  ks.meta.name = name;
  ks.meta.namespace_ = isvc.namespace_;
  ks.meta.labels = {{"component", std::string(component)},
                    {"serving.kserve.io/inferenceservice", isvc.name}};
  if (latest != nullptr) {
    resources::Container c = latest->container;
    if (c.name.empty()) c.name = "kserve-container";
    ks.revision.containers = {std::move(c)};
  }
  for (const auto& t : status.traffic)
    ks.traffic.push_back({.revision_name = t.revision, .percent = t.percent, .tag = t.tag});
  r.resource_json = resources::ToJson(ks);
  r.tag_before_url = true;
  r.status.url = status.url;
  r.status.address = StrCat("http://", name, ".", isvc.namespace_, ".svc.cluster.local");
  r.status.latest_created = status.latest_created;
  r.status.latest_ready = status.latest_ready;
  r.status.traffic = status.traffic;
  Condition c = ready != nullptr ? *ready : Condition{"Ready", "Unknown", "", ""};
  for (const char* type : {"ConfigurationsReady", "Ready", "RoutesReady"}) {
    c.type = type;
    r.status.conditions.push_back(c);
    if (!ready_time.empty()) r.transition_times[type] = ready_time;
  }
  return r;
}

std::string KnativeServiceJson(const KnativeRecord& r, const PlatformConfig& config) {
  return KnativeObjectJson(r, config, "Service", "", "");
}

std::string ConfigurationJson(const KnativeRecord& r) {
  return KnativeObjectJson(r, PlatformConfig{}, "Configuration", "template", "ConfigurationsReady");
}

std::string RouteJson(const KnativeRecord& r, const PlatformConfig& config) {
  return KnativeObjectJson(r, config, "Route", "traffic", "RoutesReady");
}

std::string DeploymentJson(const DeploymentRecord& r) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  StartObjectWithMetadata(w, "apps/v1", "Deployment", StrCat(r.revision, "-deployment"),
                          r.namespace_, r.created);
  Key(w, "labels");
  w.StartObject();
  for (const auto& [k, v] : r.labels) Field(w, k, v);
  w.EndObject();
  w.EndObject();
  Key(w, "spec");
  w.StartObject();
  Key(w, "replicas");
  w.Int(r.desired);
  w.EndObject();
  Key(w, "status");
  w.StartObject();
  Key(w, "replicas");
  w.Int(r.replicas);
  Key(w, "readyReplicas");
  w.Int(r.ready);
  Key(w, "availableReplicas");
  w.Int(r.ready);
  Key(w, "updatedReplicas");
  w.Int(r.replicas);
  w.EndObject();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string ListJson(const std::vector<std::string>& items) {
  std::string out = "{\"items\":[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += items[i];
  }
  out += "]}";
  return out;
}

std::string ListJson(const resources::KindInfo& kind, const std::vector<std::string>& items) {
  std::string list = ListJson(items);
  return StrCat("{\"apiVersion\":\"", kind.group, "/", kind.version, "\",\"kind\":\"", kind.kind,
                "List\",\"metadata\":{},", std::string_view(list).substr(1));
}

}  // namespace osprey::controlplane
