#include "controlplane/kube/objects.h"

#include <rapidjson/document.h>

#include <algorithm>

#include "common/json_dom.h"
#include "controlplane/istio.h"
#include "controlplane/model_server.h"
#include "controlplane/views.h"

namespace osprey::controlplane {
namespace {

using namespace osprey::json;

constexpr char kModelVolume[] = "kserve-provision-location";
constexpr char kModelDir[] = "/mnt/models";

bool IsModelServer(const RevisionSpec& rev) {
  const std::string repo = ImageRepository(rev.container.image);
  for (const auto& image : ModelServerImages())
    if (image == repo) return true;
  return false;
}

std::map<std::string, std::string> RevisionLabels(const RevisionSpec& rev) {
  std::map<std::string, std::string> labels = RevisionPodLabels(rev, nullptr);
  labels[kManagedByLabel] = kManagedBy;
  return labels;
}

void Labels(Writer& w, const std::map<std::string, std::string>& labels) {
  Key(w, "labels");
  w.StartObject();
  for (const auto& [k, v] : labels) Field(w, k, v);
  w.EndObject();
}

// The owner (an InferenceService, or a Knative Service) as controller: its
// deletion takes the object with it.
void OwnerReferences(Writer& w, bool knative, const OwnerRef& owner) {
  Key(w, "ownerReferences");
  w.StartArray();
  w.StartObject();
  Field(w, "apiVersion", knative ? "serving.knative.dev/v1" : "serving.kserve.io/v1beta1");
  Field(w, "kind", knative ? "Service" : "InferenceService");
  Field(w, "name", owner.name);
  Field(w, "uid", owner.uid);
  Key(w, "controller");
  w.Bool(true);
  Key(w, "blockOwnerDeletion");
  w.Bool(true);
  w.EndObject();
  w.EndArray();
}

void Metadata(Writer& w, const std::string& name, const RevisionSpec& rev, const OwnerRef& owner,
              const std::string& spec_annotation) {
  Key(w, "metadata");
  w.StartObject();
  Field(w, "name", name);
  Field(w, "namespace", rev.namespace_);
  Labels(w, RevisionLabels(rev));
  if (!spec_annotation.empty()) {
    Key(w, "annotations");
    w.StartObject();
    Field(w, kRevisionAnnotation, spec_annotation);
    w.EndObject();
  }
  OwnerReferences(w, rev.kind == kKnativeServiceKind, owner);
  w.EndObject();
}

void Env(Writer& w, const std::vector<resources::EnvVar>& env, bool pod_ip) {
  Key(w, "env");
  w.StartArray();
  if (pod_ip) {
    // Osprey's model server listens on the pod's address (as a kubelet-less
    // test node needs, and harmless in a pod).
    w.StartObject();
    Field(w, "name", "POD_IP");
    Key(w, "valueFrom");
    w.StartObject();
    Key(w, "fieldRef");
    w.StartObject();
    Field(w, "fieldPath", "status.podIP");
    w.EndObject();
    w.EndObject();
    w.EndObject();
  }
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

void ModelMount(Writer& w, bool read_only) {
  w.StartObject();
  Field(w, "name", kModelVolume);
  Field(w, "mountPath", kModelDir);
  if (read_only) {
    Key(w, "readOnly");
    w.Bool(true);
  }
  w.EndObject();
}

// Fields given as written (Container::extra_json, Component::pod_json),
// merged into what Osprey writes: a list Osprey also writes (`own`, by key:
// its entries first) gets the given entries after its own; the other
// fields are written as given.
class Given {
 public:
  explicit Given(const std::string& object_json) {
    if (!object_json.empty()) doc_.Parse(object_json.data(), object_json.size());
    if (doc_.HasParseError() || !doc_.IsObject()) doc_.SetObject();
  }
  // `key` as a list: Osprey's entries (`own` writes them), then the given.
  // Nothing when both are empty.
  template <typename Own>
  void List(Writer& w, const char* key, bool has_own, Own own) {
    handled_.push_back(key);
    auto it = doc_.FindMember(key);
    const bool given = it != doc_.MemberEnd() && it->value.IsArray() && !it->value.Empty();
    if (!has_own && !given) return;
    Key(w, key);
    w.StartArray();
    if (has_own) own();
    if (given)
      for (auto& v : it->value.GetArray()) v.Accept(w);
    w.EndArray();
  }
  // The given fields not written by List.
  void Rest(Writer& w) {
    for (auto& m : doc_.GetObject()) {
      const std::string_view name(m.name.GetString(), m.name.GetStringLength());
      if (std::find(handled_.begin(), handled_.end(), name) != handled_.end()) continue;
      Key(w, name);
      m.value.Accept(w);
    }
  }

 private:
  rapidjson::Document doc_;
  std::vector<std::string_view> handled_;
};

void Port(Writer& w, const char* name, int port) {
  w.StartObject();
  Field(w, "name", name);
  Key(w, "containerPort");
  w.Int(port);
  Field(w, "protocol", "TCP");
  w.EndObject();
}

void HttpProbe(Writer& w, const std::string& path, int port, int period) {
  Key(w, "readinessProbe");
  w.StartObject();
  Key(w, "httpGet");
  w.StartObject();
  Field(w, "path", path);
  Key(w, "port");
  w.Int(port);
  w.EndObject();
  Key(w, "periodSeconds");
  w.Int(period);
  Key(w, "failureThreshold");
  w.Int(3);
  w.EndObject();
}

// `probe_json` with `port` where its httpGet or tcpSocket names none (as
// Knative defaults it).
std::string ProbeWithPort(const std::string& probe_json, int port) {
  rapidjson::Document d;
  d.Parse(probe_json.data(), probe_json.size());
  if (d.HasParseError() || !d.IsObject()) return probe_json;
  for (const char* action : {"httpGet", "tcpSocket"}) {
    auto it = d.FindMember(action);
    if (it == d.MemberEnd() || !it->value.IsObject() || it->value.HasMember("port")) continue;
    it->value.AddMember("port", port, d.GetAllocator());
  }
  return json::ToText(d);
}

// The tracing a replica's container gets: the operator's exporter and
// sampler, then what its spans serve (ReplicaTraceEnv), before the
// container's own env (which wins).
std::vector<resources::EnvVar> TraceEnv(const RevisionSpec& rev,
                                        const KubePlacementConfig& config) {
  std::vector<resources::EnvVar> out;
  if (config.trace_env.empty()) return out;  // tracing off
  for (const auto& [name, value] : config.trace_env) out.push_back({.name = name, .value = value});
  for (auto& [name, value] : ReplicaTraceEnv(rev, config.trace_resource))
    out.push_back({.name = std::move(name), .value = std::move(value)});
  return out;
}

void KnativeContainer(Writer& w, const RevisionSpec& rev, const KubePlacementConfig& config) {
  const resources::Container& c = rev.container;
  const int port = KnativeContainerPort(c);
  w.StartObject();
  Field(w, "name", c.name.empty() ? "user-container" : c.name);
  Field(w, "image", c.image);
  if (!c.command.empty()) Strings(w, "command", c.command);
  if (!c.args.empty()) Strings(w, "args", c.args);
  std::vector<resources::EnvVar> env = {{.name = "PORT", .value = StrCat(port)},
                                        {.name = "K_REVISION", .value = rev.name},
                                        {.name = "K_CONFIGURATION", .value = rev.isvc},
                                        {.name = "K_SERVICE", .value = rev.isvc}};
  const auto traced = TraceEnv(rev, config);
  env.insert(env.end(), traced.begin(), traced.end());
  env.insert(env.end(), c.env.begin(), c.env.end());
  Env(w, env, false);
  Key(w, "ports");
  w.StartArray();
  Port(w, resources::GrpcContainerPort(c) == port ? "h2c" : "user-port", port);
  w.EndArray();
  Key(w, "readinessProbe");
  if (!c.readiness_probe_json.empty()) {
    Raw(w, ProbeWithPort(c.readiness_probe_json, port));
  } else {
    w.StartObject();
    Key(w, "tcpSocket");
    w.StartObject();
    Key(w, "port");
    w.Int(port);
    w.EndObject();
    Key(w, "periodSeconds");
    w.Int(1);
    w.EndObject();
  }
  if (!c.resources_json.empty() && c.resources_json != "{}") {
    Key(w, "resources");
    Raw(w, c.resources_json);
  }
  Given(c.extra_json).Rest(w);  // envFrom, volumeMounts, securityContext, ... as given
  w.EndObject();
}

void ServingContainer(Writer& w, const RevisionSpec& rev, const KubePlacementConfig& config) {
  if (rev.kind == kKnativeServiceKind) return KnativeContainer(w, rev, config);
  const resources::Container& c = rev.container;
  w.StartObject();
  Field(w, "name", "kserve-container");
  const bool osprey = IsModelServer(rev);
  if (osprey) {
    const ServeFormat* format = FindServeFormat(rev.model_format);
    ServeLayout layout;
    layout.binary = "osprey";
    layout.model_dir = kModelDir;
    layout.http_address = "$(POD_IP)";
    layout.http_port = StrCat(config.http_port);
    layout.grpc_port = StrCat(config.grpc_port);
    std::vector<std::string> argv = OspreyServeArgv(rev, *format, layout);
    Field(w, "image", config.image);
    Field(w, "imagePullPolicy", config.image_pull_policy);
    Strings(w, "command", {argv.front()});
    Strings(w, "args", std::vector<std::string>(argv.begin() + 1, argv.end()));
  } else {
    Field(w, "image", c.image);
    if (!c.command.empty()) Strings(w, "command", c.command);
    std::vector<std::string> args = c.args;
    if (rev.component != "predictor") {
      // KServe's in-cluster predictor host -> the gateway's path to it.
      const std::string cluster_host = StrCat(rev.isvc, "-predictor.", rev.namespace_);
      const std::string via_gateway =
          StrCat(config.gateway_address, "/serving/", rev.namespace_, "/", rev.isvc, "-predictor");
      for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--predictor_host" && i + 1 < args.size() && args[i + 1] == cluster_host)
          args[i + 1] = via_gateway;
        else if (args[i] == StrCat("--predictor_host=", cluster_host))
          args[i] = StrCat("--predictor_host=", via_gateway);
      }
    }
    if (!args.empty()) Strings(w, "args", args);
  }
  std::vector<resources::EnvVar> env = TraceEnv(rev, config);
  env.insert(env.end(), c.env.begin(), c.env.end());
  Env(w, env, osprey || rev.component != "predictor");
  Key(w, "ports");
  w.StartArray();
  Port(w, "http1", config.http_port);
  if (osprey) Port(w, "grpc", config.grpc_port);
  if (const int grpc = resources::GrpcContainerPort(c);
      !osprey && grpc != 0 && grpc != config.http_port)
    Port(w, "h2c", grpc);
  w.EndArray();
  if (osprey) {
    HttpProbe(w, OspreyServeReadyPath(rev), config.http_port, config.readiness_period_seconds);
  } else if (!c.readiness_probe_json.empty()) {
    Key(w, "readinessProbe");
    Raw(w, ProbeWithPort(c.readiness_probe_json, config.http_port));
  }
  if (!c.resources_json.empty() && c.resources_json != "{}") {
    Key(w, "resources");
    Raw(w, c.resources_json);
  }
  // An Osprey model server runs as Osprey writes it; a container of the
  // user's gets the rest of its fields as given.
  Given given(osprey ? std::string() : c.extra_json);
  given.List(w, "volumeMounts", !rev.storage_uri.empty(), [&] { ModelMount(w, true); });
  given.Rest(w);
  w.EndObject();
}

void StorageInitializer(Writer& w, const RevisionSpec& rev, const KubePlacementConfig& config) {
  w.StartObject();
  Field(w, "name", "storage-initializer");
  Field(w, "image", config.image);
  Field(w, "imagePullPolicy", config.image_pull_policy);
  Strings(w, "command", {"osprey"});
  Strings(w, "args", {"storage", "pull", rev.storage_uri, kModelDir});
  Key(w, "volumeMounts");
  w.StartArray();
  ModelMount(w, false);
  w.EndArray();
  w.EndObject();
}

std::string Text(const rapidjson::StringBuffer& buf) {
  return std::string(buf.GetString(), buf.GetSize());
}

const rapidjson::Value* Member(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject()) return nullptr;
  auto it = v.FindMember(key);
  return it == v.MemberEnd() ? nullptr : &it->value;
}

const rapidjson::Value& Obj(const rapidjson::Value& v, const char* key) {
  static const rapidjson::Value kEmpty(rapidjson::kObjectType);
  const rapidjson::Value* m = Member(v, key);
  return m != nullptr && m->IsObject() ? *m : kEmpty;
}

// The container state's reason and message ("waiting" or "terminated").
void ContainerState(const rapidjson::Value& status, std::string* reason, std::string* message,
                    bool* terminated_ok) {
  const auto& state = Obj(status, "state");
  if (const auto* waiting = Member(state, "waiting"); waiting != nullptr) {
    *reason = GetString(*waiting, "reason");
    *message = GetString(*waiting, "message");
  } else if (const auto* term = Member(state, "terminated"); term != nullptr) {
    *reason = GetString(*term, "reason");
    *message = GetString(*term, "message");
    *terminated_ok = GetInt(*term, "exitCode") == 0;
  }
}

}  // namespace

bool Claimed(Claim claim, const std::map<std::string, std::string>& annotations) {
  auto it = annotations.find(kControllerAnnotation);
  if (claim == Claim::kAnnotated) return it != annotations.end() && it->second == "osprey";
  return it == annotations.end() || it->second == "osprey";
}

bool OspreyRunsKnative(const std::set<std::string>& served) {
  return served.contains("services") && !served.contains("revisions") &&
         !served.contains("configurations");
}

std::string KnativeAddressServiceJson(const resources::ObjectMeta& ksvc, const OwnerRef& owner,
                                      const KubePlacementConfig& config) {
  std::string host = config.gateway_address;
  if (host.empty() || host.find(':') != std::string::npos ||
      host.find_first_not_of("0123456789.") == std::string::npos)
    return "";
  // "name.namespace": a CNAME is not searched, so the full name.
  if (std::count(host.begin(), host.end(), '.') == 1) host += ".svc.cluster.local";
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  Field(w, "apiVersion", "v1");
  Field(w, "kind", "Service");
  Key(w, "metadata");
  w.StartObject();
  Field(w, "name", ksvc.name);
  Field(w, "namespace", ksvc.namespace_);
  Labels(w, {{kManagedByLabel, kManagedBy}, {"serving.knative.dev/service", ksvc.name}});
  OwnerReferences(w, true, owner);
  w.EndObject();
  Key(w, "spec");
  w.StartObject();
  Field(w, "type", "ExternalName");
  Field(w, "externalName", host);
  Key(w, "ports");
  w.StartArray();
  w.StartObject();
  Field(w, "name", "http2");
  Key(w, "port");
  w.Int(80);
  Field(w, "protocol", "TCP");
  w.EndObject();
  w.EndArray();
  w.EndObject();
  w.EndObject();
  return Text(buf);
}

int KnativeContainerPort(const resources::Container& c) {
  return !c.ports.empty() && c.ports[0].container_port > 0 ? c.ports[0].container_port : 8080;
}

std::string DeploymentName(const RevisionSpec& rev) { return StrCat(rev.name, "-deployment"); }

KubeFailure CheckRunnable(const RevisionSpec& rev) {
  if (rev.kind == kKnativeServiceKind || !IsModelServer(rev)) return {};
  const std::string owner = rev.runtime.empty() ? StrCat("container ", rev.container.name)
                                                : StrCat("runtime ", rev.runtime);
  if (rev.model_format.empty())
    return {"RuntimeNotRecognized",
            StrCat(owner, ": image ", rev.container.image,
                   " is a model server image; give the model's format with the model form "
                   "(spec.predictor.model.modelFormat.name)")};
  const ServeFormat* format = FindServeFormat(rev.model_format);
  if (format == nullptr)
    return {"NoSupportingRuntime",
            StrCat("model format ", rev.model_format, " has no Osprey backend")};
  if (!format->unsupported.empty())
    return {"NoSupportingRuntime", std::string(format->unsupported)};
  return {};
}

std::string DeploymentJson(const RevisionSpec& rev, const OwnerRef& owner,
                           const KubePlacementConfig& config, std::optional<int> replicas) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  Field(w, "apiVersion", "apps/v1");
  Field(w, "kind", "Deployment");
  Metadata(w, DeploymentName(rev), rev, owner, RevisionSpecJson(rev));
  Key(w, "spec");
  w.StartObject();
  if (replicas.has_value()) {
    Key(w, "replicas");
    w.Int(*replicas);
  }
  Key(w, "selector");
  w.StartObject();
  Key(w, "matchLabels");
  w.StartObject();
  Field(w, kRevisionLabel, rev.name);
  w.EndObject();
  w.EndObject();
  Key(w, "template");
  w.StartObject();
  Key(w, "metadata");
  w.StartObject();
  // The pods also carry the component's own labels (as KServe's do), which
  // DestinationRule subsets select; Osprey's own win.
  const std::optional<resources::Component> c = RevisionComponent(rev);
  std::map<std::string, std::string> pod_labels = RevisionPodLabels(rev, c ? &*c : nullptr);
  pod_labels[kManagedByLabel] = kManagedBy;
  Labels(w, pod_labels);
  // Prometheus's pod discovery scrapes each replica's /metrics: Osprey's
  // model server, or a KServe SDK model server (its args name the model) on
  // the same port; other containers may serve none and are left alone.
  if (rev.kind != kKnativeServiceKind &&
      (IsModelServer(rev) || !LastFlagValue(rev.container.args, "--model_name").empty())) {
    Key(w, "annotations");
    w.StartObject();
    Field(w, "prometheus.io/scrape", "true");
    Field(w, "prometheus.io/port", StrCat(config.http_port));
    Field(w, "prometheus.io/path", "/metrics");
    w.EndObject();
  }
  w.EndObject();
  Key(w, "spec");
  w.StartObject();
  // The component's pod fields as given (volumes, serviceAccountName, ...),
  // Osprey's storage initializer and model volume first in their lists.
  Given pod(c ? c->pod_json : std::string());
  const bool storage = !rev.storage_uri.empty();
  pod.List(w, "initContainers", storage, [&] { StorageInitializer(w, rev, config); });
  Key(w, "containers");
  w.StartArray();
  ServingContainer(w, rev, config);
  w.EndArray();
  pod.List(w, "volumes", storage, [&] {
    w.StartObject();
    Field(w, "name", kModelVolume);
    Key(w, "emptyDir");
    w.StartObject();
    w.EndObject();
    w.EndObject();
  });
  pod.Rest(w);
  w.EndObject();
  w.EndObject();
  w.EndObject();
  w.EndObject();
  return Text(buf);
}

std::string ServiceJson(const RevisionSpec& rev, const OwnerRef& owner,
                        const KubePlacementConfig& config) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  Field(w, "apiVersion", "v1");
  Field(w, "kind", "Service");
  Metadata(w, rev.name, rev, owner, "");
  Key(w, "spec");
  w.StartObject();
  Key(w, "selector");
  w.StartObject();
  Field(w, kRevisionLabel, rev.name);
  w.EndObject();
  Key(w, "ports");
  w.StartArray();
  w.StartObject();
  Field(w, "name", "http");
  Key(w, "port");
  w.Int(80);
  const bool knative = rev.kind == kKnativeServiceKind;
  const int http = knative ? KnativeContainerPort(rev.container) : config.http_port;
  Key(w, "targetPort");
  w.Int(http);
  Field(w, "protocol", "TCP");
  w.EndObject();
  // gRPC: Osprey's model server's port, or the one a custom container names
  // h2c (a Knative container's one port may be its h2c port).
  const bool osprey = !knative && IsModelServer(rev);
  const int grpc = osprey ? config.grpc_port : resources::GrpcContainerPort(rev.container);
  if (grpc != 0 && (osprey || knative || grpc != http)) {
    w.StartObject();
    Field(w, "name", "grpc");
    Key(w, "port");
    w.Int(grpc);
    Key(w, "targetPort");
    w.Int(grpc);
    Field(w, "protocol", "TCP");
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  w.EndObject();
  return Text(buf);
}

int InitialReplicas(const RevisionSpec& rev) { return std::max(1, rev.min_replicas); }

bool UsesHpa(const std::map<std::string, std::string>& isvc_annotations,
             const std::map<std::string, std::string>& predictor_annotations) {
  constexpr char kClass[] = "serving.kserve.io/autoscalerClass";
  auto p = predictor_annotations.find(kClass);
  if (p != predictor_annotations.end()) return p->second == "hpa";
  auto i = isvc_annotations.find(kClass);
  return i != isvc_annotations.end() && i->second == "hpa";
}

std::string HpaJson(const RevisionSpec& rev, const OwnerRef& owner, int min_replicas,
                    int max_replicas, const std::string& metric, std::optional<int> target) {
  const int low = std::max(1, min_replicas);
  const int high = max_replicas > 0 ? std::max(low, max_replicas) : low + 10;
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  Field(w, "apiVersion", "autoscaling/v2");
  Field(w, "kind", "HorizontalPodAutoscaler");
  Metadata(w, rev.name, rev, owner, "");
  Key(w, "spec");
  w.StartObject();
  Key(w, "scaleTargetRef");
  w.StartObject();
  Field(w, "apiVersion", "apps/v1");
  Field(w, "kind", "Deployment");
  Field(w, "name", DeploymentName(rev));
  w.EndObject();
  Key(w, "minReplicas");
  w.Int(low);
  Key(w, "maxReplicas");
  w.Int(high);
  Key(w, "metrics");
  w.StartArray();
  w.StartObject();
  Field(w, "type", "Resource");
  Key(w, "resource");
  w.StartObject();
  Field(w, "name", metric == "memory" ? "memory" : "cpu");
  Key(w, "target");
  w.StartObject();
  Field(w, "type", "Utilization");
  Key(w, "averageUtilization");
  w.Int(target.value_or(80));
  w.EndObject();
  w.EndObject();
  w.EndObject();
  w.EndArray();
  w.EndObject();
  w.EndObject();
  return Text(buf);
}

std::optional<RevisionSpec> RevisionOfDeployment(const rapidjson::Value& deployment) {
  const auto& meta = Obj(deployment, "metadata");
  if (GetString(Obj(meta, "labels"), kManagedByLabel) != kManagedBy) return std::nullopt;
  std::string spec = GetString(Obj(meta, "annotations"), kRevisionAnnotation);
  if (spec.empty()) return std::nullopt;
  auto parsed = ParseRevisionSpec(spec);
  if (!parsed.ok()) return std::nullopt;
  return *parsed;
}

PodView ReadPod(const rapidjson::Value& pod) {
  PodView v;
  const auto& meta = Obj(pod, "metadata");
  v.name = GetString(meta, "name");
  v.deleting = !GetString(meta, "deletionTimestamp").empty();
  const auto& status = Obj(pod, "status");
  if (const auto* conds = Member(status, "conditions"); conds != nullptr && conds->IsArray())
    for (const auto& c : conds->GetArray())
      if (GetString(c, "type") == "Ready") v.ready = GetString(c, "status") == "True";
  if (const auto* inits = Member(status, "initContainerStatuses");
      inits != nullptr && inits->IsArray()) {
    for (const auto& s : inits->GetArray()) {
      if (GetString(s, "name") != "storage-initializer") continue;
      std::string reason, message;
      bool ok = false;
      ContainerState(s, &reason, &message, &ok);
      const auto& state = Obj(s, "state");
      if (Member(state, "running") != nullptr) {
        v.init_state = "running";
      } else if (Member(state, "terminated") != nullptr && ok) {
        v.init_state = "done";
      } else if (GetInt(s, "restartCount") > 0 || Member(state, "terminated") != nullptr ||
                 reason == "CrashLoopBackOff") {
        // Failed at least once: the last termination's message (a back-off's
        // own message says only that it waits).
        if (message.empty() || reason == "CrashLoopBackOff") {
          const auto* last = Member(Obj(s, "lastState"), "terminated");
          if (last != nullptr) message = GetString(*last, "message");
        }
        v.init_state = "failed";
        v.init_message = message.empty() ? reason : message;
      }
    }
  }
  if (const auto* cs = Member(status, "containerStatuses"); cs != nullptr && cs->IsArray()) {
    for (const auto& s : cs->GetArray()) {
      // The serving container: KServe's name, or a pod's only one (a Knative revision's).
      if (GetString(s, "name") != "kserve-container" && cs->Size() != 1) continue;
      v.restarts = static_cast<int>(GetInt(s, "restartCount"));
      std::string reason, message;
      bool ok = false;
      ContainerState(s, &reason, &message, &ok);
      const bool ready = s.HasMember("ready") && s["ready"].IsBool() && s["ready"].GetBool();
      const bool crashing =
          reason == "CrashLoopBackOff" || (Member(Obj(s, "state"), "terminated") != nullptr && !ok);
      if (crashing && !ready) {
        if (message.empty() || reason == "CrashLoopBackOff") {
          const auto* last = Member(Obj(s, "lastState"), "terminated");
          if (last != nullptr && !GetString(*last, "message").empty())
            message = GetString(*last, "message");
        }
        v.crash_reason = reason.empty() ? "Error" : reason;
        v.crash_message = message;
      }
    }
  }
  return v;
}

RevisionObservations ObserveDeployment(const RevisionSpec& rev, const rapidjson::Value* deployment,
                                       const std::vector<PodView>& pods, bool aspired,
                                       const std::string& now) {
  RevisionObservations in;
  KubeFailure failure = rev.failure_reason.empty()
                            ? CheckRunnable(rev)
                            : KubeFailure{rev.failure_reason, rev.failure_message};
  in.unrunnable_reason = failure.reason;
  in.unrunnable_message = failure.message;
  in.has_storage = !rev.storage_uri.empty();
  in.aspired = aspired;
  in.now = now;
  if (deployment != nullptr) {
    const auto& status = Obj(*deployment, "status");
    in.replicas = static_cast<int>(GetInt(status, "replicas"));
    in.ready_replicas = static_cast<int>(GetInt(status, "readyReplicas"));
  }
  bool fetching = false, fetched = false;
  for (const auto& p : pods) {
    if (p.deleting) continue;
    if (p.init_state == "failed" && in.fetch_error.empty()) in.fetch_error = p.init_message;
    fetching |= p.init_state == "running";
    fetched |= p.init_state == "done" || p.ready;
    if (!p.crash_reason.empty()) {
      ++in.failed_replicas;
      if (!p.ready) {
        in.crashed = true;
        in.crash_message = StrCat(p.crash_reason, ": ", p.crash_message);
      }
    }
  }
  if (!in.has_storage) {
    in.fetch = FetchState::kDone;
  } else if (fetched || in.ready_replicas > 0) {
    in.fetch = FetchState::kDone;
  } else if (!in.fetch_error.empty()) {
    in.fetch = FetchState::kFailed;
  } else if (fetching) {
    in.fetch = FetchState::kRunning;
  }
  return in;
}

namespace {

// A status's traffic entries.
std::vector<TrafficTarget> ReadTraffic(const rapidjson::Value& status) {
  std::vector<TrafficTarget> out;
  if (const auto* traffic = Member(status, "traffic"); traffic != nullptr && traffic->IsArray()) {
    for (const auto& t : traffic->GetArray()) {
      TrafficTarget target;
      target.revision = GetString(t, "revisionName");
      target.percent = static_cast<int>(GetInt(t, "percent"));
      target.tag = GetString(t, "tag");
      const auto* latest = Member(t, "latestRevision");
      target.latest = latest != nullptr && latest->IsBool() && latest->GetBool();
      out.push_back(std::move(target));
    }
  }
  return out;
}

// A status's conditions, and their lastTransitionTime by type.
std::vector<Condition> ReadConditions(const rapidjson::Value& status,
                                      std::map<std::string, std::string>* times) {
  std::vector<Condition> out;
  if (const auto* conds = Member(status, "conditions"); conds != nullptr && conds->IsArray()) {
    for (const auto& c : conds->GetArray()) {
      Condition cond{GetString(c, "type"), GetString(c, "status"), GetString(c, "reason"),
                     GetString(c, "message")};
      if (std::string t = GetString(c, "lastTransitionTime"); !t.empty()) (*times)[cond.type] = t;
      out.push_back(std::move(cond));
    }
  }
  return out;
}

}  // namespace

StoredKnative ReadKnativeStatus(const rapidjson::Value& ksvc) {
  StoredKnative out;
  const auto* status = Member(ksvc, "status");
  if (status == nullptr || !status->IsObject() || status->MemberCount() == 0) return out;
  out.present = true;
  KnativeStatus& s = out.status;
  s.url = GetString(*status, "url");
  s.address = GetString(Obj(*status, "address"), "url");
  out.observed_generation = GetInt(*status, "observedGeneration");
  s.conditions = ReadConditions(*status, &out.transition_times);
  s.latest_created = GetString(*status, "latestCreatedRevisionName");
  s.latest_ready = GetString(*status, "latestReadyRevisionName");
  s.traffic = ReadTraffic(*status);
  return out;
}

StoredStatus ReadStatus(const rapidjson::Value& isvc) {
  StoredStatus out;
  const auto* status = Member(isvc, "status");
  if (status == nullptr || !status->IsObject() || status->MemberCount() == 0) return out;
  out.present = true;
  IsvcStatus& s = out.status;
  s.url = GetString(*status, "url");
  out.observed_generation = GetInt(*status, "observedGeneration");
  s.conditions = ReadConditions(*status, &out.transition_times);
  auto component = [&](const char* name) -> std::optional<ComponentStatus> {
    const auto* c = Member(Obj(*status, "components"), name);
    if (c == nullptr || !c->IsObject()) return std::nullopt;
    ComponentStatus out;
    out.url = GetString(*c, "url");
    out.latest_created = GetString(*c, "latestCreatedRevision");
    out.latest_ready = GetString(*c, "latestReadyRevision");
    out.latest_rolled_out = GetString(*c, "latestRolledoutRevision");
    out.previous_rolled_out = GetString(*c, "previousRolledoutRevision");
    out.traffic = ReadTraffic(*c);
    return out;
  };
  if (std::optional<ComponentStatus> pred = component("predictor")) {
    s.predictor_url = pred->url;
    s.latest_created = pred->latest_created;
    s.latest_ready = pred->latest_ready;
    s.latest_rolled_out = pred->latest_rolled_out;
    s.previous_rolled_out = pred->previous_rolled_out;
    s.traffic = std::move(pred->traffic);
  }
  s.transformer = component("transformer");
  s.explainer = component("explainer");
  const auto& model = Obj(*status, "modelStatus");
  s.transition_status = GetString(model, "transitionStatus");
  const auto& states = Obj(model, "states");
  s.active_model_state = GetString(states, "activeModelState");
  s.target_model_state = GetString(states, "targetModelState");
  const auto& failure = Obj(model, "lastFailureInfo");
  s.failure_reason = GetString(failure, "reason");
  s.failure_message = GetString(failure, "message");
  s.failure_time = GetString(failure, "time");
  const auto& copies = Obj(model, "copies");
  s.failed_copies = static_cast<int>(GetInt(copies, "failedCopies"));
  s.total_copies = static_cast<int>(GetInt(copies, "totalCopies"));
  return out;
}

}  // namespace osprey::controlplane
