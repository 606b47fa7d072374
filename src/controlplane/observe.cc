#include "controlplane/observe.h"

#include "common/strings.h"

namespace osprey::controlplane {

Observation ObserveRevision(const RevisionSpec& spec, const RevisionObserved& previous,
                            const RevisionObservations& in) {
  Observation out;
  RevisionObserved& o = out.observed;
  o = previous;
  o.replicas = in.replicas;
  o.ready_replicas = in.ready_replicas;
  o.failed_replicas = in.failed_replicas;
  if (!in.unrunnable_reason.empty()) {
    o.phase = RevisionPhase::kFailed;
    o.reason = in.unrunnable_reason;
    o.message = in.unrunnable_message;
  } else if (in.fetch == FetchState::kFailed) {
    o.phase = RevisionPhase::kFailed;
    o.reason = "StorageFailed";
    o.message = in.fetch_error;
  } else if (o.ready_replicas > 0) {
    o.phase = RevisionPhase::kReady;
    o.ever_ready = true;
    o.reason.clear();
    o.message.clear();
  } else if (o.ever_ready && in.aspired) {
    // Scaled to zero, or restarting: still Ready, the gateway holds its
    // requests until a replica is.
    o.phase = RevisionPhase::kReady;
  } else if (!in.aspired && in.fetch != FetchState::kRunning) {
    o.phase = RevisionPhase::kRetired;
  } else if (in.fetch == FetchState::kRunning) {
    o.phase = RevisionPhase::kDownloading;
  } else if (in.crashed) {
    o.phase = RevisionPhase::kFailed;
    o.reason = "ModelLoadFailed";
    if (in.crash_message.has_value()) o.message = *in.crash_message;
  } else {
    o.phase = in.fetch == FetchState::kDone || !in.has_storage ? RevisionPhase::kLoading
                                                               : RevisionPhase::kPending;
  }
  out.phase_changed = o.phase != previous.phase;
  if (o.phase == RevisionPhase::kFailed &&
      (previous.phase != o.phase || previous.reason != o.reason)) {
    o.failure_time = in.now;
    out.events.push_back({"Warning", o.reason, StrCat("revision ", spec.name, ": ", o.message)});
  }
  if (o.phase == RevisionPhase::kReady && previous.phase != RevisionPhase::kReady)
    out.events.push_back({"Normal", "RevisionReady",
                          StrCat("revision ", spec.name, " is ready (", o.ready_replicas,
                                 " replica", o.ready_replicas == 1 ? "" : "s", ")")});
  return out;
}

}  // namespace osprey::controlplane
