// Typed parsing, defaulting and validation of KServe objects, from the
// format-neutral Value tree (value.h). ParseYaml and FromJson both end here.

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

#include "common/flags.h"
#include "resources/graph_internal.h"
#include "resources/resources.h"
#include "resources/value.h"

namespace osprey::resources {
namespace internal {

// Shared with inference_graph.cc (graph_internal.h).
std::string Field(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : StrCat(path, ".", key);
}
std::string Index(std::string_view path, size_t i) { return StrCat(path, "[", i, "]"); }

absl::Status Error(const Value* at, std::string_view path, std::string_view message) {
  std::string line = at != nullptr && at->line > 0 ? StrCat(" (line ", at->line, ")") : "";
  return absl::InvalidArgumentError(StrCat(path, ": ", message, line));
}

absl::Status ExpectMap(const Value& v, std::string_view path) {
  if (v.kind == Value::Kind::kMap) return absl::OkStatus();
  return Error(&v, path, StrCat("expected a map, got ", Describe(v)));
}

absl::Status CheckFields(const Value& map, std::string_view path, const FieldSet& known) {
  for (const auto& [key, value] : map.map) {
    if (known.count(key) == 0) return Error(&value, Field(path, key), "unknown field");
  }
  return absl::OkStatus();
}

absl::Status ToString(const Value& v, std::string_view path, std::string* out) {
  if (!v.is_scalar()) return Error(&v, path, StrCat("expected a string, got ", Describe(v)));
  *out = v.text;
  return absl::OkStatus();
}

absl::Status ReadString(const Value& parent, std::string_view key, std::string_view path,
                        std::string* out) {
  const Value* v = parent.Find(key);
  if (v == nullptr) return absl::OkStatus();
  return ToString(*v, Field(path, key), out);
}

namespace {

constexpr std::string_view kIsvcApiVersion = "serving.kserve.io/v1beta1";
constexpr std::string_view kRuntimeApiVersion = "serving.kserve.io/v1alpha1";
constexpr std::string_view kKnativeApiVersion = "serving.knative.dev/v1";

// KServe's legacy predictor keys, in the order its API lists them.
constexpr std::string_view kFrameworkKeys[] = {"sklearn",    "xgboost",    "lightgbm", "pytorch",
                                               "tensorflow", "onnx",       "pmml",     "triton",
                                               "paddle",     "huggingface"};
constexpr std::string_view kExplainerTypes[] = {"art", "alibi", "aix"};

const FieldSet& ObjectFields() {
  static const FieldSet kSet = {"apiVersion", "kind", "metadata", "spec", "status"};
  return kSet;
}

const FieldSet& MetadataFields() {
  // Only name, namespace, labels and annotations are kept; the rest is what
  // `kubectl get -o yaml` prints and is accepted so that its output re-applies.
  // clang-format off
  static const FieldSet kSet = {
      "name", "namespace", "labels", "annotations", "uid", "resourceVersion", "generation",
      "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generateName",
      "selfLink", "managedFields", "finalizers", "ownerReferences"};
  // clang-format on
  return kSet;
}

// Kubernetes PodSpec fields other than `containers`: accepted, and kept as
// given (KeptPodSpecFields).
// clang-format off
constexpr std::string_view kPodSpecFields[] = {
    "volumes", "initContainers", "ephemeralContainers", "restartPolicy",
    "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy", "nodeSelector",
    "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeName",
    "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace", "securityContext",
    "imagePullSecrets", "hostname", "subdomain", "affinity", "schedulerName", "tolerations",
    "hostAliases", "priorityClassName", "priority", "dnsConfig", "readinessGates",
    "runtimeClassName", "enableServiceLinks", "preemptionPolicy", "overhead",
    "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates",
    "resourceClaims", "resources"};
// clang-format on

// The PodSpec fields kept as given (Component::pod_json): all but the
// pod-level `resources` (a Kubernetes alpha; accepted, not kept).
const std::vector<std::string_view>& KeptPodSpecFields() {
  static const std::vector<std::string_view> kKept = [] {
    std::vector<std::string_view> out;
    for (std::string_view f : kPodSpecFields)
      if (f != "resources") out.push_back(f);
    return out;
  }();
  return kKept;
}

// Kubernetes Container fields Osprey does not model (name, image, command,
// args, env, resources, readinessProbe and ports it does): kept as given
// (Container::extra_json).
// clang-format off
constexpr std::string_view kIgnoredContainerFields[] = {
    "workingDir", "envFrom", "volumeMounts", "volumeDevices", "livenessProbe",
    "startupProbe", "lifecycle", "terminationMessagePath",
    "terminationMessagePolicy", "imagePullPolicy", "securityContext", "stdin", "stdinOnce",
    "tty", "resizePolicy", "restartPolicy"};
// clang-format on

// KServe's ComponentExtensionSpec. Later KServe fields that have no meaning
// here yet (deploymentStrategy, scaleMetricType, autoScaling) are accepted.
constexpr std::string_view kExtensionFields[] = {
    "minReplicas", "maxReplicas",          "scaleTarget",     "scaleMetric", "containerConcurrency",
    "timeout",     "canaryTrafficPercent", "logger",          "batcher",     "labels",
    "annotations", "deploymentStrategy",   "scaleMetricType", "autoScaling"};

template <typename... Lists>
FieldSet Union(std::initializer_list<std::string_view> extra, const Lists&... lists) {
  FieldSet out(extra.begin(), extra.end());
  (out.insert(std::begin(lists), std::end(lists)), ...);
  return out;
}

const FieldSet& PredictorFields() {
  static const FieldSet kSet = Union({"model", "containers", "workerSpec"}, kExtensionFields,
                                     kPodSpecFields, kFrameworkKeys);
  return kSet;
}
const FieldSet& TransformerFields() {
  static const FieldSet kSet = Union({"containers"}, kExtensionFields, kPodSpecFields);
  return kSet;
}
const FieldSet& ExplainerFields() {
  static const FieldSet kSet =
      Union({"containers"}, kExtensionFields, kPodSpecFields, kExplainerTypes);
  return kSet;
}
// PredictorExtensionSpec: storage and an inline Container.
const FieldSet& ModelFields() {
  static const FieldSet kSet =
      Union({"modelFormat", "runtime", "storageUri", "storage", "runtimeVersion", "protocolVersion",
             "args", "env", "resources", "name", "image", "command", "readinessProbe", "ports"},
            kIgnoredContainerFields);
  return kSet;
}
const FieldSet& FrameworkFields() {
  static const FieldSet kSet =
      Union({"storageUri", "storage", "runtimeVersion", "protocolVersion", "args", "env",
             "resources", "name", "image", "command", "readinessProbe", "ports"},
            kIgnoredContainerFields);
  return kSet;
}
const FieldSet& ContainerFields() {
  static const FieldSet kSet =
      Union({"name", "image", "command", "args", "env", "resources", "readinessProbe", "ports"},
            kIgnoredContainerFields);
  return kSet;
}
const FieldSet& RuntimeSpecFields() {
  static const FieldSet kSet =
      Union({"supportedModelFormats", "multiModel", "disabled", "protocolVersions", "containers",
             "workerSpec", "labels", "annotations", "grpcEndpoint", "grpcDataEndpoint",
             "httpDataEndpoint", "replicas", "storageHelper", "builtInAdapter"},
            kPodSpecFields);
  return kSet;
}

bool Contains(const auto& list, std::string_view s) {
  return std::find(std::begin(list), std::end(list), s) != std::end(list);
}

// The members of map `v` named in `keys`, in document order, as a compact
// JSON object; "" when there are none.
std::string PickJson(const Value& v, const auto& keys) {
  std::string out;
  for (const auto& [k, member] : v.map) {
    if (!Contains(keys, k)) continue;
    StrAppend(&out, out.empty() ? "{" : ",", "\"", k, "\":", ToCompactJson(member));
  }
  return out.empty() ? out : out + "}";
}

absl::Status ReadInt(const Value& parent, std::string_view key, std::string_view path,
                     std::optional<int>* out) {
  const Value* v = parent.Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (v->kind != Value::Kind::kInt || v->i < INT32_MIN || v->i > INT32_MAX) {
    return Error(v, Field(path, key), StrCat("expected an integer, got ", Describe(*v)));
  }
  *out = static_cast<int>(v->i);
  return absl::OkStatus();
}

absl::Status ReadInt(const Value& parent, std::string_view key, std::string_view path, int* out) {
  std::optional<int> value;
  OSPREY_RETURN_IF_ERROR(ReadInt(parent, key, path, &value));
  if (value) *out = *value;
  return absl::OkStatus();
}

absl::Status ReadBool(const Value& parent, std::string_view key, std::string_view path, bool* out) {
  const Value* v = parent.Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (v->kind != Value::Kind::kBool) {
    return Error(v, Field(path, key), StrCat("expected true or false, got ", Describe(*v)));
  }
  *out = v->b;
  return absl::OkStatus();
}

absl::Status ReadStringList(const Value& parent, std::string_view key, std::string_view path,
                            std::vector<std::string>* out) {
  const Value* v = parent.Find(key);
  if (v == nullptr) return absl::OkStatus();
  std::string here = Field(path, key);
  if (v->kind != Value::Kind::kList) {
    return Error(v, here, StrCat("expected a list of strings, got ", Describe(*v)));
  }
  out->clear();
  for (size_t i = 0; i < v->list.size(); ++i) {
    std::string s;
    OSPREY_RETURN_IF_ERROR(ToString(v->list[i], Index(here, i), &s));
    out->push_back(std::move(s));
  }
  return absl::OkStatus();
}

absl::Status ReadStringMap(const Value& parent, std::string_view key, std::string_view path,
                           std::map<std::string, std::string>* out) {
  const Value* v = parent.Find(key);
  if (v == nullptr) return absl::OkStatus();
  std::string here = Field(path, key);
  if (v->kind != Value::Kind::kMap) {
    return Error(v, here, StrCat("expected a map of strings, got ", Describe(*v)));
  }
  out->clear();
  for (const auto& [k, item] : v->map) {
    std::string s;
    if (!item.is_null()) OSPREY_RETURN_IF_ERROR(ToString(item, Field(here, k), &s));
    (*out)[k] = std::move(s);
  }
  return absl::OkStatus();
}

absl::Status ReadEnv(const Value& parent, std::string_view path, std::vector<EnvVar>* out) {
  const Value* v = parent.Find("env");
  if (v == nullptr) return absl::OkStatus();
  std::string here = Field(path, "env");
  if (v->kind != Value::Kind::kList) {
    return Error(v, here, StrCat("expected a list, got ", Describe(*v)));
  }
  static const FieldSet kEnvFields = {"name", "value", "valueFrom"};
  out->clear();
  for (size_t i = 0; i < v->list.size(); ++i) {
    const Value& item = v->list[i];
    std::string at = Index(here, i);
    OSPREY_RETURN_IF_ERROR(ExpectMap(item, at));
    OSPREY_RETURN_IF_ERROR(CheckFields(item, at, kEnvFields));
    EnvVar env;
    OSPREY_RETURN_IF_ERROR(ReadString(item, "name", at, &env.name));
    if (env.name.empty()) return Error(&item, Field(at, "name"), "required");
    OSPREY_RETURN_IF_ERROR(ReadString(item, "value", at, &env.value));
    if (const Value* from = item.Find("valueFrom"); from != nullptr) {
      const std::string fat = Field(at, "valueFrom");
      if (!env.value.empty()) return Error(from, fat, "may not be given when value is not empty");
      OSPREY_RETURN_IF_ERROR(ExpectMap(*from, fat));
      static const FieldSet kSources = {"fieldRef", "resourceFieldRef", "configMapKeyRef",
                                        "secretKeyRef"};
      OSPREY_RETURN_IF_ERROR(CheckFields(*from, fat, kSources));
      if (from->map.size() != 1)
        return Error(from, fat,
                     "must have exactly one of fieldRef, resourceFieldRef, configMapKeyRef, "
                     "secretKeyRef");
      const std::string& source = from->map.begin()->first;
      const Value& ref = from->map.begin()->second;  // a reference a lambda can capture
      const std::string rat = Field(fat, source);
      OSPREY_RETURN_IF_ERROR(ExpectMap(ref, rat));
      auto required = [&](std::string_view key) -> absl::Status {
        std::string text;
        OSPREY_RETURN_IF_ERROR(ReadString(ref, key, rat, &text));
        if (text.empty()) return Error(&ref, Field(rat, key), "required");
        return absl::OkStatus();
      };
      if (source == "fieldRef") {
        OSPREY_RETURN_IF_ERROR(CheckFields(ref, rat, {"fieldPath", "apiVersion"}));
        OSPREY_RETURN_IF_ERROR(required("fieldPath"));
      } else if (source == "resourceFieldRef") {
        OSPREY_RETURN_IF_ERROR(CheckFields(ref, rat, {"resource", "containerName", "divisor"}));
        OSPREY_RETURN_IF_ERROR(required("resource"));
      } else {
        OSPREY_RETURN_IF_ERROR(CheckFields(ref, rat, {"name", "key", "optional"}));
        OSPREY_RETURN_IF_ERROR(required("key"));
      }
      env.value_from = ToCompactJson(*from);
    }
    out->push_back(std::move(env));
  }
  return absl::OkStatus();
}

absl::Status ReadPorts(const Value& parent, std::string_view path,
                       std::vector<ContainerPort>* out) {
  const Value* v = parent.Find("ports");
  if (v == nullptr) return absl::OkStatus();
  std::string here = Field(path, "ports");
  if (v->kind != Value::Kind::kList) {
    return Error(v, here, StrCat("expected a list, got ", Describe(*v)));
  }
  static const FieldSet kPortFields = {"name", "containerPort", "protocol", "hostPort", "hostIP"};
  out->clear();
  for (size_t i = 0; i < v->list.size(); ++i) {
    const Value& item = v->list[i];
    std::string at = Index(here, i);
    OSPREY_RETURN_IF_ERROR(ExpectMap(item, at));
    OSPREY_RETURN_IF_ERROR(CheckFields(item, at, kPortFields));
    ContainerPort port;
    OSPREY_RETURN_IF_ERROR(ReadString(item, "name", at, &port.name));
    OSPREY_RETURN_IF_ERROR(ReadInt(item, "containerPort", at, &port.container_port));
    OSPREY_RETURN_IF_ERROR(ReadString(item, "protocol", at, &port.protocol));
    if (item.Find("containerPort") == nullptr)
      return Error(&item, Field(at, "containerPort"), "required");
    if (port.container_port < 1 || port.container_port > 65535)
      return Error(item.Find("containerPort"), Field(at, "containerPort"),
                   StrCat("must be a port number (1-65535), got ", port.container_port));
    if (port.protocol.empty()) port.protocol = "TCP";
    if (port.protocol != "TCP" && port.protocol != "UDP" && port.protocol != "SCTP")
      return Error(item.Find("protocol"), Field(at, "protocol"),
                   StrCat("must be TCP, UDP or SCTP, got ", port.protocol));
    out->push_back(std::move(port));
  }
  return absl::OkStatus();
}

absl::Status ReadResources(const Value& parent, std::string_view path, std::string* out) {
  *out = "{}";
  const Value* v = parent.Find("resources");
  if (v == nullptr) return absl::OkStatus();
  OSPREY_RETURN_IF_ERROR(ExpectMap(*v, Field(path, "resources")));
  *out = ToCompactJson(*v);
  return absl::OkStatus();
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters; a DNS-1035 label also
// starts with a letter.
bool IsDnsLabel(std::string_view s, bool dns1035) {
  if (s.empty() || s.size() > 63) return false;
  if (!IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  if (dns1035 && !(s.front() >= 'a' && s.front() <= 'z')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return IsLowerAlnum(c) || c == '-'; });
}

bool IsDnsSubdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view part = s.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (!IsDnsLabel(part, false)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

constexpr std::string_view kDns1035Rule =
    "must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, "
    "ending with a letter or digit, at most 63 characters)";
constexpr std::string_view kDns1123LabelRule =
    "must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a "
    "letter or digit, at most 63 characters)";
constexpr std::string_view kDns1123SubdomainRule =
    "must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', starting and ending "
    "with a letter or digit, at most 253 characters)";

enum class NameRule { kDns1035Label, kDns1123Subdomain };

absl::Status ParseMeta(const Value& doc, NameRule rule, bool cluster_scoped, ObjectMeta* meta) {
  const Value* m = doc.Find("metadata");
  if (m == nullptr) return Error(&doc, "metadata.name", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*m, "metadata"));
  OSPREY_RETURN_IF_ERROR(CheckFields(*m, "metadata", MetadataFields()));
  OSPREY_RETURN_IF_ERROR(ReadString(*m, "name", "metadata", &meta->name));
  if (meta->name.empty()) return Error(m, "metadata.name", "required");
  bool valid =
      rule == NameRule::kDns1035Label ? IsDnsLabel(meta->name, true) : IsDnsSubdomain(meta->name);
  if (!valid) {
    return Error(m->Find("name"), "metadata.name",
                 StrCat("\"", meta->name, "\" is invalid: ",
                        rule == NameRule::kDns1035Label ? kDns1035Rule : kDns1123SubdomainRule));
  }
  std::string ns;
  OSPREY_RETURN_IF_ERROR(ReadString(*m, "namespace", "metadata", &ns));
  if (cluster_scoped) {
    meta->namespace_.clear();  // Kubernetes ignores a namespace on a cluster-scoped object
  } else if (ns.empty()) {
    meta->namespace_ = "default";
  } else if (!IsDnsLabel(ns, false)) {
    return Error(m->Find("namespace"), "metadata.namespace",
                 StrCat("\"", ns, "\" is invalid: ", kDns1123LabelRule));
  } else {
    meta->namespace_ = ns;
  }
  OSPREY_RETURN_IF_ERROR(ReadStringMap(*m, "labels", "metadata", &meta->labels));
  OSPREY_RETURN_IF_ERROR(ReadStringMap(*m, "annotations", "metadata", &meta->annotations));
  return absl::OkStatus();
}

}  // namespace

// Shared with istio.cc (graph_internal.h).
absl::Status ReadIntField(const Value& parent, std::string_view key, std::string_view path,
                          std::optional<int>* out) {
  return ReadInt(parent, key, path, out);
}
absl::Status ReadBoolField(const Value& parent, std::string_view key, std::string_view path,
                           bool* out) {
  return ReadBool(parent, key, path, out);
}
absl::Status ReadStrings(const Value& parent, std::string_view key, std::string_view path,
                         std::vector<std::string>* out) {
  return ReadStringList(parent, key, path, out);
}
absl::Status ReadStringsMap(const Value& parent, std::string_view key, std::string_view path,
                            std::map<std::string, std::string>* out) {
  return ReadStringMap(parent, key, path, out);
}
absl::Status ParseObjectMeta(const Value& doc, ObjectMeta* meta) {
  return ParseMeta(doc, NameRule::kDns1123Subdomain, false, meta);
}
bool IsDns1123Label(std::string_view s) { return IsDnsLabel(s, false); }

namespace {

absl::Status CheckProtocol(const Value* at, std::string_view path, std::string_view protocol) {
  if (protocol == "v1" || protocol == "v2" || protocol == "grpc-v1" || protocol == "grpc-v2") {
    return absl::OkStatus();
  }
  return Error(at, path,
               StrCat("\"", protocol, "\" is invalid: must be one of v1, v2, grpc-v1, grpc-v2"));
}

// A probe handler's port: a number 1..65535 or a port name (IANA_SVC_NAME);
// absent, the container's serving port (as Knative defaults it).
absl::Status CheckProbePort(const Value& handler, std::string_view path) {
  const Value* port = handler.Find("port");
  const std::string at = Field(path, "port");
  if (port == nullptr) return absl::OkStatus();
  if (port->kind == Value::Kind::kInt) {
    if (port->i < 1 || port->i > 65535) {
      return Error(port, at, StrCat(port->i, " is invalid: must be 1..65535 or a port name"));
    }
    return absl::OkStatus();
  }
  std::string name;
  OSPREY_RETURN_IF_ERROR(ToString(*port, at, &name));
  if (name.empty() || name.size() > 15) {
    return Error(port, at, StrCat("\"", name, "\" is invalid: must be 1..65535 or a port name"));
  }
  return absl::OkStatus();
}

// A container's readinessProbe: Kubernetes' Probe, exactly one handler.
absl::Status ReadReadinessProbe(const Value& parent, std::string_view path, Container* c) {
  const Value* v = parent.Find("readinessProbe");
  if (v == nullptr) return absl::OkStatus();
  const std::string at = Field(path, "readinessProbe");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*v, at));
  static const FieldSet kProbeFields = {"httpGet",
                                        "tcpSocket",
                                        "exec",
                                        "grpc",
                                        "initialDelaySeconds",
                                        "periodSeconds",
                                        "timeoutSeconds",
                                        "successThreshold",
                                        "failureThreshold",
                                        "terminationGracePeriodSeconds"};
  OSPREY_RETURN_IF_ERROR(CheckFields(*v, at, kProbeFields));
  for (const char* key : {"initialDelaySeconds", "periodSeconds", "timeoutSeconds",
                          "successThreshold", "failureThreshold"}) {
    std::optional<int> n;
    OSPREY_RETURN_IF_ERROR(ReadInt(*v, key, at, &n));
    if (n && *n < 0) return Error(v->Find(key), Field(at, key), "must not be negative");
  }
  int handlers = 0;
  for (const char* key : {"httpGet", "tcpSocket", "exec", "grpc"}) {
    const Value* h = v->Find(key);
    if (h == nullptr) continue;
    ++handlers;
    OSPREY_RETURN_IF_ERROR(ExpectMap(*h, Field(at, key)));
  }
  if (handlers != 1) {
    return Error(v, at,
                 handlers == 0 ? "needs one handler: httpGet, tcpSocket, exec or grpc"
                               : "must have exactly one handler of httpGet, tcpSocket, exec, grpc");
  }
  if (const Value* h = v->Find("httpGet"); h != nullptr) {
    const std::string hp = Field(at, "httpGet");
    static const FieldSet kHttpFields = {"path", "port", "host", "scheme", "httpHeaders"};
    OSPREY_RETURN_IF_ERROR(CheckFields(*h, hp, kHttpFields));
    OSPREY_RETURN_IF_ERROR(CheckProbePort(*h, hp));
    std::string scheme = "HTTP";
    OSPREY_RETURN_IF_ERROR(ReadString(*h, "scheme", hp, &scheme));
    if (scheme != "HTTP" && scheme != "HTTPS") {
      return Error(h->Find("scheme"), Field(hp, "scheme"),
                   StrCat("\"", scheme, "\" is invalid: must be HTTP or HTTPS"));
    }
    c->probe_path = "/";
    OSPREY_RETURN_IF_ERROR(ReadString(*h, "path", hp, &c->probe_path));
    if (c->probe_path.empty() || c->probe_path[0] != '/') c->probe_path.insert(0, "/");
    for (char ch : c->probe_path) {
      if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f) {
        return Error(h->Find("path"), Field(hp, "path"),
                     "must not contain spaces or control characters (percent-encode them)");
      }
    }
    // A replica serves plain HTTP on its port; an HTTPS probe is not run.
    c->probe = scheme == "HTTP" ? Container::Probe::kHttpGet : Container::Probe::kOther;
  } else if (const Value* t = v->Find("tcpSocket"); t != nullptr) {
    OSPREY_RETURN_IF_ERROR(CheckProbePort(*t, Field(at, "tcpSocket")));
    c->probe = Container::Probe::kTcpSocket;
  } else {
    c->probe = Container::Probe::kOther;
  }
  c->readiness_probe_json = ToCompactJson(*v);
  return absl::OkStatus();
}

// Container list of a component (a lone unnamed container is
// `default_name`: kserve-container, as KServe's defaulter makes it;
// Knative's is user-container) or of a runtime (default_name "": every
// container needs its name).
constexpr std::string_view kKserveContainer = "kserve-container";

absl::Status ParseContainers(const Value& v, std::string_view path, std::string_view default_name,
                             std::vector<Container>* out) {
  if (v.kind != Value::Kind::kList) {
    return Error(&v, path, StrCat("expected a list of containers, got ", Describe(v)));
  }
  out->clear();
  for (size_t i = 0; i < v.list.size(); ++i) {
    const Value& item = v.list[i];
    std::string at = Index(path, i);
    OSPREY_RETURN_IF_ERROR(ExpectMap(item, at));
    OSPREY_RETURN_IF_ERROR(CheckFields(item, at, ContainerFields()));
    Container c;
    OSPREY_RETURN_IF_ERROR(ReadString(item, "name", at, &c.name));
    OSPREY_RETURN_IF_ERROR(ReadString(item, "image", at, &c.image));
    OSPREY_RETURN_IF_ERROR(ReadStringList(item, "command", at, &c.command));
    OSPREY_RETURN_IF_ERROR(ReadStringList(item, "args", at, &c.args));
    OSPREY_RETURN_IF_ERROR(ReadEnv(item, at, &c.env));
    OSPREY_RETURN_IF_ERROR(ReadResources(item, at, &c.resources_json));
    OSPREY_RETURN_IF_ERROR(ReadReadinessProbe(item, at, &c));
    OSPREY_RETURN_IF_ERROR(ReadPorts(item, at, &c.ports));
    c.extra_json = PickJson(item, kIgnoredContainerFields);
    if (c.name.empty()) {
      if (default_name.empty() || v.list.size() != 1) {
        return Error(&item, Field(at, "name"), "required");
      }
      c.name = default_name;
    }
    if (c.image.empty() && c.command.empty()) {
      return Error(&item, at, "image or command required");
    }
    out->push_back(std::move(c));
  }
  return absl::OkStatus();
}

// `model:` (framework empty) or a legacy framework key's spec.
absl::Status ParseModel(const Value& v, std::string_view path, std::string_view framework,
                        ModelSpec* out) {
  OSPREY_RETURN_IF_ERROR(ExpectMap(v, path));
  OSPREY_RETURN_IF_ERROR(
      CheckFields(v, path, framework.empty() ? ModelFields() : FrameworkFields()));
  if (framework.empty()) {
    const Value* format = v.Find("modelFormat");
    std::string format_path = Field(path, "modelFormat");
    if (format != nullptr) {
      static const FieldSet kFormatFields = {"name", "version"};
      OSPREY_RETURN_IF_ERROR(ExpectMap(*format, format_path));
      OSPREY_RETURN_IF_ERROR(CheckFields(*format, format_path, kFormatFields));
      OSPREY_RETURN_IF_ERROR(ReadString(*format, "name", format_path, &out->format.name));
      OSPREY_RETURN_IF_ERROR(ReadString(*format, "version", format_path, &out->format.version));
    }
    if (out->format.name.empty()) {
      return Error(format != nullptr ? format : &v, Field(format_path, "name"), "required");
    }
    out->format.name = Lower(out->format.name);
    OSPREY_RETURN_IF_ERROR(ReadString(v, "runtime", path, &out->runtime));
  } else {
    out->format.name = std::string(framework);
  }
  OSPREY_RETURN_IF_ERROR(ReadString(v, "storageUri", path, &out->storage_uri));
  OSPREY_RETURN_IF_ERROR(ReadString(v, "protocolVersion", path, &out->protocol_version));
  if (const Value* protocol = v.Find("protocolVersion"); protocol != nullptr) {
    OSPREY_RETURN_IF_ERROR(
        CheckProtocol(protocol, Field(path, "protocolVersion"), out->protocol_version));
  }
  OSPREY_RETURN_IF_ERROR(ReadStringList(v, "args", path, &out->args));
  OSPREY_RETURN_IF_ERROR(ReadEnv(v, path, &out->env));
  OSPREY_RETURN_IF_ERROR(ReadResources(v, path, &out->resources_json));
  return absl::OkStatus();
}

absl::Status ParseExtension(const Value& v, std::string_view path, Component* c) {
  auto at = [&](std::string_view key) { return v.Find(key); };
  c->pod_json = PickJson(v, KeptPodSpecFields());
  OSPREY_RETURN_IF_ERROR(ReadInt(v, "minReplicas", path, &c->min_replicas));
  if (c->min_replicas < 0) {
    return Error(at("minReplicas"), Field(path, "minReplicas"),
                 StrCat("must be >= 0, got ", c->min_replicas));
  }
  OSPREY_RETURN_IF_ERROR(ReadInt(v, "maxReplicas", path, &c->max_replicas));
  if (c->max_replicas < 0) {
    return Error(at("maxReplicas"), Field(path, "maxReplicas"),
                 StrCat("must be >= 0, got ", c->max_replicas));
  }
  if (c->max_replicas != 0 && c->max_replicas < c->min_replicas) {
    return Error(at("maxReplicas"), Field(path, "maxReplicas"),
                 StrCat("must be >= minReplicas (", c->min_replicas, ") or 0 (unbounded), got ",
                        c->max_replicas));
  }
  OSPREY_RETURN_IF_ERROR(ReadInt(v, "scaleTarget", path, &c->scale_target));
  if (c->scale_target && *c->scale_target < 1) {
    return Error(at("scaleTarget"), Field(path, "scaleTarget"),
                 StrCat("must be >= 1, got ", *c->scale_target));
  }
  OSPREY_RETURN_IF_ERROR(ReadString(v, "scaleMetric", path, &c->scale_metric));
  if (!c->scale_metric.empty() && c->scale_metric != "concurrency" && c->scale_metric != "rps" &&
      c->scale_metric != "cpu" && c->scale_metric != "memory") {
    return Error(at("scaleMetric"), Field(path, "scaleMetric"),
                 StrCat("\"", c->scale_metric,
                        "\" is invalid: must be one of concurrency, rps, cpu, memory"));
  }
  OSPREY_RETURN_IF_ERROR(ReadInt(v, "containerConcurrency", path, &c->container_concurrency));
  if (c->container_concurrency < 0) {
    return Error(at("containerConcurrency"), Field(path, "containerConcurrency"),
                 StrCat("must be >= 0, got ", c->container_concurrency));
  }
  OSPREY_RETURN_IF_ERROR(ReadInt(v, "timeout", path, &c->timeout_seconds));
  if (c->timeout_seconds && *c->timeout_seconds < 1) {
    return Error(at("timeout"), Field(path, "timeout"),
                 StrCat("must be >= 1 (seconds), got ", *c->timeout_seconds));
  }
  OSPREY_RETURN_IF_ERROR(ReadInt(v, "canaryTrafficPercent", path, &c->canary_traffic_percent));
  if (c->canary_traffic_percent &&
      (*c->canary_traffic_percent < 0 || *c->canary_traffic_percent > 100)) {
    return Error(at("canaryTrafficPercent"), Field(path, "canaryTrafficPercent"),
                 StrCat("must be between 0 and 100, got ", *c->canary_traffic_percent));
  }
  if (const Value* logger = at("logger"); logger != nullptr) {
    std::string lpath = Field(path, "logger");
    static const FieldSet kLoggerFields = {"url", "mode", "metadataHeaders", "metadataAnnotations"};
    OSPREY_RETURN_IF_ERROR(ExpectMap(*logger, lpath));
    OSPREY_RETURN_IF_ERROR(CheckFields(*logger, lpath, kLoggerFields));
    Logger l;
    OSPREY_RETURN_IF_ERROR(ReadString(*logger, "url", lpath, &l.url));
    OSPREY_RETURN_IF_ERROR(ReadString(*logger, "mode", lpath, &l.mode));
    OSPREY_RETURN_IF_ERROR(ReadStringList(*logger, "metadataHeaders", lpath, &l.metadata_headers));
    OSPREY_RETURN_IF_ERROR(
        ReadStringList(*logger, "metadataAnnotations", lpath, &l.metadata_annotations));
    if (l.url.empty()) {
      return Error(logger, Field(lpath, "url"),
                   "required: the CloudEvents sink the exchanges are POSTed to (http://...)");
    }
    if (std::string_view u = l.url; !((u.starts_with("http://") && u.size() > 7) ||
                                      (u.starts_with("https://") && u.size() > 8)) ||
                                    u.find_first_of(" \t\r\n") != std::string_view::npos) {
      return Error(
          logger->Find("url"), Field(lpath, "url"),
          StrCat("\"", l.url, "\" is invalid: must be an http:// or https:// URL with a host"));
    }
    if (l.mode.empty()) l.mode = "all";
    if (l.mode != "all" && l.mode != "request" && l.mode != "response") {
      return Error(logger->Find("mode"), Field(lpath, "mode"),
                   StrCat("\"", l.mode, "\" is invalid: must be one of all, request, response"));
    }
    c->logger = std::move(l);
  }
  if (const Value* batcher = at("batcher"); batcher != nullptr) {
    std::string bpath = Field(path, "batcher");
    static const FieldSet kBatcherFields = {"maxBatchSize", "maxLatency", "timeout"};
    OSPREY_RETURN_IF_ERROR(ExpectMap(*batcher, bpath));
    OSPREY_RETURN_IF_ERROR(CheckFields(*batcher, bpath, kBatcherFields));
    Batcher b;
    OSPREY_RETURN_IF_ERROR(ReadInt(*batcher, "maxBatchSize", bpath, &b.max_batch_size));
    if (b.max_batch_size < 1) {
      return Error(batcher->Find("maxBatchSize"), Field(bpath, "maxBatchSize"),
                   StrCat("must be >= 1, got ", b.max_batch_size));
    }
    OSPREY_RETURN_IF_ERROR(ReadInt(*batcher, "maxLatency", bpath, &b.max_latency_ms));
    if (b.max_latency_ms < 1) {
      return Error(batcher->Find("maxLatency"), Field(bpath, "maxLatency"),
                   StrCat("must be >= 1 (milliseconds), got ", b.max_latency_ms));
    }
    c->batcher = b;
  }
  OSPREY_RETURN_IF_ERROR(ReadStringMap(v, "labels", path, &c->labels));
  OSPREY_RETURN_IF_ERROR(ReadStringMap(v, "annotations", path, &c->annotations));
  return absl::OkStatus();
}

// "a", "a and b", "a, b and c".
std::string JoinAnd(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " and " : ", ";
    out += items[i];
  }
  return out;
}

bool HasContainers(const Value& v) {
  const Value* c = v.Find("containers");
  return c != nullptr && !(c->kind == Value::Kind::kList && c->list.empty());
}

absl::Status ParsePredictor(const Value& v, std::string_view path, Component* c) {
  OSPREY_RETURN_IF_ERROR(ExpectMap(v, path));
  OSPREY_RETURN_IF_ERROR(CheckFields(v, path, PredictorFields()));
  OSPREY_RETURN_IF_ERROR(ParseExtension(v, path, c));
  std::vector<std::string> forms;
  for (const auto& [key, value] : v.map) {
    if (value.is_null()) continue;
    if (key == "model" || Contains(kFrameworkKeys, key) ||
        (key == "containers" && HasContainers(v))) {
      forms.push_back(key);
    }
  }
  constexpr std::string_view kForms =
      "exactly one of model, containers or a framework key (sklearn, xgboost, ...)";
  if (forms.empty()) return Error(&v, path, StrCat(kForms, " must be given, found none"));
  if (forms.size() > 1) {
    return Error(&v, path, StrCat(kForms, " may be given, found ", JoinAnd(forms)));
  }
  const std::string& form = forms[0];
  if (const Value* worker = v.Find("workerSpec"); worker != nullptr && !worker->is_null()) {
    OSPREY_RETURN_IF_ERROR(ExpectMap(*worker, Field(path, "workerSpec")));
    c->worker_spec_json = ToCompactJson(*worker);
  }
  if (form == "containers") {
    return ParseContainers(*v.Find("containers"), Field(path, "containers"), kKserveContainer,
                           &c->containers);
  }
  ModelSpec model;
  if (form == "model") {
    OSPREY_RETURN_IF_ERROR(ParseModel(*v.Find("model"), Field(path, "model"), "", &model));
  } else {
    OSPREY_RETURN_IF_ERROR(ParseModel(*v.Find(form), Field(path, form), form, &model));
    c->legacy_key = form;
  }
  c->model = std::move(model);
  return absl::OkStatus();
}

absl::Status ParseTransformer(const Value& v, std::string_view path, Component* c) {
  OSPREY_RETURN_IF_ERROR(ExpectMap(v, path));
  OSPREY_RETURN_IF_ERROR(CheckFields(v, path, TransformerFields()));
  OSPREY_RETURN_IF_ERROR(ParseExtension(v, path, c));
  if (!HasContainers(v)) return Error(&v, Field(path, "containers"), "required");
  return ParseContainers(*v.Find("containers"), Field(path, "containers"), kKserveContainer,
                         &c->containers);
}

absl::Status ParseExplainer(const Value& v, std::string_view path, Component* c) {
  OSPREY_RETURN_IF_ERROR(ExpectMap(v, path));
  OSPREY_RETURN_IF_ERROR(CheckFields(v, path, ExplainerFields()));
  OSPREY_RETURN_IF_ERROR(ParseExtension(v, path, c));
  std::vector<std::string> forms;
  for (const auto& [key, value] : v.map) {
    if (value.is_null()) continue;
    if (Contains(kExplainerTypes, key) || (key == "containers" && HasContainers(v))) {
      forms.push_back(key);
    }
  }
  constexpr std::string_view kForms = "exactly one of containers or an explainer type (art, ...)";
  if (forms.empty()) return Error(&v, path, StrCat(kForms, " must be given, found none"));
  if (forms.size() > 1) {
    return Error(&v, path, StrCat(kForms, " may be given, found ", JoinAnd(forms)));
  }
  if (forms[0] == "containers") {
    return ParseContainers(*v.Find("containers"), Field(path, "containers"), kKserveContainer,
                           &c->containers);
  }
  const Value& spec = *v.Find(forms[0]);
  const std::string at = Field(path, forms[0]);
  OSPREY_RETURN_IF_ERROR(ExpectMap(spec, at));
  static const FieldSet kNamedFields =
      Union({"type", "config", "storageUri", "runtimeVersion"}, ContainerFields());
  OSPREY_RETURN_IF_ERROR(CheckFields(spec, at, kNamedFields));
  c->explainer_type = forms[0];
  c->explainer_json = ToCompactJson(spec);
  Container container;
  std::string type, storage_uri, version;
  std::map<std::string, std::string> config;
  std::vector<std::string> own_args;
  OSPREY_RETURN_IF_ERROR(ReadString(spec, "type", at, &type));
  OSPREY_RETURN_IF_ERROR(ReadStringMap(spec, "config", at, &config));
  OSPREY_RETURN_IF_ERROR(ReadString(spec, "storageUri", at, &storage_uri));
  OSPREY_RETURN_IF_ERROR(ReadString(spec, "runtimeVersion", at, &version));
  OSPREY_RETURN_IF_ERROR(ReadString(spec, "image", at, &container.image));
  OSPREY_RETURN_IF_ERROR(ReadStringList(spec, "command", at, &container.command));
  OSPREY_RETURN_IF_ERROR(ReadStringList(spec, "args", at, &own_args));
  OSPREY_RETURN_IF_ERROR(ReadEnv(spec, at, &container.env));
  OSPREY_RETURN_IF_ERROR(ReadResources(spec, at, &container.resources_json));
  if (c->explainer_type == "art") {
    // KServe's ART explainer has one adversary (its artserver refuses others).
    if (type.empty()) return Error(&spec, Field(at, "type"), "required (SquareAttack)");
    if (Lower(type) != "squareattack")
      return Error(spec.Find("type"), Field(at, "type"),
                   StrCat("unsupported ART explainer type '", type,
                          "': the ART explainer runs SquareAttack"));
    container.args = {"--adversary_type", type};
  }
  container.name = "kserve-container";
  if (container.image.empty())
    container.image =
        StrCat("kserve/", c->explainer_type, "-explainer:", version.empty() ? "latest" : version);
  for (const auto& [key, value] : config) {
    container.args.push_back(StrCat("--", key));
    container.args.push_back(value);
  }
  if (!storage_uri.empty()) {
    container.args.insert(container.args.end(), {"--storage_uri", "/mnt/models"});
    container.env.push_back({"STORAGE_URI", storage_uri});
  }
  container.args.insert(container.args.end(), own_args.begin(), own_args.end());
  c->explainer_container = std::move(container);
  return absl::OkStatus();
}

absl::StatusOr<TrainedModel> ParseTrainedModel(const Value& doc) {
  TrainedModel tm;
  OSPREY_RETURN_IF_ERROR(ParseMeta(doc, NameRule::kDns1035Label, false, &tm.meta));
  const Value* spec = doc.Find("spec");
  if (spec == nullptr) return Error(&doc, "spec.inferenceService", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*spec, "spec"));
  static const FieldSet kSpecFields = {"inferenceService", "model"};
  OSPREY_RETURN_IF_ERROR(CheckFields(*spec, "spec", kSpecFields));
  OSPREY_RETURN_IF_ERROR(ReadString(*spec, "inferenceService", "spec", &tm.inference_service));
  if (tm.inference_service.empty())
    return Error(spec, "spec.inferenceService", "required (the multi-model InferenceService)");
  const Value* model = spec->Find("model");
  if (model == nullptr) return Error(spec, "spec.model", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*model, "spec.model"));
  static const FieldSet kModelFields = {"storageUri", "framework", "memory"};
  OSPREY_RETURN_IF_ERROR(CheckFields(*model, "spec.model", kModelFields));
  OSPREY_RETURN_IF_ERROR(ReadString(*model, "storageUri", "spec.model", &tm.storage_uri));
  OSPREY_RETURN_IF_ERROR(ReadString(*model, "framework", "spec.model", &tm.framework));
  OSPREY_RETURN_IF_ERROR(ReadString(*model, "memory", "spec.model", &tm.memory));
  if (tm.storage_uri.empty()) return Error(model, "spec.model.storageUri", "required");
  if (tm.framework.empty())
    return Error(model, "spec.model.framework", "required (e.g. sklearn, xgboost)");
  tm.framework = Lower(tm.framework);
  if (tm.memory.empty()) return Error(model, "spec.model.memory", "required (e.g. 256Mi)");
  auto bytes = ParseByteSize(tm.memory);
  if (!bytes.ok())
    return Error(model->Find("memory"), "spec.model.memory", StatusMessage(bytes.status()));
  tm.memory_bytes = *bytes;
  return tm;
}

// Knative's autoscaling annotations that take a count: an integer >= 0.
absl::Status CheckScaleAnnotations(const Value* at, const std::map<std::string, std::string>& a,
                                   std::string_view path, int* min_scale) {
  int max_scale = 0;
  for (const char* key : {"autoscaling.knative.dev/min-scale", "autoscaling.knative.dev/minScale",
                          "autoscaling.knative.dev/max-scale", "autoscaling.knative.dev/maxScale",
                          "autoscaling.knative.dev/initial-scale"}) {
    auto it = a.find(key);
    if (it == a.end()) continue;
    int n = -1;
    auto [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), n);
    if (ec != std::errc() || end != it->second.data() + it->second.size() || n < 0) {
      return Error(at, StrCat(path, ".", key),
                   StrCat("\"", it->second, "\" is invalid: must be an integer >= 0"));
    }
    std::string_view k = key;
    if (k.find("min") != std::string_view::npos) *min_scale = n;
    if (k.find("max") != std::string_view::npos) max_scale = n;
  }
  if (max_scale != 0 && max_scale < *min_scale) {
    return Error(
        at, StrCat(path, ".autoscaling.knative.dev/max-scale"),
        StrCat("must be >= min-scale (", *min_scale, ") or 0 (unbounded), got ", max_scale));
  }
  return absl::OkStatus();
}

absl::StatusOr<KnativeService> ParseKnativeService(const Value& doc) {
  KnativeService ks;
  OSPREY_RETURN_IF_ERROR(ParseMeta(doc, NameRule::kDns1035Label, false, &ks.meta));
  const Value* spec = doc.Find("spec");
  if (spec == nullptr) return Error(&doc, "spec.template", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*spec, "spec"));
  static const FieldSet kSpecFields = {"template", "traffic"};
  OSPREY_RETURN_IF_ERROR(CheckFields(*spec, "spec", kSpecFields));
  const Value* tmpl = spec->Find("template");
  if (tmpl == nullptr) return Error(spec, "spec.template", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*tmpl, "spec.template"));
  static const FieldSet kTemplateFields = {"metadata", "spec"};
  OSPREY_RETURN_IF_ERROR(CheckFields(*tmpl, "spec.template", kTemplateFields));
  Component& c = ks.revision;
  c.min_replicas = 0;
  if (const Value* m = tmpl->Find("metadata"); m != nullptr) {
    OSPREY_RETURN_IF_ERROR(ExpectMap(*m, "spec.template.metadata"));
    static const FieldSet kTemplateMeta = {"name", "labels", "annotations", "creationTimestamp"};
    OSPREY_RETURN_IF_ERROR(CheckFields(*m, "spec.template.metadata", kTemplateMeta));
    OSPREY_RETURN_IF_ERROR(ReadString(*m, "name", "spec.template.metadata", &ks.revision_name));
    if (!ks.revision_name.empty()) {
      const std::string prefix = StrCat(ks.meta.name, "-");
      if (!ks.revision_name.starts_with(prefix) || ks.revision_name.size() == prefix.size())
        return Error(
            m->Find("name"), "spec.template.metadata.name",
            StrCat("\"", ks.revision_name, "\" is invalid: must have prefix \"", prefix, "\""));
      if (!IsDnsLabel(ks.revision_name, true))
        return Error(m->Find("name"), "spec.template.metadata.name",
                     StrCat("\"", ks.revision_name, "\" is invalid: ", kDns1035Rule));
    }
    OSPREY_RETURN_IF_ERROR(ReadStringMap(*m, "labels", "spec.template.metadata", &c.labels));
    OSPREY_RETURN_IF_ERROR(
        ReadStringMap(*m, "annotations", "spec.template.metadata", &c.annotations));
    OSPREY_RETURN_IF_ERROR(CheckScaleAnnotations(m->Find("annotations"), c.annotations,
                                                 "spec.template.metadata.annotations",
                                                 &c.min_replicas));
  }
  const Value* ts = tmpl->Find("spec");
  if (ts == nullptr) return Error(tmpl, "spec.template.spec.containers", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*ts, "spec.template.spec"));
  static const FieldSet kRevisionSpecFields =
      Union({"containers", "containerConcurrency", "timeoutSeconds", "responseStartTimeoutSeconds",
             "idleTimeoutSeconds"},
            kPodSpecFields);
  OSPREY_RETURN_IF_ERROR(CheckFields(*ts, "spec.template.spec", kRevisionSpecFields));
  if (!HasContainers(*ts)) return Error(ts, "spec.template.spec.containers", "required");
  c.pod_json = PickJson(*ts, KeptPodSpecFields());
  const std::string containers_path = "spec.template.spec.containers";
  OSPREY_RETURN_IF_ERROR(
      ParseContainers(*ts->Find("containers"), containers_path, "user-container", &c.containers));
  if (c.containers.empty()) return Error(ts->Find("containers"), containers_path, "required");
  if (c.containers.size() > 1) {
    int serving = -1;
    for (size_t i = 0; i < c.containers.size(); ++i) {
      if (c.containers[i].ports.empty()) continue;
      if (serving >= 0)
        return Error(ts->Find("containers"), Index(containers_path, i),
                     "more than one container declares a port: exactly one serves requests");
      serving = static_cast<int>(i);
    }
    if (serving < 0)
      return Error(ts->Find("containers"), containers_path,
                   "exactly one container must declare a port (the one that serves requests)");
    ks.serving_container = static_cast<size_t>(serving);
  }
  OSPREY_RETURN_IF_ERROR(
      ReadInt(*ts, "containerConcurrency", "spec.template.spec", &c.container_concurrency));
  if (c.container_concurrency < 0 || c.container_concurrency > 1000) {
    return Error(ts->Find("containerConcurrency"), "spec.template.spec.containerConcurrency",
                 StrCat("must be between 0 and 1000, got ", c.container_concurrency));
  }
  int timeout = 300;
  OSPREY_RETURN_IF_ERROR(ReadInt(*ts, "timeoutSeconds", "spec.template.spec", &timeout));
  if (timeout == 0) timeout = 300;  // Knative's defaulter
  if (timeout < 1 || timeout > 600) {
    return Error(ts->Find("timeoutSeconds"), "spec.template.spec.timeoutSeconds",
                 StrCat("must be between 0 (the default, 300) and 600, got ", timeout));
  }
  c.timeout_seconds = timeout;

  // Knative reserves these variables for what it sets itself, and takes
  // env values from ConfigMaps and Secrets only (fieldRef and
  // resourceFieldRef need its kubernetes.podspec-fieldref feature, off by
  // default).
  for (size_t i = 0; i < c.containers.size(); ++i)
    for (size_t j = 0; j < c.containers[i].env.size(); ++j) {
      const EnvVar& e = c.containers[i].env[j];
      if (e.name == "PORT" || e.name == "K_SERVICE" || e.name == "K_CONFIGURATION" ||
          e.name == "K_REVISION")
        return Error(ts->Find("containers"), StrCat(Index(containers_path, i), ".env"),
                     StrCat("\"", e.name, "\" is reserved (the platform sets it)"));
      for (const char* source : {"fieldRef", "resourceFieldRef"})
        if (e.value_from.starts_with(StrCat("{\"", source, "\"")))
          return Error(
              ts->Find("containers"),
              StrCat(Index(StrCat(Index(containers_path, i), ".env"), j), ".valueFrom.", source),
              "must not set the field (Knative's kubernetes.podspec-fieldref feature "
              "is off, as by default)");
    }
  if (auto it = c.annotations.find("autoscaling.knative.dev/initial-scale");
      it != c.annotations.end() && it->second == "0")
    return Error(tmpl->Find("metadata"),
                 "spec.template.metadata.annotations.autoscaling.knative.dev/initial-scale",
                 "\"0\" is invalid: a revision starts with at least one replica (Knative's "
                 "allow-zero-initial-scale is off)");
  const Value* traffic = spec->Find("traffic");
  if (traffic == nullptr || traffic->is_null() ||
      (traffic->kind == Value::Kind::kList && traffic->list.empty())) {
    ks.traffic.push_back({.latest_revision = true, .percent = 100});
    return ks;
  }
  if (traffic->kind != Value::Kind::kList) {
    return Error(traffic, "spec.traffic", StrCat("expected a list, got ", Describe(*traffic)));
  }
  static const FieldSet kTrafficFields = {"revisionName", "latestRevision",   "percent", "tag",
                                          "url",          "configurationName"};
  int sum = 0;
  for (size_t i = 0; i < traffic->list.size(); ++i) {
    const Value& item = traffic->list[i];
    const std::string at = Index("spec.traffic", i);
    OSPREY_RETURN_IF_ERROR(ExpectMap(item, at));
    OSPREY_RETURN_IF_ERROR(CheckFields(item, at, kTrafficFields));
    if (item.Find("url") != nullptr)
      return Error(item.Find("url"), Field(at, "url"), "may not be set (the platform reports it)");
    if (item.Find("configurationName") != nullptr)
      return Error(item.Find("configurationName"), Field(at, "configurationName"),
                   "not allowed in a Service (its configuration is its own)");
    KnativeTrafficTarget t;
    OSPREY_RETURN_IF_ERROR(ReadString(item, "revisionName", at, &t.revision_name));
    std::optional<bool> latest;
    if (item.Find("latestRevision") != nullptr) {
      bool b = false;
      OSPREY_RETURN_IF_ERROR(ReadBool(item, "latestRevision", at, &b));
      latest = b;
    }
    // Knative's default: an entry without a revision follows the latest.
    t.latest_revision = latest.value_or(t.revision_name.empty());
    if (t.latest_revision && !t.revision_name.empty())
      return Error(item.Find("revisionName"), Field(at, "revisionName"),
                   "may not be set when latestRevision is true");
    if (!t.latest_revision && t.revision_name.empty())
      return Error(&item, Field(at, "revisionName"),
                   "required when latestRevision is false (expected exactly one of revisionName "
                   "or latestRevision: true)");
    if (!t.revision_name.empty() && !IsDnsLabel(t.revision_name, true))
      return Error(item.Find("revisionName"), Field(at, "revisionName"),
                   StrCat("\"", t.revision_name, "\" is invalid: ", kDns1035Rule));
    OSPREY_RETURN_IF_ERROR(ReadInt(item, "percent", at, &t.percent));
    if (t.percent < 0 || t.percent > 100)
      return Error(item.Find("percent"), Field(at, "percent"),
                   StrCat("must be between 0 and 100, got ", t.percent));
    OSPREY_RETURN_IF_ERROR(ReadString(item, "tag", at, &t.tag));
    if (!t.tag.empty()) {
      if (!IsDnsLabel(t.tag, true))
        return Error(item.Find("tag"), Field(at, "tag"),
                     StrCat("\"", t.tag, "\" is invalid: ", kDns1035Rule));
      for (const auto& earlier : ks.traffic)
        if (earlier.tag == t.tag)
          return Error(item.Find("tag"), Field(at, "tag"),
                       StrCat("\"", t.tag, "\" is used by more than one traffic entry"));
    }
    sum += t.percent;
    ks.traffic.push_back(std::move(t));
  }
  if (sum != 100) {
    return Error(traffic, "spec.traffic", StrCat("the percents sum to ", sum, ", want 100"));
  }
  return ks;
}

absl::StatusOr<InferenceService> ParseInferenceService(const Value& doc) {
  InferenceService isvc;
  OSPREY_RETURN_IF_ERROR(ParseMeta(doc, NameRule::kDns1035Label, false, &isvc.meta));
  const Value* spec = doc.Find("spec");
  if (spec == nullptr) return Error(&doc, "spec.predictor", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*spec, "spec"));
  static const FieldSet kSpecFields = {"predictor", "transformer", "explainer"};
  OSPREY_RETURN_IF_ERROR(CheckFields(*spec, "spec", kSpecFields));
  const Value* predictor = spec->Find("predictor");
  if (predictor == nullptr) return Error(spec, "spec.predictor", "required");
  OSPREY_RETURN_IF_ERROR(ParsePredictor(*predictor, "spec.predictor", &isvc.predictor));
  if (const Value* t = spec->Find("transformer"); t != nullptr) {
    Component transformer;
    OSPREY_RETURN_IF_ERROR(ParseTransformer(*t, "spec.transformer", &transformer));
    isvc.transformer = std::move(transformer);
  }
  if (const Value* e = spec->Find("explainer"); e != nullptr) {
    Component explainer;
    OSPREY_RETURN_IF_ERROR(ParseExplainer(*e, "spec.explainer", &explainer));
    isvc.explainer = std::move(explainer);
  }
  return isvc;
}

absl::StatusOr<ServingRuntime> ParseServingRuntime(const Value& doc, bool cluster) {
  ServingRuntime rt;
  rt.cluster = cluster;
  OSPREY_RETURN_IF_ERROR(ParseMeta(doc, NameRule::kDns1123Subdomain, cluster, &rt.meta));
  const Value* spec = doc.Find("spec");
  if (spec == nullptr) return Error(&doc, "spec.containers", "required");
  OSPREY_RETURN_IF_ERROR(ExpectMap(*spec, "spec"));
  OSPREY_RETURN_IF_ERROR(CheckFields(*spec, "spec", RuntimeSpecFields()));

  if (const Value* formats = spec->Find("supportedModelFormats"); formats != nullptr) {
    std::string path = "spec.supportedModelFormats";
    if (formats->kind != Value::Kind::kList) {
      return Error(formats, path, StrCat("expected a list, got ", Describe(*formats)));
    }
    static const FieldSet kFormatFields = {"name", "version", "autoSelect", "priority"};
    for (size_t i = 0; i < formats->list.size(); ++i) {
      const Value& item = formats->list[i];
      std::string at = Index(path, i);
      OSPREY_RETURN_IF_ERROR(ExpectMap(item, at));
      OSPREY_RETURN_IF_ERROR(CheckFields(item, at, kFormatFields));
      SupportedModelFormat f;
      OSPREY_RETURN_IF_ERROR(ReadString(item, "name", at, &f.name));
      if (f.name.empty()) return Error(&item, Field(at, "name"), "required");
      f.name = Lower(f.name);
      OSPREY_RETURN_IF_ERROR(ReadString(item, "version", at, &f.version));
      OSPREY_RETURN_IF_ERROR(ReadBool(item, "autoSelect", at, &f.auto_select));
      OSPREY_RETURN_IF_ERROR(ReadInt(item, "priority", at, &f.priority));
      if (f.priority && *f.priority < 1) {
        return Error(item.Find("priority"), Field(at, "priority"),
                     StrCat("must be >= 1, got ", *f.priority));
      }
      // KServe's webhook: one format name, one priority within a runtime.
      for (const SupportedModelFormat& earlier : rt.formats) {
        if (earlier.name == f.name && earlier.priority != f.priority) {
          auto show = [](const std::optional<int>& p) {
            return p ? StrCat(*p) : std::string("none");
          };
          return Error(&item, Field(at, "priority"),
                       StrCat("model format \"", f.name, "\" is listed with different priorities (",
                              show(earlier.priority), " and ", show(f.priority), ")"));
        }
      }
      rt.formats.push_back(std::move(f));
    }
  }
  OSPREY_RETURN_IF_ERROR(ReadStringList(*spec, "protocolVersions", "spec", &rt.protocol_versions));
  for (size_t i = 0; i < rt.protocol_versions.size(); ++i) {
    const Value* list = spec->Find("protocolVersions");
    OSPREY_RETURN_IF_ERROR(
        CheckProtocol(&list->list[i], Index("spec.protocolVersions", i), rt.protocol_versions[i]));
  }
  OSPREY_RETURN_IF_ERROR(ReadBool(*spec, "multiModel", "spec", &rt.multi_model));
  if (const Value* worker = spec->Find("workerSpec"); worker != nullptr && !worker->is_null()) {
    OSPREY_RETURN_IF_ERROR(ExpectMap(*worker, "spec.workerSpec"));
    rt.multi_node = true;
  }
  OSPREY_RETURN_IF_ERROR(ReadBool(*spec, "disabled", "spec", &rt.disabled));
  if (!HasContainers(*spec)) return Error(spec, "spec.containers", "required");
  OSPREY_RETURN_IF_ERROR(
      ParseContainers(*spec->Find("containers"), "spec.containers", "", &rt.containers));
  return rt;
}

}  // namespace

absl::Status ParseGraphMeta(const Value& doc, ObjectMeta* meta) {
  return ParseMeta(doc, NameRule::kDns1035Label, false, meta);
}

absl::StatusOr<Resource> ParseResource(const Value& doc) {
  if (doc.kind != Value::Kind::kMap) {
    return absl::InvalidArgumentError(
        StrCat("expected an object with apiVersion and kind, got ", Describe(doc)));
  }
  OSPREY_RETURN_IF_ERROR(CheckFields(doc, "", ObjectFields()));
  std::string kind;
  std::string api_version;
  OSPREY_RETURN_IF_ERROR(ReadString(doc, "kind", "", &kind));
  OSPREY_RETURN_IF_ERROR(ReadString(doc, "apiVersion", "", &api_version));
  if (kind.empty()) return Error(&doc, "kind", "required");
  std::string_view want;
  if (kind == "InferenceService") {
    want = kIsvcApiVersion;
  } else if (kind == "ServingRuntime" || kind == "ClusterServingRuntime" ||
             kind == "InferenceGraph" || kind == "TrainedModel") {
    want = kRuntimeApiVersion;
  } else if (kind == "VirtualService" || kind == "Gateway" || kind == "ServiceEntry" ||
             kind == "DestinationRule") {
    if (api_version != "networking.istio.io/v1" && api_version != "networking.istio.io/v1beta1" &&
        api_version != "networking.istio.io/v1alpha3")
      return Error(
          api_version.empty() ? &doc : doc.Find("apiVersion"), "apiVersion",
          StrCat(api_version.empty() ? "required" : StrCat("\"", api_version, "\" is invalid"),
                 " for kind ", kind, ": must be networking.istio.io/v1, v1beta1 or v1alpha3"));
    return ParseIstio(kind, doc);
  } else if (kind == "Service" && api_version == kKnativeApiVersion) {
    want = kKnativeApiVersion;
  } else if (kind == "Service") {
    return Error(doc.Find("apiVersion"), "apiVersion",
                 StrCat("\"", api_version, "\" is invalid for kind Service: must be ",
                        kKnativeApiVersion, " (a Knative Service)"));
  } else {
    return Error(doc.Find("kind"), "kind",
                 StrCat("unknown kind \"", kind,
                        "\": expected InferenceService, ServingRuntime, ClusterServingRuntime, "
                        "InferenceGraph, TrainedModel, Service (serving.knative.dev/v1), "
                        "VirtualService, Gateway, ServiceEntry or DestinationRule "
                        "(networking.istio.io)"));
  }
  if (api_version.empty()) return Error(&doc, "apiVersion", StrCat("required (", want, ")"));
  if (api_version != want) {
    return Error(doc.Find("apiVersion"), "apiVersion",
                 StrCat("\"", api_version, "\" is invalid for kind ", kind, ": must be ", want));
  }
  if (kind == "InferenceService") {
    OSPREY_ASSIGN_OR_RETURN(InferenceService isvc, ParseInferenceService(doc));
    return Resource(std::move(isvc));
  }
  if (kind == "InferenceGraph") {
    OSPREY_ASSIGN_OR_RETURN(InferenceGraph graph, ParseInferenceGraph(doc));
    return Resource(std::move(graph));
  }
  if (kind == "TrainedModel") {
    OSPREY_ASSIGN_OR_RETURN(TrainedModel tm, ParseTrainedModel(doc));
    return Resource(std::move(tm));
  }
  if (kind == "Service") {
    OSPREY_ASSIGN_OR_RETURN(KnativeService ks, ParseKnativeService(doc));
    return Resource(std::move(ks));
  }
  OSPREY_ASSIGN_OR_RETURN(ServingRuntime rt,
                          ParseServingRuntime(doc, kind == "ClusterServingRuntime"));
  return Resource(std::move(rt));
}

}  // namespace internal

absl::StatusOr<std::vector<Resource>> ParseYaml(std::string_view text) {
  OSPREY_ASSIGN_OR_RETURN(std::vector<internal::Value> docs, internal::ParseYamlDocuments(text));
  size_t non_empty = std::count_if(docs.begin(), docs.end(),
                                   [](const internal::Value& d) { return !d.is_null(); });
  std::vector<Resource> out;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (docs[i].is_null()) continue;
    absl::StatusOr<Resource> r = internal::ParseResource(docs[i]);
    if (!r.ok()) {
      if (non_empty <= 1) return r.status();
      return absl::Status(r.status().code(),
                          StrCat("document ", i + 1, ": ", StatusMessage(r.status())));
    }
    out.push_back(*std::move(r));
  }
  return out;
}

absl::StatusOr<Resource> FromJson(std::string_view json) {
  OSPREY_ASSIGN_OR_RETURN(internal::Value doc, internal::ParseJsonValue(json));
  return internal::ParseResource(doc);
}

bool IsIstio(const Resource& r) {
  return std::holds_alternative<VirtualService>(r) || std::holds_alternative<IstioGateway>(r) ||
         std::holds_alternative<ServiceEntry>(r) || std::holds_alternative<DestinationRule>(r);
}

std::string_view KindOf(const Resource& r) {
  if (const auto* rt = std::get_if<ServingRuntime>(&r)) {
    return rt->cluster ? "ClusterServingRuntime" : "ServingRuntime";
  }
  if (std::holds_alternative<InferenceGraph>(r)) return "InferenceGraph";
  if (std::holds_alternative<TrainedModel>(r)) return "TrainedModel";
  if (std::holds_alternative<KnativeService>(r)) return "Service";
  if (std::holds_alternative<VirtualService>(r)) return "VirtualService";
  if (std::holds_alternative<IstioGateway>(r)) return "Gateway";
  if (std::holds_alternative<ServiceEntry>(r)) return "ServiceEntry";
  if (std::holds_alternative<DestinationRule>(r)) return "DestinationRule";
  return "InferenceService";
}

}  // namespace osprey::resources
