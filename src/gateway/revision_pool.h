#pragma once

// One revision's replicas as the gateway balances them: Knative's throttler
// and activator in one object, with no I/O.
//
// - Pick: among the ready replicas with room under containerConcurrency
//   and not ejected, the one the revision's PoolPolicy balances to: by
//   default the one with the fewest requests outstanding (ties: the first
//   in route-table order); or round robin, at random, or by the request's
//   hash (rendezvous hashing: a replica leaving moves only its own share).
// - Outlier detection (PoolPolicy): each attempt's outcome is told
//   (Observe); consecutive failures eject a replica for a while.
// - Admission: a request takes such a replica at once, or waits in the
//   revision's bounded FIFO queue (the activator) until one has room: when a
//   call ends (Release) or replicas arrive (SetReplicas). Past the queue's
//   bound it is refused; past its deadline, or once the revision leaves the
//   route table, Expire hands it back with the reason.
// - What the autoscaler needs (Collect): the time integral of (in flight +
//   waiting) and the requests started, since the previous collection.
//
// Every decision takes the time as an argument (`now`): the pool reads no
// clock, so its table tests need no sleeping.
//
// Threading: every method is thread-safe; each holds the pool's one mutex
// briefly and runs no callback under it. Requests handed back (assigned or
// expired) are the caller's to send or refuse, outside the lock.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "gateway/route_table.h"

namespace osprey::gateway {

// Where a replica is reached. Immutable and shared: a request keeps the
// address of the replica it was sent to alive after a new route table
// dropped that replica.
// A replica's identity in its pool is its host and port together (replicas
// on other hosts all listen on the same port).
struct ReplicaAddress {
  std::string host;         // a numeric address; "": 127.0.0.1
  uint16_t port = 0;        // its HTTP port on `host`
  std::string grpc_target;  // "unix:/path" or "host:port"; "" when it serves no gRPC
  std::string http_socket;  // its HTTP on a Unix socket; "" for none
  std::string link_socket;  // its replica link (link/frame.h); "" for none

  // Whether `other` is the same replica (host and port).
  bool Same(const ReplicaAddress& other) const { return port == other.port && host == other.host; }
};

class RevisionPool {
 public:
  using Clock = std::chrono::steady_clock;

  // A request as the pool sees it; the gateway's requests derive from it.
  // The pool owns one only while it waits in the queue.
  struct Request {
    virtual ~Request() = default;
    // Set by Admit: the pool it was admitted to.
    RevisionPool* pool = nullptr;
    // Set by the pool when a replica takes the request (its slot stays
    // taken until Release with this replica).
    std::shared_ptr<const ReplicaAddress> replica;
    // The caller's own deadline (default: none). A queued request waits
    // until this or the pool's queue deadline, whichever comes first.
    Clock::time_point deadline = Clock::time_point::max();
    // Set by the pool: how long it waited in the queue (zero when a replica
    // took it at once), and whether it is the request of a cold start: the
    // first one held while the revision had no replica at all (one per
    // cold start; its arrival-to-answer time is the cold start's duration).
    Clock::duration queue_wait{};
    bool cold_start = false;
    // When the cold start began: this request's admission, or an earlier
    // one's that gave up waiting (the mark passes to the next held request).
    Clock::time_point cold_start_since{};
    // Set by the caller for a revision balanced by hash: the hash of the
    // request's value (none: it takes a replica at random).
    bool hashed = false;
    uint64_t hash = 0;
  };
  using RequestPtr = std::unique_ptr<Request>;

  struct Options {
    int queue_limit = 1000;  // requests held waiting
    Clock::duration queue_deadline = std::chrono::seconds(30);
  };

  // `key` is "{namespace}/{revision}"; `id` is the gateway's dense, stable
  // number for it (see Exchange::revision_id).
  RevisionPool(std::string key, std::string revision, uint32_t id, Options options,
               Clock::time_point now);
  RevisionPool(const RevisionPool&) = delete;
  RevisionPool& operator=(const RevisionPool&) = delete;

  const std::string& key() const { return key_; }
  const std::string& revision() const { return revision_; }
  uint32_t id() const { return id_; }

  // The revision's ready replicas from a new route table (the revision is
  // routed again), and how they are used (null: the defaults). A replica
  // kept (same host and port) keeps its outstanding count and its outlier
  // state.
  // Returns the queued requests that now have a replica.
  std::vector<RequestPtr> SetReplicas(std::vector<std::shared_ptr<const ReplicaAddress>> replicas,
                                      int container_concurrency, Clock::time_point now,
                                      std::shared_ptr<const PoolPolicy> policy = nullptr);
  // The revision left the route table: no replica, and the next Expire
  // hands back every queued request.
  void Unroute();

  enum class Admitted {
    kAssigned,  // request->replica is set: send it, then Release
    kQueued,    // the pool holds it until a replica has room or it expires
    kFull,      // the queue is at its bound: refuse it with `refusal`
    kNoRoom,    // no replica has room and it may not wait (a mirror copy)
  };
  struct Admission {
    Admitted result = Admitted::kAssigned;
    // kQueued with no replica at all: the revision should scale up now.
    bool demand = false;
    absl::Status refusal;  // kFull: why (UNAVAILABLE)
  };
  // Admits `request` (moved from when queued). `may_wait` false: never
  // queued.
  Admission Admit(RequestPtr& request, bool may_wait, Clock::time_point now);

  // A call on `replica` (its host and port) ended. Returns the queued
  // requests that now have a replica.
  std::vector<RequestPtr> Release(const ReplicaAddress& replica, Clock::time_point now);

  // One attempt's outcome on `replica`, for outlier detection: the answer's
  // HTTP status, or 0 when there was none (not reached, broken exchange,
  // timeout). Costs nothing when the policy has no outlier detection.
  void Observe(const ReplicaAddress& replica, int http_status, Clock::time_point now);

  // Replicas ejected by outlier detection now.
  int ejected(Clock::time_point now) const;

  // The replica of `request` refused the connection (nothing reached it):
  // moves the request to another replica (another host or port) with room,
  // false when there is none (it keeps its replica and its slot).
  bool Reassign(Request& request, Clock::time_point now);

  // Queued requests past their deadline, or all of them once the revision is
  // no longer routed, with why each leaves unserved (UNAVAILABLE, or
  // DEADLINE_EXCEEDED when the caller's own deadline passed first).
  struct Expired {
    RequestPtr request;
    absl::Status why;
  };
  // `ready`, when given, gains the queued requests a replica has room for
  // now (one back from an outlier ejection).
  std::vector<Expired> Expire(Clock::time_point now, std::vector<RequestPtr>* ready = nullptr);

  // What the autoscaler needs since the previous call (resets the averages).
  RevisionStats Collect(Clock::time_point now);

  // Gauges now.
  int in_flight() const;
  size_t waiting() const;

 private:
  struct Slot {
    std::shared_ptr<const ReplicaAddress> address;
    int outstanding = 0;
    uint64_t id_hash = 0;  // of its host and port (rendezvous hashing)
    // Outlier detection.
    int consecutive_5xx = 0;
    int consecutive_gateway = 0;
    int ejections = 0;  // its ejection multiplier
    Clock::time_point ejected_until{};
    bool Ejected(Clock::time_point now) const { return ejected_until > now; }
  };
  // With mu_ held.
  Slot* Pick(const ReplicaAddress* avoid, const Request* request, Clock::time_point now);
  // Whether outlier detection's ejections count now (enough replicas are healthy).
  bool Ejecting(Clock::time_point now) const;
  int queue_limit() const {
    return policy_.max_pending > 0 ? policy_.max_pending : options_.queue_limit;
  }
  void Integrate(Clock::time_point now);
  void Assign(Request& request, Slot& slot);
  std::vector<RequestPtr> Drain(Clock::time_point now);

  const std::string key_;
  const std::string revision_;
  const uint32_t id_;
  const Options options_;

  mutable std::mutex mu_;
  std::vector<Slot> replicas_;
  int container_concurrency_ = 0;
  PoolPolicy policy_;
  std::atomic<bool> outlier_detection_{false};
  size_t round_robin_ = 0;
  uint64_t random_state_ = 0x9e3779b97f4a7c15ull;
  bool routed_ = true;
  // A cold start's request is held: no other is marked until replicas come.
  bool cold_start_held_ = false;
  Clock::time_point cold_start_began_{};  // of the cold start under way; {}: none
  struct Waiting {
    RequestPtr request;
    bool callers_deadline = false;  // its own deadline comes before the queue's
    Clock::time_point since;
  };
  std::deque<Waiting> waiting_;
  int in_flight_ = 0;
  // For the autoscaler: the time integral of (in flight + waiting).
  double integral_ = 0;
  Clock::time_point last_change_;
  Clock::time_point last_collect_;
  uint64_t requests_since_ = 0;
};

}  // namespace osprey::gateway
