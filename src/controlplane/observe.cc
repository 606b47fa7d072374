#include "controlplane/observe.h"

#include <algorithm>

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

std::vector<EventRecord> StatusTransition(const IsvcStatus& before, const IsvcStatus& after,
                                          const std::string& now,
                                          std::map<std::string, std::string>* times) {
  std::vector<EventRecord> events;
  bool was_ready = false;
  for (const auto& c : before.conditions)
    if (c.type == "Ready") was_ready = c.status == "True";
  for (const auto& c : after.conditions) {
    auto old = std::find_if(before.conditions.begin(), before.conditions.end(),
                            [&](const Condition& o) { return o.type == c.type; });
    if (old == before.conditions.end() || old->status != c.status || !times->count(c.type))
      (*times)[c.type] = now;
    if (c.type == "Ready" && (c.status == "True") != was_ready)
      events.push_back(c.status == "True" ? EventRecord{"Normal", "InferenceServiceReady",
                                                        StrCat("serving at ", after.url)}
                                          : EventRecord{"Warning", "InferenceServiceNotReady",
                                                        StrCat(c.reason, ": ", c.message)});
  }
  return events;
}

}  // namespace osprey::controlplane
