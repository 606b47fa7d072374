// The revision pool as tables of steps on a fake timeline: the least-
// outstanding pick, containerConcurrency, the activator queue's bound and
// deadlines, release, retry and the autoscaler's averages. No sleeping, no
// I/O: this binary links the pool and the route table only.

#include "gateway/revision_pool.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace osprey::gateway {
namespace {

using Clock = RevisionPool::Clock;
using namespace std::chrono_literals;

const Clock::time_point kT0 = Clock::time_point() + 1000h;

struct TestRequest : RevisionPool::Request {
  int n = 0;  // the order it was made in, from 1
};

// What a step did, as text: "assigned 1@8001", "queued demand", "full: ...",
// "noroom", "ready 2@8001 3@8002", "expired 2:UNAVAILABLE", "moved 1@8002".
class Harness {
 public:
  explicit Harness(RevisionPool::Options options = {}) : pool_("ns/r", "r", 7, options, kT0) {}

  void Set(std::vector<uint16_t> ports, int cc, Clock::duration at,
           std::shared_ptr<const PoolPolicy> policy = nullptr) {
    std::vector<std::shared_ptr<const ReplicaAddress>> replicas;
    for (uint16_t p : ports) {
      auto a = std::make_shared<ReplicaAddress>();
      a->port = p;
      replicas.push_back(std::move(a));
    }
    Keep(pool_.SetReplicas(std::move(replicas), cc, kT0 + at, std::move(policy)));
  }

  // An attempt's outcome on the replica at `port` (127.0.0.1).
  void Observe(uint16_t port, int status, Clock::duration at) {
    ReplicaAddress a;
    a.port = port;
    pool_.Observe(a, status, kT0 + at);
  }

  // The port request n holds, and its call ended at once.
  int AdmitAndRelease(Clock::duration at, std::optional<uint64_t> hash = std::nullopt) {
    auto r = std::make_unique<TestRequest>();
    r->n = ++made_;
    if (hash) {
      r->hashed = true;
      r->hash = *hash;
    }
    RevisionPool::RequestPtr request = std::move(r);
    auto a = pool_.Admit(request, true, kT0 + at);
    if (a.result != RevisionPool::Admitted::kAssigned) return -1;
    const int port = request->replica->port;
    pool_.Release(*request->replica, kT0 + at);
    return port;
  }

  // Replicas on other hosts: "host:port" each.
  void SetHosts(std::vector<std::string> endpoints, int cc, Clock::duration at) {
    std::vector<std::shared_ptr<const ReplicaAddress>> replicas;
    for (const auto& e : endpoints) {
      auto a = std::make_shared<ReplicaAddress>();
      const size_t colon = e.rfind(':');
      a->host = e.substr(0, colon);
      a->port = static_cast<uint16_t>(std::stoi(e.substr(colon + 1)));
      replicas.push_back(std::move(a));
    }
    Keep(pool_.SetReplicas(std::move(replicas), cc, kT0 + at));
  }

  std::string Admit(Clock::duration at, bool may_wait = true,
                    Clock::time_point deadline = Clock::time_point::max()) {
    auto r = std::make_unique<TestRequest>();
    r->n = ++made_;
    r->deadline = deadline;
    RevisionPool::RequestPtr request = std::move(r);
    auto a = pool_.Admit(request, may_wait, kT0 + at);
    switch (a.result) {
      case RevisionPool::Admitted::kAssigned: {
        std::string s = "assigned " + Name(*request);
        held_.push_back(std::move(request));
        return s;
      }
      case RevisionPool::Admitted::kQueued:
        EXPECT_EQ(request, nullptr);
        return a.demand ? "queued demand" : "queued";
      case RevisionPool::Admitted::kFull:
        return "full: " + std::string(a.refusal.message());
      case RevisionPool::Admitted::kNoRoom:
        return "noroom";
    }
    return "?";
  }

  // Ends the call of request n (it must hold a replica).
  std::string Release(int n, Clock::duration at) {
    for (auto it = held_.begin(); it != held_.end(); ++it) {
      if (static_cast<TestRequest&>(**it).n != n) continue;
      const std::shared_ptr<const ReplicaAddress> replica = (*it)->replica;
      held_.erase(it);
      return Keep(pool_.Release(*replica, kT0 + at));
    }
    return "not held";
  }

  std::string Reassign(int n, Clock::duration at) {
    for (auto& r : held_)
      if (static_cast<TestRequest&>(*r).n == n)
        return pool_.Reassign(*r, kT0 + at) ? "moved " + Name(*r) : "stays " + Name(*r);
    return "not held";
  }

  std::string Expire(Clock::duration at) {
    std::string s = "expired";
    for (auto& e : pool_.Expire(kT0 + at))
      s += " " + std::to_string(static_cast<TestRequest&>(*e.request).n) + ":" +
           absl::StatusCodeToString(e.why.code());
    return s;
  }

  RevisionPool& pool() { return pool_; }

  // How request n waited: "{ms}ms" plus " cold" for a cold start's request.
  std::string Waited(int n) const {
    for (const auto& r : held_)
      if (static_cast<const TestRequest&>(*r).n == n)
        return std::to_string(
                   std::chrono::duration_cast<std::chrono::milliseconds>(r->queue_wait).count()) +
               "ms" + (r->cold_start ? " cold" : "");
    return "not held";
  }

  // When the cold start request n carries began, in ms after kT0 (-1: none).
  long ColdSince(int n) const {
    for (const auto& r : held_)
      if (static_cast<const TestRequest&>(*r).n == n && r->cold_start)
        return static_cast<long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(r->cold_start_since - kT0)
                .count());
    return -1;
  }

 private:
  static std::string Name(const RevisionPool::Request& r) {
    return std::to_string(static_cast<const TestRequest&>(r).n) + "@" +
           (r.replica->host.empty() ? "" : r.replica->host + ":") + std::to_string(r.replica->port);
  }
  std::string Keep(std::vector<RevisionPool::RequestPtr> ready) {
    std::string s = "ready";
    for (auto& r : ready) {
      s += " " + Name(*r);
      held_.push_back(std::move(r));
    }
    return s;
  }

  RevisionPool pool_;
  int made_ = 0;
  std::vector<RevisionPool::RequestPtr> held_;
};

TEST(RevisionPoolTest, LeastOutstandingFirstAndTiesInRouteOrder) {
  Harness h;
  h.Set({8001, 8002, 8003}, 0, 0s);
  const char* want[] = {"assigned 1@8001", "assigned 2@8002", "assigned 3@8003", "assigned 4@8001",
                        "assigned 5@8002"};
  for (const char* w : want) EXPECT_EQ(h.Admit(0s), w);
  EXPECT_EQ(h.Release(3, 1s), "ready");       // 8003 now has 0 outstanding
  EXPECT_EQ(h.Admit(1s), "assigned 6@8003");  // the least loaded
  EXPECT_EQ(h.Release(1, 1s), "ready");
  EXPECT_EQ(h.Admit(1s), "assigned 7@8001");  // 8001 and 8003 tie at 1: the first
  EXPECT_EQ(h.pool().in_flight(), 5);
}

TEST(RevisionPoolTest, ContainerConcurrencyQueuesAndReleaseHandsOnInOrder) {
  struct Step {
    const char* op;  // admit, release N, mirror
    int n;
    const char* want;
  } steps[] = {
      {"admit", 0, "assigned 1@8001"}, {"admit", 0, "assigned 2@8002"},
      {"admit", 0, "queued"},  // both at their limit of 1; replicas exist: no demand
      {"admit", 0, "queued"},          {"mirror", 0, "noroom"},  // a mirror copy never waits
      {"release", 2, "ready 3@8002"},  {"release", 1, "ready 4@8001"},
      {"release", 3, "ready"},         {"admit", 0, "assigned 6@8002"},
  };
  Harness h;
  h.Set({8001, 8002}, 1, 0s);
  int i = 0;
  for (const Step& s : steps) {
    const std::string op = s.op;
    std::string got = op == "admit"    ? h.Admit(1s)
                      : op == "mirror" ? h.Admit(1s, /*may_wait=*/false)
                                       : h.Release(s.n, 1s);
    EXPECT_EQ(got, s.want) << "step " << i;
    ++i;
  }
  EXPECT_EQ(h.pool().waiting(), 0u);
}

TEST(RevisionPoolTest, TheQueueHasABoundAndAskedForReplicasWhenThereAreNone) {
  Harness h({.queue_limit = 2, .queue_deadline = 30s});
  EXPECT_EQ(h.Admit(0s), "queued demand");
  EXPECT_EQ(h.Admit(0s), "queued demand");
  EXPECT_EQ(h.Admit(0s), "full: revision r is at capacity: 2 requests are already waiting");
  EXPECT_EQ(h.pool().waiting(), 2u);
  h.Set({8001}, 0, 1s);  // replicas arrive: everything waiting goes
  EXPECT_EQ(h.pool().waiting(), 0u);
  EXPECT_EQ(h.pool().in_flight(), 2);
}

// Each request knows how long it waited; the first one held while the
// revision had no replica is its cold start's, once per cold start.
TEST(RevisionPoolTest, QueueWaitAndTheColdStartRequest) {
  Harness h;
  EXPECT_EQ(h.Admit(0s), "queued demand");
  EXPECT_EQ(h.Admit(100ms), "queued demand");
  h.Set({8001}, 1, 2s);
  EXPECT_EQ(h.Waited(1), "2000ms cold");
  EXPECT_EQ(h.Release(1, 2500ms), "ready 2@8001");
  EXPECT_EQ(h.Waited(2), "2400ms");
  EXPECT_EQ(h.Release(2, 3s), "ready");
  EXPECT_EQ(h.Admit(3s), "assigned 3@8001");
  EXPECT_EQ(h.Waited(3), "0ms");
  h.Set({}, 0, 4s);  // scaled to zero again: the next held request is a cold start
  EXPECT_EQ(h.Admit(5s), "queued demand");
  h.Set({8002}, 0, 6s);
  EXPECT_EQ(h.Waited(4), "1000ms cold");
}

// A cold start whose first request gave up waiting is measured all the same:
// the next held request carries it, from when it began.
TEST(RevisionPoolTest, AColdStartOutlivesItsFirstRequest) {
  Harness h;
  EXPECT_EQ(h.Admit(0s, true, kT0 + 1s), "queued demand");  // its caller gives up at 1 s
  EXPECT_EQ(h.Admit(500ms), "queued demand");
  EXPECT_EQ(h.Expire(1500ms), "expired 1:DEADLINE_EXCEEDED");
  h.Set({8001}, 0, 3s);
  EXPECT_EQ(h.Waited(2), "2500ms cold");
  EXPECT_EQ(h.ColdSince(2), 0);
  // No one left waiting when it gives up: the next request held starts a
  // cold start of its own (not one begun long before).
  h.Set({}, 0, 4s);
  EXPECT_EQ(h.Admit(5s, true, kT0 + 6s), "queued demand");
  EXPECT_EQ(h.Expire(7s), "expired 3:DEADLINE_EXCEEDED");
  EXPECT_EQ(h.Admit(8s), "queued demand");
  h.Set({8002}, 0, 9s);
  EXPECT_EQ(h.Waited(4), "1000ms cold");
  EXPECT_EQ(h.ColdSince(4), 8000);
}

TEST(RevisionPoolTest, SetReplicasHandsQueuedRequestsOverAndKeepsCountsByPort) {
  Harness h;
  h.Set({8001}, 1, 0s);
  EXPECT_EQ(h.Admit(0s), "assigned 1@8001");
  EXPECT_EQ(h.Admit(0s), "queued");
  EXPECT_EQ(h.Admit(0s), "queued");
  h.Set({8002, 8001}, 1, 1s);  // 8001 keeps its 1 outstanding: only 8002 has room
  EXPECT_EQ(h.pool().waiting(), 1u);
  EXPECT_EQ(h.Release(1, 2s), "ready 3@8001");
}

TEST(RevisionPoolTest, QueuedRequestsExpireAtTheirDeadline) {
  struct Step {
    int at_s;
    const char* op;  // admit, admit5 (its own deadline 5 s later), expire
    const char* want;
  } steps[] = {
      {0, "admit", "queued demand"},    // 1: until 30 s
      {10, "admit", "queued demand"},   // 2: until 40 s
      {12, "admit5", "queued demand"},  // 3: its own deadline, 17 s
      {16, "expire", "expired"},
      {17, "expire", "expired 3:DEADLINE_EXCEEDED"},
      {29, "expire", "expired"},
      {30, "expire", "expired 1:UNAVAILABLE"},
      {45, "expire", "expired 2:UNAVAILABLE"},
  };
  Harness h({.queue_limit = 10, .queue_deadline = 30s});
  for (const Step& s : steps) {
    const std::string op = s.op;
    const auto at = std::chrono::seconds(s.at_s);
    std::string got = op == "admit"    ? h.Admit(at)
                      : op == "admit5" ? h.Admit(at, true, kT0 + at + 5s)
                                       : h.Expire(at);
    EXPECT_EQ(got, s.want) << "at " << s.at_s << " s";
  }
  EXPECT_EQ(h.pool().waiting(), 0u);
}

TEST(RevisionPoolTest, ExpiryNamesTheQueueDeadlineOrTheRevisionLeaving) {
  Harness h({.queue_limit = 10, .queue_deadline = 30s});
  h.Admit(0s);
  auto expired = h.pool().Expire(kT0 + 30s);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].why.message(),
            "no replica of revision r could take the request within 30 s");
  h.Admit(31s);
  h.Admit(31s);
  h.pool().Unroute();
  expired = h.pool().Expire(kT0 + 32s);  // before their deadline: all go
  ASSERT_EQ(expired.size(), 2u);
  EXPECT_EQ(expired[1].why, absl::UnavailableError("revision r no longer takes traffic"));
}

TEST(RevisionPoolTest, ARefusedCallMovesToAnotherReplicaWithRoom) {
  Harness h;
  h.Set({8001, 8002}, 1, 0s);
  EXPECT_EQ(h.Admit(0s), "assigned 1@8001");
  EXPECT_EQ(h.Reassign(1, 0s), "moved 1@8002");
  EXPECT_EQ(h.Admit(0s), "assigned 2@8001");     // 8001's slot was given back
  EXPECT_EQ(h.Reassign(2, 0s), "stays 2@8001");  // 8002 is at its limit
  EXPECT_EQ(h.Release(1, 1s), "ready");
  EXPECT_EQ(h.Reassign(2, 1s), "moved 2@8002");
  EXPECT_EQ(h.Admit(1s), "assigned 3@8001");
}

// Replicas on other hosts all listen on one port (pods on 8080): a replica
// is its host and port together, for the pick, release, the counts kept
// across route tables, and the replica a refused call must avoid.
TEST(RevisionPoolTest, AReplicaIsItsHostAndPort) {
  struct Step {
    int at_s;
    const char* op;  // set:EP,EP,... (cc 1) | admit | release:N | reassign:N
    const char* want;
  } steps[] = {
      {0, "set:10.0.0.1:8080,10.0.0.2:8080", ""},
      {0, "admit", "assigned 1@10.0.0.1:8080"},
      {0, "admit", "assigned 2@10.0.0.2:8080"},  // same port, another replica
      {0, "admit", "queued"},
      // Releasing 2 frees 10.0.0.2 only: 3 goes there, not to 10.0.0.1.
      {1, "release:2", "ready 3@10.0.0.2:8080"},
      // A new table keeps each count by host and port, wherever it is listed.
      {2, "set:10.0.0.3:8080,10.0.0.2:8080,10.0.0.1:8080", ""},
      {2, "admit", "assigned 4@10.0.0.3:8080"},
      {2, "admit", "queued"},
      // 1 was refused by 10.0.0.1: every other replica is full, it stays.
      {3, "reassign:1", "stays 1@10.0.0.1:8080"},
      {3, "release:4", "ready 5@10.0.0.3:8080"},
      {4, "release:5", "ready"},
      // Now it moves to 10.0.0.3 (10.0.0.1's slot given back, same port).
      {4, "reassign:1", "moved 1@10.0.0.3:8080"},
      {4, "admit", "assigned 6@10.0.0.1:8080"},
      // A loopback replica on the same port is another replica again.
      {5, "set:10.0.0.1:8080,:8080", ""},
      {5, "admit", "assigned 7@8080"},
      {6, "release:6", "ready"},
      {6, "admit", "assigned 8@10.0.0.1:8080"},
  };
  Harness h;
  for (const Step& s : steps) {
    const std::string op = s.op;
    const auto at = std::chrono::seconds(s.at_s);
    std::string got;
    if (op.starts_with("set:")) {
      std::vector<std::string> endpoints;
      for (size_t from = 4; from < op.size();) {
        size_t comma = op.find(',', from);
        if (comma == std::string::npos) comma = op.size();
        endpoints.push_back(op.substr(from, comma - from));
        from = comma + 1;
      }
      h.SetHosts(endpoints, 1, at);
    } else if (op == "admit") {
      got = h.Admit(at);
    } else if (op.starts_with("release:")) {
      got = h.Release(std::stoi(op.substr(8)), at);
    } else if (op.starts_with("reassign:")) {
      got = h.Reassign(std::stoi(op.substr(9)), at);
    }
    EXPECT_EQ(got, s.want) << "at " << s.at_s << " s: " << op;
  }
}

TEST(RevisionPoolTest, CollectAveragesConcurrencyAndRateSinceTheLastCall) {
  Harness h;
  h.Set({8001}, 0, 0s);
  h.Admit(0s);                                    // 1 in flight from 0 s
  h.Admit(1s);                                    // 2 from 1 s
  h.Release(1, 2s);                               // 1 from 2 s
  RevisionStats st = h.pool().Collect(kT0 + 4s);  // 1*1 + 2*1 + 1*2 = 5 over 4 s
  EXPECT_EQ(st.key, "ns/r");
  EXPECT_DOUBLE_EQ(st.concurrency, 1.25);
  EXPECT_DOUBLE_EQ(st.rps, 0.5);
  EXPECT_EQ(st.in_flight, 1);
  EXPECT_EQ(st.waiting, 0);
  h.Set({}, 0, 4s);
  h.Admit(6s);  // queued from 6 s: counts as concurrency, not as a request started
  st = h.pool().Collect(kT0 + 8s);  // 1 in flight for 4 s + 1 waiting for 2 s: 6 over 4 s
  EXPECT_DOUBLE_EQ(st.concurrency, 1.5);
  EXPECT_DOUBLE_EQ(st.rps, 0);
  EXPECT_EQ(st.waiting, 1);
}

std::shared_ptr<const PoolPolicy> Policy(PoolPolicy p) {
  return std::make_shared<const PoolPolicy>(std::move(p));
}

TEST(RevisionPoolTest, RoundRobinTakesEachReplicaInTurn) {
  Harness h;
  h.Set({8001, 8002, 8003}, 0, 0s, Policy({.balance = PoolPolicy::Balance::kRoundRobin}));
  std::vector<int> got;
  for (int i = 0; i < 6; ++i) got.push_back(h.AdmitAndRelease(0s));
  EXPECT_EQ(got, (std::vector<int>{8001, 8002, 8003, 8001, 8002, 8003}));
}

TEST(RevisionPoolTest, RandomSpreadsOverEveryReplica) {
  Harness h;
  h.Set({8001, 8002, 8003}, 0, 0s, Policy({.balance = PoolPolicy::Balance::kRandom}));
  std::map<int, int> count;
  for (int i = 0; i < 3000; ++i) ++count[h.AdmitAndRelease(0s)];
  ASSERT_EQ(count.size(), 3u);
  for (const auto& [port, n] : count) EXPECT_NEAR(n, 1000, 150) << port;
}

TEST(RevisionPoolTest, HashSendsAValueToOneReplicaAndMovesFewWhenOneLeaves) {
  Harness h;
  const auto policy = Policy({.balance = PoolPolicy::Balance::kHash, .hash_header = "x-user"});
  h.Set({8001, 8002, 8003, 8004}, 0, 0s, policy);
  std::map<uint64_t, int> first;
  std::map<int, int> spread;
  for (uint64_t v = 1; v <= 400; ++v) {
    first[v] = h.AdmitAndRelease(0s, v * 7919);
    ++spread[first[v]];
    EXPECT_EQ(h.AdmitAndRelease(0s, v * 7919), first[v]);  // the same value, the same replica
  }
  EXPECT_EQ(spread.size(), 4u);
  // 8003 leaves: only its values move.
  h.Set({8001, 8002, 8004}, 0, 1s, policy);
  for (uint64_t v = 1; v <= 400; ++v) {
    const int now = h.AdmitAndRelease(1s, v * 7919);
    if (first[v] != 8003) EXPECT_EQ(now, first[v]) << v;
    EXPECT_NE(now, 8003);
  }
}

TEST(RevisionPoolTest, ConnectionPoolLimitsInFlightAndWaiting) {
  Harness h;
  h.Set({8001, 8002}, 0, 0s, Policy({.max_in_flight = 1, .max_pending = 1}));
  EXPECT_EQ(h.Admit(0s), "assigned 1@8001");
  EXPECT_EQ(h.Admit(0s), "queued");
  EXPECT_EQ(h.Admit(0s),
            "full: revision r is at its DestinationRule's connectionPool limits: 1 requests in "
            "flight and 1 waiting (http1MaxPendingRequests 1)");
  EXPECT_EQ(h.Release(1, 1s), "ready 2@8001");
  // http2MaxRequests: past it, refused without waiting.
  h.Set({8001, 8002}, 0, 2s, Policy({.max_requests = 2}));
  EXPECT_EQ(h.Admit(2s), "assigned 4@8002");
  EXPECT_EQ(h.Admit(2s),
            "full: revision r is at its DestinationRule's connectionPool limits: 2 requests in "
            "flight and 0 waiting (http2MaxRequests 2)");
}

TEST(RevisionPoolTest, AQueuedRequestTakesAReplicaBackFromEjection) {
  Harness h;
  PoolPolicy p;
  p.consecutive_5xx = 1;
  p.base_ejection_ms = 1000;
  p.max_ejection_percent = 50;
  h.Set({8001, 8002}, 1, 0s, Policy(p));
  h.Observe(8001, 500, 0s);  // 8001 ejected until 1 s
  EXPECT_EQ(h.Admit(0s), "assigned 1@8002");
  EXPECT_EQ(h.Admit(0s), "queued");  // 8002 is full, 8001 ejected
  std::vector<RevisionPool::RequestPtr> ready;
  EXPECT_TRUE(h.pool().Expire(kT0 + 500ms, &ready).empty());
  EXPECT_TRUE(ready.empty());
  EXPECT_TRUE(h.pool().Expire(kT0 + 1s, &ready).empty());
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0]->replica->port, 8001);
}

TEST(RevisionPoolTest, OutlierDetectionEjectsAFailingReplicaAndBringsItBack) {
  Harness h;
  PoolPolicy p;
  p.consecutive_5xx = 3;
  p.base_ejection_ms = 10000;
  p.interval_ms = 1000;
  p.max_ejection_percent = 50;
  h.Set({8001, 8002}, 0, 0s, Policy(p));
  h.Observe(8001, 503, 0s);
  h.Observe(8001, 200, 0s);  // a success starts the count again
  h.Observe(8001, 500, 0s);
  h.Observe(8001, 0, 0s);  // not reached: counts
  EXPECT_EQ(h.pool().ejected(kT0), 0);
  h.Observe(8001, 502, 1s);
  EXPECT_EQ(h.pool().ejected(kT0 + 1s), 1);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(h.AdmitAndRelease(2s), 8002);
  // Only half may be ejected: 8002 stays whatever it answers.
  for (int i = 0; i < 5; ++i) h.Observe(8002, 503, 3s);
  EXPECT_EQ(h.pool().ejected(kT0 + 3s), 1);
  EXPECT_EQ(h.AdmitAndRelease(3s), 8002);
  // Back after the base ejection time.
  EXPECT_EQ(h.pool().ejected(kT0 + 11s), 0);
  EXPECT_EQ(h.AdmitAndRelease(11s), 8001);
  // Ejected again within an interval of its return: twice as long.
  for (int i = 0; i < 3; ++i) h.Observe(8001, 500, 11s);
  EXPECT_EQ(h.pool().ejected(kT0 + 30s), 1);
  EXPECT_EQ(h.pool().ejected(kT0 + 31s), 0);
  // After enough intervals back, the multiplier is spent: the base time again.
  for (int i = 0; i < 3; ++i) h.Observe(8001, 500, 60s);
  EXPECT_EQ(h.pool().ejected(kT0 + 69s), 1);
  EXPECT_EQ(h.pool().ejected(kT0 + 70s), 0);
}

TEST(RevisionPoolTest, EveryReplicaEjectedRefusesAndMinHealthIgnoresEjections) {
  Harness h;
  PoolPolicy p;
  p.consecutive_gateway = 1;
  p.consecutive_5xx = 0;
  p.max_ejection_percent = 100;
  h.Set({8001}, 0, 0s, Policy(p));
  h.Observe(8001, 500, 0s);  // not a gateway error
  EXPECT_EQ(h.pool().ejected(kT0), 0);
  h.Observe(8001, 503, 0s);
  EXPECT_EQ(h.Admit(1s),
            "full: no healthy replica of revision r: outlier detection ejected every one "
            "(DestinationRule outlierDetection)");
  // With min_health_percent, too few healthy replicas: every replica serves.
  p.min_health_percent = 50;
  h.Set({8001}, 0, 1s, Policy(p));
  EXPECT_EQ(h.Admit(1s), "assigned 2@8001");
}

}  // namespace
}  // namespace osprey::gateway
