// The local controller's Istio objects (VirtualService, Gateway,
// ServiceEntry, DestinationRule): apply, store, list, delete, and the VirtualServices' routes
// (istio.h decides). Every method runs with `mu` held.

#include <rapidjson/document.h>

#include <filesystem>

#include "common/json_dom.h"
#include "controlplane/local/controller_impl.h"
#include "resources/kinds.h"

namespace osprey::controlplane {
using namespace osprey::json;

namespace {

const resources::ObjectMeta& MetaOf(const resources::Resource& r) {
  return std::visit([](const auto& obj) -> const resources::ObjectMeta& { return obj.meta; }, r);
}

// A stored object with its creationTimestamp added to its metadata.
std::string WithCreated(const std::string& json, const std::string& created) {
  rapidjson::Document d;
  d.Parse(json.data(), json.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("metadata") || !d["metadata"].IsObject())
    return json;
  d["metadata"].AddMember("creationTimestamp", rapidjson::Value(created.c_str(), d.GetAllocator()),
                          d.GetAllocator());
  return ToText(d);
}

}  // namespace

absl::StatusOr<Controller::ApplyResult> Controller::Impl::ApplyIstio(const resources::Resource& r,
                                                                     const std::string& json,
                                                                     const std::string& now,
                                                                     bool dry_run) {
  const resources::ObjectMeta& meta = MetaOf(r);
  Controller::ApplyResult result;
  result.kind = std::string(resources::KindOf(r));
  result.namespace_ = meta.namespace_;
  result.name = meta.name;
  const std::string key = StrCat(result.kind, "/", meta.namespace_, "/", meta.name);
  auto it = istio.find(key);
  if (dry_run) return result;
  if (it != istio.end() && it->second.resource_json == json) {
    result.action = "unchanged";
    return result;
  }
  result.action = it == istio.end() ? "created" : "configured";
  IstioEntry e{r, json, it == istio.end() ? now : it->second.created};
  OSPREY_RETURN_IF_ERROR(store->Put(
      StrCat("istio/", key), StrCat("{\"resource\":", json, ",\"created\":\"", e.created, "\"}")));
  istio[key] = std::move(e);
  return result;
}

absl::Status Controller::Impl::LoadIstio() {
  OSPREY_ASSIGN_OR_RETURN(auto rows, store->List("istio/"));
  for (const auto& [key, value] : rows) {
    rapidjson::Document d;
    if (d.Parse(value.data(), value.size()).HasParseError() || !d.HasMember("resource")) continue;
    auto resource = resources::FromJson(ToText(d["resource"]));
    if (!resource.ok()) {
      OSPREY_LOG(kError) << "store: " << key << " is unreadable, skipped";
      continue;
    }
    IstioEntry e{*resource, resources::ToJson(*resource), GetString(d, "created")};
    istio[key.substr(6)] = std::move(e);
  }
  return absl::OkStatus();
}

std::vector<KeyedRoute> Controller::Impl::PlanIstioRoutes(
    const std::vector<Routed>& routed, const std::vector<KnativeRouting>& knative,
    std::map<std::string, RevisionRouting>* revisions) {
  if (istio.empty()) {
    SetListeners({});
    gateway_problems.clear();
    return {};
  }
  IstioInput in;
  for (const auto& [key, e] : istio) {
    if (const auto* vs = std::get_if<resources::VirtualService>(&e.resource))
      in.virtual_services.push_back(vs);
    else if (const auto* g = std::get_if<resources::IstioGateway>(&e.resource))
      in.gateways.push_back(g);
    else if (const auto* se = std::get_if<resources::ServiceEntry>(&e.resource))
      in.service_entries.push_back(se);
    else if (const auto* dr = std::get_if<resources::DestinationRule>(&e.resource))
      in.destination_rules.push_back(dr);
  }
  // What DestinationRule subsets select: each revision's labels, as its pods carry them.
  if (!in.destination_rules.empty())
    for (const auto& [key, rev] : this->revisions) {
      if (!rev.predictor.has_value() && !rev.predictor_unparsed) {
        rev.predictor = RevisionComponent(rev.spec);
        rev.predictor_unparsed = !rev.predictor.has_value();
      }
      in.revision_labels[key] =
          RevisionPodLabels(rev.spec, rev.predictor.has_value() ? &*rev.predictor : nullptr);
    }
  for (const auto& item : routed) AddServiceHosts(item.entry->isvc.meta, item.entry->status, &in);
  for (const auto& k : knative) AddServiceHosts(k, &in);
  in.https_port = opts.https_port;
  IstioPlan plan = PlanIstio(in);
  // TLS ends here: httpsRedirect answers before every route.
  plan.routes.insert(plan.routes.begin(), std::make_move_iterator(plan.https_redirects.begin()),
                     std::make_move_iterator(plan.https_redirects.end()));
  SetListeners(plan.listeners);
  // A Gateway's servers left out are told once each time that changes.
  for (const auto& [g, problems] : plan.gateway_problems) {
    auto& before = gateway_problems[g];
    if (before == problems) continue;
    before = problems;
    const size_t slash = g.find('/');
    std::string message;
    for (const auto& p : problems) StrAppend(&message, message.empty() ? "" : "; ", p);
    KindEvent(kGatewayEvents, g.substr(0, slash), g.substr(slash + 1), "Warning", "ServerNotServed",
              message);
  }
  std::erase_if(gateway_problems,
                [&](const auto& p) { return !plan.gateway_problems.contains(p.first); });
  for (auto& [key, r] : plan.endpoints) (*revisions)[key] = std::move(r);
  for (auto& [key, policy] : plan.policies)
    if (auto it = revisions->find(key); it != revisions->end()) it->second.target.policy = policy;
  // A VirtualService's problems are told once each time they change.
  for (const auto& [vs, problems] : plan.problems) {
    auto& before = istio_problems[vs];
    if (before == problems) continue;
    before = problems;
    const size_t slash = vs.find('/');
    std::string message;
    for (const auto& p : problems) StrAppend(&message, message.empty() ? "" : "; ", p);
    KindEvent(kVirtualServiceEvents, vs.substr(0, slash), vs.substr(slash + 1), "Warning",
              "RouteIncomplete", message);
  }
  std::erase_if(istio_problems, [&](const auto& p) { return !plan.problems.contains(p.first); });
  return plan.routes;
}

void Controller::Impl::SetListeners(const std::map<int, Listener>& wanted) {
  if (!opts.on_listeners) return;
  // Certificate files rewritten in place (a renewal) are loaded again.
  std::map<std::string, std::string> stamps;
  for (const auto& [port, l] : wanted)
    for (const auto& c : l.certificates)
      for (const std::string* file : {&c.certificate, &c.private_key}) {
        std::error_code time_ec, size_ec;
        const auto t = std::filesystem::last_write_time(*file, time_ec);
        const auto size = std::filesystem::file_size(*file, size_ec);
        stamps[*file] = time_ec || size_ec ? ""
                                           : StrCat(t.time_since_epoch().count(), "/",
                                                    static_cast<uint64_t>(size));
      }
  // Ports that could not be listened on are tried again every 10 s.
  const auto now = std::chrono::steady_clock::now();
  if (wanted == listeners && stamps == listener_stamps &&
      (listener_failed.empty() || now - listener_tried < std::chrono::seconds(10)))
    return;
  listeners = wanted;
  listener_stamps = std::move(stamps);
  listener_tried = now;
  const std::map<int, std::string> failed = opts.on_listeners(wanted);
  // A port newly failing is told on each Gateway with a server there.
  for (const auto& [key, e] : istio) {
    const auto* g = std::get_if<resources::IstioGateway>(&e.resource);
    if (g == nullptr) continue;
    for (const auto& server : g->servers)
      if (auto f = failed.find(server.port);
          f != failed.end() && !listener_failed.contains(server.port))
        KindEvent(kGatewayEvents, g->meta.namespace_, g->meta.name, "Warning", "ListenFailed",
                  StrCat("port ", server.port, " cannot be listened on: ", f->second));
  }
  listener_failed.clear();
  for (const auto& [port, why] : failed) listener_failed.insert(port);
}

Controller::Impl::Items Controller::Impl::IstioItems(std::string_view kind,
                                                     const std::string& ns) const {
  Items out;
  for (const auto& [key, e] : istio) {
    if (resources::KindOf(e.resource) != kind) continue;
    const resources::ObjectMeta& meta = MetaOf(e.resource);
    if (!ns.empty() && meta.namespace_ != ns) continue;
    out.emplace_back(meta.name, WithCreated(e.resource_json, e.created));
  }
  return out;
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListVirtualServices(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  return IstioItems("VirtualService", ns);
}
absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListGateways(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  return IstioItems("Gateway", ns);
}
absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListServiceEntries(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  return IstioItems("ServiceEntry", ns);
}

absl::StatusOr<Controller::Impl::Items> Controller::Impl::ListDestinationRules(
    const std::string& ns, const std::vector<ReplicaStatus>&) const {
  return IstioItems("DestinationRule", ns);
}

absl::Status Controller::Impl::DeleteIstio(std::string_view kind, const std::string& ns,
                                           const std::string& name) {
  const std::string key = StrCat(kind, "/", ns, "/", name);
  if (!istio.erase(key))
    return absl::NotFoundError(
        StrCat(resources::FindKind(kind)->singular, " ", name, " not found in namespace ", ns));
  OSPREY_RETURN_IF_ERROR(store->Delete(StrCat("istio/", key)));
  if (kind == "VirtualService")
    (void)store->DeletePrefix(EventPrefix(ns, kVirtualServiceEvents, name));
  return absl::OkStatus();
}

absl::Status Controller::Impl::DeleteVirtualService(const std::string& ns, const std::string& name,
                                                    std::vector<std::string>*) {
  return DeleteIstio("VirtualService", ns, name);
}
absl::Status Controller::Impl::DeleteGateway(const std::string& ns, const std::string& name,
                                             std::vector<std::string>*) {
  return DeleteIstio("Gateway", ns, name);
}
absl::Status Controller::Impl::DeleteServiceEntry(const std::string& ns, const std::string& name,
                                                  std::vector<std::string>*) {
  return DeleteIstio("ServiceEntry", ns, name);
}

absl::Status Controller::Impl::DeleteDestinationRule(const std::string& ns, const std::string& name,
                                                     std::vector<std::string>*) {
  return DeleteIstio("DestinationRule", ns, name);
}

}  // namespace osprey::controlplane
