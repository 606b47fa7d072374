#pragma once

// Internal to src/resources: the InferenceGraph's parser and writer
// (inference_graph.cc), and the parsing helpers and metadata parser they
// share with the other kinds (parse.cc).

#include <map>
#include <optional>
#include <set>
#include <vector>
#include <string>
#include <string_view>

#include "common/json_dom.h"
#include "common/status.h"
#include "resources/resources.h"
#include "resources/value.h"

namespace osprey::resources::internal {

// The parsing helpers every kind uses (parse.cc): errors name the field path
// and, where known, the line.
using FieldSet = std::set<std::string_view>;
std::string Field(std::string_view path, std::string_view key);
std::string Index(std::string_view path, size_t i);
absl::Status Error(const Value* at, std::string_view path, std::string_view message);
absl::Status ExpectMap(const Value& v, std::string_view path);
// An error at the first key of `map` not in `known`.
absl::Status CheckFields(const Value& map, std::string_view path, const FieldSet& known);
absl::Status ToString(const Value& v, std::string_view path, std::string* out);
// parent[key] as a string into *out; absent: *out unchanged.
absl::Status ReadString(const Value& parent, std::string_view key, std::string_view path,
                        std::string* out);

absl::Status ReadIntField(const Value& parent, std::string_view key, std::string_view path,
                          std::optional<int>* out);
absl::Status ReadBoolField(const Value& parent, std::string_view key, std::string_view path,
                           bool* out);
absl::Status ReadStrings(const Value& parent, std::string_view key, std::string_view path,
                         std::vector<std::string>* out);
absl::Status ReadStringsMap(const Value& parent, std::string_view key, std::string_view path,
                            std::map<std::string, std::string>* out);
// metadata of a namespaced object whose name is a DNS-1123 subdomain
// (Kubernetes' rule, Istio's kinds).
absl::Status ParseObjectMeta(const Value& doc, ObjectMeta* meta);
bool IsDns1123Label(std::string_view s);

// The Istio kinds (istio.cc), by kind name; apiVersion already checked.
absl::StatusOr<Resource> ParseIstio(std::string_view kind, const Value& doc);
// apiVersion, kind, metadata and spec of an Istio object, into an open object.
void IstioJson(json::Writer& w, const Resource& r);

// metadata of a namespaced object whose name is a DNS-1035 label (KServe's
// rule for InferenceGraph names).
absl::Status ParseGraphMeta(const Value& doc, ObjectMeta* meta);

absl::StatusOr<InferenceGraph> ParseInferenceGraph(const Value& doc);

// apiVersion, kind, metadata and spec of a graph, into an open object.
void InferenceGraphJson(json::Writer& w, const InferenceGraph& g);

}  // namespace osprey::resources::internal
