#pragma once

// The parts of KServe's InferenceGraph (serving.kserve.io/v1alpha1, short
// name ig; the object itself is resources::InferenceGraph in resources.h): router nodes (Sequence,
// Switch, Ensemble, Splitter) of steps that call an InferenceService (serviceName), a URL
// (serviceUrl) or another node (nodeName). Parsed by ParseYaml/FromJson (resources.h) with KServe's
// webhook rules (a `root` node; a step names exactly one target; step names
// unique within a node; a Splitter's steps all weighted, summing to 100) and
// errors naming the field path. Pod-level settings (resources, affinity,
// tolerations, nodeSelector, nodeName, serviceAccountName) are accepted; only
// resources is kept (not enforced locally).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace osprey::resources {

struct InferenceStep {
  std::string name;  // optional; unique within its node
  // Exactly one target.
  std::string node_name;
  std::string service_name;
  std::string service_url;
  std::string data;  // "$request", "$response" or "" (the node's input)
  bool map_predictions_to_instances = false;
  std::optional<int64_t> weight;  // Splitter only
  std::string condition;          // GJSON path (Switch; Sequence: on the previous response)
  std::string dependency;         // "", "Soft" or "Hard" ("" acts as Soft)
  bool operator==(const InferenceStep&) const = default;
};

struct InferenceRouter {
  std::string router_type;  // Sequence | Splitter | Ensemble | Switch
  std::vector<InferenceStep> steps;
  bool operator==(const InferenceRouter&) const = default;
};

// spec.routerTimeouts, seconds. serviceClient bounds each step's call; the
// server ones concern the router's own HTTP server and are kept as given.
struct RouterTimeouts {
  std::optional<int64_t> server_read;
  std::optional<int64_t> server_write;
  std::optional<int64_t> server_idle;
  std::optional<int64_t> service_client;
  bool operator==(const RouterTimeouts&) const = default;
};

}  // namespace osprey::resources
