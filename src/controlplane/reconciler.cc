#include "controlplane/reconciler.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <cstdio>

#include "common/json_dom.h"

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
  for (const auto& e : env)
    c->env.push_back({e.name, ExpandTemplates(e.value, meta), e.value_from});
}

// The runtime container's resources with the model's over them, as KServe
// merges the predictor's container into the runtime's: each of requests and
// limits key by key (the model's memory limit replaces the runtime's, its
// other keys stay).
std::string MergeResources(const std::string& runtime, const std::string& model) {
  rapidjson::Document base, over;
  base.Parse(runtime.data(), runtime.size());
  over.Parse(model.data(), model.size());
  if (over.HasParseError() || !over.IsObject() || over.ObjectEmpty()) return runtime;
  if (base.HasParseError() || !base.IsObject()) return model;
  auto& a = base.GetAllocator();
  for (auto& part : over.GetObject()) {
    auto target = base.FindMember(part.name);
    if (target == base.MemberEnd() || !target->value.IsObject() || !part.value.IsObject()) {
      base.RemoveMember(part.name);
      base.AddMember(rapidjson::Value(part.name, a), rapidjson::Value(part.value, a), a);
      continue;
    }
    for (auto& kv : part.value.GetObject()) {
      target->value.RemoveMember(kv.name);
      target->value.AddMember(rapidjson::Value(kv.name, a), rapidjson::Value(kv.value, a), a);
    }
  }
  return json::ToText(base);
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
    // KServe's admission defaults first (the triton format speaks v2), then
    // the chosen runtime's.
    resources::ModelSpec model = *p.model;
    model.protocol_version = resources::DefaultProtocol(model, p.legacy_key);
    rev.model_format = model.format.name;
    rev.storage_uri = model.storage_uri;
    rev.protocol = model.protocol_version.empty() ? "v1" : model.protocol_version;
    resources::RuntimeChoice choice = resources::SelectRuntime(
        model, namespace_runtimes, cluster_runtimes, !p.worker_spec_json.empty());
    if (choice.runtime == nullptr) {
      std::string message = choice.message;
      if (auto note = config.format_notes.find(model.format.name);
          note != config.format_notes.end())
        StrAppend(&message, "; ", note->second);
      Fail(&rev, choice.reason, std::move(message));
      return rev;
    }
    rev.runtime = choice.runtime->meta.name;
    rev.protocol = resources::RuntimeProtocol(model.protocol_version, *choice.runtime);
    const Container* c = MainContainer(choice.runtime->containers);
    if (c == nullptr) {
      Fail(&rev, "RuntimeNotRecognized", StrCat("runtime ", rev.runtime, " has no container"));
      return rev;
    }
    rev.container = ServingContainer(*c, isvc.meta);
    for (const auto& a : Expanded(model.args, isvc.meta)) rev.container.args.push_back(a);
    AddEnv(model.env, isvc.meta, &rev.container);
    rev.container.resources_json =
        MergeResources(rev.container.resources_json, model.resources_json);
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

std::string ComponentHost(const resources::ObjectMeta& meta, std::string_view component,
                          const PlatformConfig& config) {
  resources::ObjectMeta m = meta;
  m.name = StrCat(meta.name, "-", component);
  return ServiceHost(m, config);
}

std::string ComponentUrl(const resources::ObjectMeta& meta, std::string_view component,
                         const PlatformConfig& config) {
  resources::ObjectMeta m = meta;
  m.name = StrCat(meta.name, "-", component);
  return ServiceUrl(m, config);
}

std::optional<resources::Component> RevisionComponent(const RevisionSpec& rev) {
  if (rev.kind == "Service") {  // a Knative Service's: its template
    auto parsed = resources::FromJson(rev.spec_json);
    if (!parsed.ok() || !std::holds_alternative<resources::KnativeService>(*parsed))
      return std::nullopt;
    return std::get<resources::KnativeService>(*parsed).revision;
  }
  // A transformer or explainer is read beside a minimal predictor.
  const std::string& json = rev.spec_json.empty() ? "{}" : rev.spec_json;
  const bool predictor = rev.component == "predictor";
  auto parsed = resources::FromJson(
      StrCat(R"({"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService",)",
             R"("metadata":{"name":"r","namespace":"n"},"spec":{"predictor":)",
             predictor ? json
                       : StrCat(R"({"containers":[{"name":"kserve-container","image":"x"}]},")",
                                rev.component, "\":", json),
             "}}"));
  if (!parsed.ok() || !std::holds_alternative<InferenceService>(*parsed)) return std::nullopt;
  const resources::Component* c = ComponentOf(std::get<InferenceService>(*parsed), rev.component);
  if (c == nullptr) return std::nullopt;
  return *c;
}

std::vector<std::string> ComponentsOf(const InferenceService& isvc) {
  std::vector<std::string> out = {"predictor"};
  if (isvc.transformer.has_value()) out.push_back("transformer");
  if (isvc.explainer.has_value()) out.push_back("explainer");
  return out;
}

const resources::Component* ComponentOf(const InferenceService& isvc, std::string_view component) {
  if (component == "predictor") return &isvc.predictor;
  if (component == "transformer" && isvc.transformer) return &*isvc.transformer;
  if (component == "explainer" && isvc.explainer) return &*isvc.explainer;
  return nullptr;
}

RevisionSpec ResolveComponentRevision(const InferenceService& isvc, const std::string& component,
                                      const std::string& spec_json, int number,
                                      const std::string& now) {
  RevisionSpec rev;
  rev.name = StrCat(isvc.meta.name, "-", component, "-", PadNumber(number));
  rev.namespace_ = isvc.meta.namespace_;
  rev.isvc = isvc.meta.name;
  rev.component = component;
  rev.number = number;
  rev.spec_json = spec_json;
  rev.created = now;
  const resources::Component* c = ComponentOf(isvc, component);
  if (c == nullptr) {
    Fail(&rev, "InvalidSpec", StrCat("spec.", component, ": absent"));
    return rev;
  }
  rev.min_replicas = c->min_replicas;
  rev.max_replicas = c->max_replicas;
  rev.batcher = c->batcher;
  if (c->explainer_container.has_value()) {
    // A named explainer runs its type's image with its settings as arguments
    // (KServe's explainers config; resources.h).
    rev.container = ServingContainer(*c->explainer_container, isvc.meta);
    rev.runtime = StrCat(c->explainer_type, "-explainer");
  } else {
    const Container* main = MainContainer(c->containers);
    if (main == nullptr) {
      Fail(&rev, "InvalidSpec", StrCat("spec.", component, ": no container"));
      return rev;
    }
    rev.container = ServingContainer(*main, isvc.meta);
  }
  for (const auto& e : rev.container.env) {
    if (e.name == "STORAGE_URI") rev.storage_uri = e.value;
    if (e.name == "PROTOCOL" && !e.value.empty()) rev.protocol = e.value;
  }
  std::vector<std::string>& args = rev.container.args;
  auto has = [&](std::string_view flag) {
    return std::any_of(args.begin(), args.end(), [&](const std::string& a) {
      return a == flag || (a.starts_with(flag) && a.size() > flag.size() && a[flag.size()] == '=');
    });
  };
  auto add = [&](std::string_view flag, std::string value) {
    if (has(flag)) return;
    args.emplace_back(flag);
    args.push_back(std::move(value));
  };
  add("--model_name", isvc.meta.name);
  add("--predictor_host", StrCat(isvc.meta.name, "-predictor.", isvc.meta.namespace_));
  add("--http_port", "8080");
  if (c->container_concurrency > 0) add("--workers", StrCat(c->container_concurrency));
  return rev;
}

namespace {

// One component's revisions, traffic and condition: the rollout rules of
// Reconcile (reconciler.h) over that component's revisions.
struct ComponentPlan {
  std::optional<RevisionSpec> create;
  std::map<std::string, int> replicas;
  ComponentStatus status;
  Condition condition;  // {Predictor,Transformer,Explainer}Ready
  const RevisionView* latest = nullptr;
  const RevisionView* ready = nullptr;
  bool unrunnable = false;
  std::vector<RevisionView> revisions;  // with the one created, if any
};

std::string ConditionType(const std::string& component) {
  std::string type = component;
  if (!type.empty()) type[0] = static_cast<char>(type[0] - 'a' + 'A');
  return StrCat(type, "Ready");
}

void ReconcileComponent(const ReconcileInput& in, const std::string& component,
                        const std::string& spec_json, const std::optional<int>& canary,
                        const std::string& rolled_out, const std::string& previous,
                        ComponentPlan* plan) {
  const InferenceService& isvc = *in.isvc;
  std::vector<RevisionView>& revs = plan->revisions;
  for (const auto& r : in.revisions)
    if (r.spec.component == component) revs.push_back(r);
  if (revs.empty() || revs.back().spec.spec_json != spec_json) {
    int number = revs.empty() ? 1 : revs.back().spec.number + 1;
    plan->create = component == "predictor"
                       ? ResolveRevision(isvc, spec_json, number, in.now, *in.namespace_runtimes,
                                         *in.cluster_runtimes, *in.config)
                       : ResolveComponentRevision(isvc, component, spec_json, number, in.now);
    RevisionView v;
    v.spec = *plan->create;
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
  ComponentStatus& st = plan->status;
  st.url = ComponentUrl(isvc.meta, component, *in.config);
  st.latest_created = latest.spec.name;
  st.latest_ready = ready ? ready->spec.name : "";
  st.latest_rolled_out = rolled_out;
  st.previous_rolled_out = previous;
  const RevisionView* rolled = find(rolled_out);
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
    if (ready == &latest && rolled_out != latest.spec.name) {
      if (!rolled_out.empty()) st.previous_rolled_out = rolled_out;
      st.latest_rolled_out = latest.spec.name;
    }
  }
  if (!unrunnable) plan->replicas[latest.spec.name] = latest.spec.min_replicas;
  for (const auto& t : st.traffic) plan->replicas[t.revision] = find(t.revision)->spec.min_replicas;

  // The condition follows the latest revision; traffic stays on the latest
  // ready one.
  const RevisionObserved& o = latest.observed;
  const std::string type = ConditionType(component);
  if (unrunnable) {
    plan->condition =
        MakeCondition(type, "False", latest.spec.failure_reason, latest.spec.failure_message);
  } else if (o.phase == RevisionPhase::kReady) {
    plan->condition = MakeCondition(type, "True");
  } else if (o.phase == RevisionPhase::kFailed) {
    plan->condition = MakeCondition(type, "False", o.reason, o.message);
  } else {
    bool loading = o.phase == RevisionPhase::kLoading;
    plan->condition =
        MakeCondition(type, "Unknown", loading ? "Loading" : "Pending",
                      StrCat("revision ", latest.spec.name, " is ",
                             loading ? "starting its replicas" : "fetching its model"));
  }
  plan->unrunnable = unrunnable;
  plan->latest = &latest;
  plan->ready = ready;
}

}  // namespace

ReconcilePlan Reconcile(const ReconcileInput& in) {
  ReconcilePlan plan;
  const InferenceService& isvc = *in.isvc;
  IsvcStatus& st = plan.status;
  st.url = ServiceUrl(isvc.meta, *in.config);

  ComponentPlan predictor;
  ReconcileComponent(in, "predictor", in.spec_json, isvc.predictor.canary_traffic_percent,
                     in.latest_rolled_out, in.previous_rolled_out, &predictor);
  std::vector<Condition> component_conditions = {predictor.condition};
  const ComponentPlan* entry = &predictor;
  auto absorb = [&](ComponentPlan& p) {
    if (p.create.has_value()) plan.create.push_back(std::move(*p.create));
    plan.replicas.insert(p.replicas.begin(), p.replicas.end());
  };
  absorb(predictor);
  ComponentPlan transformer;
  ComponentPlan explainer;
  auto other = [&](const std::string& name, const std::optional<resources::Component>& spec,
                   const std::string& spec_json, bool run, ComponentPlan* p,
                   std::optional<ComponentStatus>* out) {
    if (!spec.has_value() || !run) return false;
    std::optional<ComponentStatus> stored;
    if (in.stored != nullptr) stored = in.stored->Component(name);
    ReconcileComponent(in, name, spec_json.empty() ? "{}" : spec_json, spec->canary_traffic_percent,
                       stored ? stored->latest_rolled_out : "",
                       stored ? stored->previous_rolled_out : "", p);
    absorb(*p);
    *out = p->status;
    component_conditions.push_back(p->condition);
    return true;
  };
  if (other("transformer", isvc.transformer, in.transformer_json, in.run_transformer, &transformer,
            &st.transformer))
    entry = &transformer;
  other("explainer", isvc.explainer, in.explainer_json, in.run_explainer, &explainer,
        &st.explainer);

  st.predictor_url = predictor.status.url;
  st.latest_created = predictor.status.latest_created;
  st.latest_ready = predictor.status.latest_ready;
  st.latest_rolled_out = predictor.status.latest_rolled_out;
  st.previous_rolled_out = predictor.status.previous_rolled_out;
  st.traffic = predictor.status.traffic;

  // modelStatus follows the predictor's latest revision.
  const RevisionView& latest = *predictor.latest;
  const RevisionObserved& o = latest.observed;
  const bool unrunnable = predictor.unrunnable;
  st.total_copies = unrunnable ? 0 : std::max(1, latest.spec.min_replicas);
  st.failed_copies = o.failed_replicas;
  st.active_model_state = predictor.ready ? "Loaded" : "";
  if (unrunnable) {
    st.transition_status = "InvalidSpec";
    st.target_model_state = "FailedToLoad";
    st.failure_reason = latest.spec.failure_reason;
    st.failure_message = latest.spec.failure_message;
    st.failure_time = latest.spec.created;
  } else if (o.phase == RevisionPhase::kReady) {
    st.transition_status = "UpToDate";
    st.target_model_state = "Loaded";
  } else if (o.phase == RevisionPhase::kFailed) {
    st.transition_status = "BlockedByFailedLoad";
    st.target_model_state = "FailedToLoad";
    if (!predictor.ready) st.active_model_state = "FailedToLoad";
    st.failure_reason = o.reason;
    st.failure_message = o.message;
    st.failure_time = o.failure_time;
  } else {
    st.transition_status = "InProgress";
    st.target_model_state = o.phase == RevisionPhase::kLoading ? "Loading" : "Pending";
    if (!predictor.ready) st.active_model_state = "Pending";
  }
  Condition deployment = predictor.condition;
  deployment.type = "LatestDeploymentReady";
  // Requests enter at the transformer when there is one: the service takes
  // traffic once it and the predictor both have a ready revision.
  const bool routable = predictor.ready != nullptr && entry->ready != nullptr;
  Condition ingress =
      routable ? MakeCondition("IngressReady", "True")
               : MakeCondition("IngressReady", "False", "NoReadyRevision",
                               StrCat("no revision of the ",
                                      predictor.ready == nullptr ? "predictor" : "transformer",
                                      " is ready to take traffic"));
  Condition overall = MakeCondition("Ready", "True");
  for (const auto& c : component_conditions)
    if (c.status != "True") {
      overall = c;
      break;
    }
  if (overall.status == "True" && ingress.status != "True") overall = ingress;
  overall.type = "Ready";
  st.conditions = {ingress, deployment};
  st.conditions.insert(st.conditions.end(), component_conditions.begin(),
                       component_conditions.end());
  st.conditions.push_back(overall);
  return plan;
}

std::optional<ComponentStatus> IsvcStatus::Component(std::string_view component) const {
  if (component == "transformer") return transformer;
  if (component == "explainer") return explainer;
  if (component != "predictor") return std::nullopt;
  return ComponentStatus{predictor_url,     latest_created,      latest_ready,
                         latest_rolled_out, previous_rolled_out, traffic};
}

}  // namespace osprey::controlplane
