// The local controller's cost view (cost.h): the ledgers Account() keeps,
// read as JSON for the API (`osprey cost`, `osprey top`, describe) and as
// Prometheus series.

#include <rapidjson/document.h>

#include <map>

#include "common/json_writer.h"
#include "common/prometheus.h"
#include "controlplane/local/controller_impl.h"

namespace osprey::controlplane {
namespace {

void Totals(JsonWriter& w, const UsageTotals& t) {
  w.BeginObject();
  w.Key("seconds").Double(t.seconds);
  w.Key("replicaSeconds").Double(t.replica_seconds);
  w.Key("cpuSeconds").Double(t.cpu_seconds);
  w.Key("memoryAverageBytes").Double(t.average_memory());
  w.Key("memoryPeakBytes").Uint(t.memory_peak);
  w.Key("requests").Double(t.requests);
  w.Key("cpuSecondsPer1000Requests");
  if (auto per = t.cpu_per_1000(); per.has_value())
    w.Double(*per);
  else
    w.Null();
  w.EndObject();
}

}  // namespace

void Controller::Impl::SaveCosts() {
  for (const auto& [key, c] : costs) {
    const UsageTotals& t = c.ledger.total();
    std::string out;
    JsonWriter w(&out);
    w.BeginObject();
    w.Key("seconds").Double(t.seconds);
    w.Key("replicaSeconds").Double(t.replica_seconds);
    w.Key("cpuSeconds").Double(t.cpu_seconds);
    w.Key("memoryByteSeconds").Double(t.memory_byte_seconds);
    w.Key("memoryPeakBytes").Uint(t.memory_peak);
    w.Key("requests").Double(t.requests);
    w.Key("concurrencySeconds").Double(t.concurrency_seconds);
    w.Key("waitingSeconds").Double(t.waiting_seconds);
    w.EndObject();
    if (auto st = store->Put(StrCat("cost/", key), out); !st.ok()) {
      OSPREY_LOG(kError) << "store: cost of " << key << ": " << st.message();
    }
  }
}

void Controller::Impl::LoadCosts() {
  auto rows = store->List("cost/");
  if (!rows.ok()) return;
  for (const auto& [key, value] : *rows) {
    rapidjson::Document d;
    if (d.Parse(value.data(), value.size()).HasParseError() || !d.IsObject()) continue;
    auto number = [&](const char* k) {
      return d.HasMember(k) && d[k].IsNumber() ? d[k].GetDouble() : 0.0;
    };
    UsageTotals t;
    t.seconds = number("seconds");
    t.replica_seconds = number("replicaSeconds");
    t.cpu_seconds = number("cpuSeconds");
    t.memory_byte_seconds = number("memoryByteSeconds");
    t.memory_peak = static_cast<uint64_t>(number("memoryPeakBytes"));
    t.requests = number("requests");
    t.concurrency_seconds = number("concurrencySeconds");
    t.waiting_seconds = number("waitingSeconds");
    auto [it, _] = costs.try_emplace(key.substr(5), opts.cost_window);
    it->second.ledger.Restore(t);
  }
}

absl::StatusOr<std::string> Controller::Cost(const std::string& ns, const std::string& name) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (!name.empty() && !impl_->isvcs.contains(StrCat(ns, "/", name)))
    return absl::NotFoundError(
        StrCat("inferenceservice \"", name, "\" not found in namespace \"", ns, "\""));
  const auto now = std::chrono::steady_clock::now();
  struct ServiceCost {
    UsageTotals window, total;
    int revisions = 0;
  };
  std::map<std::pair<std::string, std::string>, ServiceCost> services;
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("windowSeconds").Double(std::chrono::duration<double>(impl_->opts.cost_window).count());
  w.Key("items").BeginArray();
  for (const auto& [key, c] : impl_->costs) {
    auto rev = impl_->revisions.find(key);
    if (rev == impl_->revisions.end()) continue;
    const RevisionSpec& spec = rev->second.spec;
    if ((!ns.empty() && spec.namespace_ != ns) || (!name.empty() && spec.isvc != name)) continue;
    w.BeginObject();
    w.Key("namespace").String(spec.namespace_);
    w.Key("inferenceService").String(spec.isvc);
    w.Key("component").String(spec.component);
    w.Key("revision").String(spec.name);
    w.Key("current").BeginObject();
    const double dt = c.last.seconds > 0 ? c.last.seconds : 1;
    w.Key("replicas").Int(c.last.replicas);
    w.Key("cpuCores").Double(c.last.cpu_seconds / dt);
    w.Key("memoryBytes").Uint(c.last.memory_bytes);
    w.Key("requestsPerSecond").Double(c.last.requests / dt);
    w.EndObject();
    w.Key("lastWindow");
    Totals(w, c.ledger.Window(now));
    w.Key("total");
    Totals(w, c.ledger.total());
    w.Key("advice").BeginArray();
    for (const Advice& a : c.advice)
      w.BeginObject().Key("reason").String(a.reason).Key("message").String(a.message).EndObject();
    w.EndArray();
    w.EndObject();
    ServiceCost& sum = services[{spec.namespace_, spec.isvc}];
    sum.window.Merge(c.ledger.Window(now));
    sum.total.Merge(c.ledger.total());
    ++sum.revisions;
  }
  w.EndArray();
  // Each service: its revisions side by side.
  w.Key("services").BeginArray();
  for (const auto& [key, sum] : services) {
    w.BeginObject();
    w.Key("namespace").String(key.first);
    w.Key("inferenceService").String(key.second);
    w.Key("revisions").Int(sum.revisions);
    w.Key("lastWindow");
    Totals(w, sum.window);
    w.Key("total");
    Totals(w, sum.total);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return out;
}

std::string Controller::CostMetrics() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  struct Row {
    std::string labels;
    const Impl::CostEntry* c;
  };
  std::vector<Row> rows;
  for (const auto& [key, c] : impl_->costs) {
    auto rev = impl_->revisions.find(key);
    if (rev == impl_->revisions.end()) continue;
    const RevisionSpec& s = rev->second.spec;
    rows.push_back({StrCat("namespace=\"", prometheus::LabelValue(s.namespace_),
                           "\",inferenceservice=\"", prometheus::LabelValue(s.isvc),
                           "\",component=\"", prometheus::LabelValue(s.component), "\",revision=\"",
                           prometheus::LabelValue(s.name), "\""),
                    &c});
  }
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    prometheus::AppendFamily(name, type, help, &out);
    for (const Row& r : rows) StrAppend(&out, name, "{", r.labels, "} ", value(*r.c), "\n");
  };
  family("osprey_revision_cpu_seconds_total", "counter",
         "CPU time the revision's replicas (and their workers) used.",
         [](const Impl::CostEntry& c) { return c.ledger.total().cpu_seconds; });
  family("osprey_revision_replica_seconds_total", "counter", "Replica-seconds the revision ran.",
         [](const Impl::CostEntry& c) { return c.ledger.total().replica_seconds; });
  family("osprey_revision_memory_bytes", "gauge",
         "Resident memory of the revision's replicas (and their workers) now.",
         [](const Impl::CostEntry& c) { return c.last.memory_bytes; });
  family("osprey_revision_requests_total", "counter",
         "Requests the gateway answered for the revision since it was first seen.",
         [](const Impl::CostEntry& c) { return c.ledger.total().requests; });
  const auto now = std::chrono::steady_clock::now();
  family("osprey_revision_memory_average_bytes", "gauge",
         "Resident memory of the revision's replicas, averaged over the cost window "
         "(--cost-window-s, an hour by default).",
         [now](const Impl::CostEntry& c) { return c.ledger.Window(now).average_memory(); });
  family("osprey_revision_memory_peak_bytes", "gauge",
         "The most the revision's replicas held at once since it was first seen.",
         [](const Impl::CostEntry& c) { return c.ledger.total().memory_peak; });
  return out;
}

}  // namespace osprey::controlplane
