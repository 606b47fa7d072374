#include "controlplane/local/proc_usage.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace osprey::controlplane {
namespace {

TEST(ParseStat, FieldsAfterAnAwkwardName) {
  // comm with a space and a parenthesis; utime 100, stime 20, cutime 3,
  // cstime 4, rss 2500 pages.
  StatFields s = ParseStat(
      "4242 (osprey (serve) x) S 17 4242 4242 0 -1 4194560 500 0 0 0 100 20 3 4 20 0 3 0 "
      "12345 999999 2500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0");
  EXPECT_EQ(s.pid, 4242);
  EXPECT_EQ(s.ppid, 17);
  EXPECT_EQ(s.ticks, 127u);
  EXPECT_EQ(s.rss_pages, 2500u);
  EXPECT_EQ(ParseStat("garbage").pid, 0);
  EXPECT_EQ(ParseStat("12 (x) S 1 2").pid, 0);
}

TEST(ReadProcessTrees, ThisProcess) {
  volatile double x = 0;
  for (int i = 0; i < 20'000'000; ++i) x = x + i * 0.5;  // some CPU to see
  auto trees = ReadProcessTrees({getpid(), 999'999'999});
  ASSERT_TRUE(trees.contains(getpid()));
  EXPECT_FALSE(trees.contains(999'999'999));
  EXPECT_GT(trees[getpid()].rss_bytes, 1u << 20);
  EXPECT_GT(trees[getpid()].cpu_seconds, 0.0);
}

}  // namespace
}  // namespace osprey::controlplane
