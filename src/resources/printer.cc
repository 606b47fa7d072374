#include "resources/printer.h"

#include <rapidjson/document.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <initializer_list>

namespace osprey::resources {
namespace {

using Clock = std::chrono::system_clock;

// The text at `path` (strings, booleans and integers), else "".
std::string Text(const rapidjson::Value& v, std::initializer_list<const char*> path) {
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

// A field of the status condition of `type`.
std::string Condition(const rapidjson::Value& item, std::string_view type, const char* field) {
  if (!item.IsObject() || !item.HasMember("status") || !item["status"].IsObject()) return "";
  const auto& st = item["status"];
  if (!st.HasMember("conditions") || !st["conditions"].IsArray()) return "";
  for (const auto& c : st["conditions"].GetArray())
    if (Text(c, {"type"}) == type) return Text(c, {field});
  return "";
}

std::string Age(const rapidjson::Value& item, Clock::time_point now) {
  return HumanAge(AgeSince(Text(item, {"metadata", "creationTimestamp"}), now));
}

// spec[key], a list of strings, as kubectl prints one: ["a","b"].
std::string JoinStrings(const rapidjson::Value& item, const char* key) {
  if (!item.HasMember("spec") || !item["spec"].IsObject() || !item["spec"].HasMember(key) ||
      !item["spec"][key].IsArray())
    return "";
  std::string out = "[";
  for (const auto& v : item["spec"][key].GetArray())
    if (v.IsString()) out += std::string(out.size() > 1 ? "," : "") + "\"" + v.GetString() + "\"";
  return out + "]";
}

// An InferenceService predictor's traffic entry: the latest or the tag "prev".
std::string Traffic(const rapidjson::Value& item, bool latest, const char* field) {
  const rapidjson::Value* cur = &item;
  for (const char* key : {"status", "components", "predictor", "traffic"}) {
    if (!cur->IsObject() || !cur->HasMember(key)) return "";
    cur = &(*cur)[key];
  }
  if (!cur->IsArray()) return "";
  for (const auto& t : cur->GetArray()) {
    bool is_latest = t.IsObject() && t.HasMember("latestRevision") &&
                     t["latestRevision"].IsBool() && t["latestRevision"].GetBool();
    bool is_prev = Text(t, {"tag"}) == "prev";
    if ((latest && is_latest) || (!latest && is_prev)) return Text(t, {field});
  }
  return "";
}

std::string FirstName(const rapidjson::Value& item, const char* list) {
  if (!item.HasMember("spec") || !item["spec"].IsObject()) return "";
  const auto& spec = item["spec"];
  if (!spec.HasMember(list) || !spec[list].IsArray() || spec[list].Empty()) return "";
  return Text(spec[list][0], {"name"});
}

std::string Compact(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

using Cells = std::vector<std::string>;

struct Printer {
  std::vector<PrinterColumn> columns;  // after NAME
  Cells (*cells)(const rapidjson::Value& item, Clock::time_point now);
  bool name_first = true;  // else NAME comes last, shown with -o wide only
};

PrinterColumn Col(std::string name, std::string type = "string", int priority = 0) {
  return {std::move(name), std::move(type), "", priority};
}

Printer PrinterOf(std::string_view plural) {
  if (plural == "inferenceservices")
    return {{Col("URL"), Col("READY"), Col("PREV", "integer"), Col("LATEST", "integer"),
             Col("PREVROLLEDOUTREVISION"), Col("LATESTREADYREVISION"), Col("AGE", "date")},
            [](const rapidjson::Value& it, Clock::time_point now) -> Cells {
              return {Text(it, {"status", "url"}),
                      Condition(it, "Ready", "status"),
                      Traffic(it, false, "percent"),
                      Traffic(it, true, "percent"),
                      Text(it, {"status", "components", "predictor", "previousRolledoutRevision"}),
                      Text(it, {"status", "components", "predictor", "latestReadyRevision"}),
                      Age(it, now)};
            }};
  if (plural == "servingruntimes" || plural == "clusterservingruntimes")
    return {{Col("DISABLED", "boolean"), Col("MODELTYPE"), Col("CONTAINERS"), Col("AGE", "date")},
            [](const rapidjson::Value& it, Clock::time_point now) -> Cells {
              std::string model_type;
              if (it.HasMember("spec") && it["spec"].IsObject() &&
                  it["spec"].HasMember("supportedModelFormats") &&
                  it["spec"]["supportedModelFormats"].IsArray() &&
                  !it["spec"]["supportedModelFormats"].Empty())
                model_type = Text(it["spec"]["supportedModelFormats"][0], {"name"});
              return {Text(it, {"spec", "disabled"}) == "true" ? "true" : "", model_type,
                      FirstName(it, "containers"), Age(it, now)};
            }};
  if (plural == "inferencegraphs" || plural == "trainedmodels")
    return {{Col("URL"), Col("READY"), Col("AGE", "date")},
            [](const rapidjson::Value& it, Clock::time_point now) -> Cells {
              return {Text(it, {"status", "url"}), Condition(it, "Ready", "status"), Age(it, now)};
            }};
  if (plural == "services")
    return {{Col("URL"), Col("LATESTCREATED"), Col("LATESTREADY"), Col("READY"), Col("REASON")},
            [](const rapidjson::Value& it, Clock::time_point) -> Cells {
              return {Text(it, {"status", "url"}),
                      Text(it, {"status", "latestCreatedRevisionName"}),
                      Text(it, {"status", "latestReadyRevisionName"}),
                      Condition(it, "Ready", "status"), Condition(it, "Ready", "reason")};
            }};
  if (plural == "configurations")
    return {{Col("LATESTCREATED"), Col("LATESTREADY"), Col("READY"), Col("REASON")},
            [](const rapidjson::Value& it, Clock::time_point) -> Cells {
              return {Text(it, {"status", "latestCreatedRevisionName"}),
                      Text(it, {"status", "latestReadyRevisionName"}),
                      Condition(it, "Ready", "status"), Condition(it, "Ready", "reason")};
            }};
  if (plural == "routes")
    return {{Col("URL"), Col("READY"), Col("REASON")},
            [](const rapidjson::Value& it, Clock::time_point) -> Cells {
              return {Text(it, {"status", "url"}), Condition(it, "Ready", "status"),
                      Condition(it, "Ready", "reason")};
            }};
  if (plural == "deployments")
    return {{Col("READY"), Col("UP-TO-DATE", "integer"), Col("AVAILABLE", "integer"),
             Col("AGE", "date")},
            [](const rapidjson::Value& it, Clock::time_point now) -> Cells {
              return {Text(it, {"status", "readyReplicas"}) + "/" + Text(it, {"spec", "replicas"}),
                      Text(it, {"status", "updatedReplicas"}),
                      Text(it, {"status", "availableReplicas"}), Age(it, now)};
            }};
  if (plural == "virtualservices")
    return {{Col("GATEWAYS"), Col("HOSTS"), Col("AGE", "date")},
            [](const rapidjson::Value& it, Clock::time_point now) -> Cells {
              return {JoinStrings(it, "gateways"), JoinStrings(it, "hosts"), Age(it, now)};
            }};
  if (plural == "destinationrules")
    return {{Col("HOST"), Col("AGE", "date")},
            [](const rapidjson::Value& it, Clock::time_point now) -> Cells {
              return {Text(it, {"spec", "host"}), Age(it, now)};
            }};
  if (plural == "revisions")
    return {
        {Col("INFERENCESERVICE"), Col("PHASE"), Col("REPLICAS", "integer"), Col("READY", "integer"),
         Col("RUNTIME"), Col("AGE", "date"), Col("REASON", "string", 1)},
        [](const rapidjson::Value& it, Clock::time_point now) -> Cells {
          return {Text(it, {"metadata", "labels", "serving.kserve.io/inferenceservice"}) +
                      Text(it, {"metadata", "labels", "serving.knative.dev/service"}),
                  Text(it, {"status", "phase"}),
                  Text(it, {"status", "replicas"}),
                  Text(it, {"status", "readyReplicas"}),
                  Text(it, {"spec", "runtime"}),
                  Age(it, now),
                  Text(it, {"status", "reason"})};
        }};
  if (plural == "podautoscalers")
    return {{Col("DESIREDSCALE", "integer"), Col("ACTUALSCALE", "integer"), Col("READY"),
             Col("REASON")},
            [](const rapidjson::Value& it, Clock::time_point) -> Cells {
              return {Text(it, {"status", "desiredScale"}), Text(it, {"status", "actualScale"}),
                      Text(it, {"status", "ready"}), Text(it, {"status", "reason"})};
            }};
  if (plural == "pods")  // core v1 Pods, as kubectl get pods prints them
    return {{Col("READY"), Col("STATUS"), Col("RESTARTS", "integer"), Col("AGE", "date"),
             Col("IP", "string", 1), Col("NODE", "string", 1)},
            [](const rapidjson::Value& it, Clock::time_point now) -> Cells {
              std::string ready = "0/1", restarts = "0";
              if (it.HasMember("status") && it["status"].IsObject() &&
                  it["status"].HasMember("containerStatuses") &&
                  it["status"]["containerStatuses"].IsArray() &&
                  !it["status"]["containerStatuses"].Empty()) {
                const auto& c = it["status"]["containerStatuses"][0];
                ready = Text(c, {"ready"}) == "true" ? "1/1" : "0/1";
                restarts = Text(c, {"restartCount"});
              }
              return {ready,        Text(it, {"status", "phase"}), restarts,
                      Age(it, now), Text(it, {"status", "podIP"}), Text(it, {"spec", "nodeName"})};
            }};
  if (plural == "events")  // core v1 Events, as kubectl get events prints them
    return {{Col("LAST SEEN", "string"), Col("TYPE"), Col("REASON"), Col("OBJECT"), Col("MESSAGE")},
            [](const rapidjson::Value& it, Clock::time_point now) -> Cells {
              std::string kind = Text(it, {"involvedObject", "kind"});
              for (auto& c : kind)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
              return {HumanAge(AgeSince(Text(it, {"lastTimestamp"}), now)), Text(it, {"type"}),
                      Text(it, {"reason"}), kind + "/" + Text(it, {"involvedObject", "name"}),
                      Text(it, {"message"})};
            },
            false};
  // Gateways, ServiceEntries and whatever else: the name and the age.
  return {{Col("AGE", "date")}, [](const rapidjson::Value& it, Clock::time_point now) -> Cells {
            return {Age(it, now)};
          }};
}

}  // namespace

absl::StatusOr<PrinterTable> PrintColumns(std::string_view plural, std::string_view json,
                                          Clock::time_point now) {
  rapidjson::Document d;
  if (d.Parse(json.data(), json.size()).HasParseError() || !d.IsObject())
    return absl::InvalidArgumentError("not a JSON object");
  const Printer printer = PrinterOf(plural);
  PrinterTable out;
  const PrinterColumn name{"NAME", "string", "name", printer.name_first ? 0 : 1};
  if (printer.name_first) out.columns.push_back(name);
  out.columns.insert(out.columns.end(), printer.columns.begin(), printer.columns.end());
  if (!printer.name_first) out.columns.push_back(name);
  auto add = [&](const rapidjson::Value& item) {
    if (!item.IsObject()) return;
    PrinterRow row;
    if (printer.name_first) row.cells.push_back(Text(item, {"metadata", "name"}));
    for (auto& cell : printer.cells(item, now)) row.cells.push_back(std::move(cell));
    if (!printer.name_first) row.cells.push_back(Text(item, {"metadata", "name"}));
    if (item.HasMember("metadata") && item["metadata"].IsObject())
      row.metadata_json = Compact(item["metadata"]);
    row.namespace_ = Text(item, {"metadata", "namespace"});
    row.object_json = Compact(item);
    out.rows.push_back(std::move(row));
  };
  if (d.HasMember("items")) {
    if (!d["items"].IsArray()) return absl::InvalidArgumentError("items is not a list");
    out.resource_version = Text(d, {"metadata", "resourceVersion"});
    out.continue_token = Text(d, {"metadata", "continue"});
    for (const auto& item : d["items"].GetArray()) add(item);
  } else {
    add(d);
  }
  return out;
}

std::string HumanAge(std::chrono::seconds age) {
  long long s = std::max<long long>(0, age.count());
  char buf[32];
  if (s < 120) {
    std::snprintf(buf, sizeof(buf), "%llds", s);
  } else if (s < 600) {
    long long m = s / 60, r = s % 60;
    if (r == 0)
      std::snprintf(buf, sizeof(buf), "%lldm", m);
    else
      std::snprintf(buf, sizeof(buf), "%lldm%llds", m, r);
  } else if (s < 3 * 3600) {
    std::snprintf(buf, sizeof(buf), "%lldm", s / 60);
  } else if (s < 8 * 3600) {
    long long h = s / 3600, m = (s % 3600) / 60;
    if (m == 0)
      std::snprintf(buf, sizeof(buf), "%lldh", h);
    else
      std::snprintf(buf, sizeof(buf), "%lldh%lldm", h, m);
  } else if (s < 48 * 3600) {
    std::snprintf(buf, sizeof(buf), "%lldh", s / 3600);
  } else {
    std::snprintf(buf, sizeof(buf), "%lldd", s / 86400);
  }
  return buf;
}

std::chrono::seconds AgeSince(const std::string& rfc3339, Clock::time_point now) {
  std::tm tm{};
  if (strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm) == nullptr)
    return std::chrono::seconds(0);
  std::time_t t = timegm(&tm);
  return std::chrono::duration_cast<std::chrono::seconds>(now - Clock::from_time_t(t));
}

}  // namespace osprey::resources
