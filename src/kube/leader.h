#pragma once

// Leader election on a coordination.k8s.io/v1 Lease, as client-go's: the
// holder renews the lease every retry period; another candidate takes it once
// it has seen the same record unchanged for a whole lease duration (measured
// on its own clock, so the machines' clocks need not agree). Writes carry the
// resourceVersion they read, so two candidates never both win.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "kube/client.h"

namespace osprey::kube {

// A candidate's identity: this host's name and a random suffix.
std::string CandidateIdentity();

// Lease settings from a lease duration, as client-go relates them (renew
// deadline two thirds of it, retries seven times per lease); the namespace
// given, else $POD_NAMESPACE, else `fallback_namespace`.
struct LeaderOptions;
LeaderOptions LeaseSettings(std::string lease_namespace, std::string name,
                            std::chrono::milliseconds lease_duration,
                            const std::string& fallback_namespace);

struct LeaderOptions {
  std::string namespace_ = "default";
  std::string name = "osprey-operator";
  std::string identity;  // this candidate (pod name and a random suffix)
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};  // leading stops when not renewed this long
  std::chrono::milliseconds retry_period{2000};
};

// What a candidate does with the lease it read (pure, table-tested).
struct LeaseRecord {
  std::string holder;
  int lease_seconds = 0;
  int transitions = 0;
};
enum class LeaseAction { kCreate, kRenew, kTakeOver, kWait };
// `exists`: the lease was read; `unchanged_for`: how long the record has been
// seen unchanged on this candidate's clock.
LeaseAction DecideLease(bool exists, const LeaseRecord& record, const std::string& identity,
                        std::chrono::milliseconds unchanged_for);

class LeaderElector {
 public:
  LeaderElector(Client* client, LeaderOptions options);
  // A candidate with a client of its own on `config` (its own connections
  // and rate limit, requests capped at a third of the renew deadline), as
  // the constructor's comment below asks.
  LeaderElector(const Config& config, const ClientOptions& client_options, LeaderOptions options);
  ~LeaderElector();

  // Runs the election on its own thread: `started` when this candidate
  // becomes leader (it must return at once: start work on another thread),
  // `stopped` when it loses the lease (it must then stop acting; the
  // operator exits, as controllers do). The client should be the elector's
  // own, with a request timeout well under the renew deadline, so that
  // renewals never queue behind other work.
  void Start(std::function<void()> started, std::function<void()> stopped);
  // Stops; a leader gives the lease up (holder cleared) so another takes over
  // at once. `stopped` is not called.
  void Stop();
  bool leading() const { return leading_.load(); }
  // Leading, and renewed within the renew deadline: safe to write. (A
  // leader whose renewals hang stops counting as one before any other
  // candidate may take the lease.)
  bool valid() const;

 private:
  void Run();
  bool TryAcquireOrRenew();
  void Release();
  std::string LeaseJson(const std::string& rv, const std::string& holder,
                        const std::string& acquire_time, int transitions) const;

  std::unique_ptr<Client> own_client_;
  Client* client_;
  LeaderOptions options_;
  std::function<void()> started_;
  std::function<void()> stopped_;
  std::atomic<bool> running_{false};
  std::atomic<bool> leading_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  // The record as last read, and since when it has looked so.
  std::string observed_rv_;
  std::string observed_record_;
  std::chrono::steady_clock::time_point observed_at_{};
  std::atomic<std::chrono::steady_clock::rep> renewed_at_{0};
};

}  // namespace osprey::kube
