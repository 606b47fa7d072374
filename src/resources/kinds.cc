#include "resources/kinds.h"

#include <array>
#include <cctype>
#include <string>

namespace osprey::resources {
namespace {

constexpr std::string_view kIsvcNames[] = {"isvc"};
constexpr std::string_view kRuntimeNames[] = {"sr"};
constexpr std::string_view kClusterRuntimeNames[] = {"csr"};
constexpr std::string_view kRevisionNames[] = {"rev"};
constexpr std::string_view kAutoscalerNames[] = {"kpa", "pa"};
constexpr std::string_view kEventNames[] = {"ev"};
constexpr std::string_view kGraphNames[] = {"ig"};
constexpr std::string_view kTrainedModelNames[] = {"tm"};
constexpr std::string_view kKnativeServiceNames[] = {"ksvc", "kservice"};
constexpr std::string_view kConfigurationNames[] = {"config", "cfg"};
constexpr std::string_view kRouteNames[] = {"rt"};
constexpr std::string_view kDeploymentNames[] = {"deploy"};
constexpr std::string_view kVirtualServiceNames[] = {"vs"};
constexpr std::string_view kGatewayNames[] = {"gw"};
constexpr std::string_view kServiceEntryNames[] = {"se"};
constexpr std::string_view kDestinationRuleNames[] = {"dr"};

constexpr std::array<KindInfo, 16> kKinds = {{
    {"inferenceservices", "inferenceservice", "InferenceService", "serving.kserve.io", "v1beta1",
     false, true, kIsvcNames},
    {"servingruntimes", "servingruntime", "ServingRuntime", "serving.kserve.io", "v1alpha1", false,
     true, kRuntimeNames},
    {"inferencegraphs", "inferencegraph", "InferenceGraph", "serving.kserve.io", "v1alpha1", false,
     true, kGraphNames},
    {"trainedmodels", "trainedmodel", "TrainedModel", "serving.kserve.io", "v1alpha1", false, true,
     kTrainedModelNames},
    {"clusterservingruntimes", "clusterservingruntime", "ClusterServingRuntime",
     "serving.kserve.io", "v1alpha1", true, true, kClusterRuntimeNames},
    {"services", "service", "Service", "serving.knative.dev", "v1", false, true,
     kKnativeServiceNames},
    {"configurations", "configuration", "Configuration", "serving.knative.dev", "v1", false, false,
     kConfigurationNames},
    {"routes", "route", "Route", "serving.knative.dev", "v1", false, false, kRouteNames},
    {"revisions", "revision", "Revision", "serving.knative.dev", "v1", false, false,
     kRevisionNames},
    {"podautoscalers", "podautoscaler", "PodAutoscaler", "autoscaling.internal.knative.dev",
     "v1alpha1", false, false, kAutoscalerNames},
    {"virtualservices", "virtualservice", "VirtualService", "networking.istio.io", "v1", false,
     true, kVirtualServiceNames},
    {"gateways", "gateway", "Gateway", "networking.istio.io", "v1", false, true, kGatewayNames},
    {"serviceentries", "serviceentry", "ServiceEntry", "networking.istio.io", "v1", false, true,
     kServiceEntryNames},
    {"destinationrules", "destinationrule", "DestinationRule", "networking.istio.io", "v1", false,
     true, kDestinationRuleNames},
    // What runs each revision, as `kubectl get deploy` shows it ({revision}-deployment).
    {"deployments", "deployment", "Deployment", "apps", "v1", false, false, kDeploymentNames},
    // Osprey's own: the events the control plane records (served under /osprey/v1).
    {"events", "event", "Event", "osprey", "v1", false, false, kEventNames},
}};

}  // namespace

std::span<const KindInfo> Kinds() { return kKinds; }

const KindInfo* FindKind(std::string_view name) {
  std::string lower;
  for (char c : name)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  std::string_view key = lower;
  std::string_view group;
  if (size_t dot = key.find('.'); dot != std::string_view::npos) {
    group = key.substr(dot + 1);
    key = key.substr(0, dot);
  }
  for (const auto& k : kKinds) {
    bool named = k.plural == key || k.singular == key;
    for (auto s : k.short_names) named = named || s == key;
    if (!named) continue;
    if (group.empty() || group == k.group) return &k;
    if (group.size() == k.version.size() + 1 + k.group.size() && group.starts_with(k.version) &&
        group[k.version.size()] == '.' && group.ends_with(k.group))
      return &k;  // kind.version.group
  }
  return nullptr;
}

}  // namespace osprey::resources
