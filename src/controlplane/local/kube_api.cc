#include "controlplane/local/kube_api.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <vector>

#include "common/json_dom.h"
#include "common/json_numbers.h"
#include "common/json_writer.h"
#include "common/strings.h"
#include "resources/printer.h"
#include "resources/resources.h"

namespace osprey::embedded {
extern const char kOpenApiSchemasYaml[];  // openapi.yaml
}  // namespace osprey::embedded

namespace osprey::controlplane::kube_api {
namespace {

using resources::KindInfo;

// Kinds served under /apis: Osprey's own (events) live under /osprey/v1.
bool Served(const KindInfo& k) { return k.group != "osprey"; }

std::vector<std::string_view> Groups() {
  std::vector<std::string_view> out;
  for (const auto& k : resources::Kinds())
    if (Served(k) && std::find(out.begin(), out.end(), k.group) == out.end())
      out.push_back(k.group);
  return out;
}

std::vector<std::string_view> VersionsOf(std::string_view group) {
  std::vector<std::string_view> out;
  for (const auto& k : resources::Kinds())
    if (Served(k) && k.group == group && std::find(out.begin(), out.end(), k.version) == out.end())
      out.push_back(k.version);
  return out;
}

void WriteGroup(JsonWriter& w, std::string_view group) {
  auto versions = VersionsOf(group);
  w.Key("name").String(group).Key("versions").BeginArray();
  for (auto v : versions)
    w.BeginObject()
        .Key("groupVersion")
        .String(StrCat(group, "/", v))
        .Key("version")
        .String(v)
        .EndObject();
  w.EndArray();
  w.Key("preferredVersion")
      .BeginObject()
      .Key("groupVersion")
      .String(StrCat(group, "/", versions.front()))
      .Key("version")
      .String(versions.front())
      .EndObject();
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (size_t pos = 0;;) {
    size_t next = s.find(sep, pos);
    out.push_back(s.substr(pos, next == std::string_view::npos ? s.npos : next - pos));
    if (next == std::string_view::npos) return out;
    pos = next + 1;
  }
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t n = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) n |= static_cast<uint8_t>(in[i + 1]) << 8;
    if (i + 2 < in.size()) n |= static_cast<uint8_t>(in[i + 2]);
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < in.size() ? kAlphabet[n & 63] : '=');
  }
  return out;
}

std::vector<std::string_view> CategoriesOf(const KindInfo& k) {
  if (k.group == "serving.knative.dev") return {"all", "knative", "serving"};
  if (k.group == "networking.istio.io") return {"istio-io", "networking-istio-io"};
  return {};
}

}  // namespace

std::string VersionJson() {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject()
      .Key("major")
      .String("1")
      .Key("minor")
      .String("34")
      .Key("gitVersion")
      .String("v1.34.0+osprey")
      .Key("gitCommit")
      .String("")
      .Key("gitTreeState")
      .String("clean")
      .Key("buildDate")
      .String("1970-01-01T00:00:00Z")
      .Key("goVersion")
      .String("")
      .Key("compiler")
      .String("osprey")
      .Key("platform")
      .String("linux/amd64")
      .EndObject();
  return out;
}

std::string CoreVersionsJson() {
  return R"({"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":""}]})";
}

std::string CoreResourcesJson() {
  return R"({"kind":"APIResourceList","groupVersion":"v1","resources":[)"
         R"({"name":"events","singularName":"event","namespaced":true,"kind":"Event","verbs":["get","list"],"shortNames":["ev"]},)"
         R"({"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"],"categories":["all"]},)"
         R"({"name":"pods/log","singularName":"","namespaced":true,"kind":"Pod","verbs":["get"]}]})";
}

std::optional<std::pair<std::string, int>> PodReplica(std::string_view pod) {
  constexpr std::string_view kMid = "-deployment-";
  size_t at = pod.rfind(kMid);
  if (at == std::string_view::npos || at == 0) return std::nullopt;
  std::string_view index = pod.substr(at + kMid.size());
  int i = 0;
  if (index.empty() || std::from_chars(index.data(), index.data() + index.size(), i).ptr !=
                           index.data() + index.size())
    return std::nullopt;
  return std::make_pair(std::string(pod.substr(0, at)), i);
}

namespace {

// A core v1 object's start: apiVersion, kind, and metadata with its name,
// namespace and creationTimestamp, left open for more.
void CoreObjectHead(JsonWriter& w, std::string_view kind, const ObjectView& v,
                    std::string_view created) {
  w.BeginObject().Key("apiVersion").String("v1").Key("kind").String(kind);
  w.Key("metadata")
      .BeginObject()
      .Key("name")
      .String(v.name)
      .Key("namespace")
      .String(v.ns)
      .Key("creationTimestamp")
      .String(created);
}

}  // namespace

absl::StatusOr<std::vector<ObjectView>> CorePods(std::string_view revisions_json) {
  rapidjson::Document d;
  if (d.Parse(revisions_json.data(), revisions_json.size()).HasParseError() || !d.IsObject() ||
      !d.HasMember("items") || !d["items"].IsArray())
    return absl::InternalError("the revisions are not a JSON list");
  std::vector<ObjectView> out;
  for (const auto& rev : d["items"].GetArray()) {
    if (!rev.IsObject() || !rev.HasMember("metadata") || !rev.HasMember("status")) continue;
    const auto& meta = rev["metadata"];
    const auto& status = rev["status"];
    const std::string name = json::GetString(meta, "name");
    const std::string ns = json::GetString(meta, "namespace");
    const std::string created = json::GetString(meta, "creationTimestamp");
    std::map<std::string, std::string> labels;
    if (meta.HasMember("labels") && meta["labels"].IsObject())
      for (auto l = meta["labels"].MemberBegin(); l != meta["labels"].MemberEnd(); ++l)
        if (l->value.IsString()) labels[l->name.GetString()] = l->value.GetString();
    labels["serving.knative.dev/revision"] = name;
    if (!status.IsObject() || !status.HasMember("replicaStatuses") ||
        !status["replicaStatuses"].IsArray())
      continue;
    for (const auto& r : status["replicaStatuses"].GetArray()) {
      const std::string id = json::GetString(r, "id");
      const std::string index = id.substr(id.rfind('/') + 1);
      const std::string state = json::GetString(r, "state");
      const bool ready = state == "Ready";
      const std::string phase = ready ? "Running" : state == "Stopping" ? "Running" : "Pending";
      ObjectView v;
      v.ns = ns;
      v.name = StrCat(name, "-deployment-", index);
      v.labels = labels;
      v.fields = {{"status.phase", phase}, {"spec.nodeName", "osprey"}};
      JsonWriter w(&v.json);
      CoreObjectHead(w, "Pod", v, created);
      w.Key("labels").BeginObject();
      for (const auto& [k, value] : labels) w.Key(k).String(value);
      w.EndObject().EndObject();
      w.Key("spec")
          .BeginObject()
          .Key("nodeName")
          .String("osprey")
          .Key("containers")
          .BeginArray()
          .BeginObject()
          .Key("name")
          .String("kserve-container")
          .EndObject()
          .EndArray()
          .EndObject();
      w.Key("status").BeginObject().Key("phase").String(phase);
      w.Key("podIP").String("127.0.0.1").Key("hostIP").String("127.0.0.1");
      w.Key("containerStatuses")
          .BeginArray()
          .BeginObject()
          .Key("name")
          .String("kserve-container")
          .Key("ready")
          .Bool(ready)
          .Key("restartCount")
          .Int(json::GetInt(r, "restarts"))
          .Key("state")
          .BeginObject()
          .Key(ready || state == "Stopping" ? "running" : "waiting")
          .BeginObject();
      if (!ready && state != "Stopping") w.Key("reason").String(state);
      w.EndObject().EndObject().EndObject().EndArray();
      w.Key("osprey")
          .BeginObject()
          .Key("pid")
          .Int(json::GetInt(r, "pid"))
          .Key("port")
          .Int(json::GetInt(r, "port"))
          .EndObject();
      w.EndObject().EndObject();
      out.push_back(std::move(v));
    }
  }
  return out;
}

const resources::KindInfo& CorePodKind() {
  static const resources::KindInfo kind{
      .plural = "pods", .singular = "pod", .kind = "Pod", .group = "", .version = "v1"};
  return kind;
}

const resources::KindInfo& CoreEventKind() {
  static const resources::KindInfo kind{
      .plural = "events", .singular = "event", .kind = "Event", .group = "", .version = "v1"};
  return kind;
}

absl::StatusOr<std::vector<ObjectView>> CoreEvents(std::string_view osprey_events_json,
                                                   const UidOf& uid_of) {
  rapidjson::Document d;
  if (d.Parse(osprey_events_json.data(), osprey_events_json.size()).HasParseError() ||
      !d.IsObject() || !d.HasMember("items") || !d["items"].IsArray())
    return absl::InternalError("the platform's events are not a JSON list");
  std::vector<ObjectView> out;
  std::map<std::string, int> seq;  // per involved object
  for (const auto& e : d["items"].GetArray()) {
    ObjectView v;
    const std::string object = json::GetString(e, "object");
    std::string kind = json::GetString(e, "kind");
    if (kind.empty()) kind = "InferenceService";
    const resources::KindInfo* k = resources::FindKind(kind);
    const std::string api_version =
        k != nullptr && k->group != "osprey" ? StrCat(k->group, "/", k->version) : "";
    const std::string time = json::GetString(e, "time");
    v.ns = json::GetString(e, "namespace");
    // Named by the sequence it was recorded under (stable as others go);
    // else one series per name in the order listed.
    const std::string recorded = json::GetString(e, "seq");
    uint64_t number = 0;
    const bool numbered =
        std::from_chars(recorded.data(), recorded.data() + recorded.size(), number).ptr ==
            recorded.data() + recorded.size() &&
        !recorded.empty();
    char hex[24];
    std::snprintf(hex, sizeof(hex), "%llx", static_cast<unsigned long long>(number));
    v.name =
        numbered ? StrCat(object, ".", hex) : StrCat(object, ".", seq[StrCat(v.ns, "/", object)]++);
    const std::string uid =
        k != nullptr && uid_of ? uid_of(*k, k->cluster ? "" : v.ns, object) : std::string();
    v.fields = {{"involvedObject.kind", kind},
                {"involvedObject.name", object},
                {"involvedObject.namespace", v.ns},
                {"involvedObject.uid", uid},
                {"involvedObject.apiVersion", api_version},
                {"reason", json::GetString(e, "reason")},
                {"type", json::GetString(e, "type")},
                {"source", "osprey"}};
    JsonWriter w(&v.json);
    CoreObjectHead(w, "Event", v, time);
    w.EndObject();
    w.Key("involvedObject")
        .BeginObject()
        .Key("apiVersion")
        .String(api_version)
        .Key("kind")
        .String(kind)
        .Key("name")
        .String(object)
        .Key("namespace")
        .String(v.ns);
    if (!uid.empty()) w.Key("uid").String(uid);
    w.EndObject();
    w.Key("reason").String(json::GetString(e, "reason"));
    w.Key("message").String(json::GetString(e, "message"));
    w.Key("type").String(json::GetString(e, "type"));
    w.Key("count").Int(1);
    w.Key("firstTimestamp").String(time).Key("lastTimestamp").String(time);
    w.Key("source").BeginObject().Key("component").String("osprey").EndObject();
    w.Key("reportingComponent").String("osprey");
    w.EndObject();
    out.push_back(std::move(v));
  }
  return out;
}

std::string GroupListJson() {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("kind").String("APIGroupList").Key("apiVersion").String("v1");
  w.Key("groups").BeginArray();
  for (auto g : Groups()) {
    w.BeginObject();
    WriteGroup(w, g);
    w.EndObject();
  }
  w.EndArray().EndObject();
  return out;
}

absl::StatusOr<std::string> GroupJson(std::string_view group) {
  if (VersionsOf(group).empty())
    return absl::NotFoundError("the server could not find the requested resource");
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("kind").String("APIGroup").Key("apiVersion").String("v1");
  WriteGroup(w, group);
  w.EndObject();
  return out;
}

absl::StatusOr<std::string> ResourceListJson(std::string_view group, std::string_view version) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject()
      .Key("kind")
      .String("APIResourceList")
      .Key("apiVersion")
      .String("v1")
      .Key("groupVersion")
      .String(StrCat(group, "/", version))
      .Key("resources")
      .BeginArray();
  bool any = false;
  for (const auto& k : resources::Kinds()) {
    if (!Served(k) || k.group != group || k.version != version) continue;
    any = true;
    w.BeginObject()
        .Key("name")
        .String(k.plural)
        .Key("singularName")
        .String(k.singular)
        .Key("namespaced")
        .Bool(!k.cluster)
        .Key("kind")
        .String(k.kind);
    w.Key("verbs").BeginArray();
    if (k.applied) w.String("create").String("delete");
    w.String("get").String("list");
    if (k.applied) w.String("patch").String("update");
    w.String("watch");
    w.EndArray();
    if (!k.short_names.empty()) {
      w.Key("shortNames").BeginArray();
      for (auto s : k.short_names) w.String(s);
      w.EndArray();
    }
    if (auto categories = CategoriesOf(k); !categories.empty()) {
      w.Key("categories").BeginArray();
      for (auto c : categories) w.String(c);
      w.EndArray();
    }
    w.EndObject();
    // The status subresource, read as the object (the platform writes it).
    if (k.applied)
      w.BeginObject()
          .Key("name")
          .String(StrCat(k.plural, "/status"))
          .Key("singularName")
          .String("")
          .Key("namespaced")
          .Bool(!k.cluster)
          .Key("kind")
          .String(k.kind)
          .Key("verbs")
          .BeginArray()
          .String("get")
          .EndArray()
          .EndObject();
  }
  w.EndArray().EndObject();
  if (!any) return absl::NotFoundError("the server could not find the requested resource");
  return out;
}

Reason ReasonOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return {200, ""};
    case absl::StatusCode::kNotFound:
      return {404, "NotFound"};
    case absl::StatusCode::kAlreadyExists:
      return {409, "AlreadyExists"};
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition:
      return {409, "Conflict"};
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return {422, "Invalid"};
    case absl::StatusCode::kUnauthenticated:
      return {401, "Unauthorized"};
    case absl::StatusCode::kPermissionDenied:
      return {403, "Forbidden"};
    case absl::StatusCode::kUnimplemented:
      return {405, "MethodNotAllowed"};
    case absl::StatusCode::kUnavailable:
      return {503, "ServiceUnavailable"};
    case absl::StatusCode::kDeadlineExceeded:
      return {504, "Timeout"};
    case absl::StatusCode::kResourceExhausted:
      return {429, "TooManyRequests"};
    default:
      return {500, "InternalError"};
  }
}

namespace {

// What every Status begins with: kind, apiVersion, metadata and status.
void StatusHead(JsonWriter& w, std::string_view status) {
  w.BeginObject()
      .Key("kind")
      .String("Status")
      .Key("apiVersion")
      .String("v1")
      .Key("metadata")
      .BeginObject()
      .EndObject()
      .Key("status")
      .String(status);
}

// A failure Status; details (name, group, kind as given, one cause) when
// `kind` is known.
std::string FailureJson(int code, std::string_view reason, std::string_view message,
                        const KindInfo* kind, std::string_view name, std::string_view details_kind,
                        const std::vector<StatusCause>& causes) {
  std::string out;
  JsonWriter w(&out);
  StatusHead(w, "Failure");
  w.Key("message").String(message).Key("reason").String(reason);
  if (kind != nullptr) {
    w.Key("details").BeginObject();
    if (!name.empty()) w.Key("name").String(name);
    w.Key("group").String(kind->group).Key("kind").String(details_kind);
    if (!causes.empty()) {
      w.Key("causes").BeginArray();
      for (const auto& c : causes)
        w.BeginObject()
            .Key("reason")
            .String(c.reason)
            .Key("message")
            .String(c.message)
            .Key("field")
            .String(c.field)
            .EndObject();
      w.EndArray();
    }
    w.EndObject();
  }
  w.Key("code").Int(code).EndObject();
  return out;
}

}  // namespace

std::string StatusJson(const absl::Status& status, const KindInfo* kind, std::string_view name) {
  const Reason r = ReasonOf(status);
  std::string message(status.message());
  if (status.code() == absl::StatusCode::kNotFound && kind != nullptr && !name.empty())
    message = StrCat(kind->plural, kind->group.empty() ? "" : ".", kind->group, " \"", name,
                     "\" not found");
  if (r.reason != "Invalid" || kind == nullptr)
    return StatusJson(r.code, r.reason, message, kind, name);
  // As the API server words a validation failure: the object, then each
  // cause with its field ("spec.predictor.minReplicas: must be >= 0").
  std::string field, detail = message;
  if (size_t colon = message.find(": ");
      colon != std::string::npos && message.substr(0, colon).find(' ') == std::string::npos) {
    field = message.substr(0, colon);
    detail = message.substr(colon + 2);
  }
  return FailureJson(r.code, "Invalid",
                     StrCat(kind->kind, ".", kind->group, " \"", name, "\" is invalid: ", message),
                     kind, name, kind->kind, {{"FieldValueInvalid", detail, field}});
}

std::string StatusJson(int code, std::string_view reason, std::string_view message,
                       const KindInfo* kind, std::string_view name,
                       const std::vector<StatusCause>& causes) {
  return FailureJson(code, reason, message, kind, name, kind != nullptr ? kind->plural : "",
                     causes);
}

std::string DeletedJson(const KindInfo& kind, std::string_view name, std::string_view uid) {
  std::string out;
  JsonWriter w(&out);
  StatusHead(w, "Success");
  w.Key("details")
      .BeginObject()
      .Key("name")
      .String(name)
      .Key("group")
      .String(kind.group)
      .Key("kind")
      .String(kind.plural);
  if (!uid.empty()) w.Key("uid").String(uid);
  w.EndObject().EndObject();
  return out;
}

bool WantsTable(std::string_view accept) {
  // "application/json;as=Table;v=v1;g=meta.k8s.io, application/json": any
  // offered media range naming a v1 Table.
  for (std::string_view range : Split(accept, ',')) {
    bool table = false, v1 = false, meta = false;
    for (std::string_view param : Split(range, ';')) {
      param = Trim(param);
      table = table || param == "as=Table";
      v1 = v1 || param == "v=v1";
      meta = meta || param == "g=meta.k8s.io";
    }
    if (table && v1 && meta) return true;
  }
  return false;
}

absl::StatusOr<std::string> TableJson(std::string_view plural, std::string_view json,
                                      std::string_view include_object,
                                      std::chrono::system_clock::time_point now) {
  OSPREY_ASSIGN_OR_RETURN(auto table, resources::PrintColumns(plural, json, now));
  std::string out;
  JsonWriter w(&out);
  w.BeginObject()
      .Key("kind")
      .String("Table")
      .Key("apiVersion")
      .String("meta.k8s.io/v1")
      .Key("metadata")
      .BeginObject();
  if (!table.resource_version.empty()) w.Key("resourceVersion").String(table.resource_version);
  if (!table.continue_token.empty()) w.Key("continue").String(table.continue_token);
  w.EndObject();
  w.Key("columnDefinitions").BeginArray();
  for (const auto& c : table.columns) {
    // The CRDs' column names: "Name", "Ready", "LatestReadyRevision" (kubectl
    // prints them upper-cased).
    w.BeginObject()
        .Key("name")
        .String(c.name)
        .Key("type")
        .String(c.type)
        .Key("format")
        .String(c.format)
        .Key("description")
        .String("")
        .Key("priority")
        .Int(c.priority)
        .EndObject();
  }
  w.EndArray();
  w.Key("rows").BeginArray();
  for (const auto& r : table.rows) {
    w.BeginObject().Key("cells").BeginArray();
    for (size_t i = 0; i < r.cells.size(); ++i) {
      const std::string& type = table.columns[i].type;
      const std::string& cell = r.cells[i];
      int64_t n = 0;
      if (type == "integer" && !cell.empty() &&
          std::from_chars(cell.data(), cell.data() + cell.size(), n).ptr ==
              cell.data() + cell.size())
        w.Int(n);
      else if (type == "integer" && cell.empty())
        w.Null();
      else
        w.String(cell);
    }
    w.EndArray();
    if (include_object == "Object") {
      w.Key("object").Raw(r.object_json);
    } else if (include_object != "None") {
      w.Key("object")
          .BeginObject()
          .Key("kind")
          .String("PartialObjectMetadata")
          .Key("apiVersion")
          .String("meta.k8s.io/v1")
          .Key("metadata")
          .Raw(r.metadata_json.empty() ? "{}" : r.metadata_json)
          .EndObject();
    }
    w.EndObject();
  }
  w.EndArray().EndObject();
  return out;
}

namespace {

void Merge(rapidjson::Value& target, const rapidjson::Value& patch,
           rapidjson::Document::AllocatorType& a) {
  if (!patch.IsObject()) {
    target.CopyFrom(patch, a);
    return;
  }
  if (!target.IsObject()) target.SetObject();
  for (auto it = patch.MemberBegin(); it != patch.MemberEnd(); ++it) {
    if (it->value.IsNull()) {
      target.RemoveMember(it->name);
      continue;
    }
    auto found = target.FindMember(it->name);
    if (found == target.MemberEnd()) {
      rapidjson::Value name(it->name, a);
      rapidjson::Value value(rapidjson::kNullType);
      Merge(value, it->value, a);
      target.AddMember(name, value, a);
    } else {
      Merge(found->value, it->value, a);
    }
  }
}

// The object without what the server owns (its status and metadata's uid,
// resourceVersion, ...), as text.
std::string WithoutServerOwned(rapidjson::Document& t) {
  t.RemoveMember("status");
  if (t.HasMember("metadata") && t["metadata"].IsObject())
    for (const char* server_owned : {"uid", "resourceVersion", "generation", "creationTimestamp",
                                     "managedFields", "selfLink", "deletionTimestamp"})
      t["metadata"].RemoveMember(server_owned);
  return json::ToText(t);
}

// A member name of any bytes (NUL included: FindMember(const char*) would
// stop at one), for FindMember. No copy.
rapidjson::Value KeyOf(const std::string& key) {
  return rapidjson::Value(
      rapidjson::StringRef(key.data(), static_cast<rapidjson::SizeType>(key.size())));
}

// A JSON pointer (RFC 6901) as its reference tokens.
absl::StatusOr<std::vector<std::string>> PointerTokens(std::string_view pointer) {
  std::vector<std::string> out;
  if (pointer.empty()) return out;
  if (pointer[0] != '/')
    return absl::InvalidArgumentError(StrCat("\"", pointer, "\" is not a JSON pointer"));
  size_t pos = 1;
  while (true) {
    const size_t slash = std::min(pointer.find('/', pos), pointer.size());
    std::string token;
    for (size_t i = pos; i < slash; ++i) {
      if (pointer[i] == '~') {
        if (i + 1 >= slash || (pointer[i + 1] != '0' && pointer[i + 1] != '1'))
          return absl::InvalidArgumentError(
              StrCat("\"", pointer, "\" is not a JSON pointer: ~ must be followed by 0 or 1"));
        token += pointer[++i] == '0' ? '~' : '/';
      } else {
        token += pointer[i];
      }
    }
    out.push_back(std::move(token));
    if (slash == pointer.size()) return out;
    pos = slash + 1;
  }
}

// An array index token: digits without leading zeros, below `limit`.
std::optional<rapidjson::SizeType> Index(const std::string& token, size_t limit) {
  if (token.empty() || (token.size() > 1 && token[0] == '0')) return std::nullopt;
  size_t i = 0;
  if (std::from_chars(token.data(), token.data() + token.size(), i).ptr !=
          token.data() + token.size() ||
      i >= limit)
    return std::nullopt;
  return static_cast<rapidjson::SizeType>(i);
}

// The value a pointer names, or nullptr.
rapidjson::Value* Resolve(rapidjson::Value& root, const std::vector<std::string>& tokens,
                          size_t count) {
  rapidjson::Value* v = &root;
  for (size_t i = 0; i < count; ++i) {
    const std::string& t = tokens[i];
    if (v->IsObject()) {
      auto it = v->FindMember(KeyOf(t));
      if (it == v->MemberEnd()) return nullptr;
      v = &it->value;
    } else if (v->IsArray()) {
      auto index = Index(t, v->Size());
      if (!index) return nullptr;
      v = &(*v)[*index];
    } else {
      return nullptr;
    }
  }
  return v;
}

// RFC 6902 "add" of `value` at `path` (moved from; the document's allocator).
absl::Status AddAt(rapidjson::Document& doc, const std::vector<std::string>& path,
                   std::string_view pointer, rapidjson::Value& value) {
  if (path.empty()) {
    static_cast<rapidjson::Value&>(doc) = value;
    return absl::OkStatus();
  }
  rapidjson::Value* parent = Resolve(doc, path, path.size() - 1);
  const std::string& last = path.back();
  auto& a = doc.GetAllocator();
  if (parent != nullptr && parent->IsObject()) {
    auto it = parent->FindMember(KeyOf(last));
    if (it != parent->MemberEnd())
      it->value = value;
    else
      parent->AddMember(
          rapidjson::Value(last.data(), static_cast<rapidjson::SizeType>(last.size()), a), value,
          a);
    return absl::OkStatus();
  }
  if (parent != nullptr && parent->IsArray()) {
    const size_t size = parent->Size();
    auto index = last == "-" ? std::optional<rapidjson::SizeType>(size) : Index(last, size + 1);
    if (!index)
      return absl::InvalidArgumentError(StrCat("add operation does not apply: index ", last, " of ",
                                               pointer, " is out of range"));
    parent->PushBack(value, a);
    for (size_t i = size; i > *index; --i) (*parent)[i].Swap((*parent)[i - 1]);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      StrCat("add operation does not apply: doc is missing path: \"", pointer, "\""));
}

// RFC 6902 "remove" at `path`, giving the value removed to `out` when asked.
absl::Status RemoveAt(rapidjson::Document& doc, const std::vector<std::string>& path,
                      std::string_view pointer, rapidjson::Value* out) {
  rapidjson::Value* parent = path.empty() ? nullptr : Resolve(doc, path, path.size() - 1);
  const std::string& last = path.empty() ? std::string() : path.back();
  if (parent != nullptr && parent->IsObject()) {
    auto it = parent->FindMember(KeyOf(last));
    if (it != parent->MemberEnd()) {
      if (out != nullptr) out->Swap(it->value);
      parent->EraseMember(it);
      return absl::OkStatus();
    }
  } else if (parent != nullptr && parent->IsArray()) {
    if (auto index = Index(last, parent->Size())) {
      if (out != nullptr) out->Swap((*parent)[*index]);
      parent->Erase(parent->Begin() + *index);
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      StrCat("remove operation does not apply: doc is missing path: \"", pointer, "\""));
}

}  // namespace

namespace {

// The stored object and the patch, parsed.
absl::Status ParsePatch(std::string_view target, std::string_view patch, rapidjson::Document* t,
                        rapidjson::Document* p) {
  if (t->Parse(target.data(), target.size()).HasParseError() || !t->IsObject())
    return absl::InternalError("the stored object is not a JSON object");
  // A client's numbers RapidJSON would misread (common/json_numbers.h).
  if (ParseSafely<rapidjson::kParseDefaultFlags>(*p, patch).HasParseError())
    return absl::InvalidArgumentError("the patch is not JSON");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> MergePatch(std::string_view target, std::string_view patch) {
  rapidjson::Document t, p;
  OSPREY_RETURN_IF_ERROR(ParsePatch(target, patch, &t, &p));
  if (!p.IsObject())
    return absl::InvalidArgumentError("the patch is not a JSON object (a merge patch is one)");
  Merge(t, p, t.GetAllocator());
  return WithoutServerOwned(t);
}

absl::StatusOr<std::string> JsonPatch(std::string_view target, std::string_view patch) {
  rapidjson::Document t, p;
  OSPREY_RETURN_IF_ERROR(ParsePatch(target, patch, &t, &p));
  if (!p.IsArray())
    return absl::InvalidArgumentError(
        "the patch is not a list of operations (a JSON patch is one)");
  auto& a = t.GetAllocator();
  for (rapidjson::SizeType i = 0; i < p.Size(); ++i) {
    const rapidjson::Value& op = p[i];
    const std::string name = json::GetString(op, "op");
    const std::string where = json::GetString(op, "path");
    if (!op.IsObject() || !op.HasMember("path") || !op["path"].IsString())
      return absl::InvalidArgumentError(StrCat("operation ", i, ": it has no \"path\""));
    OSPREY_ASSIGN_OR_RETURN(auto path, PointerTokens(where));
    auto value_of = [&]() -> absl::StatusOr<rapidjson::Value> {
      auto it = op.FindMember("value");
      if (it == op.MemberEnd())
        return absl::InvalidArgumentError(
            StrCat("operation ", i, " (", name, " ", where, "): it has no \"value\""));
      return rapidjson::Value(it->value, a);
    };
    auto from_of = [&]() -> absl::StatusOr<std::vector<std::string>> {
      if (!op.HasMember("from") || !op["from"].IsString())
        return absl::InvalidArgumentError(
            StrCat("operation ", i, " (", name, " ", where, "): it has no \"from\""));
      return PointerTokens(op["from"].GetString());
    };
    if (name == "add") {
      OSPREY_ASSIGN_OR_RETURN(auto value, value_of());
      OSPREY_RETURN_IF_ERROR(AddAt(t, path, where, value));
    } else if (name == "remove") {
      OSPREY_RETURN_IF_ERROR(RemoveAt(t, path, where, nullptr));
    } else if (name == "replace") {
      OSPREY_ASSIGN_OR_RETURN(auto value, value_of());
      rapidjson::Value* at = Resolve(t, path, path.size());
      if (at == nullptr)
        return absl::InvalidArgumentError(
            StrCat("replace operation does not apply: doc is missing key: \"", where, "\""));
      *at = value;
    } else if (name == "move" || name == "copy") {
      OSPREY_ASSIGN_OR_RETURN(auto from, from_of());
      rapidjson::Value* source = Resolve(t, from, from.size());
      if (source == nullptr)
        return absl::InvalidArgumentError(StrCat(name,
                                                 " operation does not apply: doc is missing "
                                                 "from path: \"",
                                                 op["from"].GetString(), "\""));
      if (name == "move" && from.size() < path.size() &&
          std::equal(from.begin(), from.end(), path.begin()))
        return absl::InvalidArgumentError(
            StrCat("move operation: ", where, " lies inside ", op["from"].GetString()));
      rapidjson::Value value;
      if (name == "copy")
        value.CopyFrom(*source, a);
      else
        OSPREY_RETURN_IF_ERROR(RemoveAt(t, from, op["from"].GetString(), &value));
      OSPREY_RETURN_IF_ERROR(AddAt(t, path, where, value));
    } else if (name == "test") {
      OSPREY_ASSIGN_OR_RETURN(auto value, value_of());
      rapidjson::Value* at = Resolve(t, path, path.size());
      if (at == nullptr || !(*at == value))
        return absl::InvalidArgumentError(
            StrCat("testing value ", where, " failed: the value differs"));
    } else {
      return absl::InvalidArgumentError(
          StrCat("operation ", i, ": unknown op \"", name,
                 "\" (add, remove, replace, move, copy and test are known)"));
    }
  }
  if (!t.IsObject()) return absl::InvalidArgumentError("the patched document is not an object");
  return WithoutServerOwned(t);
}

std::string OpenApiRootJson() {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("paths").BeginObject();
  for (auto g : Groups())
    for (auto v : VersionsOf(g))
      w.Key(StrCat("apis/", g, "/", v))
          .BeginObject()
          .Key("serverRelativeURL")
          .String(StrCat("/openapi/v3/apis/", g, "/", v))
          .EndObject();
  w.EndObject().EndObject();
  return out;
}

namespace {

// openapi.yaml's schemas, each x-osprey-extends merged in; parsed once.
const rapidjson::Document& YamlSchemas() {
  static const rapidjson::Document* const doc = [] {
    auto* d = new rapidjson::Document;
    d->SetObject();
    auto json = resources::YamlToJson(embedded::kOpenApiSchemasYaml);
    if (!json.ok() || d->Parse(json->data(), json->size()).HasParseError() || !d->IsObject()) {
      d->SetObject();  // OpenApiSchemasJson's test proves this does not happen
      return d;
    }
    auto& a = d->GetAllocator();
    for (auto& m : d->GetObject()) {
      auto ext = m.value.FindMember("x-osprey-extends");
      if (ext == m.value.MemberEnd() || !ext->value.IsString()) continue;
      auto base = d->FindMember(ext->value.GetString());
      m.value.RemoveMember("x-osprey-extends");
      if (base == d->MemberEnd() || !base->value.HasMember("properties")) continue;
      if (!m.value.HasMember("properties"))
        m.value.AddMember("properties", rapidjson::Value(rapidjson::kObjectType), a);
      auto& props = m.value["properties"];
      for (const auto& p : base->value["properties"].GetObject())
        if (!props.HasMember(p.name))
          props.AddMember(rapidjson::Value(p.name, a), rapidjson::Value(p.value, a), a);
    }
    return d;
  }();
  return *doc;
}

bool NamesKind(const rapidjson::Value& schema, const KindInfo& k) {
  if (!schema.IsObject()) return false;
  auto gvk = schema.FindMember("x-kubernetes-group-version-kind");
  if (gvk == schema.MemberEnd() || !gvk->value.IsArray()) return false;
  for (const auto& g : gvk->value.GetArray())
    if (json::GetString(g, "group") == k.group && json::GetString(g, "version") == k.version &&
        json::GetString(g, "kind") == k.kind)
      return true;
  return false;
}

// A kind's schema: openapi.yaml's, or apiVersion, kind, metadata, and a spec
// and status of any shape.
std::pair<std::string, std::string> KindSchema(const KindInfo& k) {
  for (const auto& m : YamlSchemas().GetObject())
    if (NamesKind(m.value, k)) return {m.name.GetString(), json::ToText(m.value)};
  std::string name;
  for (std::string_view part : Split(k.group, '.'))
    name = StrCat(part, name.empty() ? "" : ".", name);
  name = StrCat(name, ".", k.version, ".", k.kind);
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("type").String("object");
  w.Key("x-kubernetes-group-version-kind")
      .BeginArray()
      .BeginObject()
      .Key("group")
      .String(k.group)
      .Key("kind")
      .String(k.kind)
      .Key("version")
      .String(k.version)
      .EndObject()
      .EndArray();
  w.Key("properties").BeginObject();
  w.Key("apiVersion").BeginObject().Key("type").String("string").EndObject();
  w.Key("kind").BeginObject().Key("type").String("string").EndObject();
  w.Key("metadata")
      .BeginObject()
      .Key("$ref")
      .String("#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
      .EndObject();
  for (const char* part : {"spec", "status"})
    w.Key(part)
        .BeginObject()
        .Key("type")
        .String("object")
        .Key("x-kubernetes-preserve-unknown-fields")
        .Bool(true)
        .EndObject();
  w.EndObject().EndObject();
  return {name, out};
}

// The schemas an OpenAPI document carries: the shared ones, and those of the
// kinds `wanted` picks.
void WriteSchemas(JsonWriter& w, const std::function<bool(const KindInfo&)>& wanted) {
  w.BeginObject();
  for (const auto& m : YamlSchemas().GetObject())
    if (!m.value.HasMember("x-kubernetes-group-version-kind"))
      w.Key(m.name.GetString()).Raw(json::ToText(m.value));
  for (const auto& k : resources::Kinds())
    if (Served(k) && wanted(k)) {
      auto [name, schema] = KindSchema(k);
      w.Key(name).Raw(schema);
    }
  w.EndObject();
}

// An OpenAPI document's start: its version field and its info.
void OpenApiHead(JsonWriter& w, std::string_view field, std::string_view version) {
  w.BeginObject()
      .Key(field)
      .String(version)
      .Key("info")
      .BeginObject()
      .Key("title")
      .String("Osprey")
      .Key("version")
      .String("v1.34.0+osprey")
      .EndObject();
}

}  // namespace

std::string OpenApiV2Json() {
  std::string out;
  JsonWriter w(&out);
  OpenApiHead(w, "swagger", "2.0");
  w.Key("paths").BeginObject().EndObject().Key("definitions");
  WriteSchemas(w, [](const KindInfo&) { return true; });
  w.EndObject();
  // Version 2 documents refer to their definitions.
  constexpr std::string_view kV3 = "#/components/schemas/", kV2 = "#/definitions/";
  for (size_t at = 0; (at = out.find(kV3, at)) != std::string::npos; at += kV2.size())
    out.replace(at, kV3.size(), kV2);
  return out;
}

absl::StatusOr<std::string> OpenApiGroupVersionJson(std::string_view group,
                                                    std::string_view version) {
  std::string out;
  JsonWriter w(&out);
  OpenApiHead(w, "openapi", "3.0.0");
  w.Key("paths").BeginObject();
  bool any = false;
  for (const auto& k : resources::Kinds()) {
    if (!Served(k) || k.group != group || k.version != version) continue;
    any = true;
    const std::string base =
        k.cluster ? StrCat("/apis/", group, "/", version, "/", k.plural)
                  : StrCat("/apis/", group, "/", version, "/namespaces/{namespace}/", k.plural);
    auto operation = [&](std::string_view verb, std::string_view action, bool field_validation) {
      w.Key(verb).BeginObject().Key("x-kubernetes-action").String(action);
      w.Key("x-kubernetes-group-version-kind")
          .BeginObject()
          .Key("group")
          .String(k.group)
          .Key("version")
          .String(k.version)
          .Key("kind")
          .String(k.kind)
          .EndObject();
      w.Key("parameters").BeginArray();
      if (field_validation)
        w.BeginObject()
            .Key("name")
            .String("fieldValidation")
            .Key("in")
            .String("query")
            .Key("schema")
            .BeginObject()
            .Key("type")
            .String("string")
            .EndObject()
            .EndObject();
      w.EndArray();
      w.Key("responses")
          .BeginObject()
          .Key("200")
          .BeginObject()
          .Key("description")
          .String("OK")
          .EndObject()
          .EndObject()
          .EndObject();
    };
    w.Key(base).BeginObject();
    operation("get", "list", false);
    if (k.applied) operation("post", "post", true);
    w.EndObject();
    w.Key(StrCat(base, "/{name}")).BeginObject();
    operation("get", "get", false);
    if (k.applied) {
      operation("put", "put", true);
      operation("patch", "patch", true);
      operation("delete", "delete", false);
    }
    w.EndObject();
  }
  w.EndObject();
  w.Key("components").BeginObject().Key("schemas");
  WriteSchemas(w, [&](const KindInfo& k) { return k.group == group && k.version == version; });
  w.EndObject();
  w.EndObject();
  if (!any) return absl::NotFoundError("the server could not find the requested resource");
  return out;
}

BodyMeta ReadBodyMeta(std::string_view body) {
  BodyMeta out;
  rapidjson::Document d;
  if (ParseSafely<rapidjson::kParseDefaultFlags>(d, body).HasParseError() || !d.IsObject())
    return out;
  auto meta = d.FindMember("metadata");
  if (meta == d.MemberEnd() || !meta->value.IsObject()) return out;
  if (auto it = meta->value.FindMember("namespace");
      it != meta->value.MemberEnd() && it->value.IsString() && it->value.GetStringLength() > 0)
    out.namespace_ = it->value.GetString();
  if (auto it = meta->value.FindMember("resourceVersion");
      it != meta->value.MemberEnd() && it->value.IsString() && it->value.GetStringLength() > 0)
    out.resource_version = it->value.GetString();
  return out;
}

uint64_t TailOffset(const std::string& path, int n) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(std::max<std::streamoff>(0, in.tellg()));
  if (n <= 0) return size;
  constexpr uint64_t kBlock = 64 << 10;
  uint64_t end = size, seen = 0;
  std::string block;
  // Lines end in newlines; the file's own last newline ends the last line.
  int newlines = 0;
  while (end > 0) {
    const uint64_t from = end > kBlock ? end - kBlock : 0;
    block.resize(end - from);
    in.seekg(static_cast<std::streamoff>(from));
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    for (uint64_t i = block.size(); i-- > 0;) {
      const uint64_t at = from + i;
      if (block[i] != '\n' || at + 1 == size) continue;
      if (++newlines == n) return at + 1;
    }
    seen += block.size();
    end = from;
  }
  return 0;
}

DeleteOptions ReadDeleteOptions(std::string_view body) {
  DeleteOptions out;
  rapidjson::Document d;
  if (ParseSafely<rapidjson::kParseDefaultFlags>(d, body).HasParseError() || !d.IsObject())
    return out;
  if (auto it = d.FindMember("dryRun"); it != d.MemberEnd() && it->value.IsArray())
    for (const auto& v : it->value.GetArray())
      out.dry_run = out.dry_run || (v.IsString() && std::string_view(v.GetString()) == "All");
  out.propagation_policy = json::GetString(d, "propagationPolicy");
  if (auto it = d.FindMember("preconditions"); it != d.MemberEnd() && it->value.IsObject()) {
    if (auto uid = it->value.FindMember("uid");
        uid != it->value.MemberEnd() && uid->value.IsString())
      out.uid = uid->value.GetString();
    if (auto rv = it->value.FindMember("resourceVersion");
        rv != it->value.MemberEnd() && rv->value.IsString())
      out.resource_version = rv->value.GetString();
  }
  return out;
}

bool SameSecret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

std::string KubeconfigYaml(std::string_view server, std::string_view ca_pem,
                           std::string_view token) {
  return StrCat(
      "# Written by osprey up: kubectl and Kubernetes clients reach this platform's API with\n"
      "# KUBECONFIG=<this file>. It holds the API token: keep it private.\n"
      "apiVersion: v1\nkind: Config\nclusters:\n- name: osprey\n  cluster:\n    server: ",
      server, "\n    certificate-authority-data: ", Base64(ca_pem),
      "\ncontexts:\n- name: osprey\n  context:\n    cluster: osprey\n    user: osprey\n"
      "    namespace: default\ncurrent-context: osprey\nusers:\n- name: osprey\n  user:\n"
      "    token: \"",
      token, "\"\n");
}

}  // namespace osprey::controlplane::kube_api
