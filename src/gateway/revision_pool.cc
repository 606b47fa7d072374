#include "gateway/revision_pool.h"

#include <algorithm>
#include <utility>

namespace osprey::gateway {

RevisionPool::RevisionPool(std::string key, std::string revision, uint32_t id, Options options,
                           Clock::time_point now)
    : key_(std::move(key)),
      revision_(std::move(revision)),
      id_(id),
      options_(options),
      last_change_(now),
      last_collect_(now) {}

RevisionPool::Slot* RevisionPool::Pick(const ReplicaAddress* avoid) {
  Slot* best = nullptr;
  for (auto& r : replicas_) {
    if (avoid != nullptr && r.address->Same(*avoid)) continue;
    if (container_concurrency_ > 0 && r.outstanding >= container_concurrency_) continue;
    if (best == nullptr || r.outstanding < best->outstanding) best = &r;
  }
  return best;
}

// Before the concurrency changes.
void RevisionPool::Integrate(Clock::time_point now) {
  integral_ += (in_flight_ + static_cast<double>(waiting_.size())) *
               std::chrono::duration<double>(now - last_change_).count();
  last_change_ = now;
}

void RevisionPool::Assign(Request& request, Slot& slot) {
  ++slot.outstanding;
  ++in_flight_;
  ++requests_since_;
  request.replica = slot.address;
}

std::vector<RevisionPool::RequestPtr> RevisionPool::Drain(Clock::time_point now) {
  std::vector<RequestPtr> ready;
  while (!waiting_.empty()) {
    Slot* r = Pick(nullptr);
    if (r == nullptr) break;
    Integrate(now);
    RequestPtr request = std::move(waiting_.front().request);
    request->queue_wait = now - waiting_.front().since;
    waiting_.pop_front();
    Assign(*request, *r);
    ready.push_back(std::move(request));
  }
  return ready;
}

std::vector<RevisionPool::RequestPtr> RevisionPool::SetReplicas(
    std::vector<std::shared_ptr<const ReplicaAddress>> replicas, int container_concurrency,
    Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  routed_ = true;
  container_concurrency_ = container_concurrency;
  std::vector<Slot> next;
  next.reserve(replicas.size());
  for (auto& address : replicas) {
    Slot slot{std::move(address), 0};
    for (const auto& old : replicas_)
      if (old.address->Same(*slot.address)) slot.outstanding = old.outstanding;
    next.push_back(std::move(slot));
  }
  replicas_ = std::move(next);
  if (!replicas_.empty()) cold_start_held_ = false;
  return Drain(now);
}

void RevisionPool::Unroute() {
  std::lock_guard<std::mutex> lock(mu_);
  routed_ = false;
  replicas_.clear();
}

RevisionPool::Admission RevisionPool::Admit(RequestPtr& request, bool may_wait,
                                            Clock::time_point now) {
  Admission a;
  request->pool = this;
  std::lock_guard<std::mutex> lock(mu_);
  if (Slot* r = Pick(nullptr); r != nullptr) {
    Integrate(now);
    Assign(*request, *r);
    a.result = Admitted::kAssigned;
  } else if (!may_wait) {
    a.result = Admitted::kNoRoom;
  } else if (static_cast<int>(waiting_.size()) >= options_.queue_limit) {
    a.result = Admitted::kFull;
    a.refusal =
        absl::UnavailableError(StrCat("revision ", revision_, " is at capacity: ", waiting_.size(),
                                      " requests are already waiting"));
  } else {
    Integrate(now);
    const Clock::time_point queue_deadline = now + options_.queue_deadline;
    const bool callers = request->deadline < queue_deadline;
    if (!callers) request->deadline = queue_deadline;
    a.result = Admitted::kQueued;
    a.demand = replicas_.empty();
    if (replicas_.empty() && !cold_start_held_) {
      request->cold_start = true;
      cold_start_held_ = true;
    }
    waiting_.push_back({std::move(request), callers, now});
  }
  return a;
}

std::vector<RevisionPool::RequestPtr> RevisionPool::Release(const ReplicaAddress& replica,
                                                            Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  Integrate(now);
  --in_flight_;
  for (auto& r : replicas_)
    if (r.address->Same(replica)) --r.outstanding;
  return Drain(now);
}

bool RevisionPool::Reassign(Request& request, Clock::time_point now) {
  // Keeps the address alive while the request's own is replaced.
  const std::shared_ptr<const ReplicaAddress> from = request.replica;
  std::lock_guard<std::mutex> lock(mu_);
  Slot* other = Pick(from.get());
  if (other == nullptr) return false;
  for (auto& r : replicas_)
    if (from != nullptr && r.address->Same(*from)) --r.outstanding;
  ++other->outstanding;
  request.replica = other->address;
  return true;
}

std::vector<RevisionPool::Expired> RevisionPool::Expire(Clock::time_point now) {
  std::vector<Expired> out;
  std::lock_guard<std::mutex> lock(mu_);
  if (waiting_.empty()) return out;
  auto kept = waiting_.begin();
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if (routed_ && it->request->deadline > now) {
      if (kept != it) *kept = std::move(*it);
      ++kept;
      continue;
    }
    if (out.empty()) Integrate(now);
    absl::Status why =
        !routed_
            ? absl::UnavailableError(StrCat("revision ", revision_, " no longer takes traffic"))
        : it->callers_deadline
            ? absl::DeadlineExceededError(StrCat("no replica of revision ", revision_,
                                                 " could take the request before its deadline"))
            : absl::UnavailableError(StrCat(
                  "no replica of revision ", revision_, " could take the request within ",
                  std::chrono::duration_cast<std::chrono::seconds>(options_.queue_deadline).count(),
                  " s"));
    it->request->queue_wait = now - it->since;
    out.push_back({std::move(it->request), std::move(why)});
  }
  waiting_.erase(kept, waiting_.end());
  return out;
}

RevisionStats RevisionPool::Collect(Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  Integrate(now);
  const double dt = std::chrono::duration<double>(now - last_collect_).count();
  RevisionStats st;
  st.key = key_;
  st.concurrency = dt > 0 ? integral_ / dt : 0;
  st.rps = dt > 0 ? requests_since_ / dt : 0;
  st.requests = static_cast<uint64_t>(requests_since_);
  st.waiting = static_cast<int>(waiting_.size());
  st.in_flight = in_flight_;
  integral_ = 0;
  requests_since_ = 0;
  last_collect_ = now;
  return st;
}

int RevisionPool::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_;
}

size_t RevisionPool::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_.size();
}

}  // namespace osprey::gateway
