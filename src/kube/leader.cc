#include "kube/leader.h"

#include <rapidjson/document.h>

#include <ctime>

#include "common/json_dom.h"
#include "common/logging.h"

namespace osprey::kube {
namespace {

const ResourceRef kLeases{"coordination.k8s.io", "v1", "leases", true};

// MicroTime: RFC 3339 with microseconds.
std::string MicroNow() {
  auto now = std::chrono::system_clock::now();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof(out), "%s.%06lldZ", buf, static_cast<long long>(us % 1000000));
  return out;
}

}  // namespace

LeaseAction DecideLease(bool exists, const LeaseRecord& record, const std::string& identity,
                        std::chrono::milliseconds unchanged_for) {
  if (!exists) return LeaseAction::kCreate;
  if (record.holder == identity) return LeaseAction::kRenew;
  if (record.holder.empty()) return LeaseAction::kTakeOver;  // released
  if (unchanged_for >= std::chrono::seconds(record.lease_seconds)) return LeaseAction::kTakeOver;
  return LeaseAction::kWait;
}

LeaderElector::LeaderElector(Client* client, LeaderOptions options)
    : client_(client), options_(std::move(options)) {}

LeaderElector::~LeaderElector() { Stop(); }

void LeaderElector::Start(std::function<void()> started, std::function<void()> stopped) {
  started_ = std::move(started);
  stopped_ = std::move(stopped);
  running_.store(true);
  thread_ = std::thread([this] { Run(); });
}

void LeaderElector::Stop() {
  if (!running_.exchange(false)) return;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (leading_.exchange(false)) {
    Release();
    if (stopped_) stopped_();
  }
}

bool LeaderElector::TryAcquireOrRenew() {
  const std::string path = ResourcePath(kLeases, options_.namespace_, options_.name);
  auto got = client_->Call("GET", path);
  if (!got.ok()) return false;
  bool exists = got->status == 200;
  if (!exists && got->status != 404) return false;
  LeaseRecord record;
  std::string rv;
  std::string acquire_time;
  auto now = std::chrono::steady_clock::now();
  if (exists) {
    rapidjson::Document d;
    if (d.Parse(got->body.data(), got->body.size()).HasParseError() || !d.IsObject()) return false;
    rv = json::GetString(d["metadata"], "resourceVersion");
    const auto& spec = d.HasMember("spec") ? d["spec"] : d["metadata"];
    record.holder = json::GetString(spec, "holderIdentity");
    record.lease_seconds = static_cast<int>(json::GetInt(spec, "leaseDurationSeconds"));
    record.transitions = static_cast<int>(json::GetInt(spec, "leaseTransitions"));
    acquire_time = json::GetString(spec, "acquireTime");
    // The record changes at every renewal: a new resourceVersion restarts
    // the clock of "unchanged".
    if (rv != observed_rv_) {
      observed_rv_ = rv;
      observed_at_ = now;
    }
  }
  auto unchanged = std::chrono::duration_cast<std::chrono::milliseconds>(now - observed_at_);
  LeaseAction action = DecideLease(exists, record, options_.identity, unchanged);
  if (action == LeaseAction::kWait) return false;

  const std::string time = MicroNow();
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  json::Field(w, "apiVersion", "coordination.k8s.io/v1");
  json::Field(w, "kind", "Lease");
  json::Key(w, "metadata");
  w.StartObject();
  json::Field(w, "name", options_.name);
  json::Field(w, "namespace", options_.namespace_);
  if (!rv.empty()) json::Field(w, "resourceVersion", rv);
  w.EndObject();
  json::Key(w, "spec");
  w.StartObject();
  json::Field(w, "holderIdentity", options_.identity);
  json::Key(w, "leaseDurationSeconds");
  w.Int64(static_cast<int64_t>(options_.lease_duration.count() / 1000));
  json::Field(w, "acquireTime", action == LeaseAction::kRenew && !acquire_time.empty() ? acquire_time : time);
  json::Field(w, "renewTime", time);
  json::Key(w, "leaseTransitions");
  w.Int64(record.transitions + (action == LeaseAction::kTakeOver ? 1 : 0));
  w.EndObject();
  w.EndObject();
  absl::StatusOr<Response> put =
      action == LeaseAction::kCreate
          ? client_->Call("POST", ResourcePath(kLeases, options_.namespace_), std::string(buf.GetString(), buf.GetSize()))
          : client_->Call("PUT", path, std::string(buf.GetString(), buf.GetSize()));
  if (!put.ok() || put->status / 100 != 2) return false;  // 409: another candidate won
  rapidjson::Document d;
  if (!d.Parse(put->body.data(), put->body.size()).HasParseError() && d.IsObject()) {
    observed_rv_ = json::GetString(d["metadata"], "resourceVersion");
    observed_at_ = now;
  }
  return true;
}

void LeaderElector::Release() {
  const std::string path = ResourcePath(kLeases, options_.namespace_, options_.name);
  // Clear the holder only if it is still ours (the resourceVersion we wrote).
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  json::Key(w, "metadata");
  w.StartObject();
  json::Field(w, "resourceVersion", observed_rv_);
  w.EndObject();
  json::Key(w, "spec");
  w.StartObject();
  json::Field(w, "holderIdentity", "");
  w.EndObject();
  w.EndObject();
  auto r = client_->Call("PATCH", path, std::string(buf.GetString(), buf.GetSize()), "application/merge-patch+json");
  if (r.ok() && r->status / 100 == 2)
    OSPREY_LOG(kInfo) << "leader election: released lease " << options_.namespace_ << "/"
                      << options_.name;
}

void LeaderElector::Run() {
  while (running_.load()) {
    bool ok = TryAcquireOrRenew();
    auto now = std::chrono::steady_clock::now();
    if (ok) {
      renewed_at_ = now;
      if (!leading_.exchange(true)) {
        OSPREY_LOG(kInfo) << "leader election: " << options_.identity << " leads (lease "
                          << options_.namespace_ << "/" << options_.name << ")";
        if (started_) started_();
      }
    } else if (leading_.load() && now - renewed_at_ > options_.renew_deadline) {
      leading_.store(false);
      OSPREY_LOG(kWarning) << "leader election: " << options_.identity
                           << " could not renew the lease in time; stops leading";
      if (stopped_) stopped_();
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, options_.retry_period, [this] { return !running_.load(); });
  }
}

}  // namespace osprey::kube
