#include "controlplane/local/api.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <vector>

#include "common/json_dom.h"
#include "common/json_writer.h"
#include "common/prometheus.h"
#include "common/rfc3339.h"
#include "controlplane/local/kube_api.h"
#include "net/status.h"
#include "resources/kinds.h"
#include "resources/resources.h"

namespace osprey::controlplane {
namespace {

std::string JsonString(std::string_view s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
}

HttpResponse Json(std::string body, int status = 200) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > pos) parts.push_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return parts;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(
          static_cast<char>(std::strtol(std::string(s.substr(i + 1, 2)).c_str(), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> Query(std::string_view q) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos < q.size()) {
    size_t amp = q.find('&', pos);
    if (amp == std::string_view::npos) amp = q.size();
    std::string_view kv = q.substr(pos, amp - pos);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos)
      out[PercentDecode(kv)] = "";
    else
      out[PercentDecode(kv.substr(0, eq))] = PercentDecode(kv.substr(eq + 1));
    pos = amp + 1;
  }
  return out;
}

// The field manager of a write: the fieldManager asked, else the client's
// name (its User-Agent up to the first "/"), as Kubernetes derives it.
std::string FieldManager(const HttpRequest& req, std::map<std::string, std::string>& params) {
  if (const std::string& m = params["fieldManager"]; !m.empty()) return m.substr(0, 128);
  std::string_view agent = FindHeader(req.headers, "User-Agent");
  agent = agent.substr(0, std::min(agent.find('/'), size_t{128}));
  return agent.empty() ? "unknown" : std::string(agent);
}

// An object's metadata.creationTimestamp and metadata.finalizers.
std::string CreatedOf(std::string_view json) {
  rapidjson::Document d;
  d.Parse(json.data(), json.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("metadata")) return "";
  return json::GetString(d["metadata"], "creationTimestamp");
}

std::vector<std::string> FinalizersOf(std::string_view json) {
  rapidjson::Document d;
  d.Parse(json.data(), json.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("metadata")) return {};
  return json::GetStrings(d["metadata"], "finalizers");
}

// The metadata of an object's JSON (an empty object when it has none).
rapidjson::Document ParsedMeta(std::string_view json) {
  rapidjson::Document d, meta;
  meta.SetObject();
  d.Parse(json.data(), json.size());
  if (!d.HasParseError() && d.IsObject() && d.HasMember("metadata") && d["metadata"].IsObject())
    meta.CopyFrom(d["metadata"], meta.GetAllocator());
  return meta;
}

// `json` with metadata.`key` set to `value` ("": left out).
std::string WithMetaField(std::string_view json, const char* key, std::string_view value) {
  rapidjson::Document d;
  d.Parse(json.data(), json.size());
  if (d.HasParseError() || !d.IsObject()) return std::string(json);
  auto& a = d.GetAllocator();
  if (!d.HasMember("metadata") || !d["metadata"].IsObject()) {
    d.RemoveMember("metadata");
    d.AddMember("metadata", rapidjson::Value(rapidjson::kObjectType), a);
  }
  auto& meta = d["metadata"];
  meta.RemoveMember(key);
  if (!value.empty())
    meta.AddMember(
        rapidjson::Value(key, a),
        rapidjson::Value(value.data(), static_cast<rapidjson::SizeType>(value.size()), a), a);
  return json::ToText(d);
}

// `json` with metadata.finalizers as given (none: left out).
std::string WithFinalizers(std::string_view json, const std::vector<std::string>& finalizers) {
  rapidjson::Document d;
  d.Parse(json.data(), json.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("metadata") || !d["metadata"].IsObject())
    return std::string(json);
  auto& meta = d["metadata"];
  meta.RemoveMember("finalizers");
  if (!finalizers.empty()) {
    rapidjson::Value list(rapidjson::kArrayType);
    for (const auto& f : finalizers)
      list.PushBack(rapidjson::Value(f.c_str(), d.GetAllocator()), d.GetAllocator());
    meta.AddMember("finalizers", list, d.GetAllocator());
  }
  return json::ToText(d);
}

// Prometheus HTTP service discovery: the platform itself (this API, whose
// /metrics has the gateway's series) and every ready replica, with the
// labels of its revision.
std::string PrometheusTargets(const RouteTable& table, std::string_view api_host) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray();
  if (!api_host.empty()) {
    w.BeginObject().Key("targets").BeginArray().String(api_host).EndArray();
    w.Key("labels").BeginObject().Key("osprey_role").String("platform").EndObject();
    w.EndObject();
  }
  for (const auto& r : table.revisions) {
    // A ServiceEntry's endpoints are someone else's servers, not replicas.
    if (r.ports.empty() || r.key.find("/serviceentry:") != std::string::npos) continue;
    w.BeginObject().Key("targets").BeginArray();
    for (size_t i = 0; i < r.ports.size(); ++i) {
      const std::string host = i < r.hosts.size() && !r.hosts[i].empty() ? r.hosts[i] : "127.0.0.1";
      w.String(StrCat(host, ":", r.ports[i]));
    }
    w.EndArray();
    const auto [service, component] = gateway::RevisionService(r.revision);
    w.Key("labels").BeginObject();
    w.Key("osprey_role").String("replica");
    w.Key("namespace").String(r.key.substr(0, r.key.find('/')));
    w.Key("inferenceservice").String(service);
    w.Key("component").String(component);
    w.Key("revision").String(r.revision);
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  return out;
}

// The control plane's own series: ready replicas per revision.
void AppendPlatformMetrics(const RouteTable& table, std::string* out) {
  StrAppend(out,
            "# HELP osprey_revision_ready_replicas Ready replicas of a revision, as routed.\n"
            "# TYPE osprey_revision_ready_replicas gauge\n");
  for (const auto& r : table.revisions) {
    if (r.key.find("/serviceentry:") != std::string::npos) continue;
    const auto [service, component] = gateway::RevisionService(r.revision);
    StrAppend(out, "osprey_revision_ready_replicas{namespace=\"",
              prometheus::LabelValue(r.key.substr(0, r.key.find('/'))), "\",inferenceservice=\"",
              prometheus::LabelValue(service), "\",component=\"", prometheus::LabelValue(component),
              "\",revision=\"", prometheus::LabelValue(r.revision), "\"} ", r.ports.size(), "\n");
  }
}

}  // namespace

ApiHandler::ApiHandler(Controller* controller, std::string token,
                       std::function<std::string()> metrics, WatchHub::Options watch_options)
    : controller_(controller),
      token_(std::move(token)),
      metrics_(std::move(metrics)),
      meta_(controller->store()),
      hub_([this](const resources::KindInfo& k) { return Objects(k); }, watch_options) {}

absl::StatusOr<std::vector<ObjectView>> ApiHandler::Objects(const resources::KindInfo& k) {
  if (&k == &kube_api::CorePodKind()) {
    OSPREY_ASSIGN_OR_RETURN(auto revisions, controller_->List("revisions", ""));
    return kube_api::CorePods(revisions);
  }
  if (&k == &kube_api::CoreEventKind()) {
    OSPREY_ASSIGN_OR_RETURN(auto events, controller_->List("events", ""));
    return kube_api::CoreEvents(
        events, [this](const resources::KindInfo& kind, std::string_view ns,
                       std::string_view name) { return meta_.Uid(kind.plural, ns, name); });
  }
  OSPREY_ASSIGN_OR_RETURN(auto objects, controller_->Objects(k.plural));
  meta_.Decorate(k.plural, &objects);
  std::vector<ObjectView> out;
  out.reserve(objects.size());
  for (auto& json : objects) {
    OSPREY_ASSIGN_OR_RETURN(auto view, ObjectViewOf(std::move(json)));
    out.push_back(std::move(view));
  }
  return out;
}

ApiHandler::~ApiHandler() { StopWatches(); }

void LogFollowers::Follow(std::string path, uint64_t offset, bool follow, uint64_t limit,
                          std::shared_ptr<HttpStream> stream) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_) {
    stream->Close();
    return;
  }
  // Not followed: the file as it is now, whatever it gains meanwhile.
  std::error_code ec;
  uint64_t end = follow ? UINT64_MAX : std::filesystem::file_size(path, ec);
  if (ec) end = 0;
  // At most `limit` bytes, followed or not.
  const bool limited = limit != UINT64_MAX && end - std::min(end, offset) > limit;
  if (limited) end = offset + limit;
  followers_.push_back({std::move(path), offset, end, follow, std::move(stream)});
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  cv_.notify_all();
}

void LogFollowers::Stop() {
  std::thread thread;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    for (auto& f : followers_) f.stream->Close();
    followers_.clear();
    thread = std::move(thread_);
  }
  cv_.notify_all();
  if (thread.joinable()) thread.join();
}

void LogFollowers::Run() {
  constexpr uint64_t kChunk = 1 << 20;  // per follower and pass
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopped_) {
    // Files are read outside the lock (Follow is called on the API's loop).
    std::vector<Follower> work = followers_;
    lock.unlock();
    bool more = false;  // someone has more to send now: no pause
    for (auto& f : work) {
      if (!f.stream->open()) continue;
      // A client that reads slowly gets the file as fast as it takes it.
      if (f.stream->pending_bytes() >= kChunk) {
        more = true;
        continue;
      }
      std::ifstream in(f.path, std::ios::binary);
      in.seekg(0, std::ios::end);
      const auto size =
          std::min(f.end, static_cast<uint64_t>(std::max<std::streamoff>(0, in.tellg())));
      if (size < f.offset) f.offset = 0;  // truncated: from its start again
      if (size > f.offset) {
        std::string chunk(std::min(size - f.offset, kChunk), '\0');
        in.seekg(static_cast<std::streamoff>(f.offset));
        in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        chunk.resize(static_cast<size_t>(in.gcount()));
        f.offset += chunk.size();
        f.stream->Write(chunk);
        more = more || f.offset < size;
      }
      // Not followed: the answer ends once the file as it was is sent.
      // Nor one past its byte limit.
      if ((!f.follow && f.offset >= size) || f.offset >= f.end) f.stream->Close();
    }
    lock.lock();
    for (const auto& w : work)  // their progress, for those still here
      for (auto& f : followers_)
        if (f.stream == w.stream) f.offset = w.offset;
    followers_.erase(std::remove_if(followers_.begin(), followers_.end(),
                                    [](const Follower& f) { return !f.stream->open(); }),
                     followers_.end());
    if (!more) cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stopped_; });
  }
}

void ApiHandler::Handle(const HttpRequest& request, HttpDone done) { done(Route(request)); }

HttpResponse ApiHandler::Route(const HttpRequest& req) {
  std::string_view target = req.target;
  std::string_view query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    query = target.substr(q + 1);
    target = target.substr(0, q);
  }
  auto params = Query(query);
  std::vector<std::string_view> p = Split(target);
  const bool kube = !p.empty() && (p[0] == "apis" || p[0] == "api" || p[0] == "openapi");
  // Open to anyone: health, the version, Prometheus' scrape and discovery.
  const bool open = (p.size() == 1 && (p[0] == "healthz" || p[0] == "livez" || p[0] == "readyz" ||
                                       p[0] == "version" || p[0] == "metrics")) ||
                    (p.size() == 4 && p[0] == "osprey" && p[2] == "prometheus");
  if (!open) {
    std::string_view auth = FindHeader(req.headers, "Authorization");
    absl::Status refused;
    if (auth.empty())
      refused = absl::UnauthenticatedError(
          "this API needs a bearer token (Authorization: Bearer ...); the CLI reads it from the "
          "data directory's token file, kubectl from DATA_DIR/kubeconfig");
    else if (!kube_api::SameSecret(auth, StrCat("Bearer ", token_)))
      refused = absl::UnauthenticatedError("bearer token refused");
    if (!refused.ok())
      return kube ? KubeError(refused) : JsonErrorResponse(401, std::string(refused.message()));
  }
  if (p.size() == 1 && (p[0] == "healthz" || p[0] == "livez" || p[0] == "readyz"))
    return Json("{\"status\":\"ok\"}");
  if (p.size() == 1 && p[0] == "version") return Json(kube_api::VersionJson());
  if (p.size() == 1 && p[0] == "metrics" && metrics_) {
    HttpResponse r;
    r.body = metrics_();
    AppendPlatformMetrics(*controller_->Routes(), &r.body);
    r.body += controller_->CostMetrics();
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return r;
  }
  const std::string body = req.body ? *req.body : std::string();

  // /osprey/v1/...
  if (p.size() >= 2 && p[0] == "osprey" && p[1] == "v1") {
    if (p.size() == 3 && p[2] == "apply") {
      if (req.method != "POST") return JsonErrorResponse(405, "apply takes POST");
      auto results = controller_->Apply(body, params["namespace"], params["baseDir"]);
      if (!results.ok()) return ErrorResponse(results.status());
      std::string out = "{\"results\":[";
      for (size_t i = 0; i < results->size(); ++i) {
        const auto& r = (*results)[i];
        StrAppend(&out, i ? "," : "", "{\"kind\":", JsonString(r.kind),
                  ",\"namespace\":", JsonString(r.namespace_), ",\"name\":", JsonString(r.name),
                  ",\"action\":", JsonString(r.action), "}");
      }
      out += "]}";
      return Json(std::move(out));
    }
    std::string ns;
    size_t i = 2;
    if (p.size() >= 4 && p[2] == "namespaces") {
      ns = std::string(p[3]);
      i = 4;
    }
    if (p.size() == 4 && p[2] == "prometheus" && p[3] == "targets")
      return Json(PrometheusTargets(*controller_->Routes(), FindHeader(req.headers, "Host")));
    if (p.size() == i + 1 && p[i] == "events") {
      auto list = controller_->List("events", ns);
      return list.ok() ? Json(std::move(*list)) : ErrorResponse(list.status());
    }
    if (p.size() == i + 1 && p[i] == "cost") {
      auto cost = controller_->Cost(ns, "");
      return cost.ok() ? Json(std::move(*cost)) : ErrorResponse(cost.status());
    }
    if (p.size() == i + 3 && p[i] == "inferenceservices" && p[i + 2] == "cost") {
      auto cost = controller_->Cost(ns.empty() ? "default" : ns, std::string(p[i + 1]));
      return cost.ok() ? Json(std::move(*cost)) : ErrorResponse(cost.status());
    }
    if (p.size() == i + 3 && p[i] == "inferenceservices" && p[i + 2] == "drift") {
      auto drift = controller_->Drift(ns.empty() ? "default" : ns, std::string(p[i + 1]));
      return drift.ok() ? Json(std::move(*drift)) : ErrorResponse(drift.status());
    }
    if (p.size() == i + 3 && p[i] == "inferenceservices" && p[i + 2] == "logs") {
      int tail = params.count("tail") ? std::atoi(params["tail"].c_str()) : 200;
      auto logs = controller_->Logs(ns.empty() ? "default" : ns, std::string(p[i + 1]),
                                    params["revision"], tail <= 0 ? 200 : tail);
      if (!logs.ok()) return ErrorResponse(logs.status());
      HttpResponse r;
      r.body = std::move(*logs);
      r.content_type = "text/plain; charset=utf-8";
      return r;
    }
    return JsonErrorResponse(404, StrCat("no API route for ", target));
  }

  if (p.size() == 2 && p[0] == "openapi" && p[1] == "v3") return Json(kube_api::OpenApiRootJson());
  if (p.size() == 2 && p[0] == "openapi" && p[1] == "v2") return Json(kube_api::OpenApiV2Json());
  if (p.size() == 5 && p[0] == "openapi" && p[1] == "v3" && p[2] == "apis")
    return KubeJson(kube_api::OpenApiGroupVersionJson(p[3], p[4]));
  // Core Events: the platform's events, as kubectl get events and describe read them.
  if (p.size() >= 3 && p[0] == "api" && p[1] == "v1" && p.back() != "v1" && req.method == "GET") {
    std::string ns;
    size_t at = 2;
    if (p.size() >= 5 && p[2] == "namespaces") {
      ns = std::string(p[3]);
      at = 4;
    }
    if (at < p.size() && p[at] == "events" && at + 2 >= p.size())
      return Read(req, kube_api::CoreEventKind(), ns,
                  at + 1 < p.size() ? std::string(p[at + 1]) : "", params);
    if (at < p.size() && p[at] == "pods" && at + 2 >= p.size())
      return Read(req, kube_api::CorePodKind(), ns, at + 1 < p.size() ? std::string(p[at + 1]) : "",
                  params);
    if (at + 3 == p.size() && p[at] == "pods" && p[at + 2] == "log" && !ns.empty())
      return PodLog(ns, std::string(p[at + 1]), params);
    return KubeError(absl::NotFoundError("the server could not find the requested resource"));
  }
  if (p.size() == 1 && p[0] == "api") return Json(kube_api::CoreVersionsJson());
  if (p.size() == 2 && p[0] == "api" && p[1] == "v1") return Json(kube_api::CoreResourcesJson());
  if (p.size() == 1 && p[0] == "apis") return Json(kube_api::GroupListJson());
  if (p.size() == 2 && p[0] == "apis") return KubeJson(kube_api::GroupJson(p[1]));
  if (p.size() == 3 && p[0] == "apis") return KubeJson(kube_api::ResourceListJson(p[1], p[2]));
  if (kube) return Resource(req, p, params);
  return JsonErrorResponse(404, StrCat("no API route for ", target));
}

HttpResponse ApiHandler::Resource(const HttpRequest& req, const std::vector<std::string_view>& p,
                                  std::map<std::string, std::string>& params) {
  std::string_view target = req.target.substr(0, req.target.find('?'));
  // /apis/{group}/{version}[/namespaces/{ns}]/{kind}[/{name}]
  if (p.size() >= 4 && p[0] == "apis") {
    std::string group(p[1]);
    size_t i = 3;
    std::string ns;
    if (p.size() >= 6 && p[3] == "namespaces") {
      ns = std::string(p[4]);
      i = 5;
    }
    if (i >= p.size()) return JsonErrorResponse(404, StrCat("no API route for ", target));
    std::string kind(p[i]);
    std::string name = i + 1 < p.size() ? std::string(p[i + 1]) : "";
    const resources::KindInfo* k = resources::FindKind(kind);
    // Osprey's own kinds (events) are served under /osprey/v1, not /apis.
    if (k == nullptr || k->plural != kind || k->group != group || k->group == "osprey" ||
        k->version != p[2])
      return KubeError(absl::NotFoundError("the server could not find the requested resource"));
    if (!k->cluster && ns.empty() && !name.empty()) ns = "default";
    // The status subresource: read as the object; the platform writes it.
    if (i + 3 == p.size() && p[i + 2] == "status" && !name.empty()) {
      if (req.method == "GET") return Read(req, *k, ns, name, params);
      HttpResponse r = Json(kube_api::StatusJson(
          405, "MethodNotAllowed",
          StrCat("the status of ", k->plural, " is written by the platform, not through the API"),
          k, name));
      r.status = 405;
      return r;
    }
    if (i + 2 < p.size())
      return KubeError(absl::NotFoundError("the server could not find the requested resource"));
    if (req.method == "GET") return Read(req, *k, ns, name, params);
    std::lock_guard<std::mutex> write(writes_);
    if (req.method == "DELETE" && !name.empty()) return Delete(req, *k, ns, name, params);
    const bool dry_run = params.count("dryRun") > 0;
    if (dry_run && params["dryRun"] != "All") {
      HttpResponse r = Json(kube_api::StatusJson(
          400, "BadRequest", StrCat("dryRun: \"", params["dryRun"], "\": only All is known"), k,
          name));
      r.status = 400;
      return r;
    }
    const bool writes = (req.method == "POST" && name.empty()) ||
                        ((req.method == "PUT" || req.method == "PATCH") && !name.empty());
    if (writes && !k->applied)
      return KubeError(
          absl::UnimplementedError(StrCat(k->plural, " are made by the platform, not written")), k,
          name);
    if (req.method == "PATCH" && !name.empty()) return Patch(req, *k, ns, name, params, dry_run);
    if (writes)
      return Write(
          req.body ? *req.body : std::string(), *k, ns.empty() ? "default" : ns, name,
          {.dry_run = dry_run, .manager = FieldManager(req, params), .applied = std::nullopt});
    return KubeError(absl::UnimplementedError(StrCat(req.method, " is not allowed on ", target)), k,
                     name);
  }
  return KubeError(absl::NotFoundError("the server could not find the requested resource"));
}

// Merge and JSON patches, and server-side apply (which creates an object
// that does not exist).
HttpResponse ApiHandler::Patch(const HttpRequest& req, const resources::KindInfo& k,
                               const std::string& path_ns, const std::string& name,
                               std::map<std::string, std::string>& params, bool dry_run) {
  const std::string ns = path_ns.empty() ? "default" : path_ns;
  const std::string body = req.body ? *req.body : std::string();
  std::string_view type = FindHeader(req.headers, "Content-Type");
  type = type.substr(0, type.find(';'));
  const bool merge = type == "application/merge-patch+json";
  const bool json_patch = type == "application/json-patch+json";
  const bool apply = type == "application/apply-patch+yaml";
  if (!merge && !json_patch && !apply) {
    HttpResponse r = Json(
        kube_api::StatusJson(415, "UnsupportedMediaType",
                             StrCat("the body of the request was in an unknown format (", type,
                                    "); accepted media types include: application/json-patch+json, "
                                    "application/merge-patch+json, application/apply-patch+yaml"),
                             &k, name));
    r.status = 415;
    return r;
  }
  auto current = Current(k, k.cluster ? "" : ns, name);
  if (apply) {
    const std::string manager = params["fieldManager"];
    if (manager.empty()) {
      HttpResponse r = Json(kube_api::StatusJson(
          422, "Invalid",
          "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required "
          "for apply patch",
          &k, name));
      r.status = 422;
      return r;
    }
    auto config = resources::YamlToJson(body);
    if (!config.ok()) return BadRequest(std::string(config.status().message()), &k, name);
    // The configuration names the object of the path (its name left out:
    // the path's).
    std::string named = json::GetString(ParsedMeta(*config), "name");
    if (named.empty()) {
      config = WithMetaField(*config, "name", name);
    } else if (named != name) {
      return BadRequest(StrCat("the name of the object (", named,
                               ") does not match the name on the URL (", name, ")"),
                        &k, name);
    }
    // Only a resourceVersion the configuration gives is a precondition.
    const bool versioned = ParsedMeta(*config).HasMember("resourceVersion");
    const std::string& force = params["force"];
    ApiMetadata::Record record;
    if (current.has_value())
      record = meta_.Get(k.plural, k.cluster ? "" : ns, name, CreatedOf(current->json));
    // An object no manager has written through this API (`osprey apply`):
    // its fields are "before-first-apply"'s, as Kubernetes counts them, so an
    // apply that changes one is a conflict unless forced.
    if (current.has_value() && record.managed.empty())
      if (auto existing = fields::FieldsOf(current->json); existing.ok() && !existing->empty())
        record.managed.push_back({"before-first-apply", "Update", StrCat(k.group, "/", k.version),
                                  Rfc3339Now(), *existing});
    auto applied = fields::Apply(current.has_value() ? current->json : "", *config, record.managed,
                                 manager, force == "true" || force == "1" || force == "True",
                                 StrCat(k.group, "/", k.version), Rfc3339Now());
    if (!applied.ok()) return KubeError(applied.status(), &k, name);
    if (!applied->conflicts.empty()) {
      std::vector<kube_api::StatusCause> causes;
      for (const auto& c : applied->conflicts)
        causes.push_back({"FieldManagerConflict",
                          StrCat("conflict with \"", c.manager, "\" using ", c.api_version),
                          fields::PathString(c.path)});
      HttpResponse r = Json(kube_api::StatusJson(
          409, "Conflict", fields::ConflictMessage(applied->conflicts), &k, name, causes));
      r.status = 409;
      return r;
    }
    if (!versioned) applied->object = WithMetaField(applied->object, "resourceVersion", "");
    return Write(applied->object, k, ns, current.has_value() ? name : "",
                 {.dry_run = dry_run, .manager = manager, .applied = applied->managed});
  }
  if (!current.has_value()) return KubeError(absl::NotFoundError(""), &k, name);
  // A patch naming a resourceVersion applies only to that version.
  if (merge)
    if (auto given = kube_api::ReadBodyMeta(body).resource_version;
        given.has_value() && *given != StrCat(current->resource_version))
      return Conflict(k, name);
  auto patched =
      merge ? kube_api::MergePatch(current->json, body) : kube_api::JsonPatch(current->json, body);
  // A body that is no patch is a bad request; one that does not apply, invalid.
  if (!patched.ok() && std::string(patched.status().message()).starts_with("the patch is not"))
    return BadRequest(std::string(patched.status().message()), &k, name);
  if (!patched.ok()) return KubeError(patched.status(), &k, name);
  return Write(*patched, k, ns, name,
               {.dry_run = dry_run, .manager = FieldManager(req, params), .applied = std::nullopt});
}

// A DELETE: refused when its preconditions do not hold; an object with
// finalizers is marked (deletionTimestamp) and stays until they are gone.
HttpResponse ApiHandler::Delete(const HttpRequest& req, const resources::KindInfo& k,
                                const std::string& ns, const std::string& name,
                                std::map<std::string, std::string>& params) {
  const kube_api::DeleteOptions options =
      kube_api::ReadDeleteOptions(req.body ? *req.body : std::string());
  if (options.dry_run && !params.count("dryRun")) params["dryRun"] = "All";
  const bool dry_run = params.count("dryRun") > 0;
  auto fail = [&](int code, std::string_view reason, std::string_view message) {
    HttpResponse r = Json(kube_api::StatusJson(code, reason, message, &k, name));
    r.status = code;
    return r;
  };
  if (dry_run && params["dryRun"] != "All")
    return fail(400, "BadRequest", StrCat("dryRun: \"", params["dryRun"], "\": only All is known"));
  if (!k.applied)
    return fail(405, "MethodNotAllowed",
                StrCat("cannot delete resources of kind ", k.plural, ": the platform makes them"));
  const std::string policy =
      params.count("propagationPolicy") ? params["propagationPolicy"] : options.propagation_policy;
  if (!policy.empty() && policy != "Background" && policy != "Foreground")
    return fail(422, "Invalid",
                StrCat("propagationPolicy: Unsupported value: \"", policy,
                       "\": supported values: \"Background\", \"Foreground\" (the platform "
                       "removes what an object owns, its revisions and replicas, with it)"));
  const std::string obj_ns = k.cluster ? "" : ns;
  auto current = Current(k, obj_ns, name);
  if (!current.has_value()) return KubeError(absl::NotFoundError(""), &k, name);
  ApiMetadata::Record record = meta_.Get(k.plural, obj_ns, name, CreatedOf(current->json));
  if (options.uid.has_value() && *options.uid != record.uid)
    return fail(409, "Conflict",
                StrCat("Precondition failed: UID in precondition: ", *options.uid,
                       ", UID in object meta: ", record.uid));
  if (options.resource_version.has_value() &&
      *options.resource_version != StrCat(current->resource_version))
    return fail(
        409, "Conflict",
        StrCat("Precondition failed: ResourceVersion in precondition: ", *options.resource_version,
               ", ResourceVersion in object meta: ", current->resource_version));
  if (!record.finalizers.empty()) {
    if (dry_run) return Json(std::move(current->json));
    if (record.deletion_timestamp.empty()) {
      record.deletion_timestamp = Rfc3339Now();
      if (auto st = meta_.Put(k.plural, obj_ns, name, record); !st.ok())
        return KubeError(st, &k, name);
    }
    auto marked = Current(k, obj_ns, name);
    return Json(marked.has_value() ? std::move(marked->json) : std::move(current->json));
  }
  if (!dry_run) {
    auto st = controller_->Delete(k.plural, ns, name);
    if (!st.ok()) return KubeError(st, &k, name);
    (void)meta_.Erase(k.plural, obj_ns, name);
  }
  return Json(kube_api::DeletedJson(k, name, record.uid));
}

// GET of one object, a list, or a watch, through the watch hub (which gives
// every object its resourceVersion).
HttpResponse ApiHandler::Read(const HttpRequest& req, const resources::KindInfo& k,
                              const std::string& ns, const std::string& name,
                              std::map<std::string, std::string>& params) {
  auto bad_request = [&](std::string_view message) {
    HttpResponse r = Json(kube_api::StatusJson(400, "BadRequest", message, &k, name));
    r.status = 400;
    return r;
  };
  auto selector =
      Selector::Parse(params["labelSelector"], params["fieldSelector"],
                      &k == &kube_api::CorePodKind()     ? kube_api::CorePodFields()
                      : &k == &kube_api::CoreEventKind() ? kube_api::CoreEventFields()
                                                         : std::vector<std::string_view>{});
  if (!selector.ok()) return bad_request(std::string(selector.status().message()));
  const bool table = kube_api::WantsTable(FindHeader(req.headers, "Accept"));
  const std::string include = params.count("includeObject") ? params["includeObject"] : "Metadata";
  // As Go's strconv.ParseBool reads a query flag.
  auto flag = [&params](const char* key) {
    const std::string& v = params[key];
    return v == "1" || v == "t" || v == "T" || v == "true" || v == "True" || v == "TRUE";
  };
  if (name.empty() && flag("watch")) {
    WatchHub::WatchRequest w;
    w.kind = &k;
    w.ns = ns;
    w.selector = *std::move(selector);
    if (const std::string& rv = params["resourceVersion"]; !rv.empty()) {
      uint64_t since = 0;
      if (std::from_chars(rv.data(), rv.data() + rv.size(), since).ptr != rv.data() + rv.size())
        return bad_request(StrCat("resourceVersion: \"", rv, "\" is not a version of this API"));
      w.since = since;
    }
    w.bookmarks = flag("allowWatchBookmarks");
    w.send_initial_events = flag("sendInitialEvents");
    if (w.send_initial_events && !w.bookmarks)
      return bad_request("sendInitialEvents needs allowWatchBookmarks=true");
    if (const std::string& t = params["timeoutSeconds"]; !t.empty()) {
      int seconds = std::atoi(t.c_str());
      if (seconds > 0) w.timeout = std::chrono::seconds(seconds);
    }
    const std::string plural(k.plural);
    w.encode = [table, include, plural](const ObjectView& o) {
      if (!table) return o.json;
      auto t = kube_api::TableJson(plural, o.json, include, std::chrono::system_clock::now());
      return t.ok() ? *t : o.json;
    };
    auto stream = std::make_shared<HttpStream>();
    if (auto st = hub_.Watch(std::move(w), stream); !st.ok()) return KubeError(st, &k);
    HttpResponse r;
    r.stream = std::move(stream);
    r.content_type = table ? "application/json;as=Table;v=v1;g=meta.k8s.io" : "application/json";
    return r;
  }
  auto list = hub_.Sync(k);
  if (!list.ok()) return KubeError(list.status(), &k, name);
  std::string json;
  if (!name.empty()) {
    for (const auto& o : list->items)
      if (o->name == name && o->ns == (k.cluster ? "" : ns)) json = o->json;
    if (json.empty()) return KubeError(absl::NotFoundError(""), &k, name);
  } else {
    // Pages in namespace/name order: `continue` is the last key given.
    size_t limit = 0;
    if (const std::string& l = params["limit"]; !l.empty())
      limit = std::strtoul(l.c_str(), nullptr, 10);
    const std::string& after = params["continue"];
    std::vector<std::string_view> items;
    std::string next;
    bool more = false;
    for (const auto& o : list->items) {
      if ((!ns.empty() && o->ns != ns) || !selector->Matches(*o)) continue;
      std::string key = StrCat(o->ns, "/", o->name);
      if (!after.empty() && key <= after) continue;
      if (limit > 0 && items.size() == limit) {
        more = true;
        break;
      }
      items.push_back(o->json);
      next = std::move(key);
    }
    StrAppend(&json, "{\"apiVersion\":\"", k.group, k.group.empty() ? "" : "/", k.version,
              "\",\"kind\":\"", k.kind, "List\",\"metadata\":{\"resourceVersion\":\"",
              list->resource_version, "\"");
    if (more) StrAppend(&json, ",\"continue\":", JsonString(next));
    json += "},\"items\":[";
    for (size_t i = 0; i < items.size(); ++i) StrAppend(&json, i ? "," : "", items[i]);
    json += "]}";
  }
  if (!table) return Json(std::move(json));
  auto t = kube_api::TableJson(k.plural, json, include, std::chrono::system_clock::now());
  return t.ok() ? Json(std::move(*t)) : KubeError(t.status(), &k, name);
}

// kubectl logs: a replica's log file (its last tailLines lines), or, with
// follow, what it writes from then on, streamed until the client goes.
HttpResponse ApiHandler::PodLog(const std::string& ns, const std::string& pod,
                                std::map<std::string, std::string>& params) {
  // Only a pod that exists (a replica of a revision in that namespace) names a file.
  auto replica = kube_api::PodReplica(pod);
  bool exists = false;
  if (auto listed = controller_->List("revisions", ns); listed.ok() && replica.has_value())
    if (auto pods = kube_api::CorePods(*listed); pods.ok())
      for (const auto& p : *pods) exists = exists || (p.name == pod && p.ns == ns);
  std::string path = exists ? controller_->LogFile(ns, replica->first, replica->second) : "";
  std::error_code ec;
  if (path.empty() || !std::filesystem::exists(path, ec)) {
    HttpResponse r = Json(kube_api::StatusJson(
        404, "NotFound", StrCat("pods \"", pod, "\" not found (or it has written nothing yet)")));
    r.status = 404;
    return r;
  }
  // Where the answer starts: the file's start, or its last tailLines lines
  // (found reading back from the end, never the whole file).
  // Replica logs carry no timestamps, and a restarted replica writes on in
  // the same file: what needs either is refused, saying so.
  for (const char* option : {"sinceSeconds", "sinceTime", "timestamps", "previous"}) {
    const std::string& v = params[option];
    if (!v.empty() && v != "false" && v != "0" && v != "False") {
      HttpResponse r = Json(kube_api::StatusJson(
          400, "BadRequest",
          StrCat(option,
                 ": not supported by Osprey's replica logs (their lines carry no time, and a "
                 "restarted replica's output goes on in the same log); use tailLines or "
                 "limitBytes")));
      r.status = 400;
      return r;
    }
  }
  uint64_t limit = UINT64_MAX;
  if (const std::string& l = params["limitBytes"]; !l.empty()) {
    uint64_t n = 0;
    if (std::from_chars(l.data(), l.data() + l.size(), n).ptr != l.data() + l.size() || n == 0) {
      HttpResponse r = Json(kube_api::StatusJson(
          422, "Invalid",
          StrCat("limitBytes: Invalid value: \"", l, "\": must be greater than 0")));
      r.status = 422;
      return r;
    }
    limit = n;
  }
  uint64_t start = 0;
  if (params.count("tailLines"))
    start = kube_api::TailOffset(path, std::atoi(params["tailLines"].c_str()));
  const std::string& follow = params["follow"];
  // Sent in pieces by the followers' thread, not read here on the API's loop.
  auto stream = std::make_shared<HttpStream>();
  followers_.Follow(path, start, follow == "true" || follow == "1" || follow == "True", limit,
                    stream);
  HttpResponse r;
  r.content_type = "text/plain";
  r.stream = std::move(stream);
  return r;
}

// POST (create) and PUT (update) of one object whose kind, name and
// namespace are checked against the path before anything is applied.
HttpResponse ApiHandler::Write(const std::string& sent, const resources::KindInfo& k,
                               const std::string& ns, const std::string& path_name,
                               const WriteOptions& options) {
  const kube_api::BodyMeta given = kube_api::ReadBodyMeta(sent);
  // What the server owns (status, uid, resourceVersion, ...) as a JSON body
  // read back from the API carries it, is left out (it is not the spec).
  std::string body = sent;
  if (auto stripped = kube_api::MergePatch(sent, "{}"); stripped.ok()) body = *std::move(stripped);
  auto parsed = resources::ParseYaml(body);
  if (!parsed.ok()) return KubeError(parsed.status(), &k, path_name);
  if (parsed->size() != 1)
    return KubeError(absl::InvalidArgumentError("the body must hold exactly one object"), &k,
                     path_name);
  const resources::Resource& object = parsed->front();
  const auto& meta =
      std::visit([](const auto& o) -> const resources::ObjectMeta& { return o.meta; }, object);
  if (resources::KindOf(object) != k.kind)
    return KubeError(
        absl::InvalidArgumentError(StrCat("the object is a ", resources::KindOf(object), ", not a ",
                                          k.kind, " as the path says")),
        &k, meta.name);
  if (!path_name.empty() && meta.name != path_name)
    return KubeError(absl::InvalidArgumentError(StrCat("metadata.name: \"", meta.name,
                                                       "\" does not match the name in the path \"",
                                                       path_name, "\"")),
                     &k, path_name);
  // A namespace left out of the object is the path's. (A YAML body: what the
  // parser read, which says "default" when it was left out.)
  std::optional<std::string> named = given.namespace_;
  if (!named.has_value() && meta.namespace_ != "default") named = meta.namespace_;
  if (!k.cluster && named.has_value() && *named != ns) {
    HttpResponse r = Json(kube_api::StatusJson(
        400, "BadRequest",
        StrCat("the namespace of the provided object (", *named,
               ") does not match the namespace sent on the request (", ns, ")"),
        &k, meta.name));
    r.status = 400;
    return r;
  }
  const std::string obj_ns = k.cluster ? "" : ns;
  auto current = Current(k, obj_ns, meta.name);
  if (path_name.empty() && current.has_value())
    return KubeError(absl::AlreadyExistsError(
                         StrCat(k.plural, ".", k.group, " \"", meta.name, "\" already exists")),
                     &k, meta.name);
  if (!path_name.empty() && !current.has_value())
    return KubeError(absl::NotFoundError(""), &k, meta.name);
  // An update naming the version it read is refused when the object moved on.
  if (!path_name.empty() && given.resource_version.has_value() &&
      *given.resource_version != StrCat(current->resource_version))
    return Conflict(k, meta.name);
  // Finalizers as the body gives them; none can be added to an object
  // being deleted.
  const std::string as_json = resources::YamlToJson(body).value_or(body);
  const std::vector<std::string> finalizers = FinalizersOf(as_json);
  ApiMetadata::Record record;
  if (current.has_value())
    record = meta_.Get(k.plural, obj_ns, meta.name, CreatedOf(current->json));
  if (!record.deletion_timestamp.empty()) {
    std::string added;
    for (const auto& f : finalizers)
      if (std::find(record.finalizers.begin(), record.finalizers.end(), f) ==
          record.finalizers.end())
        StrAppend(&added, added.empty() ? "" : ", ", "\"", f, "\"");
    if (!added.empty())
      return KubeError(absl::InvalidArgumentError(StrCat(
                           "metadata.finalizers: Forbidden: no new finalizers can be added if the "
                           "object is being deleted, found new finalizers [",
                           added, "]")),
                       &k, meta.name);
  }
  if (options.dry_run) {  // what would be stored, as read back: nothing is
    // Checked against what is stored as the write would be.
    if (auto checked = controller_->Apply(body, ns, "", /*dry_run=*/true); !checked.ok())
      return KubeError(checked.status(), &k, meta.name);
    resources::Resource would = object;
    std::visit(
        [&](auto& o) {
          if (!k.cluster && o.meta.namespace_ == "default") o.meta.namespace_ = ns;
        },
        would);
    HttpResponse r = Json(resources::ToJson(would));
    r.status = path_name.empty() ? 201 : 200;
    return r;
  }
  // The last finalizer of an object being deleted removed: it goes now.
  if (current.has_value() && !record.deletion_timestamp.empty() && finalizers.empty()) {
    if (auto st = controller_->Delete(k.plural, ns, meta.name); !st.ok()) {
      // It cannot go: no longer held, nor marked as going.
      ApiMetadata::Record kept = record;
      kept.finalizers.clear();
      kept.deletion_timestamp.clear();
      (void)meta_.Put(k.plural, obj_ns, meta.name, kept);
      return KubeError(st, &k, meta.name);
    }
    (void)meta_.Erase(k.plural, obj_ns, meta.name);
    return Json(WithFinalizers(current->json, {}));
  }
  // Its record (finalizers, who set which field) changes with it, in one
  // step of the watch hub: one change, one event. A new object's record
  // takes its creation time when first seen.
  ApiMetadata::Record next = record;
  if (!current.has_value()) {
    next = ApiMetadata::Record();
    next.uid = ApiMetadata::NewUid();
  }
  next.finalizers = finalizers;
  if (options.applied.has_value()) {
    next.managed = *options.applied;
  } else if (auto managed =
                 fields::Update(current.has_value() ? current->json : "", as_json, next.managed,
                                options.manager, StrCat(k.group, "/", k.version), Rfc3339Now());
             managed.ok()) {
    next.managed = *std::move(managed);
  }
  const bool record_changes = !current.has_value() || next.finalizers != record.finalizers ||
                              next.managed != record.managed;
  absl::Status applied;
  hub_.Exclusive([&] {
    if (record_changes) applied = meta_.Put(k.plural, obj_ns, meta.name, next);
    if (applied.ok()) applied = controller_->Apply(body, ns, "").status();
    if (!applied.ok() && record_changes)  // as it was
      (void)(current.has_value() ? meta_.Put(k.plural, obj_ns, meta.name, record)
                                 : meta_.Erase(k.plural, obj_ns, meta.name));
  });
  if (!applied.ok()) return KubeError(applied, &k, meta.name);
  auto now = Current(k, obj_ns, meta.name);
  if (!now.has_value()) return KubeError(absl::NotFoundError(""), &k, meta.name);
  // Answered as stored, with its new version.
  HttpResponse r = Json(std::move(now->json));
  r.status = path_name.empty() ? 201 : 200;
  return r;
}

std::optional<ObjectView> ApiHandler::Current(const resources::KindInfo& k, const std::string& ns,
                                              const std::string& name) {
  auto list = hub_.Sync(k);
  if (!list.ok()) return std::nullopt;
  for (const auto& o : list->items)
    if (o->name == name && o->ns == ns) return *o;
  return std::nullopt;
}

HttpResponse ApiHandler::Conflict(const resources::KindInfo& k, std::string_view name) {
  HttpResponse r = Json(kube_api::StatusJson(
      409, "Conflict",
      StrCat("Operation cannot be fulfilled on ", k.plural, ".", k.group, " \"", name,
             "\": the object has been modified; please apply your changes to the latest version "
             "and try again"),
      &k, name));
  r.status = 409;
  return r;
}

HttpResponse ApiHandler::BadRequest(std::string_view message, const resources::KindInfo* kind,
                                    std::string_view name) {
  HttpResponse r = Json(kube_api::StatusJson(400, "BadRequest", message, kind, name));
  r.status = 400;
  return r;
}

HttpResponse ApiHandler::KubeError(const absl::Status& status, const resources::KindInfo* kind,
                                   std::string_view name) {
  HttpResponse r = Json(kube_api::StatusJson(status, kind, name));
  r.status = kube_api::ReasonOf(status).code;
  return r;
}

HttpResponse ApiHandler::KubeJson(absl::StatusOr<std::string> json) {
  return json.ok() ? Json(std::move(*json)) : KubeError(json.status());
}

}  // namespace osprey::controlplane
