#include "controlplane/cost.h"

#include <gtest/gtest.h>

namespace osprey::controlplane {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

TEST(UsageLedger, TotalsAndTheLastWindow) {
  UsageLedger ledger(minutes(10), 10);  // 1-minute buckets
  const auto t0 = UsageLedger::Clock::time_point{} + std::chrono::hours(1);
  // 20 minutes of one sample per 30 s: 2 replicas, 0.5 CPU-s, 100 MB, 30 requests.
  for (int i = 0; i < 40; ++i)
    ledger.Add({.seconds = 30,
                .replicas = 2,
                .cpu_seconds = 0.5,
                .memory_bytes = i == 5 ? 300'000'000u : 100'000'000u,
                .requests = 30},
               t0 + seconds(30 * i));
  const auto now = t0 + seconds(30 * 39);
  const UsageTotals& total = ledger.total();
  EXPECT_DOUBLE_EQ(total.seconds, 1200);
  EXPECT_DOUBLE_EQ(total.replica_seconds, 2400);
  EXPECT_DOUBLE_EQ(total.cpu_seconds, 20);
  EXPECT_DOUBLE_EQ(total.requests, 1200);
  EXPECT_EQ(total.memory_peak, 300'000'000u);
  EXPECT_NEAR(total.average_memory(), 105'000'000, 1);
  EXPECT_NEAR(*total.cpu_per_1000(), 16.6667, 1e-3);
  // The last 10 minutes: about 20 samples (bucket granularity), the early
  // peak forgotten.
  UsageTotals last = ledger.Window(now);
  EXPECT_GE(last.seconds, 570);
  EXPECT_LE(last.seconds, 660);
  EXPECT_EQ(last.memory_peak, 100'000'000u);
  EXPECT_NEAR(last.replica_seconds / last.seconds, 2, 1e-9);
  EXPECT_FALSE(UsageTotals{}.cpu_per_1000().has_value());
}

TEST(UsageTotals, MergeAddsRevisionsSideBySide) {
  UsageTotals a, b;
  a.Add({.seconds = 60, .replicas = 2, .cpu_seconds = 3, .memory_bytes = 100, .requests = 10});
  b.Add({.seconds = 30, .replicas = 1, .cpu_seconds = 1, .memory_bytes = 50, .requests = 30});
  a.Merge(b);
  EXPECT_EQ(a.seconds, 60);
  EXPECT_EQ(a.replica_seconds, 150);
  EXPECT_EQ(a.cpu_seconds, 4);
  EXPECT_EQ(a.requests, 40);
  EXPECT_EQ(a.memory_peak, 150u);
  EXPECT_DOUBLE_EQ(a.average_memory(), (100 * 60 + 50 * 30) / 60.0);
  EXPECT_DOUBLE_EQ(*a.cpu_per_1000(), 100);
}

TEST(RightSizing, Table) {
  struct Row {
    std::string what;
    SizingSettings settings;
    UsageSample per_minute;  // repeated for 10 minutes
    std::vector<std::string> reasons;
    std::string words;  // in the first message
  };
  const std::vector<Row> rows = {
      {.what = "fits",
       .settings = {.min_replicas = 1, .target = 10},
       .per_minute = {.seconds = 60, .replicas = 2, .requests = 600, .concurrency = 15}},
      {.what = "idle at minReplicas 3",
       .settings = {.min_replicas = 3, .target = 10},
       .per_minute = {.seconds = 60, .replicas = 3, .requests = 60, .concurrency = 0.6},
       .reasons = {"MinReplicasHigh"},
       .words = "minReplicas 3 looks high: 3.0 replicas averaged 0.20 concurrent requests each "
                "(target 10) over the last 10 min; 1 would hold this traffic"},
      {.what = "busy at minReplicas 3",
       .settings = {.min_replicas = 3, .target = 10},
       .per_minute = {.seconds = 60, .replicas = 3, .requests = 6000, .concurrency = 25}},
      {.what = "ceiling with a queue",
       .settings = {.min_replicas = 1, .max_replicas = 2, .target = 10},
       .per_minute =
           {.seconds = 60, .replicas = 2, .requests = 6000, .concurrency = 40, .waiting = 5},
       .reasons = {"MaxReplicasReached"},
       .words = "maxReplicas 2 was reached and requests waited at the activator 100% of the time"},
      {.what = "full replicas below the ceiling",
       .settings =
           {.min_replicas = 1, .max_replicas = 10, .target = 100, .container_concurrency = 4},
       .per_minute =
           {.seconds = 60, .replicas = 2, .requests = 6000, .concurrency = 8, .waiting = 3},
       .reasons = {"ContainerConcurrencyLimit"},
       .words = "replicas ran at their containerConcurrency 4 (4.0 each on average)"},
      {.what = "batches that cannot fill",
       .settings = {.min_replicas = 1,
                    .target = 100,
                    .batcher_max_batch_size = 32,
                    .batcher_max_latency_ms = 50},
       .per_minute = {.seconds = 60, .replicas = 1, .requests = 600, .concurrency = 2},
       .reasons = {"BatchTooLarge"},
       .words = "batcher maxBatchSize 32 with 2.0 concurrent requests per replica"},
      {.what = "scale to zero with cold starts",
       .settings = {.min_replicas = 0, .target = 10},
       .per_minute =
           {.seconds = 60, .replicas = 0, .requests = 20, .concurrency = 0.2, .waiting = 1},
       .reasons = {"ColdStarts"},
       .words = "requests waited for a replica to start 100% of the time over the last 10 min "
                "(0.00 replicas on average): minReplicas 1 keeps one warm, for about 10 "
                "replica-minutes more per 10 min"},
      {.what = "scale to zero, nobody waits",
       .settings = {.min_replicas = 0, .target = 10},
       .per_minute = {.seconds = 60, .replicas = 1, .requests = 20, .concurrency = 0.2}},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.what);
    UsageTotals u;
    for (int i = 0; i < 10; ++i) u.Add(row.per_minute);
    std::vector<Advice> advice = RightSizing(row.settings, u);
    std::vector<std::string> reasons;
    for (const Advice& a : advice) reasons.push_back(a.reason);
    EXPECT_EQ(reasons, row.reasons);
    if (!advice.empty())
      EXPECT_NE(advice[0].message.find(row.words), std::string::npos) << advice[0].message;
    // Too little observed: no advice.
    UsageTotals short_window;
    short_window.Add(row.per_minute);
    short_window.seconds = 30;
    EXPECT_TRUE(RightSizing(row.settings, short_window).empty());
  }
}

}  // namespace
}  // namespace osprey::controlplane
