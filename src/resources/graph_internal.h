#pragma once

// Internal to src/resources: the InferenceGraph's parser and writer
// (inference_graph.cc), and the metadata parser they share with the other
// kinds (parse.cc).

#include "common/json_dom.h"
#include "common/status.h"
#include "resources/resources.h"
#include "resources/value.h"

namespace osprey::resources::internal {

// metadata of a namespaced object whose name is a DNS-1035 label (KServe's
// rule for InferenceGraph names).
absl::Status ParseGraphMeta(const Value& doc, ObjectMeta* meta);

absl::StatusOr<InferenceGraph> ParseInferenceGraph(const Value& doc);

// apiVersion, kind, metadata and spec of a graph, into an open object.
void InferenceGraphJson(json::Writer& w, const InferenceGraph& g);

}  // namespace osprey::resources::internal
