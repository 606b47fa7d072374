#pragma once

// Field ownership as a Kubernetes API server keeps it in
// metadata.managedFields, for server-side apply (kubectl apply
// --server-side, Content-Type application/apply-patch+yaml): which manager
// set which field of an object, so that an apply removes the fields its
// manager set before and sets no longer, and refuses to change a field
// another manager set (a conflict) unless forced, when ownership moves.
// Other writes (create, update, patches) make their manager the owner of the
// fields whose values they changed (operation "Update").
//
// A field is a path of object keys from the object's root. Lists are atomic
// (one field, as for custom resources whose schema names no list type), as
// are scalars and empty objects. The fields of an object are those of
// metadata.labels, metadata.annotations and metadata.finalizers, and
// everything beside apiVersion, kind, metadata and status.
//
// Pure functions over JSON text; api.cc calls them.

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace osprey::controlplane::fields {

using Path = std::vector<std::string>;
using Set = std::set<Path>;

// One manager's fields, as one entry of metadata.managedFields.
struct Entry {
  std::string manager;
  std::string operation;  // "Apply" or "Update"
  std::string api_version;
  std::string time;  // RFC 3339
  Set fields;
  bool operator==(const Entry&) const = default;
};
using Managed = std::vector<Entry>;

// ".spec.predictor.model.storageUri", as Kubernetes names a field in a
// conflict.
std::string PathString(const Path& path);

// The fields `object_json` sets. InvalidArgument when it is not a JSON object.
absl::StatusOr<Set> FieldsOf(std::string_view object_json);

// metadata.managedFields as Kubernetes writes them (fieldsType FieldsV1,
// {"f:spec":{"f:replicas":{}}}), and read back.
std::string ManagedJson(const Managed& managed);
absl::StatusOr<Managed> ParseManaged(std::string_view managed_fields_json);

struct Conflict {
  std::string manager, api_version;
  Path path;
  bool operator==(const Conflict&) const = default;
};

struct Applied {
  std::string object;  // JSON: the object after the apply (empty on conflict)
  Managed managed;
  std::vector<Conflict> conflicts;  // not empty: nothing was applied
};

// Server-side apply of `config` (an object's apply configuration, JSON) by
// `manager` onto `current` (JSON; empty when the object does not exist yet,
// then the config is the object). The config's fields are set; the fields
// the manager applied before and leaves out now are removed unless another
// manager owns them; a field another manager owns whose value the config
// changes is a conflict, or with `force` becomes the applier's alone.
// InvalidArgument names what is not a JSON object.
absl::StatusOr<Applied> Apply(std::string_view current, std::string_view config,
                              const Managed& managed, std::string_view manager, bool force,
                              std::string_view api_version, std::string_view time);

// Ownership after a write by `manager` that took the object from `before`
// (JSON; empty for a create) to `after`: the fields whose values it set or
// changed are its (operation Update) and no one else's; fields it removed
// are no one's.
absl::StatusOr<Managed> Update(std::string_view before, std::string_view after,
                               const Managed& managed, std::string_view manager,
                               std::string_view api_version, std::string_view time);

// "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using
// serving.kserve.io/v1beta1: .spec.predictor.minReplicas", as Kubernetes
// words it.
std::string ConflictMessage(const std::vector<Conflict>& conflicts);

}  // namespace osprey::controlplane::fields
