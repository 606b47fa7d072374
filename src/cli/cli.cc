#include "cli/cli.h"

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "cli/table.h"
#include "net/http_client.h"
#include "resources/kinds.h"
#include "resources/printer.h"
#include "resources/resources.h"

namespace osprey::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;
using resources::AgeSince;
using resources::HumanAge;

using Kind = resources::KindInfo;
using resources::FindKind;

// Where the API serves a kind: /apis/{group}/{version}, Osprey's own under
// /{group}/{version}.
std::string PathPrefix(const Kind& kind) {
  return kind.group == "osprey" ? StrCat("/", kind.group, "/", kind.version)
                                : StrCat("/apis/", kind.group, "/", kind.version);
}

struct Options {
  std::string data_dir;
  std::string server;
  std::string token;
  std::string ns = "default";
  bool all_namespaces = false;
  std::string output;  // "", yaml, json, wide, name
  std::vector<std::string> files;
  bool wait = false;
  int timeout_s = 120;
  std::string revision;
  int tail = 200;
  std::vector<std::string> positional;
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

absl::StatusOr<Options> ParseArgs(const std::vector<std::string_view>& args,
                                  const std::string& default_data_dir) {
  Options o;
  o.data_dir = default_data_dir;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    std::string_view value;
    bool inline_value = false;
    if (a.starts_with("--")) {
      if (size_t eq = a.find('='); eq != std::string_view::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
        inline_value = true;
      }
    }
    auto take = [&]() -> absl::StatusOr<std::string> {
      if (inline_value) return std::string(value);
      if (i + 1 >= args.size())
        return absl::InvalidArgumentError(StrCat("flag ", a, " needs a value"));
      return std::string(args[++i]);
    };
    auto set = [&](std::string* out) -> absl::Status {
      auto v = take();
      if (!v.ok()) return v.status();
      *out = *v;
      return absl::OkStatus();
    };
    absl::Status st;
    if (a == "-n" || a == "--namespace") {
      st = set(&o.ns);
    } else if (a == "-A" || a == "--all-namespaces") {
      o.all_namespaces = true;
    } else if (a == "-o" || a == "--output") {
      st = set(&o.output);
    } else if (a == "-f" || a == "--filename") {
      std::string f;
      st = set(&f);
      o.files.push_back(f);
    } else if (a == "--wait") {
      o.wait = true;
    } else if (a == "--timeout") {
      std::string t;
      st = set(&t);
      if (st.ok()) {
        if (!t.empty() && t.back() == 's') t.pop_back();
        o.timeout_s = std::atoi(t.c_str());
        if (o.timeout_s <= 0)
          st = absl::InvalidArgumentError("--timeout must be a positive number of seconds");
      }
    } else if (a == "--revision") {
      st = set(&o.revision);
    } else if (a == "--tail") {
      std::string t;
      st = set(&t);
      o.tail = std::atoi(t.c_str());
    } else if (a == "--server") {
      st = set(&o.server);
    } else if (a == "--token") {
      st = set(&o.token);
    } else if (a == "--data-dir") {
      st = set(&o.data_dir);
    } else if (a.starts_with("-") && a.size() > 1) {
      return absl::InvalidArgumentError(StrCat("unknown flag ", a));
    } else {
      o.positional.emplace_back(a);
    }
    if (!st.ok()) return st;
  }
  if (o.output != "" && o.output != "yaml" && o.output != "json" && o.output != "wide" &&
      o.output != "name")
    return absl::InvalidArgumentError(
        StrCat("unknown output format '", o.output, "' (yaml, json, wide or name)"));
  return o;
}

// The API's address and token: flags, then OSPREY_SERVER / OSPREY_TOKEN, then
// the files `osprey up` wrote in the data directory.
absl::Status Connect(Options* o) {
  if (o->server.empty())
    if (const char* s = std::getenv("OSPREY_SERVER")) o->server = s;
  if (o->token.empty())
    if (const char* t = std::getenv("OSPREY_TOKEN")) o->token = t;
  if (o->server.empty()) {
    std::ifstream in(o->data_dir + "/endpoint");
    for (std::string line; std::getline(in, line);)
      if (line.starts_with("api=")) o->server = line.substr(4);
    if (o->server.empty())
      return absl::UnavailableError(
          StrCat("no Osprey platform found: ", o->data_dir,
                 "/endpoint is missing (is `osprey up` running? --data-dir or OSPREY_HOME "
                 "point at its data directory; --server at its API)"));
  }
  if (o->token.empty()) {
    std::ifstream in(o->data_dir + "/token");
    std::getline(in, o->token);
  }
  return absl::OkStatus();
}

absl::StatusOr<HttpClientResponse> Call(const Options& o, const std::string& method,
                                        const std::string& path, std::string body = "") {
  static thread_local HttpClient client;
  HttpClientRequest req;
  req.method = method;
  req.url = o.server + path;
  req.body = std::move(body);
  if (!o.token.empty()) req.headers.emplace_back("Authorization", "Bearer " + o.token);
  auto r = client.Send(req);
  if (!r.ok() && r.status().code() == absl::StatusCode::kUnavailable)
    return absl::UnavailableError(
        StrCat("cannot reach the Osprey API at ", o.server, " (is `osprey up` running?)"));
  return r;
}

std::string ErrorOf(const HttpClientResponse& r) {
  rapidjson::Document d;
  if (!d.Parse(r.body.data(), r.body.size()).HasParseError() && d.IsObject() &&
      d.HasMember("error") && d["error"].IsString())
    return d["error"].GetString();
  // A Kubernetes Status (the /apis routes' errors).
  if (!d.HasParseError() && d.IsObject() && d.HasMember("kind") && d["kind"].IsString() &&
      std::string_view(d["kind"].GetString()) == "Status" && d.HasMember("message") &&
      d["message"].IsString())
    return d["message"].GetString();
  return StrCat("HTTP ", r.status, ": ", r.body);
}

std::string Get(const rapidjson::Value& v, std::initializer_list<const char*> path) {
  const rapidjson::Value* cur = &v;
  for (const char* key : path) {
    if (!cur->IsObject()) return "";
    auto it = cur->FindMember(key);
    if (it == cur->MemberEnd()) return "";
    cur = &it->value;
  }
  if (cur->IsString()) return cur->GetString();
  if (cur->IsBool()) return cur->GetBool() ? "true" : "false";
  if (cur->IsInt64()) return std::to_string(cur->GetInt64());
  return "";
}

std::string Condition(const rapidjson::Value& item, std::string_view type, const char* field) {
  const auto& st = item["status"];
  if (!st.IsObject() || !st.HasMember("conditions")) return "";
  for (const auto& c : st["conditions"].GetArray())
    if (Get(c, {"type"}) == type) return Get(c, {field});
  return "";
}

std::string Pretty(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.SetIndent(' ', 4);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

std::string Compact(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

std::string Age(const rapidjson::Value& item) {
  std::string created = Get(item, {"metadata", "creationTimestamp"});
  if (created.empty()) created = Get(item, {"time"});
  return HumanAge(AgeSince(created, Clock::now()));
}

// One table per kind, columns as `kubectl get` prints KServe's resources
// (resources/printer.h); events as kubectl prints them.
std::string Table(const Kind& kind, const rapidjson::Value& items, bool all_ns, bool wide) {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  if (kind.plural != "events") {
    rapidjson::Document list(rapidjson::kObjectType);
    list.AddMember("items", rapidjson::Value(items, list.GetAllocator()), list.GetAllocator());
    auto table = resources::PrintColumns(kind.plural, Compact(list), Clock::now());
    if (!table.ok()) return "";
    std::vector<bool> shown;
    for (const auto& c : table->columns) {
      shown.push_back(wide || c.priority == 0);
      if (shown.back()) header.push_back(c.name);
    }
    for (auto& r : table->rows) {
      std::vector<std::string> row;
      for (size_t i = 0; i < r.cells.size() && i < shown.size(); ++i)
        if (shown[i]) row.push_back(std::move(r.cells[i]));
      rows.push_back(std::move(row));
    }
  } else {
    header = {"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"};
    for (const auto& it : items.GetArray()) {
      // kind/name, as kubectl shows an event's object.
      std::string object = Get(it, {"kind"});
      std::transform(object.begin(), object.end(), object.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      if (!object.empty()) object += "/";
      rows.push_back({Age(it), Get(it, {"type"}), Get(it, {"reason"}), object + Get(it, {"object"}),
                      Get(it, {"message"})});
    }
  }
  if (all_ns && !kind.cluster) {
    header.insert(header.begin(), "NAMESPACE");
    size_t i = 0;
    for (const auto& it : items.GetArray()) {
      std::string ns = Get(it, {"metadata", "namespace"});
      if (ns.empty()) ns = Get(it, {"namespace"});
      rows[i].insert(rows[i].begin(), ns);
      ++i;
    }
  }
  return FormatTable(header, rows);
}

std::string ItemPath(const Kind& kind, const Options& o, const std::string& name) {
  return StrCat(PathPrefix(kind), kind.cluster ? "" : StrCat("/namespaces/", o.ns), "/",
                kind.plural, "/", name);
}

// GETs `path` into `d`; on failure prints the error and returns false.
bool GetJson(const Options& o, const std::string& path, rapidjson::Document* d) {
  auto r = Call(o, "GET", path);
  if (!r.ok()) {
    Fail(std::string(r.status().message()));
    return false;
  }
  if (r->status != 200) {
    Fail(ErrorOf(*r));
    return false;
  }
  d->Parse(r->body.data(), r->body.size());
  return true;
}

std::string CollectionPath(const Kind& kind, const Options& o) {
  if (kind.cluster || o.all_namespaces) return StrCat(PathPrefix(kind), "/", kind.plural);
  return StrCat(PathPrefix(kind), "/namespaces/", o.ns, "/", kind.plural);
}

std::string ItemsAsYaml(const rapidjson::Value& items, bool list) {
  if (!list) {
    auto y = resources::JsonToYaml(Compact(items[0]));
    return y.ok() ? *y : Pretty(items[0]);
  }
  std::string out;
  for (const auto& it : items.GetArray()) {
    auto y = resources::JsonToYaml(Compact(it));
    out += "---\n";
    out += y.ok() ? *y : Pretty(it);
    if (!out.empty() && out.back() != '\n') out += '\n';
  }
  return out;
}

int GetCommand(Options& o) {
  if (o.positional.empty())
    return Fail(
        "get needs a resource kind: inferenceservices (isvc), servingruntimes, "
        "clusterservingruntimes, inferencegraphs (ig), trainedmodels (tm), services (ksvc), "
        "configurations, routes, revisions, podautoscalers (kpa), deployments (deploy), "
        "virtualservices (vs), gateways (gw), serviceentries (se), destinationrules (dr), "
        "events");
  const Kind* kind = FindKind(o.positional[0]);
  if (kind == nullptr) return Fail(StrCat("unknown resource kind \"", o.positional[0], "\""));
  std::string name = o.positional.size() > 1 ? o.positional[1] : "";
  std::string path = name.empty() ? CollectionPath(*kind, o) : ItemPath(*kind, o, name);
  rapidjson::Document d;
  if (!GetJson(o, path, &d)) return 1;
  rapidjson::Document wrapped;
  if (!name.empty()) {
    wrapped.SetObject();
    rapidjson::Value arr(rapidjson::kArrayType);
    arr.PushBack(rapidjson::Value(d, wrapped.GetAllocator()), wrapped.GetAllocator());
    wrapped.AddMember("items", arr, wrapped.GetAllocator());
  } else {
    wrapped.Swap(d);
  }
  const auto& items = wrapped["items"];
  if (o.output == "json") {
    std::cout << (name.empty() ? Pretty(wrapped) : Pretty(items[0]));
  } else if (o.output == "yaml") {
    std::cout << ItemsAsYaml(items, name.empty());
  } else if (o.output == "name") {
    for (const auto& it : items.GetArray())
      std::cout << kind->singular << "/" << Get(it, {"metadata", "name"}) << "\n";
  } else {
    if (items.Empty()) {
      if (kind->cluster)
        std::fprintf(stderr, "No resources found\n");
      else
        std::fprintf(stderr, "No resources found in %s namespace.\n",
                     o.all_namespaces ? "any" : o.ns.c_str());
      return 0;
    }
    std::cout << Table(*kind, items, o.all_namespaces, o.output == "wide");
  }
  return 0;
}

absl::StatusOr<std::string> ReadInput(const std::string& file) {
  if (file == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat("cannot read ", file));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// An applied object --wait waits for: an InferenceService or a Knative Service.
struct Applied {
  bool knative = false;
  std::string ns;
  std::string name;
};

// Waits until every named InferenceService (Knative Service) reports Ready
// for its current generation; fails fast when its latest revision failed.
int WaitReady(const Options& o, const std::vector<Applied>& applied) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.timeout_s);
  for (const auto& [knative, ns, name] : applied) {
    const std::string what = knative ? "service" : "inferenceservice";
    std::string path =
        knative ? StrCat("/apis/serving.knative.dev/v1/namespaces/", ns, "/services/", name)
                : StrCat("/apis/serving.kserve.io/v1beta1/namespaces/", ns, "/inferenceservices/",
                         name);
    std::string last;
    while (true) {
      auto r = Call(o, "GET", path);
      if (r.ok() && r->status == 200) {
        rapidjson::Document d;
        d.Parse(r->body.data(), r->body.size());
        bool current =
            Get(d, {"status", "observedGeneration"}) == Get(d, {"metadata", "generation"});
        std::string ready = Condition(d, "Ready", "status");
        std::string transition = Get(d, {"status", "modelStatus", "transitionStatus"});
        if (current && ready == "True") {
          std::printf("%s.%s/%s condition met (Ready)\n", what.c_str(),
                      knative ? "serving.knative.dev" : "serving.kserve.io", name.c_str());
          break;
        }
        if (!knative && current &&
            (transition == "InvalidSpec" || transition == "BlockedByFailedLoad"))
          return Fail(StrCat("inferenceservice ", ns, "/", name,
                             " failed: ", Condition(d, "PredictorReady", "reason"), ": ",
                             Condition(d, "PredictorReady", "message")));
        if (knative && current && ready == "False")
          return Fail(StrCat("service ", ns, "/", name,
                             " failed: ", Condition(d, "Ready", "reason"), ": ",
                             Condition(d, "Ready", "message")));
        last = StrCat(Condition(d, "Ready", "reason"), " ", Condition(d, "Ready", "message"));
      }
      if (std::chrono::steady_clock::now() > deadline)
        return Fail(StrCat("timed out after ", o.timeout_s, "s waiting for ", what, " ", ns, "/",
                           name, " to be Ready (", last, ")"));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling interval
    }
  }
  return 0;
}

int ApplyCommand(Options& o) {
  if (o.files.empty()) return Fail("apply needs -f FILE (or -f - for stdin)");
  std::vector<Applied> applied;
  for (const auto& file : o.files) {
    auto text = ReadInput(file);
    if (!text.ok()) return Fail(std::string(text.status().message()));
    std::string base =
        file == "-" ? fs::current_path().string() : fs::absolute(file).parent_path().string();
    std::string path = StrCat("/osprey/v1/apply?namespace=", o.ns, "&baseDir=", base);
    auto r = Call(o, "POST", path, *text);
    if (!r.ok()) return Fail(std::string(r.status().message()));
    if (r->status != 200) return Fail(StrCat(file, ": ", ErrorOf(*r)));
    rapidjson::Document d;
    d.Parse(r->body.data(), r->body.size());
    for (const auto& res : d["results"].GetArray()) {
      std::string kind = Get(res, {"kind"});
      const Kind* k = FindKind(kind);
      std::printf("%s.%s/%s %s\n", std::string(k ? k->singular : kind).c_str(),
                  std::string(k ? k->group : "").c_str(), Get(res, {"name"}).c_str(),
                  Get(res, {"action"}).c_str());
      if (kind == "InferenceService" || kind == "Service")
        applied.push_back({kind == "Service", Get(res, {"namespace"}), Get(res, {"name"})});
    }
  }
  std::fflush(stdout);
  return o.wait ? WaitReady(o, applied) : 0;
}

int DeleteCommand(Options& o) {
  std::vector<std::tuple<const Kind*, std::string, std::string>> targets;
  for (const auto& file : o.files) {
    auto text = ReadInput(file);
    if (!text.ok()) return Fail(std::string(text.status().message()));
    auto parsed = resources::ParseYaml(*text);
    if (!parsed.ok()) return Fail(StrCat(file, ": ", parsed.status().message()));
    for (const auto& r : *parsed) {
      std::string kind(resources::KindOf(r));
      const Kind* k = FindKind(kind);
      std::visit(
          [&](const auto& obj) {
            targets.emplace_back(k, obj.meta.namespace_ == "default" ? o.ns : obj.meta.namespace_,
                                 obj.meta.name);
          },
          r);
    }
  }
  if (o.files.empty()) {
    if (o.positional.size() < 2) return Fail("delete needs KIND NAME, or -f FILE");
    const Kind* k = FindKind(o.positional[0]);
    if (k == nullptr) return Fail(StrCat("unknown resource kind \"", o.positional[0], "\""));
    for (size_t i = 1; i < o.positional.size(); ++i) targets.emplace_back(k, o.ns, o.positional[i]);
  }
  int rc = 0;
  for (const auto& [k, ns, name] : targets) {
    Options in_ns = o;
    in_ns.ns = ns;
    auto r = Call(o, "DELETE", ItemPath(*k, in_ns, name));
    if (!r.ok()) return Fail(std::string(r.status().message()));
    if (r->status != 200) {
      rc = Fail(ErrorOf(*r));
      continue;
    }
    std::printf("%s.%s \"%s\" deleted\n", std::string(k->singular).c_str(),
                std::string(k->group).c_str(), name.c_str());
  }
  return rc;
}

int LogsCommand(Options& o) {
  if (o.positional.empty()) return Fail("logs needs an InferenceService name");
  std::string path = StrCat("/osprey/v1/namespaces/", o.ns, "/inferenceservices/", o.positional[0],
                            "/logs?tail=", o.tail);
  if (!o.revision.empty()) path += "&revision=" + o.revision;
  auto r = Call(o, "GET", path);
  if (!r.ok()) return Fail(std::string(r.status().message()));
  if (r->status != 200) return Fail(ErrorOf(*r));
  std::cout << r->body;
  return 0;
}

// Bytes as kubectl top prints memory: Mi, Gi.
std::string Mebibytes(double bytes) {
  char buf[32];
  if (bytes >= 10.0 * (1 << 30))
    std::snprintf(buf, sizeof(buf), "%.1fGi", bytes / (1 << 30));
  else
    std::snprintf(buf, sizeof(buf), "%.0fMi", bytes / (1 << 20));
  return buf;
}

std::string Decimal(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

// The cost API's answer for `osprey cost [NAME]` and `osprey top`.
absl::StatusOr<rapidjson::Document> CostOf(const Options& o, const std::string& name) {
  std::string path =
      !name.empty() ? StrCat("/osprey/v1/namespaces/", o.ns, "/inferenceservices/", name, "/cost")
      : o.all_namespaces ? std::string("/osprey/v1/cost")
                         : StrCat("/osprey/v1/namespaces/", o.ns, "/cost");
  auto r = Call(o, "GET", path);
  if (!r.ok()) return r.status();
  if (r->status != 200) return absl::UnavailableError(ErrorOf(*r));
  rapidjson::Document d;
  d.Parse(r->body.data(), r->body.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("items") || !d["items"].IsArray())
    return absl::InternalError("the cost API answered something else than its JSON");
  return d;
}

// `osprey cost [NAME]`: per revision, the last window's and the total's
// replica-seconds, CPU-seconds, memory, requests and CPU-seconds per 1,000.
int CostCommand(Options& o) {
  auto d = CostOf(o, o.positional.empty() ? "" : o.positional[0]);
  if (!d.ok()) return Fail(std::string(d.status().message()));
  const double window = (*d)["windowSeconds"].GetDouble();
  const std::string recent = window >= 3600 && std::fmod(window, 3600) == 0
                                 ? StrCat(Decimal(window / 3600, 0), "h")
                                 : StrCat(Decimal(window, 0), "s");
  std::vector<std::vector<std::string>> rows;
  // A row of one window's totals (a revision's, or a service's sum).
  auto add = [&](const rapidjson::Value& it, const std::string& revision, const char* part) {
    const auto& t = it[part];
    const std::string per = t["cpuSecondsPer1000Requests"].IsNumber()
                                ? Decimal(t["cpuSecondsPer1000Requests"].GetDouble(), 3)
                                : std::string("-");
    std::vector<std::string> row;
    if (o.all_namespaces) row.push_back(Get(it, {"namespace"}));
    row.insert(
        row.end(),
        {Get(it, {"inferenceService"}), revision, std::string(part) == "total" ? "total" : recent,
         Decimal(t["replicaSeconds"].GetDouble(), 0), Decimal(t["cpuSeconds"].GetDouble(), 2),
         Mebibytes(t["memoryAverageBytes"].GetDouble()),
         Mebibytes(t["memoryPeakBytes"].GetDouble()), Decimal(t["requests"].GetDouble(), 0), per});
    rows.push_back(std::move(row));
  };
  for (const auto& it : (*d)["items"].GetArray())
    for (const char* part : {"lastWindow", "total"}) add(it, Get(it, {"revision"}), part);
  // A service of several revisions: its sum too, as revision "(all)".
  if (d->HasMember("services"))
    for (const auto& sv : (*d)["services"].GetArray())
      if (sv["revisions"].GetInt() >= 2)
        for (const char* part : {"lastWindow", "total"}) add(sv, "(all)", part);
  std::vector<std::string> header = {"INFERENCESERVICE", "REVISION", "WINDOW",
                                     "REPLICA-S",        "CPU-S",    "MEM-AVG",
                                     "MEM-PEAK",         "REQUESTS", "CPU-S/1K-REQ"};
  if (o.all_namespaces) header.insert(header.begin(), "NAMESPACE");
  std::cout << FormatTable(header, rows);
  for (const auto& it : (*d)["items"].GetArray())
    for (const auto& a : it["advice"].GetArray())
      std::cout << "advice: " << Get(it, {"revision"}) << ": " << Get(a, {"reason"}) << ": "
                << Get(a, {"message"}) << "\n";
  return 0;
}

// `osprey top`: per revision, what its replicas use now, as kubectl top.
int TopCommand(Options& o) {
  auto d = CostOf(o, o.positional.empty() ? "" : o.positional[0]);
  if (!d.ok()) return Fail(std::string(d.status().message()));
  std::vector<std::vector<std::string>> rows;
  for (const auto& it : (*d)["items"].GetArray()) {
    const auto& c = it["current"];
    std::vector<std::string> row;
    if (o.all_namespaces) row.push_back(Get(it, {"namespace"}));
    row.insert(row.end(), {Get(it, {"revision"}), Get(c, {"replicas"}),
                           StrCat(Decimal(c["cpuCores"].GetDouble() * 1000, 0), "m"),
                           Mebibytes(c["memoryBytes"].GetDouble()),
                           Decimal(c["requestsPerSecond"].GetDouble(), 1)});
    rows.push_back(std::move(row));
  }
  std::vector<std::string> header = {"REVISION", "REPLICAS", "CPU(cores)", "MEMORY(bytes)",
                                     "REQUESTS/S"};
  if (o.all_namespaces) header.insert(header.begin(), "NAMESPACE");
  std::cout << FormatTable(header, rows);
  return 0;
}

// The Cost section of `describe isvc`: each revision's totals and advice.
void DescribeCost(const Options& o, const std::string& name, std::ostringstream* out) {
  auto d = CostOf(o, name);
  if (!d.ok() || (*d)["items"].Empty()) return;
  *out << "Cost:\n";
  const double window = (*d)["windowSeconds"].GetDouble();
  const std::string recent = window >= 3600 && std::fmod(window, 3600) == 0
                                 ? StrCat("last ", Decimal(window / 3600, 0), "h")
                                 : StrCat("last ", Decimal(window, 0), "s");
  for (const auto& it : (*d)["items"].GetArray()) {
    for (const char* part : {"total", "lastWindow"}) {
      const auto& t = it[part];
      *out << "  " << Get(it, {"revision"}) << " ("
           << (std::string_view(part) == "total" ? std::string("total") : recent)
           << "): " << Decimal(t["replicaSeconds"].GetDouble(), 0) << " replica-s, "
           << Decimal(t["cpuSeconds"].GetDouble(), 2) << " CPU-s, memory avg "
           << Mebibytes(t["memoryAverageBytes"].GetDouble()) << " peak "
           << Mebibytes(t["memoryPeakBytes"].GetDouble()) << ", "
           << Decimal(t["requests"].GetDouble(), 0) << " requests";
      if (t["cpuSecondsPer1000Requests"].IsNumber())
        *out << ", " << Decimal(t["cpuSecondsPer1000Requests"].GetDouble(), 3)
             << " CPU-s per 1,000";
      *out << "\n";
    }
    for (const auto& a : it["advice"].GetArray())
      *out << "    advice: " << Get(a, {"reason"}) << ": " << Get(a, {"message"}) << "\n";
  }
}

// A number of a JSON object as text ("" when absent), shortest form.
std::string Number(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject() || !v.HasMember(key) || !v[key].IsNumber()) return "";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", v[key].GetDouble());
  return buf;
}

// The Drift section of `describe isvc`: what the platform last read from the
// replicas' drift detectors (serving.osprey.dev/drift-reference); nothing
// when the service has none.
void DescribeDrift(const Options& o, const std::string& name, std::ostringstream* out) {
  auto r =
      Call(o, "GET", StrCat("/osprey/v1/namespaces/", o.ns, "/inferenceservices/", name, "/drift"));
  if (!r.ok() || r->status != 200) return;
  rapidjson::Document d;
  d.Parse(r->body.data(), r->body.size());
  if (d.HasParseError() || Get(d, {"enabled"}) != "true") return;
  *out << "Drift:\n";
  *out << "  Revision:       " << Get(d, {"revision"}) << "\n";
  if (!d.HasMember("drift")) {
    *out << "  State:          not read yet\n";
    return;
  }
  const bool any = d.HasMember("replicas") && d["replicas"].IsArray() && !d["replicas"].Empty();
  const rapidjson::Value* state = any ? &d["replicas"][0]["state"] : nullptr;
  std::string verdict = Get(d, {"drift"}) == "true" ? "Drifting" : "No drift";
  if (state != nullptr && Get(*state, {"ready"}) != "true")
    verdict = Get(*state, {"error"}).empty() ? "Collecting the reference"
                                             : StrCat("Failed: ", Get(*state, {"error"}));
  else if (Get(d, {"windowsTested"}) == "0")
    verdict = "Waiting for a full window";
  *out << "  State:          " << verdict << "\n";
  if (state != nullptr) {
    *out << "  Reference:      " << Get(*state, {"reference_rows"}) << " rows, "
         << Get(*state, {"features"}) << " features";
    if (state->HasMember("categorical") && (*state)["categorical"].IsArray() &&
        !(*state)["categorical"].Empty()) {
      *out << " (categorical:";
      for (const auto& c : (*state)["categorical"].GetArray()) *out << " " << c.GetInt64();
      *out << ")";
    }
    *out << "\n";
    *out << "  Window:         " << Get(*state, {"window"}) << " rows, tested every "
         << Get(*state, {"stride"}) << ", p-value " << Number(*state, "p_value") << "\n";
  }
  *out << "  Windows:        " << Get(d, {"windowsTested"}) << " tested";
  if (state != nullptr) *out << ", " << Get(*state, {"windows_drifted"}) << " drifted";
  *out << "\n";
  if (Get(d, {"windowsTested"}) != "0")
    *out << "  Last Window:    min p-value " << Number(d, "minPValue") << " (drift below "
         << Number(d, "threshold") << ", Bonferroni)\n";
  if (state != nullptr && state->HasMember("last") && (*state)["last"].IsObject()) {
    *out << "  P-Values:      ";
    for (const auto& p : (*state)["last"]["p_values"].GetArray()) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), " %.3g", p.IsNumber() ? p.GetDouble() : 1.0);
      *out << buf;
    }
    *out << "\n";
  }
  if (state != nullptr && Number(*state, "outlier_quantile") != "0") {
    *out << "  Outliers:       " << Get(d, {"outliersTotal"}) << " (score above "
         << Number(*state, "outlier_threshold") << ", the reference's "
         << Number(*state, "outlier_quantile") << " quantile)\n";
    *out << "  Dropped Rows:   " << Get(*state, {"rows_dropped"}) << "\n";
  }
}

int DescribeCommand(Options& o) {
  if (o.positional.size() < 2) return Fail("describe needs KIND NAME");
  const Kind* kind = FindKind(o.positional[0]);
  if (kind == nullptr) return Fail(StrCat("unknown resource kind \"", o.positional[0], "\""));
  const std::string& name = o.positional[1];
  rapidjson::Document d;
  if (!GetJson(o, ItemPath(*kind, o, name), &d)) return 1;
  std::ostringstream out;
  out << "Name:         " << Get(d, {"metadata", "name"}) << "\n";
  if (!kind->cluster) out << "Namespace:    " << Get(d, {"metadata", "namespace"}) << "\n";
  out << "Kind:         " << Get(d, {"kind"}) << "\n";
  out << "Created:      " << Get(d, {"metadata", "creationTimestamp"}) << " (" << Age(d)
      << " ago)\n";
  if (kind->plural != "inferenceservices") {
    out << "Spec:\n";
    auto y = resources::JsonToYaml(Compact(d["spec"]));
    std::istringstream lines(y.ok() ? *y : Pretty(d["spec"]));
    for (std::string line; std::getline(lines, line);) out << "  " << line << "\n";
    if (d.HasMember("status")) {
      out << "Status:\n";
      auto s = resources::JsonToYaml(Compact(d["status"]));
      std::istringstream slines(s.ok() ? *s : Pretty(d["status"]));
      for (std::string line; std::getline(slines, line);) out << "  " << line << "\n";
    }
    std::cout << out.str();
    return 0;
  }
  out << "Generation:   " << Get(d, {"metadata", "generation"}) << "\n";
  out << "URL:          " << Get(d, {"status", "url"}) << "\n";
  out << "Ready:        " << Condition(d, "Ready", "status") << "\n";
  const auto& spec = d["spec"]["predictor"];
  if (spec.HasMember("model")) {
    out << "Predictor:\n";
    out << "  Model Format:   " << Get(spec, {"model", "modelFormat", "name"}) << "\n";
    out << "  Storage URI:    " << Get(spec, {"model", "storageUri"}) << "\n";
    out << "  Protocol:       " << Get(spec, {"model", "protocolVersion"}) << "\n";
  }
  for (const char* component : {"transformer", "explainer"}) {
    if (!d["spec"].HasMember(component) || !d["spec"][component].IsObject()) continue;
    const auto& c = d["spec"][component];
    std::string what;
    if (c.HasMember("containers") && c["containers"].IsArray() && !c["containers"].Empty())
      what = Get(c["containers"][0], {"image"});
    for (const char* type : {"art", "alibi"})
      if (c.HasMember(type)) what = type;
    out << (component[0] == 't' ? "Transformer:  " : "Explainer:    ") << what << " ("
        << Get(d, {"status", "components", component, "url"}) << ")\n";
  }
  std::vector<std::vector<std::string>> conds;
  if (d["status"].HasMember("conditions"))
    for (const auto& c : d["status"]["conditions"].GetArray())
      conds.push_back(
          {Get(c, {"type"}), Get(c, {"status"}), Get(c, {"reason"}), Get(c, {"message"})});
  out << "Conditions:\n";
  std::istringstream ctable(FormatTable({"TYPE", "STATUS", "REASON", "MESSAGE"}, conds));
  for (std::string line; std::getline(ctable, line);) out << "  " << line << "\n";
  out << "Model Status:\n";
  out << "  Transition:     " << Get(d, {"status", "modelStatus", "transitionStatus"}) << "\n";
  out << "  Active State:   " << Get(d, {"status", "modelStatus", "states", "activeModelState"})
      << "\n";
  out << "  Target State:   " << Get(d, {"status", "modelStatus", "states", "targetModelState"})
      << "\n";
  if (!Get(d, {"status", "modelStatus", "lastFailureInfo", "reason"}).empty()) {
    out << "  Last Failure:   " << Get(d, {"status", "modelStatus", "lastFailureInfo", "reason"})
        << ": " << Get(d, {"status", "modelStatus", "lastFailureInfo", "message"}) << "\n";
  }
  DescribeDrift(o, name, &out);
  DescribeCost(o, name, &out);
  // Revisions with their download progress and replicas.
  auto revs =
      Call(o, "GET", StrCat("/apis/serving.knative.dev/v1/namespaces/", o.ns, "/revisions"));
  if (revs.ok() && revs->status == 200) {
    rapidjson::Document rd;
    rd.Parse(revs->body.data(), revs->body.size());
    std::vector<std::vector<std::string>> rows;
    for (const auto& it : rd["items"].GetArray()) {
      if (Get(it, {"metadata", "labels", "serving.kserve.io/inferenceservice"}) != name) continue;
      std::string storage = Get(it, {"status", "storage", "phase"});
      std::string done = Get(it, {"status", "storage", "bytesDone"});
      std::string total = Get(it, {"status", "storage", "bytesTotal"});
      if (storage != "done" && storage != "idle" && !done.empty() && done != "0")
        storage += StrCat(" ", done, total != "0" ? StrCat("/", total) : "", " bytes");
      std::string traffic;
      if (d["status"].HasMember("components") && d["status"]["components"].IsObject())
        for (const auto& component : d["status"]["components"].GetObject()) {
          const auto& c = component.value;
          if (!c.IsObject() || !c.HasMember("traffic") || !c["traffic"].IsArray()) continue;
          for (const auto& t : c["traffic"].GetArray())
            if (Get(t, {"revisionName"}) == Get(it, {"metadata", "name"}))
              traffic = StrCat(Get(t, {"percent"}), "%",
                               Get(t, {"tag"}).empty() ? "" : StrCat(" (", Get(t, {"tag"}), ")"));
        }
      rows.push_back({Get(it, {"metadata", "name"}), Get(it, {"status", "phase"}), traffic,
                      StrCat(Get(it, {"status", "readyReplicas"}), "/",
                             Get(it, {"status", "desiredReplicas"})),
                      storage, Get(it, {"spec", "runtime"}), Age(it),
                      Get(it, {"status", "message"})});
    }
    out << "Revisions:\n";
    std::istringstream rtable(FormatTable(
        {"NAME", "PHASE", "TRAFFIC", "READY", "STORAGE", "RUNTIME", "AGE", "MESSAGE"}, rows));
    for (std::string line; std::getline(rtable, line);) out << "  " << line << "\n";
  }
  auto events = Call(o, "GET", StrCat("/osprey/v1/namespaces/", o.ns, "/events"));
  if (events.ok() && events->status == 200) {
    rapidjson::Document ed;
    ed.Parse(events->body.data(), events->body.size());
    std::vector<std::vector<std::string>> rows;
    for (const auto& it : ed["items"].GetArray())
      if (Get(it, {"object"}) == name &&
          (Get(it, {"kind"}).empty() || Get(it, {"kind"}) == "InferenceService"))
        rows.push_back({Get(it, {"type"}), Get(it, {"reason"}), Age(it), Get(it, {"message"})});
    out << "Events:\n";
    std::istringstream etable(FormatTable({"TYPE", "REASON", "AGE", "MESSAGE"}, rows));
    for (std::string line; std::getline(etable, line);) out << "  " << line << "\n";
  }
  std::cout << out.str();
  return 0;
}

}  // namespace

int CliMain(std::string_view command, const std::vector<std::string_view>& args,
            const std::string& default_data_dir) {
  auto parsed = ParseArgs(args, default_data_dir);
  if (!parsed.ok()) return Fail(std::string(parsed.status().message()));
  Options o = *parsed;
  if (command == "kubeconfig") {  // what osprey up wrote for kubectl
    std::ifstream in(o.data_dir + "/kubeconfig");
    if (!in)
      return Fail(StrCat(o.data_dir,
                         "/kubeconfig is missing (is `osprey up` running? --data-dir or "
                         "OSPREY_HOME point at its data directory)"));
    std::cout << in.rdbuf();
    return 0;
  }
  if (auto st = Connect(&o); !st.ok()) return Fail(std::string(st.message()));
  if (command == "apply") return ApplyCommand(o);
  if (command == "get") return GetCommand(o);
  if (command == "describe") return DescribeCommand(o);
  if (command == "delete") return DeleteCommand(o);
  if (command == "logs") return LogsCommand(o);
  if (command == "cost") return CostCommand(o);
  if (command == "top") return TopCommand(o);
  return Fail(StrCat("unknown command ", command));
}

}  // namespace osprey::cli
