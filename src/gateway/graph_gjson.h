#pragma once

// The GJSON path syntax (github.com/tidwall/gjson) that KServe's
// InferenceGraph router evaluates for a step's `condition`: a Switch takes
// the first step whose condition exists in the node's input, a Sequence step
// with a condition runs only when it exists in the previous step's answer.
// Pure functions over a parsed document; no I/O.
//
// Supported (GJSON's semantics, including what "exists" means):
//   a.b.c             object keys, dot-separated; `\` escapes . | * ? and itself
//   a*b, a?c          wildcards in a key (the first matching key, in document order)
//   items.1           an array index
//   items.#           an array's length
//   items.#.name      the member of each element (an array of those that exist)
//   items.#(k==v)     the first element matching a query; #(...)# every one
//                     (an array, which exists even when empty)
//     operators: == (or =), !=, <, <=, >, >=, % (like, with * and ?), !%;
//     the value quoted ("text") or bare (ERROR, 5); numbers compare as
//     numbers, strings as strings; true/false as GJSON orders them; ~true,
//     ~false, ~null, ~* (truthiness); a query with no operator tests
//     existence (#(name)); an empty left side compares scalar elements
//     (#(=="one")); nested queries (#(tags.#(=="x")))
//   a|b               a pipe (after #. or #(...)#, applies to the whole array)
//   [p1,p2], {p1,p2}, {"k":p1}   multipaths, building an array or object of
//                     the paths that exist; [@this].#(...) queries the root
//   @this, @reverse, @keys, @values, @flatten, @valid  modifiers (no arguments)
// Not supported (never matches): other modifiers and modifier arguments,
// `..` JSON lines, `!literal` static values, `#` paths on objects.

#include <rapidjson/document.h>

#include <string>
#include <string_view>

namespace osprey::gateway {

using JsonValue = rapidjson::Value;

// Deepest nesting of arrays and objects a graph reads in a body; what walks a
// document afterwards (conditions, re-encoding, copies) recurses, so deeper
// input counts as not JSON.
inline constexpr int kMaxGraphJsonNesting = 128;

// Parses `json` (not NUL-terminated) with the iterative parser and full
// precision, after a linear scan that refuses nesting deeper than
// kMaxGraphJsonNesting. False on either.
bool ParseGraphJson(std::string_view json, rapidjson::Document* d);

// Whether `path` exists in `document` as gjson.Get(json, path).Exists()
// reports: any value found, JSON null included. Invalid JSON: false (KServe
// checks gjson.Valid first).
bool GjsonExists(std::string_view json, std::string_view path);

// The same on an already parsed document.
bool GjsonExists(const JsonValue& document, std::string_view path);

// What gjson.Get(json, path) finds, as compact JSON; "" when nothing exists
// (tests and diagnostics).
std::string GjsonGet(std::string_view json, std::string_view path);

}  // namespace osprey::gateway
