#pragma once

// Every kind of object the API serves, in one table: its names (plural, as
// in URLs; singular; kubectl's short names), API group and version, scope,
// and whether users apply it or the platform makes it. The CLI resolves
// names through it, the API routes by it, the controller lists by it. A new
// kind (InferenceGraph, a Knative Service, an Istio VirtualService) is one
// entry here plus its store and view in the controller.

#include <span>
#include <string_view>

namespace osprey::resources {

struct KindInfo {
  std::string_view plural;    // "inferenceservices": the API's name
  std::string_view singular;  // "inferenceservice"
  std::string_view kind;      // "InferenceService"
  std::string_view group;     // "serving.kserve.io"
  std::string_view version;   // "v1beta1"
  bool cluster = false;       // cluster-scoped (no namespace)
  bool applied = false;       // users apply and delete it; else the platform makes it
  std::span<const std::string_view> short_names;
};

std::span<const KindInfo> Kinds();

// A kind by any of its names, case-insensitive, with an optional ".group"
// suffix as kubectl allows (isvc, inferenceservice.serving.kserve.io, ISVC,
// revisions, kpa, ...); nullptr when unknown.
const KindInfo* FindKind(std::string_view name);

}  // namespace osprey::resources
