#pragma once

// The documents a Kubernetes API server answers with, for Osprey's kinds
// (resources/kinds.h), so kubectl, client-go and the KServe SDK can talk to
// `osprey up`: discovery (/version, /api, /apis, a group, a group version),
// Status objects for errors and deletions, and meta.k8s.io/v1 Tables with
// each kind's printer columns. Pure functions; api.cc routes to them.

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "controlplane/local/watch.h"
#include "resources/kinds.h"

namespace osprey::controlplane::kube_api {

// GET /version: a version.Info (the Kubernetes release Osprey's API follows).
std::string VersionJson();
// GET /api and /api/v1: the core group, where the platform's events are
// served as core Events (kubectl get events, describe).
std::string CoreVersionsJson();
std::string CoreResourcesJson();

// The platform's events (Osprey's own records, as /osprey/v1 lists them) as
// core v1 Events, each with the field labels kubectl selects events by
// (involvedObject.kind/name/namespace, reason, type); named
// {object}.{seq} by the sequence the platform recorded it under.
// `uid_of` gives the uid of an event's object (kubectl describe selects its
// events by involvedObject.uid), "" when unknown.
using UidOf = std::function<std::string(const resources::KindInfo& kind, std::string_view ns,
                                        std::string_view name)>;
absl::StatusOr<std::vector<ObjectView>> CoreEvents(std::string_view osprey_events_json,
                                                   const UidOf& uid_of = {});
// Each replica of each revision (Osprey's revision objects, as
// /apis/serving.knative.dev/v1 lists them) as a read-only core v1 Pod:
// `{revision}-deployment-{i}`, its revision's labels, phase Running when
// ready (Pending while starting or backing off), one container with its
// restarts; field labels status.phase and spec.nodeName.
absl::StatusOr<std::vector<ObjectView>> CorePods(std::string_view revisions_json);
// The revision and replica index a pod name of CorePods stands for.
std::optional<std::pair<std::string, int>> PodReplica(std::string_view pod);
// The core v1 kinds served as views (read, listed and watched; never written).
const resources::KindInfo& CorePodKind();
const resources::KindInfo& CoreEventKind();
inline const std::vector<std::string_view>& CorePodFields() {
  static const std::vector<std::string_view> fields = {"status.phase", "spec.nodeName"};
  return fields;
}

inline const std::vector<std::string_view>& CoreEventFields() {
  static const std::vector<std::string_view> fields = {"involvedObject.kind",
                                                       "involvedObject.name",
                                                       "involvedObject.namespace",
                                                       "involvedObject.uid",
                                                       "involvedObject.apiVersion",
                                                       "reason",
                                                       "type",
                                                       "source"};
  return fields;
}
// GET /apis: every group of the kinds table (Osprey's own kinds left out).
std::string GroupListJson();
// GET /apis/{group}; NotFound for a group nobody serves.
absl::StatusOr<std::string> GroupJson(std::string_view group);
// GET /apis/{group}/{version}: the APIResourceList (names, short names,
// scope, verbs, categories); NotFound for a version nobody serves.
absl::StatusOr<std::string> ResourceListJson(std::string_view group, std::string_view version);

// The HTTP code and Kubernetes reason of a status (NotFound 404,
// AlreadyExists 409, Invalid 422, Conflict 409, Unauthorized 401, ...).
struct Reason {
  int code;
  std::string_view reason;
};
Reason ReasonOf(const absl::Status& status);

// A failure Status object. `kind` and `name`, when given, fill its details,
// and a NotFound's message is Kubernetes' ("inferenceservices.serving.kserve.io
// \"x\" not found").
std::string StatusJson(const absl::Status& status, const resources::KindInfo* kind = nullptr,
                       std::string_view name = {});
// The same from a code and reason of Kubernetes' own (UnsupportedMediaType
// 415), with the causes given (details.causes: reason, message, field).
struct StatusCause {
  std::string reason, message, field;
};
std::string StatusJson(int code, std::string_view reason, std::string_view message,
                       const resources::KindInfo* kind = nullptr, std::string_view name = {},
                       const std::vector<StatusCause>& causes = {});
// The success Status a DELETE answers with.
std::string DeletedJson(const resources::KindInfo& kind, std::string_view name,
                        std::string_view uid);

// Whether an Accept header asks for a meta.k8s.io/v1 Table (kubectl get does).
bool WantsTable(std::string_view accept);

// A Table of `plural`'s objects in `json` (a list or one object), rows
// carrying their object as includeObject asks: "None", "Metadata" (the
// default: a PartialObjectMetadata), or "Object".
absl::StatusOr<std::string> TableJson(std::string_view plural, std::string_view json,
                                      std::string_view include_object,
                                      std::chrono::system_clock::time_point now);

// RFC 7386 JSON merge patch (application/merge-patch+json, what kubectl
// apply, edit and `patch --type merge` send for custom resources) of
// `patch` onto `target`; then what the server owns is left out
// (status, metadata's uid, resourceVersion, generation,
// creationTimestamp, managedFields, selfLink) so the result can be
// applied. InvalidArgument names what is not JSON.
absl::StatusOr<std::string> MergePatch(std::string_view target, std::string_view patch);
// RFC 6902 JSON patch (application/json-patch+json, `kubectl patch --type
// json`): add, remove, replace, move, copy and test, in order, all or
// nothing; then what the server owns is left out as MergePatch does.
// InvalidArgument names the operation that does not apply.
absl::StatusOr<std::string> JsonPatch(std::string_view target, std::string_view patch);

// OpenAPI v3 discovery (/openapi/v3) and one group version's document
// (/openapi/v3/apis/{group}/{version}): each kind's paths, tagged with its
// x-kubernetes-group-version-kind, with the fieldValidation parameter, so
// kubectl validates on the server (Osprey refuses unknown fields itself).
std::string OpenApiRootJson();
// Each group version's document carries its kinds' schemas (openapi.yaml,
// `kubectl explain`); /openapi/v2 carries every kind's.
std::string OpenApiV2Json();
absl::StatusOr<std::string> OpenApiGroupVersionJson(std::string_view group,
                                                    std::string_view version);

// What a written object's body says of itself, when it is JSON (kubectl
// and client libraries send JSON): metadata.namespace and
// metadata.resourceVersion, each absent when not given.
struct BodyMeta {
  std::optional<std::string> namespace_, resource_version;
};
BodyMeta ReadBodyMeta(std::string_view body);

// Where the last `n` lines of the file at `path` start, read back from its
// end in blocks (0 when it has fewer).
uint64_t TailOffset(const std::string& path, int n);

// What a DELETE's DeleteOptions body asks: a dry run ("dryRun": ["All"]),
// a propagationPolicy, and preconditions on the object's uid and
// resourceVersion. Empty when the body is not JSON.
struct DeleteOptions {
  bool dry_run = false;
  std::string propagation_policy;
  std::optional<std::string> uid, resource_version;
};
DeleteOptions ReadDeleteOptions(std::string_view body);

// Equal secrets, compared in a time that does not depend on where they differ.
bool SameSecret(std::string_view a, std::string_view b);

// A kubeconfig for this API (context "osprey", namespace default, the CA
// that signed the server's certificate, the token as its user's bearer
// token): what `osprey up` writes to DATA_DIR/kubeconfig.
std::string KubeconfigYaml(std::string_view server, std::string_view ca_pem,
                           std::string_view token);

}  // namespace osprey::controlplane::kube_api
