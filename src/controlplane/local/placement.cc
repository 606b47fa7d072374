#include "controlplane/local/placement.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>

#include "common/flags.h"
#include "common/strings.h"
#include "controlplane/istio.h"
#include "controlplane/knative.h"
#include "controlplane/model_server.h"

namespace osprey::controlplane {
namespace {

using resources::Container;

const ImageMapping* FindImage(const LocalConfig& config, const std::string& image) {
  if (image.empty()) return nullptr;
  std::string repo = ImageRepository(image);
  for (const auto& m : config.images)
    if (m.image == repo) return &m;
  return nullptr;
}

bool IsPortFlag(std::string_view flag) {
  return flag == "--http_port" || flag == "--http-port" || flag == "--port" ||
         flag == "--rest_port" || flag == "--rest-api-port";
}

bool IsGrpcPortFlag(std::string_view flag) {
  return flag == "--grpc_port" || flag == "--grpc-port";
}

// /mnt/models -> the local model directory, the container's HTTP port flag ->
// the port the supervisor assigns, its gRPC port flag -> the second one.
std::vector<std::string> LocalArgs(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    for (size_t at; (at = a.find("/mnt/models")) != std::string::npos;)
      a.replace(at, 11, "{{.ModelDir}}");
    auto placeholder = [](std::string_view flag) -> const char* {
      return IsPortFlag(flag) ? "{{.Port}}" : IsGrpcPortFlag(flag) ? "{{.GrpcPort}}" : nullptr;
    };
    if (size_t eq = a.find('='); eq != std::string::npos && placeholder(a.substr(0, eq))) {
      a = StrCat(a.substr(0, eq), "=", placeholder(a.substr(0, eq)));
    } else if (placeholder(a) != nullptr && i + 1 < args.size()) {
      out.push_back(a);
      out.push_back(placeholder(a));
      ++i;
      continue;
    }
    out.push_back(std::move(a));
  }
  return out;
}

// The value of `--flag value` or `--flag=value` in args ("" when absent).
std::string FlagValue(const std::vector<std::string>& args, std::string_view flag) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == flag && i + 1 < args.size()) return args[i + 1];
    if (args[i].size() > flag.size() && args[i].starts_with(flag) && args[i][flag.size()] == '=')
      return args[i].substr(flag.size() + 1);
  }
  return "";
}

// A transformer's or explainer's link to its predictor, and its own gRPC
// server off, on this machine (PlaceLocally).
void LocalizeComponentArgs(const RevisionSpec& rev, const LocalConfig& config,
                           std::vector<std::string>* argv) {
  const std::string cluster_host = StrCat(rev.isvc, "-predictor.", rev.namespace_);
  const bool grpc = FlagValue(*argv, "--protocol") == "grpc-v2" ||
                    FlagValue(*argv, "--predictor_protocol") == "grpc-v2";
  const std::string local_host = grpc && config.predictor_grpc_port != 0
                                     ? StrCat("127.0.0.1:", config.predictor_grpc_port)
                                     : StrCat("127.0.0.1:", config.gateway_port, "/serving/",
                                              rev.namespace_, "/", rev.isvc, "-predictor");
  for (size_t i = 0; i < argv->size(); ++i) {
    std::string& a = (*argv)[i];
    if (a == "--predictor_host" && i + 1 < argv->size() && (*argv)[i + 1] == cluster_host)
      (*argv)[i + 1] = local_host;
    else if (a == StrCat("--predictor_host=", cluster_host))
      a = StrCat("--predictor_host=", local_host);
  }
  if (FlagValue(*argv, "--enable_grpc").empty() && FlagValue(*argv, "--grpc_port").empty())
    argv->push_back("--enable_grpc=false");
}

void Fail(LocalCommand* local, std::string reason, std::string message) {
  local->argv.clear();
  local->failure_reason = std::move(reason);
  local->failure_message = std::move(message);
}

// Where `osprey serve` listens and finds its model in a local replica:
// loopback only (clients come through the gateway), the supervisor's ports,
// sockets and model directory.
ServeLayout LocalServeLayout(const LocalConfig& config) {
  ServeLayout layout;
  layout.binary = config.osprey_binary;
  layout.model_dir = "{{.ModelDir}}";
  layout.http_address = "127.0.0.1";
  layout.http_port = "{{.Port}}";
  layout.extra = {"--grpc-socket",   "{{.GrpcSocket}}", "--http-socket",
                  "{{.HttpSocket}}", "--link-socket",   "{{.LinkSocket}}"};
  return layout;
}

// argv of `osprey serve` for the model of `rev`, or a failure.
void OspreyServeCommand(const RevisionSpec& rev, const LocalConfig& config, LocalCommand* local) {
  const ServeFormat* format = FindServeFormat(rev.model_format);
  if (format == nullptr) {
    Fail(local, "NoSupportingRuntime",
         StrCat("model format ", rev.model_format, " has no Osprey backend on this machine"));
    return;
  }
  if (!format->unsupported.empty()) {
    Fail(local, "NoSupportingRuntime", std::string(format->unsupported));
    return;
  }
  local->argv = OspreyServeArgv(rev, *format, LocalServeLayout(config));
  local->health_path = OspreyServeReadyPath(rev);
}

}  // namespace

std::vector<ImageMapping> DefaultImageTable() {
  std::vector<ImageMapping> table;
  for (const std::string& image : ModelServerImages()) {
    ImageMapping m;
    m.image = image;
    m.osprey_serve = true;
    table.push_back(std::move(m));
  }
  return table;
}

std::map<std::string, std::string> LocalFormatNotes() {
  std::map<std::string, std::string> notes;
  for (const auto& f : ServeFormats())
    if (!f.unsupported.empty()) notes.emplace(f.format, f.unsupported);
  return notes;
}

std::vector<std::string> LocalFormatBackends() {
  std::vector<std::string> out;
  for (const auto& f : ServeFormats())
    if (!f.backend.empty()) out.emplace_back(f.backend);
  return out;
}

namespace {

// A CPU quantity in cores ("500m", "2", "1.5"); nullopt when it is not one.
std::optional<double> ParseCpu(std::string_view text) {
  double scale = 1;
  if (text.ends_with("m")) {
    scale = 0.001;
    text.remove_suffix(1);
  }
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < 0)
    return std::nullopt;
  return v * scale;
}

// The value of `e`'s valueFrom for a replica of `rev` (placement.h); nullopt
// for an optional reference left unset.
absl::StatusOr<std::optional<std::string>> ResolveValueFrom(const RevisionSpec& rev,
                                                            const resources::EnvVar& e,
                                                            const LocalConfig& config) {
  rapidjson::Document d;
  d.Parse(e.value_from.data(), e.value_from.size());
  if (d.HasParseError() || !d.IsObject() || d.MemberCount() != 1)
    return absl::InvalidArgumentError(StrCat("env ", e.name, ": valueFrom is not readable"));
  const auto& [kind_value, ref] = *d.MemberBegin();
  const std::string kind = kind_value.GetString();
  auto text = [&](const char* key) -> std::string {
    return ref.IsObject() && ref.HasMember(key) && ref[key].IsString() ? ref[key].GetString()
                                                                       : std::string();
  };
  if (kind == "fieldRef") {
    const std::string path = text("fieldPath");
    if (path == "metadata.name") return StrCat(rev.name, "-deployment-{{.Port}}");
    if (path == "metadata.uid") {  // stable per revision and replica port
      const uint64_t h = std::hash<std::string>()(StrCat(rev.namespace_, "/", rev.name));
      char uid[64];
      std::snprintf(uid, sizeof(uid), "%08x-%04x-%04x-%04x-%012llx", unsigned(h >> 32),
                    unsigned(h >> 16) & 0xffff, unsigned(h) & 0xffff, 0x8000u,
                    static_cast<unsigned long long>(h & 0xffffffffffffull));
      return StrCat(uid, "-{{.Port}}");
    }
    if (path == "metadata.namespace") return rev.namespace_;
    if (path == "status.podIP" || path == "status.hostIP" || path == "status.podIPs" ||
        path == "status.hostIPs")
      return std::string("127.0.0.1");
    if (path == "spec.nodeName") return config.node_name;
    if (path == "spec.serviceAccountName") return std::string("default");
    for (const char* map : {"metadata.labels", "metadata.annotations"}) {
      const std::string prefix = StrCat(map, "['");
      if (!path.starts_with(prefix) || !path.ends_with("']")) continue;
      const std::string key = path.substr(prefix.size(), path.size() - prefix.size() - 2);
      const std::optional<resources::Component> c = RevisionComponent(rev);
      const bool labels = map == std::string_view("metadata.labels");
      std::map<std::string, std::string> values =
          labels ? RevisionPodLabels(rev, c ? &*c : nullptr)
                 : (c ? c->annotations : std::map<std::string, std::string>());
      auto it = values.find(key);
      return it == values.end() ? std::string() : it->second;
    }
    return absl::InvalidArgumentError(
        StrCat("env ", e.name, ": valueFrom.fieldRef.fieldPath \"", path,
               "\" is not one a local replica has (metadata.name, metadata.namespace, "
               "metadata.uid, metadata.labels['k'], metadata.annotations['k'], status.podIP, "
               "status.hostIP, spec.nodeName, spec.serviceAccountName)"));
  }
  if (kind == "resourceFieldRef") {
    const std::string resource = text("resource");
    const size_t dot = resource.find('.');
    const std::string which = resource.substr(0, dot);  // limits | requests
    const std::string name = dot == std::string::npos ? "" : resource.substr(dot + 1);
    if ((which != "limits" && which != "requests") ||
        (name != "cpu" && name != "memory" && name != "ephemeral-storage"))
      return absl::InvalidArgumentError(
          StrCat("env ", e.name, ": valueFrom.resourceFieldRef.resource \"", resource,
                 "\" is invalid: limits or requests of cpu, memory or ephemeral-storage"));
    rapidjson::Document res;
    res.Parse(rev.container.resources_json.data(), rev.container.resources_json.size());
    auto given = [&](const char* block) -> std::string {
      if (res.HasParseError() || !res.IsObject() || !res.HasMember(block) ||
          !res[block].IsObject() || !res[block].HasMember(name.c_str()))
        return "";
      const auto& v = res[block][name.c_str()];
      return v.IsString() ? v.GetString() : v.IsNumber() ? StrCat(v.GetDouble()) : "";
    };
    // A request not given is the limit (else 0); a limit not given is the
    // machine's (a node's allocatable), as the kubelet has it.
    const bool cpu = name == "cpu";
    const uint64_t machine = cpu                ? uint64_t(config.node_cpus) * 1000
                             : name == "memory" ? config.node_memory_bytes
                                                : config.node_ephemeral_bytes;
    std::string quantity = which == "requests" ? given("requests") : "";
    if (quantity.empty()) quantity = given("limits");
    std::string divisor = text("divisor");
    if (divisor.empty()) divisor = "1";
    // In millicores for cpu, bytes otherwise; divided rounding up.
    uint64_t amount = 0, unit = 0;
    if (cpu) {
      if (divisor != "1" && divisor != "1m")
        return absl::InvalidArgumentError(
            StrCat("env ", e.name, ": cpu divisor \"", divisor, "\" is invalid: 1m or 1"));
      unit = divisor == "1m" ? 1 : 1000;
      if (quantity.empty()) {
        amount = which == "requests" ? 0 : machine;
      } else if (std::optional<double> q = ParseCpu(quantity)) {
        amount = static_cast<uint64_t>(std::ceil(*q * 1000 - 1e-9));
      } else {
        return absl::InvalidArgumentError(
            StrCat("env ", e.name, ": cpu quantity \"", quantity, "\" is invalid"));
      }
    } else {
      static const std::set<std::string_view> kDivisors = {
          "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"};
      absl::StatusOr<uint64_t> u = ParseByteSize(divisor);
      if (!kDivisors.contains(divisor) || !u.ok())
        return absl::InvalidArgumentError(
            StrCat("env ", e.name, ": divisor \"", divisor,
                   "\" is invalid: 1, 1k, 1M, 1G, 1Ki, 1Mi, 1Gi, ..."));
      unit = *u;
      if (quantity.empty()) {
        amount = which == "requests" ? 0 : machine;
      } else if (absl::StatusOr<uint64_t> q = ParseByteSize(quantity); q.ok()) {
        amount = *q;
      } else {
        return absl::InvalidArgumentError(
            StrCat("env ", e.name, ": quantity \"", quantity, "\" is invalid"));
      }
    }
    return StrCat((amount + unit - 1) / unit);
  }
  // configMapKeyRef, secretKeyRef
  const bool optional = ref.IsObject() && ref.HasMember("optional") && ref["optional"].IsBool() &&
                        ref["optional"].GetBool();
  if (optional) return std::optional<std::string>();
  return absl::FailedPreconditionError(
      StrCat("env ", e.name, ": ", kind == "secretKeyRef" ? "secret" : "configmap", " \"",
             text("name"), "\" (key ", text("key"), ") cannot be read here: `osprey up` has no ",
             kind == "secretKeyRef" ? "Secrets" : "ConfigMaps",
             "; give the value, or mark the reference optional"));
}

}  // namespace

LocalCommand PlaceLocally(const RevisionSpec& rev, const LocalConfig& config) {
  LocalCommand local;
  const Container& c = rev.container;
  local.env = ReplicaTraceEnv(rev, config.trace_resource);
  for (const auto& e : c.env) {
    if (!e.value_from.empty()) {
      absl::StatusOr<std::optional<std::string>> v = ResolveValueFrom(rev, e, config);
      if (!v.ok()) {
        Fail(&local, "CreateContainerConfigError", std::string(v.status().message()));
        return local;
      }
      if (v->has_value()) local.env.emplace_back(e.name, std::move(**v));
      continue;
    }
    std::string value = e.value;
    if (value.starts_with("/mnt/models")) value = StrCat("{{.ModelDir}}", value.substr(11));
    local.env.emplace_back(e.name, std::move(value));
  }
  // A Knative Service's container runs as written: its command (or its
  // image's), Knative's K_* variables, and its readiness probe, else a TCP
  // connect (Knative's default).
  if (rev.kind == kKnativeServiceKind) {
    local.env.insert(
        local.env.begin(),
        {{"K_SERVICE", rev.isvc}, {"K_CONFIGURATION", rev.isvc}, {"K_REVISION", rev.name}});
    const ImageMapping* m = FindImage(config, c.image);
    if (!c.command.empty()) {
      local.argv = LocalArgs(c.command);
    } else if (m != nullptr && !m->osprey_serve) {
      local.argv = m->command;
    } else {
      Fail(&local, "RevisionFailed",
           StrCat("container ", c.name, ": image ", c.image,
                  " cannot run on this machine: it has no local command; give the container a "
                  "command, or map the image in the image table (osprey up --image-map)"));
      return local;
    }
    for (auto& a : LocalArgs(c.args)) local.argv.push_back(std::move(a));
    if (c.probe == Container::Probe::kHttpGet) local.health_path = c.probe_path;
    return local;
  }
  // KServe's ART explainer is Osprey's own (python_backend.h), its predictor
  // the one on this machine.
  if (ServesArtExplainer(rev) && c.command.empty()) {
    RevisionSpec explainer = rev;
    LocalizeComponentArgs(rev, config, &explainer.container.args);
    local.argv = ArtExplainerArgv(explainer, LocalServeLayout(config));
    local.health_path = OspreyServeReadyPath(rev);
    return local;
  }
  std::vector<std::string> args = LocalArgs(c.args);
  // A model server image runs as `osprey serve` whatever its in-image command
  // (e.g. /usr/bin/tensorflow_model_server); any other container runs its
  // own command, else the image table's.
  const ImageMapping* m = FindImage(config, c.image);
  const std::string owner =
      rev.runtime.empty() ? StrCat("container ", c.name) : StrCat("runtime ", rev.runtime);
  if (!c.command.empty() && (m == nullptr || !m->osprey_serve)) {
    local.argv = LocalArgs(c.command);
    local.argv.insert(local.argv.end(), args.begin(), args.end());
  } else if (m != nullptr) {
    if (m->osprey_serve) {
      if (rev.model_format.empty()) {
        Fail(&local, "RuntimeNotRecognized",
             StrCat(owner, ": image ", c.image,
                    " is a model server image; give the model's format with the model form "
                    "(spec.predictor.model.modelFormat.name)"));
        return local;
      }
      OspreyServeCommand(rev, config, &local);
      return local;
    }
    local.argv = m->command;
    local.argv.insert(local.argv.end(), args.begin(), args.end());
  } else {
    Fail(&local, "RuntimeNotRecognized",
         StrCat(owner, ": image ", c.image,
                " cannot run on this machine: it has no local command; give the container a "
                "command, or map the image in the image table (osprey up --image-map)"));
    return local;
  }
  // KServe's model server in a predictor's own container (its args name the
  // model, --model_name) listens where its flags say, 8080 and 8081 unless
  // told: it is told the replica's ports instead. A container that declares
  // gRPC (an h2c port) is given its gRPC port the same way.
  const auto has_flag = [&](auto&& is) {
    return std::any_of(local.argv.begin() + 1, local.argv.end(), [&](const std::string& a) {
      return is(std::string_view(a).substr(0, a.find('=')));
    });
  };
  const bool model_server = rev.component == "predictor" &&
                            has_flag([](std::string_view f) { return f == "--model_name"; });
  if (model_server && !has_flag(IsPortFlag)) local.argv.push_back("--http_port={{.Port}}");
  if ((model_server || resources::GrpcContainerPort(c) != 0) && !has_flag(IsGrpcPortFlag))
    local.argv.push_back("--grpc_port={{.GrpcPort}}");
  if (rev.component != "predictor") LocalizeComponentArgs(rev, config, &local.argv);
  // The container's own readinessProbe when it has one that runs here; else
  // the model's readiness route of its protocol.
  if (c.probe == Container::Probe::kHttpGet) {
    local.health_path = c.probe_path;
  } else if (c.probe == Container::Probe::kTcpSocket) {
    local.health_path.clear();  // the supervisor connects instead
  } else {
    local.health_path = rev.protocol == "v2" || rev.protocol == "grpc-v2"
                            ? StrCat("/v2/models/", ServedModelName(rev), "/ready")
                            : StrCat("/v1/models/", ServedModelName(rev));
  }
  return local;
}

absl::Status LoadImageMap(const std::string& path, LocalConfig* config) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(StrCat("image map ", path, " cannot be read"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  rapidjson::Document d;
  if (d.Parse(text.data(), text.size()).HasParseError() || !d.IsObject())
    return absl::InvalidArgumentError(
        StrCat("image map ", path, ": expected a JSON object {\"image\": [\"command\", ...]}"));
  std::vector<ImageMapping> added;
  for (const auto& m : d.GetObject()) {
    ImageMapping mapping;
    mapping.image = m.name.GetString();
    if (!m.value.IsArray() || m.value.Empty())
      return absl::InvalidArgumentError(StrCat("image map ", path, ": ", mapping.image,
                                               ": expected a non-empty array of strings"));
    for (const auto& a : m.value.GetArray()) {
      if (!a.IsString())
        return absl::InvalidArgumentError(
            StrCat("image map ", path, ": ", mapping.image, ": every element must be a string"));
      mapping.command.emplace_back(a.GetString());
    }
    if (mapping.command.size() == 1 && mapping.command[0] == "osprey-serve") {
      mapping.command.clear();
      mapping.osprey_serve = true;
    }
    added.push_back(std::move(mapping));
  }
  config->images.insert(config->images.begin(), added.begin(), added.end());
  return absl::OkStatus();
}

}  // namespace osprey::controlplane
