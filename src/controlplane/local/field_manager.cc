#include "controlplane/local/field_manager.h"

#include <algorithm>
#include <map>
#include <optional>

#include "common/json_dom.h"
#include "common/json_writer.h"
#include "common/strings.h"

namespace osprey::controlplane::fields {
namespace {

// A member name of any bytes (NUL included: FindMember(const char*) would
// stop at one), for FindMember. No copy.
rapidjson::Value KeyOf(const std::string& key) {
  return rapidjson::Value(
      rapidjson::StringRef(key.data(), static_cast<rapidjson::SizeType>(key.size())));
}

using rapidjson::Document;
using rapidjson::Value;

// The first key an object (at any depth) has twice, if any: a field path
// must name one value.
std::optional<std::string> DuplicateKey(const Value& v) {
  if (v.IsObject()) {
    std::set<std::string_view> seen;
    for (const auto& m : v.GetObject()) {
      const std::string_view key(m.name.GetString(), m.name.GetStringLength());
      if (!seen.insert(key).second) return std::string(key);
      if (auto inner = DuplicateKey(m.value)) return inner;
    }
  } else if (v.IsArray()) {
    for (const auto& e : v.GetArray())
      if (auto inner = DuplicateKey(e)) return inner;
  }
  return std::nullopt;
}

absl::Status ParseObject(std::string_view text, std::string_view what, Document* d) {
  d->Parse(text.data(), text.size());
  if (d->HasParseError() || !d->IsObject())
    return absl::InvalidArgumentError(StrCat(what, " is not a JSON object"));
  if (auto key = DuplicateKey(*d))
    return absl::InvalidArgumentError(StrCat(what, " has the field \"", *key, "\" twice"));
  return absl::OkStatus();
}

void Collect(const Value& v, Path& at, Set* out) {
  if (v.IsObject() && v.MemberCount() > 0) {
    for (const auto& m : v.GetObject()) {
      at.emplace_back(m.name.GetString(), m.name.GetStringLength());
      Collect(m.value, at, out);
      at.pop_back();
    }
  } else {
    out->insert(at);
  }
}

Set FieldsOfObject(const Value& root) {
  Set out;
  Path at;
  for (const auto& m : root.GetObject()) {
    const std::string_view name(m.name.GetString(), m.name.GetStringLength());
    if (name == "apiVersion" || name == "kind" || name == "status") continue;
    if (name == "metadata") {
      if (!m.value.IsObject()) continue;
      for (const char* key : {"labels", "annotations", "finalizers"})
        if (auto it = m.value.FindMember(key); it != m.value.MemberEnd()) {
          at = {"metadata", key};
          Collect(it->value, at, &out);
        }
      continue;
    }
    at = {std::string(name)};
    Collect(m.value, at, &out);
  }
  return out;
}

// The value at `path`, or nullptr.
const Value* At(const Value& root, const Path& path) {
  const Value* v = &root;
  for (const auto& key : path) {
    if (!v->IsObject()) return nullptr;
    auto it = v->FindMember(KeyOf(key));
    if (it == v->MemberEnd()) return nullptr;
    v = &it->value;
  }
  return v;
}

bool SameAt(const Value& a, const Value& b, const Path& path) {
  const Value* x = At(a, path);
  const Value* y = At(b, path);
  return x != nullptr && y != nullptr && *x == *y;
}

bool IsEmptyObject(const Value* v) {
  return v != nullptr && v->IsObject() && v->MemberCount() == 0;
}

// Whether applying `want` over `have` changes it: an empty object over an
// object changes nothing (it names the object, not its contents).
bool Changes(const Value* want, const Value* have) {
  if (have == nullptr) return true;
  if (IsEmptyObject(want) && have->IsObject()) return false;
  return !(*want == *have);
}

// One path is the other or lies under it: owning one is owning part of the other.
bool Related(const Path& a, const Path& b) {
  const size_t n = std::min(a.size(), b.size());
  return std::equal(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n), b.begin());
}

bool Owns(const Entry& e, const Path& p) {
  for (const auto& q : e.fields)
    if (Related(p, q)) return true;
  return false;
}

void EraseRelated(Set& s, const Path& p) {
  for (auto it = s.begin(); it != s.end();) it = Related(*it, p) ? s.erase(it) : std::next(it);
}

void SetAt(Value& root, const Path& path, const Value& value, Document::AllocatorType& a) {
  Value* v = &root;
  for (size_t i = 0; i < path.size(); ++i) {
    if (!v->IsObject()) v->SetObject();
    auto it = v->FindMember(KeyOf(path[i]));
    if (it == v->MemberEnd()) {
      v->AddMember(Value(path[i].data(), static_cast<rapidjson::SizeType>(path[i].size()), a),
                   Value(rapidjson::kObjectType), a);
      it = v->MemberEnd() - 1;
    }
    v = &it->value;
  }
  if (!Changes(&value, v)) return;
  v->CopyFrom(value, a);
}

// Removes the field at `path`, then the objects it leaves empty below the
// top level that nobody owns.
void RemoveAt(Value& root, const Path& path, const Managed& managed) {
  if (path.empty()) return;
  std::vector<Value*> chain = {&root};
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    Value* v = chain.back();
    if (!v->IsObject()) return;
    auto it = v->FindMember(KeyOf(path[i]));
    if (it == v->MemberEnd()) return;
    chain.push_back(&it->value);
  }
  for (size_t depth = path.size(); depth > 0; --depth) {
    Value* parent = chain[depth - 1];
    if (!parent->IsObject()) return;
    const std::string& key = path[depth - 1];
    auto it = parent->FindMember(KeyOf(key));
    if (it == parent->MemberEnd()) return;
    if (depth < path.size()) {  // an ancestor: only when now empty and unowned
      const Path at(path.begin(), path.begin() + static_cast<std::ptrdiff_t>(depth));
      bool owned = false;
      for (const auto& e : managed) owned = owned || e.fields.contains(at);
      if (depth < 2 || !it->value.IsObject() || it->value.MemberCount() > 0 || owned) return;
    }
    parent->EraseMember(it);
  }
}

struct Node {
  std::map<std::string, Node> children;
  bool self = false;
};

void WriteNode(const Node& n, JsonWriter& w) {
  w.BeginObject();
  if (n.self && !n.children.empty()) w.Key(".").BeginObject().EndObject();
  for (const auto& [key, child] : n.children) {
    w.Key(StrCat("f:", key));
    WriteNode(child, w);
  }
  w.EndObject();
}

void ReadNode(const Value& v, Path& at, Set* out) {
  if (!v.IsObject()) return;
  if (v.MemberCount() == 0 && !at.empty()) out->insert(at);
  for (const auto& m : v.GetObject()) {
    std::string_view key(m.name.GetString(), m.name.GetStringLength());
    if (key == ".") {
      if (!at.empty()) out->insert(at);
      continue;
    }
    if (key.starts_with("f:")) key.remove_prefix(2);
    at.emplace_back(key);
    ReadNode(m.value, at, out);
    at.pop_back();
  }
}

Entry* Find(Managed& managed, std::string_view manager, std::string_view operation) {
  for (auto& e : managed)
    if (e.manager == manager && e.operation == operation) return &e;
  return nullptr;
}

void DropEmpty(Managed& managed) {
  managed.erase(std::remove_if(managed.begin(), managed.end(),
                               [](const Entry& e) { return e.fields.empty(); }),
                managed.end());
}

}  // namespace

std::string PathString(const Path& path) {
  std::string out;
  for (const auto& key : path) StrAppend(&out, ".", key);
  return out;
}

absl::StatusOr<Set> FieldsOf(std::string_view object_json) {
  Document d;
  OSPREY_RETURN_IF_ERROR(ParseObject(object_json, "the object", &d));
  return FieldsOfObject(d);
}

std::string ManagedJson(const Managed& managed) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray();
  for (const auto& e : managed) {
    Node root;
    for (const auto& path : e.fields) {
      Node* n = &root;
      for (const auto& key : path) n = &n->children[key];
      n->self = true;
    }
    w.BeginObject()
        .Key("manager")
        .String(e.manager)
        .Key("operation")
        .String(e.operation)
        .Key("apiVersion")
        .String(e.api_version)
        .Key("time")
        .String(e.time)
        .Key("fieldsType")
        .String("FieldsV1")
        .Key("fieldsV1");
    WriteNode(root, w);
    w.EndObject();
  }
  w.EndArray();
  return out;
}

absl::StatusOr<Managed> ParseManaged(std::string_view managed_fields_json) {
  Document d;
  d.Parse(managed_fields_json.data(), managed_fields_json.size());
  if (d.HasParseError() || !d.IsArray())
    return absl::InvalidArgumentError("metadata.managedFields: not a list");
  Managed out;
  for (const auto& v : d.GetArray()) {
    if (!v.IsObject()) return absl::InvalidArgumentError("metadata.managedFields: not an object");
    Entry e;
    e.manager = json::GetString(v, "manager");
    e.operation = json::GetString(v, "operation");
    e.api_version = json::GetString(v, "apiVersion");
    e.time = json::GetString(v, "time");
    if (auto it = v.FindMember("fieldsV1"); it != v.MemberEnd()) {
      Path at;
      ReadNode(it->value, at, &e.fields);
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<Applied> Apply(std::string_view current, std::string_view config,
                              const Managed& managed, std::string_view manager, bool force,
                              std::string_view api_version, std::string_view time) {
  Document cfg, cur;
  OSPREY_RETURN_IF_ERROR(ParseObject(config, "the apply configuration", &cfg));
  if (current.empty())
    cur.SetObject();
  else
    OSPREY_RETURN_IF_ERROR(ParseObject(current, "the stored object", &cur));
  const Set applied = FieldsOfObject(cfg);
  Managed next = managed;
  Set previous;
  if (const Entry* own = Find(next, manager, "Apply")) previous = own->fields;
  auto is_own = [&](const Entry& e) { return e.manager == manager && e.operation == "Apply"; };

  // A field whose value changes and that someone else owns: a conflict.
  std::set<std::pair<size_t, Path>> conflicting;  // (entry, its field)
  for (const auto& p : applied) {
    if (!Changes(At(cfg, p), At(cur, p))) continue;
    for (size_t i = 0; i < next.size(); ++i) {
      if (is_own(next[i])) continue;
      for (const auto& q : next[i].fields)
        if (Related(p, q)) conflicting.emplace(i, q);
    }
  }
  Applied out;
  if (!conflicting.empty() && !force) {
    for (const auto& [i, q] : conflicting)
      out.conflicts.push_back({next[i].manager, next[i].api_version, q});
    out.managed = managed;
    return out;
  }
  for (const auto& [i, q] : conflicting) next[i].fields.erase(q);

  // The config's fields set; what the manager set before and not now removed,
  // unless someone else owns it too.
  if (current.empty()) cur.CopyFrom(cfg, cur.GetAllocator());
  for (const auto& p : applied) SetAt(cur, p, *At(cfg, p), cur.GetAllocator());
  for (const auto& q : previous) {
    if (applied.contains(q)) continue;
    bool kept = false;
    for (const auto& p : applied) kept = kept || Related(p, q);
    for (const auto& e : next) kept = kept || (!is_own(e) && Owns(e, q));
    // An object named as a whole (an empty map in the config) goes only when
    // empty: what else it holds is not the applier's.
    if (const Value* at = At(cur, q); at != nullptr && at->IsObject() && at->MemberCount() > 0)
      kept = true;
    if (!kept) RemoveAt(cur, q, next);
  }
  if (Entry* own = Find(next, manager, "Apply")) {
    own->fields = applied;
    own->api_version = std::string(api_version);
    own->time = std::string(time);
  } else {
    next.push_back(
        {std::string(manager), "Apply", std::string(api_version), std::string(time), applied});
  }
  DropEmpty(next);
  out.object = json::ToText(cur);
  out.managed = std::move(next);
  return out;
}

absl::StatusOr<Managed> Update(std::string_view before, std::string_view after,
                               const Managed& managed, std::string_view manager,
                               std::string_view api_version, std::string_view time) {
  Document b, a;
  if (before.empty())
    b.SetObject();
  else
    OSPREY_RETURN_IF_ERROR(ParseObject(before, "the stored object", &b));
  OSPREY_RETURN_IF_ERROR(ParseObject(after, "the object", &a));
  const Set had = FieldsOfObject(b);
  const Set has = FieldsOfObject(a);
  Set changed;
  for (const auto& p : has)
    if (!SameAt(a, b, p)) changed.insert(p);
  Managed next = managed;
  for (auto& e : next) {
    for (const auto& p : changed) EraseRelated(e.fields, p);
    for (const auto& q : had)
      if (At(a, q) == nullptr) EraseRelated(e.fields, q);
  }
  if (!changed.empty()) {
    Entry* own = Find(next, manager, "Update");
    if (own == nullptr) {
      next.push_back({std::string(manager), "Update", "", "", {}});
      own = &next.back();
    }
    own->fields.insert(changed.begin(), changed.end());
    own->api_version = std::string(api_version);
    own->time = std::string(time);
  }
  DropEmpty(next);
  return next;
}

std::string ConflictMessage(const std::vector<Conflict>& conflicts) {
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> by_manager;
  for (const auto& c : conflicts)
    by_manager[{c.manager, c.api_version}].push_back(PathString(c.path));
  std::string out = StrCat("Apply failed with ", conflicts.size(),
                           conflicts.size() == 1 ? " conflict: " : " conflicts: ");
  bool first = true;
  for (const auto& [who, paths] : by_manager) {
    if (!first) out += "\n";
    first = false;
    if (paths.size() == 1 && conflicts.size() == 1) {
      StrAppend(&out, "conflict with \"", who.first, "\" using ", who.second, ": ", paths[0]);
      continue;
    }
    StrAppend(&out, "conflicts with \"", who.first, "\" using ", who.second, ":");
    for (const auto& p : paths) StrAppend(&out, "\n- ", p);
  }
  return out;
}

}  // namespace osprey::controlplane::fields
