#pragma once

// Knative Serving's Service as pure decisions: (Service spec, its revisions
// and what is observed of them, clock) -> plan. A Service owns one
// Configuration (its template; every change of it makes a revision) and one
// Route (its traffic block); Osprey keeps both inside the Service, and shows
// them as Knative's Configuration and Route objects (views.h).
//
// Revisions: the template's own name (spec.template.metadata.name) or
// {service}-{NNNNN}, numbered after the last. The latest created revision is
// the one the current template made; the latest ready becomes the latest
// created once that is ready, and never goes back to an older one. A
// revision that was ready stays routable while scaled away (it is started
// again when routed). Traffic: each entry resolves to its named revision,
// or to the latest ready one for latestRevision; while an entry cannot
// resolve (its revision is missing, failed, or not ready yet, or none is
// ready yet) the route keeps what it last resolved, so a rollout never
// routes to a revision that cannot answer.
// Aspired (running) revisions: the latest created (it must become ready) and
// every revision the traffic block names or resolves to; the others are
// retired, as Knative scales an unreachable revision to zero.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/observe.h"
#include "controlplane/reconciler.h"

namespace osprey::controlplane {

// The owner kind of a Knative Service's revisions (RevisionSpec::kind).
inline constexpr char kKnativeServiceKind[] = "Service";

// The canonical JSON of what makes a revision of `service`: its template
// (name, labels, annotations, containers, containerConcurrency,
// timeoutSeconds) as a Service of that name without traffic. A revision
// keeps it as its spec_json (RevisionComponent reads it back).
std::string KnativeTemplateJson(const resources::KnativeService& service);

// "{name}.{namespace}.{domain}" (Knative's default domain template) and its
// URL (":port" added when not 80); a tag's host is "{tag}-{name}.{ns}.{domain}".
std::string KnativeHost(const resources::ObjectMeta& meta, const PlatformConfig& config,
                        std::string_view tag = {});
std::string KnativeUrl(const resources::ObjectMeta& meta, const PlatformConfig& config,
                       std::string_view tag = {});
// The in-cluster names a Knative Service answers to as well:
// {name}.{ns}.svc.cluster.local, {name}.{ns}.svc and {name}.{ns}.
std::vector<std::string> KnativeLocalHosts(const resources::ObjectMeta& meta);

struct KnativeStatus {
  std::string url;
  std::string address;  // http://{name}.{ns}.svc.cluster.local
  // ConfigurationsReady, RoutesReady, Ready.
  std::vector<Condition> conditions;
  std::string latest_created;
  std::string latest_ready;
  // The resolved traffic the route serves, in the spec's order (`latest`:
  // the entry follows latestRevision).
  std::vector<TrafficTarget> traffic;
  bool operator==(const KnativeStatus&) const = default;
};

struct KnativeInput {
  const resources::KnativeService* service = nullptr;
  std::string template_json;  // KnativeTemplateJson(*service)
  // The service's revisions by increasing number.
  std::vector<RevisionView> revisions;
  const PlatformConfig* config = nullptr;
  std::string now;  // RFC 3339
  // What the route last resolved (the stored status's traffic) and the
  // latest ready revision last reported.
  std::vector<TrafficTarget> stored_traffic;
  std::string stored_latest_ready;
};

struct KnativePlan {
  std::optional<RevisionSpec> create;
  // Aspired revisions by name with their minimum replicas (the autoscaler
  // decides above that); a revision absent here is retired.
  std::map<std::string, int> replicas;
  KnativeStatus status;
};

KnativePlan ReconcileKnative(const KnativeInput& input);

// When the revision `plan` creates has a name `taken` says another owner
// has: renumbered to the next free {service}-{NNNNN}, or, when the
// template gives that name, not created and the configuration failed
// (RevisionCreationFailed). Never an overwrite. Pure.
void AvoidTakenName(const resources::KnativeService& service, const std::string& template_json,
                    const std::function<bool(const std::string&)>& taken, const std::string& now,
                    KnativePlan* plan);

// A Knative Service's status moves from `before` to `after` at `now`:
// stamps the conditions' lastTransitionTime in `times` (by type: when one
// appears or changes status) and returns the event of a change of Ready
// (ServiceReady, or ServiceNotReady with its message), if any.
std::vector<EventRecord> KnativeTransition(const KnativeStatus& before, const KnativeStatus& after,
                                           const std::string& name, const std::string& now,
                                           std::map<std::string, std::string>* times);

// A new revision of `service` (pure): its serving container, scale bounds
// and the template it was made from.
RevisionSpec KnativeRevision(const resources::KnativeService& service,
                             const std::string& template_json, const std::string& name, int number,
                             const std::string& now);

// The revision name the template asks for when it names one, else
// {service}-{number, five digits}.
std::string KnativeRevisionName(const resources::KnativeService& service, int number);

}  // namespace osprey::controlplane
