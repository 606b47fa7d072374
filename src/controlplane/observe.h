#pragma once

// A revision's phase from what is observed of it, as a pure function: the
// model fetch, its replicas (however the platform runs them: local processes
// or pods) and whether it is still aspired. The executor gathers the
// observations, calls ObserveRevision, records the events it returns and
// stores the result; the rules live here once. (The phase diagram is above
// RevisionPhase in reconciler.h.)

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controlplane/reconciler.h"

namespace osprey::controlplane {

// The storage initializer's progress for a revision.
enum class FetchState { kIdle, kRunning, kDone, kFailed };

struct RevisionObservations {
  // The platform cannot run the revision at all (no runtime for its format,
  // an image it cannot run: Kubernetes' ImagePullBackOff): reason and
  // message. Empty: it can.
  std::string unrunnable_reason;
  std::string unrunnable_message;
  bool has_storage = false;  // a storageUri to fetch
  FetchState fetch = FetchState::kIdle;
  std::string fetch_error;
  bool aspired = false;     // in the traffic, or the latest revision
  int replicas = 0;         // that exist, not stopping
  int ready_replicas = 0;   // of them, ready
  int failed_replicas = 0;  // of them, crashed or restarting
  // A replica crashed and is not ready; `crash_message` is its exit and log
  // tail, set only when this crash is new to the caller (the log is read once
  // per crash).
  bool crashed = false;
  std::optional<std::string> crash_message;
  std::string now;  // RFC 3339
};

// An event for the InferenceService, as `osprey get events` shows it.
struct EventRecord {
  std::string type;  // Normal | Warning
  std::string reason;
  std::string message;
  bool operator==(const EventRecord&) const = default;
};

struct Observation {
  RevisionObserved observed;
  std::vector<EventRecord> events;
  bool phase_changed = false;  // worth storing
};

// The new observed state of revision `spec` from its `previous` one.
// Precedence: unrunnable, then a failed fetch (Failed); a ready replica
// (Ready); a revision once ready and still aspired stays Ready at zero
// replicas (the gateway holds its requests); not aspired (Retired); a fetch
// in progress (Downloading); a crash (Failed, ModelLoadFailed); else Loading
// once the model is local, Pending before.
Observation ObserveRevision(const RevisionSpec& spec, const RevisionObserved& previous,
                            const RevisionObservations& in);

// An InferenceService's status moves from `before` to `after` at `now`:
// updates the conditions' lastTransitionTime (`times`, by condition type: set
// when a condition appears, changes status, or has none yet) and returns the
// event of a change of the Ready condition, if any.
std::vector<EventRecord> StatusTransition(const IsvcStatus& before, const IsvcStatus& after,
                                          const std::string& now,
                                          std::map<std::string, std::string>* times);

}  // namespace osprey::controlplane
