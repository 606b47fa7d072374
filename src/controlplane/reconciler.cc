#include "controlplane/reconciler.h"

#include <algorithm>
#include <cstdio>

namespace osprey::controlplane {
namespace {

using resources::Container;
using resources::InferenceService;
using resources::ServingRuntime;

const Container* MainContainer(const std::vector<Container>& containers) {
  for (const auto& c : containers)
    if (c.name == "kserve-container") return &c;
  return containers.empty() ? nullptr : &containers.front();
}

std::vector<std::string> Expanded(const std::vector<std::string>& v,
                                  const resources::ObjectMeta& meta) {
  std::vector<std::string> out;
  out.reserve(v.size());
  for (const auto& s : v) out.push_back(ExpandTemplates(s, meta));
  return out;
}

void AddEnv(const std::vector<resources::EnvVar>& env, const resources::ObjectMeta& meta,
            Container* c) {
  for (const auto& e : env) c->env.push_back({e.name, ExpandTemplates(e.value, meta)});
}

// The serving container of a revision: `c` with its templates expanded.
Container ServingContainer(const Container& c, const resources::ObjectMeta& meta) {
  Container out = c;
  out.command = Expanded(c.command, meta);
  out.args = Expanded(c.args, meta);
  out.env.clear();
  AddEnv(c.env, meta, &out);
  return out;
}

std::string PadNumber(int n) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%05d", n);
  return buf;
}

void Fail(RevisionSpec* rev, std::string reason, std::string message) {
  rev->failure_reason = std::move(reason);
  rev->failure_message = std::move(message);
}

Condition MakeCondition(std::string type, std::string status, std::string reason = "",
                        std::string message = "") {
  return {std::move(type), std::move(status), std::move(reason), std::move(message)};
}

}  // namespace

std::string_view RevisionPhaseName(RevisionPhase p) {
  switch (p) {
    case RevisionPhase::kPending:
      return "Pending";
    case RevisionPhase::kDownloading:
      return "Downloading";
    case RevisionPhase::kLoading:
      return "Loading";
    case RevisionPhase::kReady:
      return "Ready";
    case RevisionPhase::kFailed:
      return "Failed";
    case RevisionPhase::kRetired:
      return "Retired";
  }
  return "Unknown";
}

std::string ExpandTemplates(const std::string& text, const resources::ObjectMeta& meta) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t open = text.find("{{", pos);
    if (open == std::string::npos) break;
    size_t close = text.find("}}", open);
    if (close == std::string::npos) break;
    std::string_view key(text.data() + open + 2, close - open - 2);
    while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
    while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
    std::optional<std::string> value;
    if (key == ".Name") value = meta.name;
    if (key == ".Namespace") value = meta.namespace_;
    auto lookup = [&](std::string_view prefix, const std::map<std::string, std::string>& m) {
      if (!key.starts_with(prefix)) return;
      auto it = m.find(std::string(key.substr(prefix.size())));
      value = it == m.end() ? "" : it->second;
    };
    lookup(".Labels.", meta.labels);
    lookup(".Annotations.", meta.annotations);
    out.append(text, pos, open - pos);
    if (value.has_value()) {
      out.append(*value);
    } else {
      out.append(text, open, close + 2 - open);  // left for later stages ({{.Port}})
    }
    pos = close + 2;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

RevisionSpec ResolveRevision(const InferenceService& isvc, const std::string& spec_json, int number,
                             const std::string& now,
                             const std::vector<ServingRuntime>& namespace_runtimes,
                             const std::vector<ServingRuntime>& cluster_runtimes,
                             const PlatformConfig& config) {
  RevisionSpec rev;
  rev.name = StrCat(isvc.meta.name, "-predictor-", PadNumber(number));
  rev.namespace_ = isvc.meta.namespace_;
  rev.isvc = isvc.meta.name;
  rev.number = number;
  rev.spec_json = spec_json;
  rev.created = now;
  const auto& p = isvc.predictor;
  rev.min_replicas = p.min_replicas;
  rev.max_replicas = p.max_replicas;
  rev.batcher = p.batcher;
  if (p.model.has_value()) {
    const auto& model = *p.model;
    rev.model_format = model.format.name;
    rev.storage_uri = model.storage_uri;
    rev.protocol = model.protocol_version.empty() ? "v1" : model.protocol_version;
    resources::RuntimeChoice choice =
        resources::SelectRuntime(model, namespace_runtimes, cluster_runtimes);
    if (choice.runtime == nullptr) {
      std::string message = choice.message;
      if (auto note = config.format_notes.find(model.format.name);
          note != config.format_notes.end())
        StrAppend(&message, "; ", note->second);
      Fail(&rev, choice.reason, std::move(message));
      return rev;
    }
    rev.runtime = choice.runtime->meta.name;
    const Container* c = MainContainer(choice.runtime->containers);
    if (c == nullptr) {
      Fail(&rev, "RuntimeNotRecognized", StrCat("runtime ", rev.runtime, " has no container"));
      return rev;
    }
    rev.container = ServingContainer(*c, isvc.meta);
    for (const auto& a : Expanded(model.args, isvc.meta)) rev.container.args.push_back(a);
    AddEnv(model.env, isvc.meta, &rev.container);
    return rev;
  }
  const Container* c = MainContainer(p.containers);
  if (c == nullptr) {
    Fail(&rev, "InvalidPredictorSpec", "spec.predictor: no model and no container");
    return rev;
  }
  rev.container = ServingContainer(*c, isvc.meta);
  for (const auto& e : rev.container.env)
    if (e.name == "STORAGE_URI") rev.storage_uri = e.value;
  return rev;
}

std::string ServiceHost(const resources::ObjectMeta& meta, const PlatformConfig& config) {
  std::string host = ExpandTemplates(config.domain_template, meta);
  for (size_t at; (at = host.find("{{.Domain}}")) != std::string::npos;)
    host.replace(at, 11, config.domain);
  return host;
}

std::string ServiceUrl(const resources::ObjectMeta& meta, const PlatformConfig& config) {
  std::string url = StrCat("http://", ServiceHost(meta, config));
  if (config.gateway_port != 80) StrAppend(&url, ":", config.gateway_port);
  return url;
}

ReconcilePlan Reconcile(const ReconcileInput& in) {
  ReconcilePlan plan;
  const InferenceService& isvc = *in.isvc;
  IsvcStatus& st = plan.status;
  st.url = ServiceUrl(isvc.meta, *in.config);

  std::vector<RevisionView> revs = in.revisions;
  if (revs.empty() || revs.back().spec.spec_json != in.spec_json) {
    int number = revs.empty() ? 1 : revs.back().spec.number + 1;
    plan.create = ResolveRevision(isvc, in.spec_json, number, in.now, *in.namespace_runtimes,
                                  *in.cluster_runtimes, *in.config);
    RevisionView v;
    v.spec = *plan.create;
    revs.push_back(std::move(v));
  }
  const RevisionView& latest = revs.back();
  const RevisionView* ready = nullptr;
  for (auto it = revs.rbegin(); it != revs.rend(); ++it)
    if (it->observed.phase == RevisionPhase::kReady) {
      ready = &*it;
      break;
    }
  const bool unrunnable = !latest.spec.failure_reason.empty();
  auto find = [&](const std::string& name) -> const RevisionView* {
    for (const auto& r : revs)
      if (r.spec.name == name) return &r;
    return nullptr;
  };
  auto is_ready = [](const RevisionView* r) {
    return r != nullptr && r->observed.phase == RevisionPhase::kReady;
  };
  auto min_replicas = [](const RevisionView& r) { return r.spec.min_replicas; };

  st.latest_created = latest.spec.name;
  st.latest_ready = ready ? ready->spec.name : "";
  st.latest_rolled_out = in.latest_rolled_out;
  st.previous_rolled_out = in.previous_rolled_out;
  const std::optional<int>& canary = isvc.predictor.canary_traffic_percent;
  const RevisionView* rolled = find(in.latest_rolled_out);
  if (canary.has_value() && rolled != nullptr && rolled != &latest) {
    // A canary of the latest revision against the rolled-out one.
    const bool latest_ready = is_ready(&latest);
    if (is_ready(rolled)) {
      const int n = latest_ready ? *canary : 0;
      if (latest_ready) st.traffic.push_back({latest.spec.name, n, "latest", true});
      st.traffic.push_back({rolled->spec.name, 100 - n, "prev", false});
    } else if (latest_ready) {
      st.traffic.push_back({latest.spec.name, 100, "latest", true});
    } else if (ready != nullptr) {
      st.traffic.push_back({ready->spec.name, 100, "", false});
    }
  } else if (ready != nullptr) {
    st.traffic.push_back({ready->spec.name, 100, "", ready == &latest});
    if (ready == &latest && in.latest_rolled_out != latest.spec.name) {
      if (!in.latest_rolled_out.empty()) st.previous_rolled_out = in.latest_rolled_out;
      st.latest_rolled_out = latest.spec.name;
    }
  }
  if (!unrunnable) plan.replicas[latest.spec.name] = min_replicas(latest);
  for (const auto& t : st.traffic) plan.replicas[t.revision] = min_replicas(*find(t.revision));

  // Conditions and modelStatus follow the latest revision; traffic stays on
  // the latest ready one.
  const RevisionObserved& o = latest.observed;
  Condition predictor;
  Condition deployment;
  st.total_copies = unrunnable ? 0 : std::max(1, latest.spec.min_replicas);
  st.failed_copies = o.failed_replicas;
  st.active_model_state = ready ? "Loaded" : "";
  if (unrunnable) {
    predictor = MakeCondition("PredictorReady", "False", latest.spec.failure_reason,
                              latest.spec.failure_message);
    st.transition_status = "InvalidSpec";
    st.target_model_state = "FailedToLoad";
    st.failure_reason = latest.spec.failure_reason;
    st.failure_message = latest.spec.failure_message;
    st.failure_time = latest.spec.created;
  } else if (o.phase == RevisionPhase::kReady) {
    predictor = MakeCondition("PredictorReady", "True");
    st.transition_status = "UpToDate";
    st.target_model_state = "Loaded";
  } else if (o.phase == RevisionPhase::kFailed) {
    predictor = MakeCondition("PredictorReady", "False", o.reason, o.message);
    st.transition_status = "BlockedByFailedLoad";
    st.target_model_state = "FailedToLoad";
    if (!ready) st.active_model_state = "FailedToLoad";
    st.failure_reason = o.reason;
    st.failure_message = o.message;
    st.failure_time = o.failure_time;
  } else {
    bool loading = o.phase == RevisionPhase::kLoading;
    predictor = MakeCondition("PredictorReady", "Unknown", loading ? "Loading" : "Pending",
                              StrCat("revision ", latest.spec.name, " is ",
                                     loading ? "starting its replicas" : "fetching its model"));
    st.transition_status = "InProgress";
    st.target_model_state = loading ? "Loading" : "Pending";
    if (!ready) st.active_model_state = "Pending";
  }
  deployment = predictor;
  deployment.type = "LatestDeploymentReady";
  Condition ingress = ready
                          ? MakeCondition("IngressReady", "True")
                          : MakeCondition("IngressReady", "False", "NoReadyRevision",
                                          "no revision of the predictor is ready to take traffic");
  Condition overall = MakeCondition("Ready", "True");
  if (predictor.status != "True") {
    overall = predictor;
  } else if (ingress.status != "True") {
    overall = ingress;
  }
  overall.type = "Ready";
  st.conditions = {ingress, deployment, predictor, overall};
  return plan;
}

}  // namespace osprey::controlplane
