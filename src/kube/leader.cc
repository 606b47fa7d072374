#include "kube/leader.h"

#include <rapidjson/document.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <random>

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

std::string CandidateIdentity() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  std::random_device rd;
  return StrCat(host, "_", static_cast<uint64_t>(rd() % 1000000));
}

LeaderOptions LeaseSettings(std::string lease_namespace, std::string name,
                            std::chrono::milliseconds lease_duration,
                            const std::string& fallback_namespace) {
  LeaderOptions lo;
  const char* pod_ns = std::getenv("POD_NAMESPACE");
  lo.namespace_ = !lease_namespace.empty()            ? std::move(lease_namespace)
                  : pod_ns != nullptr && *pod_ns != 0 ? std::string(pod_ns)
                                                      : fallback_namespace;
  lo.name = std::move(name);
  lo.identity = CandidateIdentity();
  lo.lease_duration = lease_duration;
  lo.renew_deadline = lease_duration * 2 / 3;
  lo.retry_period = std::max(std::chrono::milliseconds(100), lease_duration / 7);
  return lo;
}

LeaderElector::LeaderElector(Client* client, LeaderOptions options)
    : client_(client), options_(std::move(options)) {}

namespace {
ClientOptions ElectionClientOptions(ClientOptions o, const LeaderOptions& lease) {
  o.timeout =
      std::max(std::chrono::milliseconds(200),
               std::chrono::duration_cast<std::chrono::milliseconds>(lease.renew_deadline / 3));
  return o;
}
}  // namespace

LeaderElector::LeaderElector(const Config& config, const ClientOptions& client_options,
                             LeaderOptions options)
    : own_client_(std::make_unique<Client>(config, ElectionClientOptions(client_options, options))),
      client_(own_client_.get()),
      options_(std::move(options)) {}

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
  if (leading_.exchange(false)) Release();
}

namespace {

const rapidjson::Value& Member(const rapidjson::Value& v, const char* key) {
  static const rapidjson::Value kNull;
  if (!v.IsObject()) return kNull;
  auto it = v.FindMember(key);
  return it == v.MemberEnd() ? kNull : it->value;
}

struct ReadLease {
  bool exists = false;
  std::string rv;
  LeaseRecord record;
  std::string acquire_time;
};

// The lease as stored, or why it could not be read.
absl::StatusOr<ReadLease> GetLease(Client* client, const std::string& path) {
  OSPREY_ASSIGN_OR_RETURN(Response got, client->Call("GET", path));
  ReadLease out;
  if (got.status == 404) return out;
  OSPREY_RETURN_IF_ERROR(StatusOf(got, "read lease"));
  rapidjson::Document d;
  if (d.Parse(got.body.data(), got.body.size()).HasParseError() || !d.IsObject())
    return absl::InternalError("lease: not JSON");
  out.exists = true;
  out.rv = json::GetString(Member(d, "metadata"), "resourceVersion");
  const auto& spec = Member(d, "spec");
  out.record.holder = json::GetString(spec, "holderIdentity");
  out.record.lease_seconds = static_cast<int>(json::GetInt(spec, "leaseDurationSeconds"));
  out.record.transitions = static_cast<int>(json::GetInt(spec, "leaseTransitions"));
  out.acquire_time = json::GetString(spec, "acquireTime");
  return out;
}

}  // namespace

std::string LeaderElector::LeaseJson(const std::string& rv, const std::string& holder,
                                     const std::string& acquire_time, int transitions) const {
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
  json::Field(w, "holderIdentity", holder);
  json::Key(w, "leaseDurationSeconds");
  w.Int64(static_cast<int64_t>(options_.lease_duration.count() / 1000));
  json::Field(w, "acquireTime", acquire_time.empty() ? time : acquire_time);
  json::Field(w, "renewTime", time);
  json::Key(w, "leaseTransitions");
  w.Int64(transitions);
  w.EndObject();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

bool LeaderElector::TryAcquireOrRenew() {
  const std::string path = ResourcePath(kLeases, options_.namespace_, options_.name);
  auto lease = GetLease(client_, path);
  if (!lease.ok()) return false;
  auto now = std::chrono::steady_clock::now();
  // The record changes at every renewal: a new resourceVersion restarts the
  // clock of "unchanged".
  if (lease->exists && lease->rv != observed_rv_) {
    observed_rv_ = lease->rv;
    observed_at_ = now;
  }
  auto unchanged = std::chrono::duration_cast<std::chrono::milliseconds>(now - observed_at_);
  LeaseAction action = DecideLease(lease->exists, lease->record, options_.identity, unchanged);
  if (action == LeaseAction::kWait) return false;
  std::string body = LeaseJson(
      lease->rv, options_.identity, action == LeaseAction::kRenew ? lease->acquire_time : "",
      lease->record.transitions + (action == LeaseAction::kTakeOver ? 1 : 0));
  absl::StatusOr<Response> put =
      action == LeaseAction::kCreate
          ? client_->Call("POST", ResourcePath(kLeases, options_.namespace_), body)
          : client_->Call("PUT", path, body);
  if (!put.ok() || put->status / 100 != 2) return false;  // 409: another candidate won
  rapidjson::Document d;
  if (!d.Parse(put->body.data(), put->body.size()).HasParseError() && d.IsObject()) {
    observed_rv_ = json::GetString(Member(d, "metadata"), "resourceVersion");
    observed_at_ = now;
  }
  return true;
}

void LeaderElector::Release() {
  // Give the lease up only while it is still ours, with an update carrying
  // the version read (another holder's newer record is never overwritten).
  const std::string path = ResourcePath(kLeases, options_.namespace_, options_.name);
  auto lease = GetLease(client_, path);
  if (!lease.ok() || !lease->exists || lease->record.holder != options_.identity) return;
  auto r = client_->Call("PUT", path,
                         LeaseJson(lease->rv, "", lease->acquire_time, lease->record.transitions));
  if (r.ok() && r->status / 100 == 2) {
    OSPREY_LOG(kInfo) << "leader election: released lease " << options_.namespace_ << "/"
                      << options_.name;
  } else {
    OSPREY_LOG(kWarning) << "leader election: could not release lease " << options_.namespace_
                         << "/" << options_.name << ": "
                         << (r.ok() ? StatusOf(*r, "update").message() : r.status().message());
  }
}

bool LeaderElector::valid() const {
  if (!leading_.load()) return false;
  auto renewed = std::chrono::steady_clock::time_point(
      std::chrono::steady_clock::duration(renewed_at_.load()));
  return std::chrono::steady_clock::now() - renewed < options_.renew_deadline;
}

void LeaderElector::Run() {
  while (running_.load()) {
    // A renewal counts from when it was asked for, not answered.
    auto asked = std::chrono::steady_clock::now();
    bool ok = TryAcquireOrRenew();
    auto now = std::chrono::steady_clock::now();
    if (ok) {
      renewed_at_.store(asked.time_since_epoch().count());
      if (!leading_.exchange(true)) {
        OSPREY_LOG(kInfo) << "leader election: " << options_.identity << " leads (lease "
                          << options_.namespace_ << "/" << options_.name << ")";
        if (started_) started_();
      }
    } else if (leading_.load() &&
               now - std::chrono::steady_clock::time_point(
                         std::chrono::steady_clock::duration(renewed_at_.load())) >
                   options_.renew_deadline) {
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
