#include <rapidjson/document.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iterator>

#include "common/json_dom.h"
#include "common/rfc3339.h"
#include "controlplane/local/controller_impl.h"

namespace osprey::controlplane {
namespace fs = std::filesystem;
using namespace osprey::json;

std::string Now() { return Rfc3339Now(); }

void WriteConditions(Writer& w, const std::vector<Condition>& conditions) {
  Key(w, "conditions");
  w.StartArray();
  for (const auto& c : conditions) {
    w.StartObject();
    Field(w, "type", c.type);
    Field(w, "status", c.status);
    FieldIfSet(w, "reason", c.reason);
    FieldIfSet(w, "message", c.message);
    w.EndObject();
  }
  w.EndArray();
}

std::vector<Condition> ReadConditions(const rapidjson::Value& record) {
  std::vector<Condition> out;
  auto it = record.FindMember("conditions");
  if (it == record.MemberEnd() || !it->value.IsArray()) return out;
  for (const auto& c : it->value.GetArray())
    if (c.IsObject())
      out.push_back({GetString(c, "type"), GetString(c, "status"), GetString(c, "reason"),
                     GetString(c, "message")});
  return out;
}

void WriteTransitionTimes(Writer& w, const TransitionTimes& times) {
  Key(w, "transitionTimes");
  w.StartObject();
  for (const auto& [k, v] : times) Field(w, k, v);
  w.EndObject();
}

std::string ObjectRecord(const std::string& resource_json, int64_t generation,
                         const std::string& created, const TransitionTimes& times,
                         const std::vector<Condition>& conditions,
                         const std::function<void(json::Writer&)>& more) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  Key(w, "resource");
  Raw(w, resource_json);
  Key(w, "generation");
  w.Int64(generation);
  Field(w, "created", created);
  WriteTransitionTimes(w, times);
  WriteConditions(w, conditions);
  if (more) more(w);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::optional<StoredObject> ReadObjectRecord(const std::string& key, const std::string& value,
                                             std::string_view kind) {
  StoredObject out;
  if (out.doc.Parse(value.data(), value.size()).HasParseError() || !out.doc.IsObject() ||
      !out.doc.HasMember("resource"))
    return std::nullopt;
  auto resource = resources::FromJson(ToText(out.doc["resource"]));
  if (!resource.ok() || resources::KindOf(*resource) != kind) {
    OSPREY_LOG(kError) << "store: " << key << " is unreadable, skipped";
    return std::nullopt;
  }
  out.resource = std::move(*resource);
  out.resource_json = resources::ToJson(out.resource);
  out.generation = GetInt(out.doc, "generation");
  out.created = GetString(out.doc, "created");
  out.times = ReadTransitionTimes(out.doc);
  out.conditions = ReadConditions(out.doc);
  return out;
}

TransitionTimes ReadTransitionTimes(const rapidjson::Value& record) {
  TransitionTimes out;
  if (auto it = record.FindMember("transitionTimes");
      it != record.MemberEnd() && it->value.IsObject())
    for (const auto& m : it->value.GetObject())
      if (m.value.IsString()) out[m.name.GetString()] = m.value.GetString();
  return out;
}

void StampTransitions(const std::vector<Condition>& before, const std::vector<Condition>& after,
                      const std::string& now, TransitionTimes* times) {
  for (const auto& c : after) {
    auto was = std::find_if(before.begin(), before.end(),
                            [&](const Condition& b) { return b.type == c.type; });
    if (was == before.end() || was->status != c.status) (*times)[c.type] = now;
  }
}

RevisionPhase PhaseFromName(std::string_view name) {
  for (auto p : {RevisionPhase::kPending, RevisionPhase::kDownloading, RevisionPhase::kLoading,
                 RevisionPhase::kReady, RevisionPhase::kFailed, RevisionPhase::kRetired})
    if (RevisionPhaseName(p) == name) return p;
  return RevisionPhase::kPending;
}

// The last `n` non-empty lines of a file.
std::vector<std::string> TailLines(const std::string& path, int n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff start = std::max<std::streamoff>(0, size - 256 * 1024);
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(std::move(line));
    pos = nl + 1;
  }
  if (static_cast<int>(lines.size()) > n) lines.erase(lines.begin(), lines.end() - n);
  return lines;
}

std::string Controller::Impl::EventPrefix(std::string_view ns, std::string_view kind,
                                          std::string_view object) {
  return StrCat("event/", ns, "/", kind, "/", object, "/");
}

void Controller::Impl::KindEvent(std::string_view kind, const std::string& ns,
                                 const std::string& object, std::string_view type,
                                 std::string_view reason, std::string_view message) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  Field(w, "time", Now());
  Field(w, "kind", kind);
  Field(w, "object", object);
  Field(w, "type", type);
  Field(w, "reason", reason);
  Field(w, "message", message);
  w.EndObject();
  char seq[32];
  std::snprintf(
      seq, sizeof(seq), "%020llu",
      static_cast<unsigned long long>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                              .count() *
                                          16 +
                                      (event_seq.fetch_add(1) % 16)));
  (void)store->Put(StrCat(EventPrefix(ns, kind, object), seq), buf.GetString());
  OSPREY_LOG(kInfo) << ns << "/" << object << ": " << reason << ": " << message;
}

void Controller::Impl::SaveIsvc(const std::string& key, const IsvcEntry& e) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  Key(w, "resource");
  Raw(w, e.resource_json);
  Key(w, "generation");
  w.Int64(e.generation);
  Field(w, "created", e.created);
  WriteTransitionTimes(w, e.transition_times);
  WriteConditions(w, e.status.conditions);
  Field(w, "latestRolledoutRevision", e.status.latest_rolled_out);
  Field(w, "previousRolledoutRevision", e.status.previous_rolled_out);
  // The other components' rolled-out revisions.
  for (const char* name : {"transformer", "explainer"}) {
    std::optional<ComponentStatus> c = e.status.Component(name);
    if (!c.has_value()) continue;
    Key(w, name);
    w.StartObject();
    Field(w, "latestRolledoutRevision", c->latest_rolled_out);
    Field(w, "previousRolledoutRevision", c->previous_rolled_out);
    w.EndObject();
  }
  w.EndObject();
  auto st = store->Put(StrCat("isvc/", key), buf.GetString());
  if (!st.ok()) {
    OSPREY_LOG(kError) << st.message();
  }
}

void Controller::Impl::SaveRevision(const std::string& key, const RevEntry& r) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  Key(w, "spec");
  Raw(w, RevisionSpecJson(r.spec));
  Field(w, "phase", RevisionPhaseName(r.observed.phase));
  Field(w, "reason", r.observed.reason);
  Field(w, "message", r.observed.message);
  Field(w, "failureTime", r.observed.failure_time);
  Key(w, "everReady");
  w.Bool(r.observed.ever_ready);
  Field(w, "modelDir", r.model_dir);
  // How it runs here, fixed when it was made: a revision is immutable, so a
  // later start with another image map or binary does not change it.
  Key(w, "local");
  w.StartObject();
  Strings(w, "command", r.local.argv);
  Key(w, "env");
  w.StartArray();
  for (const auto& [n, v] : r.local.env) {
    w.StartObject();
    Field(w, "name", n);
    Field(w, "value", v);
    w.EndObject();
  }
  w.EndArray();
  Field(w, "healthPath", r.local.health_path);
  Field(w, "failureReason", r.local.failure_reason);
  Field(w, "failureMessage", r.local.failure_message);
  w.EndObject();
  w.EndObject();
  auto st = store->Put(StrCat("revision/", key), buf.GetString());
  if (!st.ok()) {
    OSPREY_LOG(kError) << st.message();
  }
}

namespace {

// The local command a revision record holds: the one it was placed with, or
// (a record written before revisions were kept in KServe's terms) the local
// command its spec held, as it was. Empty when the record has neither.
LocalCommand StoredPlacement(const rapidjson::Value& record) {
  LocalCommand local;
  const rapidjson::Value* from = nullptr;
  if (auto it = record.FindMember("local"); it != record.MemberEnd() && it->value.IsObject()) {
    from = &it->value;
    local.failure_reason = GetString(*from, "failureReason");
    local.failure_message = GetString(*from, "failureMessage");
  } else if (auto spec = record.FindMember("spec");
             spec != record.MemberEnd() && spec->value.IsObject() &&
             !spec->value.HasMember("container") && spec->value.HasMember("command")) {
    from = &spec->value;
  }
  if (from == nullptr) return local;
  local.argv = GetStrings(*from, "command");
  if (auto it = from->FindMember("env"); it != from->MemberEnd() && it->value.IsArray())
    for (const auto& e : it->value.GetArray())
      local.env.emplace_back(GetString(e, "name"), GetString(e, "value"));
  local.health_path = GetString(*from, "healthPath");
  return local;
}

}  // namespace

absl::Status Controller::Impl::Load() {
  OSPREY_ASSIGN_OR_RETURN(auto isvc_rows, store->List("isvc/"));
  for (const auto& [key, value] : isvc_rows) {
    rapidjson::Document d;
    if (d.Parse(value.data(), value.size()).HasParseError()) continue;
    auto resource = resources::FromJson(ToText(d["resource"]));
    if (!resource.ok() || !std::holds_alternative<InferenceService>(*resource)) {
      OSPREY_LOG(kError) << "store: " << key << " is unreadable, skipped";
      continue;
    }
    IsvcEntry e;
    e.isvc = std::get<InferenceService>(*resource);
    e.resource_json = resources::ToJson(*resource);
    SetSpecJsons(e);
    e.generation = GetInt(d, "generation");
    e.created = GetString(d, "created");
    e.transition_times = ReadTransitionTimes(d);
    e.status.conditions = ReadConditions(d);
    e.status.latest_rolled_out = GetString(d, "latestRolledoutRevision");
    e.status.previous_rolled_out = GetString(d, "previousRolledoutRevision");
    for (const char* name : {"transformer", "explainer"}) {
      auto it = d.FindMember(name);
      if (it == d.MemberEnd() || !it->value.IsObject()) continue;
      ComponentStatus c;
      c.latest_rolled_out = GetString(it->value, "latestRolledoutRevision");
      c.previous_rolled_out = GetString(it->value, "previousRolledoutRevision");
      (std::string_view(name) == "transformer" ? e.status.transformer : e.status.explainer) = c;
    }
    isvcs[key.substr(5)] = std::move(e);
  }
  OSPREY_ASSIGN_OR_RETURN(auto rt_rows, store->List("runtime/"));
  for (const auto& [key, value] : rt_rows) {
    rapidjson::Document d;
    if (d.Parse(value.data(), value.size()).HasParseError()) continue;
    auto resource = resources::FromJson(ToText(d["resource"]));
    if (!resource.ok() || !std::holds_alternative<ServingRuntime>(*resource)) continue;
    RuntimeEntry e;
    e.runtime = std::get<ServingRuntime>(*resource);
    e.resource_json = resources::ToJson(*resource);
    e.created = GetString(d, "created");
    runtimes[key.substr(8)] = std::move(e);
  }
  OSPREY_ASSIGN_OR_RETURN(auto rev_rows, store->List("revision/"));
  for (const auto& [key, value] : rev_rows) {
    rapidjson::Document d;
    if (d.Parse(value.data(), value.size()).HasParseError() || !d.HasMember("spec")) continue;
    RevEntry r;
    auto spec = ParseRevisionSpec(ToText(d["spec"]));
    if (!spec.ok()) {
      OSPREY_LOG(kError) << "store: " << key << " is unreadable, skipped";
      continue;
    }
    r.spec = std::move(*spec);
    r.local = StoredPlacement(d);
    if (r.local.argv.empty() && r.local.failure_reason.empty()) r.local = Place(r.spec);
    r.observed.phase = PhaseFromName(GetString(d, "phase"));
    r.observed.reason = GetString(d, "reason");
    r.observed.message = GetString(d, "message");
    r.observed.failure_time = GetString(d, "failureTime");
    r.observed.ever_ready =
        d.HasMember("everReady") && d["everReady"].IsBool() && d["everReady"].GetBool();
    // Aspired until the first pass says otherwise: observing a revision
    // before that must not retire one that was serving (scaled to zero).
    r.aspired = r.observed.phase != RevisionPhase::kRetired;
    r.model_dir = GetString(d, "modelDir");
    // A Knative Service's revision fetches nothing: its replicas are re-adopted.
    if (r.spec.kind == kKnativeServiceKind) r.fetch = Fetch::kDone;
    // A model fetched before is taken from where it lies (the cache keeps
    // it): no second download.
    if (!r.model_dir.empty() && fs::exists(r.model_dir)) r.fetch = Fetch::kDone;
    revisions[key.substr(9)] = std::move(r);
  }
  // Built-in cluster runtimes, dated from the platform's first start.
  std::string installed;
  if (auto v = store->Get("meta/installed"); v.ok()) {
    installed = *v;
  } else {
    installed = Now();
    OSPREY_RETURN_IF_ERROR(store->Put("meta/installed", installed));
  }
  for (const auto& rt : resources::BuiltinClusterRuntimes()) {
    std::string key = StrCat("/", rt.meta.name);
    if (runtimes.count(key)) continue;  // replaced by the user's own
    RuntimeEntry e;
    e.runtime = rt;
    e.resource_json = resources::ToJson(resources::Resource(rt));
    e.created = installed;
    e.builtin = true;
    runtimes[key] = std::move(e);
  }
  OSPREY_RETURN_IF_ERROR(LoadGraphs());
  OSPREY_RETURN_IF_ERROR(LoadTrained());
  OSPREY_RETURN_IF_ERROR(LoadKsvcs());
  OSPREY_RETURN_IF_ERROR(LoadIstio());
  LoadCosts();
  return absl::OkStatus();
}

void Controller::Impl::Readopt() {
  auto rows = store->List("replica/");
  if (!rows.ok()) return;
  for (const auto& [key, value] : *rows) {
    std::string id = key.substr(8);  // ns/rev/i
    rapidjson::Document d;
    bool adopted = false;
    if (!d.Parse(value.data(), value.size()).HasParseError()) {
      size_t last = id.rfind('/');
      std::string rev_key = id.substr(0, last);
      int index = std::atoi(id.c_str() + last + 1);
      auto it = revisions.find(rev_key);
      if (it != revisions.end() && it->second.fetch == Fetch::kDone) {
        ReplicaSpec spec = MakeReplica(rev_key, it->second, index);
        adopted = supervisor->Adopt(spec, static_cast<int>(GetInt(d, "pid")),
                                    static_cast<uint16_t>(GetInt(d, "port")),
                                    static_cast<uint16_t>(GetInt(d, "grpc_port")));
        // Replicas are kept by index (0..scale-1): the scale reached is
        // the highest adopted index + 1 (a dead one below it restarts).
        if (adopted) it->second.adopted = std::max(it->second.adopted, index + 1);
      }
    }
    OSPREY_LOG(kInfo) << "replica " << id << (adopted ? " re-adopted" : " not running: restarts");
    if (!adopted) (void)store->Delete(key);
  }
}

}  // namespace osprey::controlplane
