#include "controlplane/local/api.h"

#include <cstdlib>
#include <map>
#include <vector>

#include "common/json_writer.h"
#include "common/prometheus.h"
#include "net/status.h"
#include "resources/kinds.h"

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

void ApiHandler::Handle(const HttpRequest& request, HttpDone done) { done(Route(request)); }

HttpResponse ApiHandler::Route(const HttpRequest& req) {
  std::string_view target = req.target;
  std::string_view query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    query = target.substr(q + 1);
    target = target.substr(0, q);
  }
  auto params = Query(query);
  const bool write = req.method != "GET" && req.method != "HEAD";
  if (write) {
    std::string_view auth = FindHeader(req.headers, "Authorization");
    if (auth.empty())
      return JsonErrorResponse(
          401,
          "this API needs a bearer token to change state (Authorization: Bearer "
          "...); the CLI reads it from the data directory's token file");
    if (auth != StrCat("Bearer ", token_)) return JsonErrorResponse(401, "bearer token refused");
  }
  std::vector<std::string_view> p = Split(target);
  if (p.size() == 1 && p[0] == "healthz") return Json("{\"status\":\"ok\"}");
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
        i + 2 < p.size())
      return JsonErrorResponse(404, StrCat("no API route for ", target));
    if (req.method == "GET") {
      if (name.empty()) {
        auto list = controller_->List(kind, ns);
        return list.ok() ? Json(std::move(*list)) : ErrorResponse(list.status());
      }
      auto one = controller_->Get(kind, ns.empty() ? "default" : ns, name);
      return one.ok() ? Json(std::move(*one)) : ErrorResponse(one.status());
    }
    if (req.method == "DELETE" && !name.empty()) {
      auto st = controller_->Delete(kind, ns.empty() ? "default" : ns, name);
      if (!st.ok()) return ErrorResponse(st);
      return Json(StrCat("{\"deleted\":", JsonString(name), "}"));
    }
    return JsonErrorResponse(405, StrCat(req.method, " is not allowed on ", target));
  }
  return JsonErrorResponse(404, StrCat("no API route for ", target));
}

}  // namespace osprey::controlplane
