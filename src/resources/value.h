#pragma once

// Internal to src/resources: one document tree that both YAML (yaml-cpp) and
// JSON (RapidJSON) are read into, so that the typed parser, its defaults and
// its error messages are the same whichever format a manifest came in.
// Neither yaml-cpp nor RapidJSON appears here.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace osprey::resources::internal {

struct Value {
  enum class Kind { kNull, kBool, kInt, kFloat, kString, kList, kMap };

  Kind kind = Kind::kNull;
  // Scalars: the text as written (for a string, the string itself). A string
  // field accepts any scalar through this text, so `version: 1` reads as "1".
  std::string text;
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::vector<Value> list;
  struct Member;            // a key and its value (a pair of a type still incomplete here)
  std::vector<Member> map;  // keys in document order
  int line = 0;             // 1-based; 0 when unknown (JSON)

  bool is_null() const { return kind == Kind::kNull; }
  bool is_scalar() const { return kind != Kind::kList && kind != Kind::kMap && !is_null(); }
  // The entry of a map, or nullptr when absent or null (null means absent, as
  // in Kubernetes).
  const Value* Find(std::string_view key) const;
};

struct Value::Member {
  std::string first;
  Value second;
};

// Parses every document of a YAML stream ("---" separated). Empty documents
// come back as null Values, so that document numbers match the file. Syntax
// errors name the line.
absl::StatusOr<std::vector<Value>> ParseYamlDocuments(std::string_view text);

// Parses one JSON text.
absl::StatusOr<Value> ParseJsonValue(std::string_view text);

// Compact JSON of a Value, keys in document order.
std::string ToCompactJson(const Value& v);

// How a value is shown in an error message: "two" (quoted) for a string,
// 2 for a number, "a map", "a list", "null".
std::string Describe(const Value& v);

// Whether a plain (unquoted) YAML scalar with this text would be read as
// something other than a string: null, a bool, an integer or a float.
Value::Kind PlainScalarKind(std::string_view text);

}  // namespace osprey::resources::internal
