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

namespace {

uint64_t Mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

bool RevisionPool::Ejecting(Clock::time_point now) const {
  if (!outlier_detection_.load(std::memory_order_relaxed) || replicas_.empty()) return false;
  const auto healthy = std::count_if(replicas_.begin(), replicas_.end(),
                                     [&](const Slot& r) { return !r.Ejected(now); });
  return healthy * 100 >= static_cast<int64_t>(policy_.min_health_percent) * replicas_.size();
}

RevisionPool::Slot* RevisionPool::Pick(const ReplicaAddress* avoid, const Request* request,
                                       Clock::time_point now) {
  const bool ejecting = Ejecting(now);
  auto eligible = [&](const Slot& r) {
    if (avoid != nullptr && r.address->Same(*avoid)) return false;
    if (container_concurrency_ > 0 && r.outstanding >= container_concurrency_) return false;
    return !ejecting || !r.Ejected(now);
  };
  using Balance = PoolPolicy::Balance;
  Balance balance = policy_.balance;
  if (balance == Balance::kHash && (request == nullptr || !request->hashed))
    balance = Balance::kRandom;  // nothing to hash: any replica
  Slot* best = nullptr;
  switch (balance) {
    case Balance::kLeastRequest:
      for (auto& r : replicas_)
        if (eligible(r) && (best == nullptr || r.outstanding < best->outstanding)) best = &r;
      return best;
    case Balance::kRoundRobin:
      for (size_t k = 0; k < replicas_.size(); ++k) {
        const size_t i = (round_robin_ + k) % replicas_.size();
        if (!eligible(replicas_[i])) continue;
        round_robin_ = i + 1;
        return &replicas_[i];
      }
      return nullptr;
    case Balance::kRandom: {
      const auto n = std::count_if(replicas_.begin(), replicas_.end(), eligible);
      if (n == 0) return nullptr;
      random_state_ += 0x9e3779b97f4a7c15ull;
      int64_t left = static_cast<int64_t>(Mix(random_state_) % static_cast<uint64_t>(n));
      for (auto& r : replicas_)
        if (eligible(r) && left-- == 0) return &r;
      return nullptr;
    }
    case Balance::kHash: {
      uint64_t top = 0;
      for (auto& r : replicas_) {
        if (!eligible(r)) continue;
        const uint64_t score = Mix(request->hash ^ r.id_hash);
        if (best == nullptr || score > top) {
          best = &r;
          top = score;
        }
      }
      return best;
    }
  }
  return nullptr;
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
    if (policy_.max_in_flight > 0 && in_flight_ >= policy_.max_in_flight) break;
    Slot* r = Pick(nullptr, waiting_.front().request.get(), now);
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
    Clock::time_point now, std::shared_ptr<const PoolPolicy> policy) {
  std::lock_guard<std::mutex> lock(mu_);
  routed_ = true;
  container_concurrency_ = container_concurrency;
  policy_ = policy != nullptr ? *policy : PoolPolicy{};
  outlier_detection_.store(policy_.outlier_detection(), std::memory_order_relaxed);
  std::vector<Slot> next;
  next.reserve(replicas.size());
  for (auto& address : replicas) {
    Slot slot;
    slot.address = std::move(address);
    slot.id_hash = Mix(std::hash<std::string>()(slot.address->host) ^
                       (static_cast<uint64_t>(slot.address->port) << 48));
    for (const auto& old : replicas_)
      if (old.address->Same(*slot.address)) {
        const auto kept = std::move(slot.address);
        slot = old;
        slot.address = kept;
      }
    next.push_back(std::move(slot));
  }
  replicas_ = std::move(next);
  if (!replicas_.empty()) {
    cold_start_held_ = false;
    cold_start_began_ = {};
  }
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
  if (policy_.max_requests > 0 &&
      in_flight_ + static_cast<int>(waiting_.size()) >= policy_.max_requests) {
    a.result = may_wait ? Admitted::kFull : Admitted::kNoRoom;
    a.refusal = absl::UnavailableError(StrCat(
        "revision ", revision_, " is at its DestinationRule's connectionPool limits: ", in_flight_,
        " requests in flight and ", waiting_.size(), " waiting (http2MaxRequests ",
        policy_.max_requests, ")"));
    return a;
  }
  const bool limited = policy_.max_in_flight > 0 && in_flight_ >= policy_.max_in_flight;
  if (Slot* r = limited ? nullptr : Pick(nullptr, request.get(), now); r != nullptr) {
    Integrate(now);
    Assign(*request, *r);
    a.result = Admitted::kAssigned;
  } else if (!may_wait) {
    a.result = Admitted::kNoRoom;
  } else if (!limited && Ejecting(now) &&
             std::all_of(replicas_.begin(), replicas_.end(),
                         [&](const Slot& s) { return s.Ejected(now); })) {
    a.result = Admitted::kFull;
    a.refusal = absl::UnavailableError(
        StrCat("no healthy replica of revision ", revision_,
               ": outlier detection ejected every one (DestinationRule outlierDetection)"));
  } else if (static_cast<int>(waiting_.size()) >= queue_limit()) {
    a.result = Admitted::kFull;
    a.refusal = absl::UnavailableError(
        policy_.max_in_flight > 0 || policy_.max_pending > 0
            ? StrCat("revision ", revision_, " is at its DestinationRule's connectionPool limits: ",
                     in_flight_, " requests in flight and ", waiting_.size(),
                     " waiting (http1MaxPendingRequests ", queue_limit(), ")")
            : StrCat("revision ", revision_, " is at capacity: ", waiting_.size(),
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
      if (cold_start_began_ == Clock::time_point{}) cold_start_began_ = now;
      request->cold_start_since = cold_start_began_;
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

void RevisionPool::Observe(const ReplicaAddress& replica, int http_status, Clock::time_point now) {
  if (!outlier_detection_.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(mu_);
  const PoolPolicy& p = policy_;
  Slot* slot = nullptr;
  for (auto& r : replicas_)
    if (r.address->Same(replica)) slot = &r;
  if (slot == nullptr) return;
  const bool failed = http_status == 0 || http_status >= 500;
  const bool gateway =
      http_status == 0 || http_status == 502 || http_status == 503 || http_status == 504;
  slot->consecutive_5xx = failed ? slot->consecutive_5xx + 1 : 0;
  slot->consecutive_gateway = gateway ? slot->consecutive_gateway + 1 : 0;
  if (slot->Ejected(now)) return;
  if (!(p.consecutive_5xx > 0 && slot->consecutive_5xx >= p.consecutive_5xx) &&
      !(p.consecutive_gateway > 0 && slot->consecutive_gateway >= p.consecutive_gateway))
    return;
  // Never past max_ejection_percent, but always one.
  const auto ejected = std::count_if(replicas_.begin(), replicas_.end(),
                                     [&](const Slot& r) { return r.Ejected(now); });
  if (ejected > 0 &&
      100.0 * static_cast<double>(ejected + 1) / static_cast<double>(replicas_.size()) >
          p.max_ejection_percent)
    return;
  // Each interval back in the pool takes one from its multiplier.
  if (slot->ejections > 0 && p.interval_ms > 0) {
    const auto back =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - slot->ejected_until);
    slot->ejections =
        static_cast<int>(std::max<int64_t>(0, slot->ejections - back.count() / p.interval_ms));
  }
  ++slot->ejections;
  // Envoy's max_ejection_time: 300 s, or the base time when it is longer.
  const int64_t cap = std::max<int64_t>(300000, p.base_ejection_ms);
  const int64_t ms =
      std::min<int64_t>(cap, static_cast<int64_t>(p.base_ejection_ms) * slot->ejections);
  slot->ejected_until = now + std::chrono::milliseconds(ms);
  slot->consecutive_5xx = 0;
  slot->consecutive_gateway = 0;
}

int RevisionPool::ejected(Clock::time_point now) const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(replicas_.begin(), replicas_.end(),
                                        [&](const Slot& r) { return r.Ejected(now); }));
}

bool RevisionPool::Reassign(Request& request, Clock::time_point now) {
  // Keeps the address alive while the request's own is replaced.
  const std::shared_ptr<const ReplicaAddress> from = request.replica;
  std::lock_guard<std::mutex> lock(mu_);
  Slot* other = Pick(from.get(), &request, now);
  if (other == nullptr) return false;
  for (auto& r : replicas_)
    if (from != nullptr && r.address->Same(*from)) --r.outstanding;
  ++other->outstanding;
  request.replica = other->address;
  return true;
}

std::vector<RevisionPool::Expired> RevisionPool::Expire(Clock::time_point now,
                                                        std::vector<RequestPtr>* ready) {
  std::vector<Expired> out;
  std::lock_guard<std::mutex> lock(mu_);
  if (waiting_.empty()) return out;
  // Outlier detection ejected every replica: nothing waits for them.
  const bool all_ejected =
      Ejecting(now) && std::all_of(replicas_.begin(), replicas_.end(),
                                   [&](const Slot& s) { return s.Ejected(now); });
  auto kept = waiting_.begin();
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if (routed_ && !all_ejected && it->request->deadline > now) {
      if (kept != it) *kept = std::move(*it);
      ++kept;
      continue;
    }
    if (out.empty()) Integrate(now);
    absl::Status why =
        !routed_
            ? absl::UnavailableError(StrCat("revision ", revision_, " no longer takes traffic"))
        : all_ejected ? absl::UnavailableError(StrCat("no healthy replica of revision ", revision_,
                                                      ": outlier detection ejected every one"))
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
  // The cold start's request gave up: the cold start goes on, measured by
  // the next request held (or the next to come) from when it began.
  for (const auto& e : out)
    if (e.request->cold_start && replicas_.empty()) {
      if (!waiting_.empty()) {
        waiting_.front().request->cold_start = true;
        waiting_.front().request->cold_start_since = e.request->cold_start_since;
      } else {
        // Nobody waits for it now: the next request held starts its own.
        cold_start_held_ = false;
        cold_start_began_ = {};
      }
    }
  if (ready != nullptr && routed_ && !waiting_.empty() &&
      outlier_detection_.load(std::memory_order_relaxed))
    for (auto& r : Drain(now)) ready->push_back(std::move(r));
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
