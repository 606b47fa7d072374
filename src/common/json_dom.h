#pragma once

// Small helpers over RapidJSON's DOM and writer, for code that keeps JSON
// records (the control plane's store) or renders API objects from a parsed
// document. Header-only; RapidJSON is header-only too. Code on the request
// path writes with JsonWriter (json_writer.h) instead.

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace osprey::json {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

inline void Str(Writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}
inline void Key(Writer& w, std::string_view s) {
  w.Key(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}
inline void Field(Writer& w, std::string_view k, std::string_view v) {
  Key(w, k);
  Str(w, v);
}
inline void FieldIfSet(Writer& w, std::string_view k, std::string_view v) {
  if (!v.empty()) Field(w, k, v);
}
// An already-serialised JSON value.
inline void Raw(Writer& w, std::string_view json) {
  w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
}
inline void Strings(Writer& w, std::string_view key, const std::vector<std::string>& v) {
  Key(w, key);
  w.StartArray();
  for (const auto& s : v) Str(w, s);
  w.EndArray();
}

// Member `key` of an object: "" / 0 / {} when absent or of another type.
inline std::string GetString(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject()) return "";
  auto it = v.FindMember(key);
  return it != v.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}
inline int64_t GetInt(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject()) return 0;
  auto it = v.FindMember(key);
  return it != v.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : 0;
}
inline std::vector<std::string> GetStrings(const rapidjson::Value& v, const char* key) {
  std::vector<std::string> out;
  if (!v.IsObject()) return out;
  auto it = v.FindMember(key);
  if (it == v.MemberEnd() || !it->value.IsArray()) return out;
  for (const auto& e : it->value.GetArray())
    if (e.IsString()) out.emplace_back(e.GetString());
  return out;
}

inline std::string ToText(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace osprey::json
