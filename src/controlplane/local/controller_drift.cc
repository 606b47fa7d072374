// The local controller's drift poller (controller_impl.h): every
// Options::drift_poll, the ready replicas of aspired revisions that run a
// drift detector (their argv has --drift-reference) are asked for its state
// (GET /v2/models/{isvc}/drift, 1 s timeout, on this thread, without `mu`);
// the replicas' reports are merged per InferenceService and DriftTransition
// (monitoring.h) decides its events. Controller::Drift serves what was read.

#include <algorithm>

#include "common/json_writer.h"
#include "controlplane/local/controller_impl.h"
#include "controlplane/monitoring.h"
#include "net/http_client.h"

namespace osprey::controlplane {

void Controller::Impl::RunDriftPoller() {
  HttpClient client;
  std::unique_lock<std::mutex> lock(mu);
  while (!stopping) {
    cv.wait_for(lock, opts.drift_poll, [&] { return stopping; });
    if (stopping) break;
    // Revisions with a detector, and the service each belongs to.
    struct Target {
      std::string isvc_key, ns, isvc, revision, replica;
      uint16_t port = 0;
    };
    std::vector<std::pair<std::string, const RevEntry*>> monitored;
    for (const auto& [key, r] : revisions)
      if (r.aspired && r.spec.component == "predictor" &&
          std::find(r.local.argv.begin(), r.local.argv.end(), "--drift-reference") !=
              r.local.argv.end())
        monitored.emplace_back(key, &r);
    std::vector<Target> targets;
    std::set<std::string> services;
    if (!monitored.empty()) {
      lock.unlock();
      std::vector<ReplicaStatus> replicas = supervisor->Snapshot();
      lock.lock();
      for (const auto& [key, r] : monitored) {
        // The revision may have gone while `mu` was released.
        auto it = revisions.find(key);
        if (it == revisions.end() || &it->second != r) continue;
        services.insert(StrCat(r->spec.namespace_, "/", r->spec.isvc));
        for (const ReplicaStatus& s : replicas)
          if (s.id.starts_with(key + "/") && s.state == ReplicaState::kReady && s.port != 0)
            targets.push_back({StrCat(r->spec.namespace_, "/", r->spec.isvc), r->spec.namespace_,
                               r->spec.isvc, r->spec.name, s.id, s.port});
      }
    }
    // Services that no longer monitor anything are forgotten.
    for (auto it = drift.begin(); it != drift.end();)
      it = services.contains(it->first) ? std::next(it) : drift.erase(it);
    if (targets.empty()) continue;
    lock.unlock();
    std::vector<std::pair<const Target*, std::string>> answers;
    for (const Target& t : targets) {
      HttpClientRequest req;
      req.url = StrCat("http://127.0.0.1:", t.port, "/v2/models/", t.isvc, "/drift");
      req.timeout = std::chrono::milliseconds(1000);
      req.connect_timeout = std::chrono::milliseconds(500);
      auto answer = client.Send(req);
      if (answer.ok() && answer->status == 200) answers.emplace_back(&t, std::move(answer->body));
    }
    lock.lock();
    std::map<std::string, std::vector<const std::pair<const Target*, std::string>*>> by_service;
    for (const auto& a : answers) by_service[a.first->isvc_key].push_back(&a);
    for (const auto& [key, list] : by_service) {
      if (!isvcs.contains(key)) continue;
      DriftState& state = drift[key];
      // During a rollout two revisions answer: the newest one's verdict counts
      // (revision names end in a zero-padded number).
      std::string revision;
      for (const auto* a : list) revision = std::max(revision, a->first->revision);
      std::vector<DriftReport> reports;
      state.replicas.clear();
      for (const auto* a : list) {
        auto report = ParseDriftReport(a->second);
        if (!report.has_value()) continue;
        state.replicas.emplace_back(a->first->replica, a->second);
        // A replica that has tested no window yet (just started, or back from
        // zero) has no verdict to change the service's.
        if (a->first->revision != revision ||
            (report->error.empty() && (!report->ready || report->windows_tested == 0)))
          continue;
        reports.push_back(*report);
      }
      if (reports.empty()) continue;
      if (state.revision != revision) state.report.reset();  // a new revision starts afresh
      state.revision = revision;
      const DriftReport merged = MergeDriftReports(reports);
      if (auto event = DriftTransition(state.report, merged, revision); event.has_value())
        Event(list.front()->first->ns, list.front()->first->isvc, event->type, event->reason,
              event->message);
      state.report = merged;
      state.polled = Now();
    }
  }
}

absl::StatusOr<std::string> Controller::Drift(const std::string& ns, const std::string& name) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  const std::string key = StrCat(ns, "/", name);
  if (!impl_->isvcs.contains(key))
    return absl::NotFoundError(
        StrCat("inferenceservice \"", name, "\" not found in namespace \"", ns, "\""));
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("name").String(name).Key("namespace").String(ns);
  auto it = impl_->drift.find(key);
  w.Key("enabled").Bool(it != impl_->drift.end());
  if (it != impl_->drift.end()) {
    const Impl::DriftState& s = it->second;
    w.Key("revision").String(s.revision).Key("polled").String(s.polled);
    if (s.report.has_value())
      w.Key("drift")
          .Bool(s.report->drift)
          .Key("windowsTested")
          .Uint(s.report->windows_tested)
          .Key("minPValue")
          .Double(s.report->min_p_value)
          .Key("threshold")
          .Double(s.report->threshold)
          .Key("outliersTotal")
          .Uint(s.report->outliers_total);
    w.Key("replicas").BeginArray();
    for (const auto& [replica, json] : s.replicas)
      w.BeginObject().Key("replica").String(replica).Key("state").Raw(json).EndObject();
    w.EndArray();
  }
  w.EndObject();
  return out;
}

}  // namespace osprey::controlplane
