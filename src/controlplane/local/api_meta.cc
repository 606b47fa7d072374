#include "controlplane/local/api_meta.h"

#include <cstdio>
#include <optional>
#include <random>
#include <set>

#include "common/json_dom.h"
#include "common/json_writer.h"
#include "common/strings.h"

namespace osprey::controlplane {
namespace {

constexpr std::string_view kPrefix = "apimeta/";

std::string RecordJson(const ApiMetadata::Record& r) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("created").String(r.created).Key("uid").String(r.uid);
  w.Key("finalizers").BeginArray();
  for (const auto& f : r.finalizers) w.String(f);
  w.EndArray();
  w.Key("deletionTimestamp").String(r.deletion_timestamp);
  w.Key("managedFields").Raw(fields::ManagedJson(r.managed));
  w.EndObject();
  return out;
}

std::optional<ApiMetadata::Record> ReadRecord(const std::string& json) {
  rapidjson::Document d;
  d.Parse(json.data(), json.size());
  if (d.HasParseError() || !d.IsObject()) return std::nullopt;
  ApiMetadata::Record r;
  r.created = json::GetString(d, "created");
  r.uid = json::GetString(d, "uid");
  r.finalizers = json::GetStrings(d, "finalizers");
  r.deletion_timestamp = json::GetString(d, "deletionTimestamp");
  if (auto it = d.FindMember("managedFields"); it != d.MemberEnd())
    if (auto managed = fields::ParseManaged(json::ToText(it->value)); managed.ok())
      r.managed = *std::move(managed);
  return r;
}

std::string JsonString(std::string_view s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
}

// `json` with the record's fields first in its metadata.
std::string WithRecord(const std::string& json, const ApiMetadata::Record& r) {
  constexpr std::string_view kMeta = "\"metadata\":{";
  const size_t at = json.find(kMeta);
  if (at == std::string::npos) return json;
  const size_t end = at + kMeta.size();
  std::string extra = StrCat("\"uid\":", JsonString(r.uid));
  if (!r.finalizers.empty()) {
    extra += ",\"finalizers\":[";
    for (size_t i = 0; i < r.finalizers.size(); ++i)
      StrAppend(&extra, i ? "," : "", JsonString(r.finalizers[i]));
    extra += "]";
  }
  if (!r.deletion_timestamp.empty())
    StrAppend(&extra, ",\"deletionTimestamp\":", JsonString(r.deletion_timestamp));
  if (!r.managed.empty()) StrAppend(&extra, ",\"managedFields\":", fields::ManagedJson(r.managed));
  const bool empty = end < json.size() && json[end] == '}';
  return StrCat(std::string_view(json).substr(0, end), extra, empty ? "" : ",",
                std::string_view(json).substr(end));
}

}  // namespace

ApiMetadata::ApiMetadata(Store* store) : store_(store) {
  auto listed = store_->List(std::string(kPrefix));
  if (!listed.ok()) return;  // then records are made again as objects are seen
  for (const auto& [key, value] : *listed)
    if (auto r = ReadRecord(value)) records_[key.substr(kPrefix.size())] = *std::move(r);
}

std::string ApiMetadata::Key(std::string_view plural, std::string_view ns, std::string_view name) {
  return StrCat(plural, "/", ns, "/", name);
}

std::string ApiMetadata::NewUid() {
  static std::mutex mu;
  static std::mt19937_64 random{std::random_device{}()};
  uint64_t a, b;
  {
    std::lock_guard<std::mutex> lock(mu);
    a = random();
    b = random();
  }
  a = (a & ~0xf000ULL) | 0x4000ULL;              // version 4
  b = (b & ~(0xc0ULL << 56)) | (0x80ULL << 56);  // variant 1
  char out[40];
  std::snprintf(out, sizeof(out), "%08x-%04x-%04x-%04x-%012llx", unsigned(a >> 32),
                unsigned((a >> 16) & 0xffff), unsigned(a & 0xffff), unsigned(b >> 48),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return out;
}

ApiMetadata::Record& ApiMetadata::GetLocked(const std::string& key, std::string_view created,
                                            bool* made) {
  auto it = records_.find(key);
  // A record written before its object existed takes the object's creation.
  if (it != records_.end() && it->second.created.empty() && !created.empty()) {
    it->second.created = std::string(created);
    *made = true;  // to be saved
    return it->second;
  }
  *made = it == records_.end() || (!created.empty() && it->second.created != created);
  if (*made) {
    Record r;
    r.created = std::string(created);
    r.uid = NewUid();
    it = records_.insert_or_assign(key, std::move(r)).first;
  }
  return it->second;
}

absl::Status ApiMetadata::SaveLocked(const std::string& key, const Record& record) {
  // Decorated objects of this one are stale now.
  const std::string plural = key.substr(0, key.find('/'));
  if (auto kind = decorated_.find(plural); kind != decorated_.end()) kind->second.clear();
  return store_->Put(StrCat(kPrefix, key), RecordJson(record));
}

void ApiMetadata::Decorate(std::string_view plural, std::vector<std::string>* objects) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& cache = decorated_[std::string(plural)];
  std::unordered_map<std::string, Decorated> next;
  next.reserve(objects->size());
  std::set<std::string> listed;
  for (auto& json : *objects) {
    Decorated out;
    if (auto hit = cache.find(json); hit != cache.end()) {
      out = hit->second;
    } else {
      rapidjson::Document d;
      d.Parse(json.data(), json.size());
      auto meta = d.IsObject() ? d.FindMember("metadata") : d.MemberEnd();
      if (d.HasParseError() || !d.IsObject() || meta == d.MemberEnd() || !meta->value.IsObject()) {
        next.emplace(json, Decorated{"", json});
        continue;
      }
      out.key = Key(plural, json::GetString(meta->value, "namespace"),
                    json::GetString(meta->value, "name"));
      bool made = false;
      Record& r = GetLocked(out.key, json::GetString(meta->value, "creationTimestamp"), &made);
      // A record not saved is made again (another uid) after a restart; the
      // object is served all the same.
      if (made) (void)store_->Put(StrCat(kPrefix, out.key), RecordJson(r));
      out.json = WithRecord(json, r);
    }
    listed.insert(out.key);
    std::string decorated = out.json;
    next.emplace(std::move(json), std::move(out));
    json = std::move(decorated);
  }
  cache = std::move(next);
  // Objects gone by any way (the platform's, a delete elsewhere): their records too.
  const std::string prefix = StrCat(plural, "/");
  for (auto it = records_.lower_bound(prefix);
       it != records_.end() && it->first.starts_with(prefix);) {
    if (listed.contains(it->first)) {
      ++it;
      continue;
    }
    (void)store_->Delete(StrCat(kPrefix, it->first));
    it = records_.erase(it);
  }
}

ApiMetadata::Record ApiMetadata::Get(std::string_view plural, std::string_view ns,
                                     std::string_view name, std::string_view created) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string key = Key(plural, ns, name);
  bool made = false;
  Record& r = GetLocked(key, created, &made);
  if (made) (void)SaveLocked(key, r);
  return r;
}

std::string ApiMetadata::Uid(std::string_view plural, std::string_view ns, std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(Key(plural, ns, name));
  return it == records_.end() ? "" : it->second.uid;
}

absl::Status ApiMetadata::Put(std::string_view plural, std::string_view ns, std::string_view name,
                              const Record& record) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string key = Key(plural, ns, name);
  records_[key] = record;
  return SaveLocked(key, record);
}

absl::Status ApiMetadata::Erase(std::string_view plural, std::string_view ns,
                                std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string key = Key(plural, ns, name);
  records_.erase(key);
  if (auto kind = decorated_.find(std::string(plural)); kind != decorated_.end())
    kind->second.clear();
  return store_->Delete(StrCat(kPrefix, key));
}

}  // namespace osprey::controlplane
