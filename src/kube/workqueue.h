#pragma once

// The operator's work queue, keyed by "namespace/name", with client-go's
// guarantees: a key waiting is queued once however often it is added; a key
// being worked on is never handed to a second worker (added meanwhile, it is
// queued again when the first is Done); a failing key comes back after a
// per-key exponential backoff until it is forgotten.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <vector>

namespace osprey::kube {

class WorkQueue {
 public:
  using Clock = std::chrono::steady_clock;
  explicit WorkQueue(std::chrono::milliseconds base_delay = std::chrono::milliseconds(100),
                     std::chrono::milliseconds max_delay = std::chrono::seconds(60));

  void Add(const std::string& key);
  void AddAfter(const std::string& key, Clock::duration delay);
  // Again after base_delay * 2^(failures so far), at most max_delay.
  void AddRateLimited(const std::string& key);
  // The key succeeded: its backoff starts over.
  void Forget(const std::string& key);
  int Failures(const std::string& key) const;
  // The backoff AddRateLimited would use now (pure: for tests).
  Clock::duration NextDelay(const std::string& key) const;

  // Blocks for the next key; nullopt once shut down.
  std::optional<std::string> Get();
  void Done(const std::string& key);
  void ShutDown();

  size_t Len() const;  // keys waiting (not delayed, not in progress)
  size_t Processing() const;

 private:
  void AddLocked(const std::string& key);
  void PromoteDueLocked(Clock::time_point now);

  std::chrono::milliseconds base_;
  std::chrono::milliseconds max_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::set<std::string> dirty_;
  std::set<std::string> processing_;
  std::map<std::string, int> failures_;
  using Delayed = std::pair<Clock::time_point, std::string>;
  std::priority_queue<Delayed, std::vector<Delayed>, std::greater<>> delayed_;
  bool shut_down_ = false;
};

}  // namespace osprey::kube
