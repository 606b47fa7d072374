#include "cli/table.h"

#include <gtest/gtest.h>

namespace osprey::cli {
namespace {

TEST(HumanAge, KubectlSteps) {
  struct Case {
    long long seconds;
    const char* want;
  } cases[] = {{0, "0s"},
               {45, "45s"},
               {119, "119s"},
               {120, "2m"},
               {192, "3m12s"},
               {599, "9m59s"},
               {600, "10m"},
               {10799, "179m"},
               {10800, "3h"},
               {3 * 3600 + 16 * 60, "3h16m"},
               {8 * 3600, "8h"},
               {30 * 3600, "30h"},
               {5 * 86400 + 7, "5d"},
               {-3, "0s"}};
  for (const auto& c : cases)
    EXPECT_EQ(HumanAge(std::chrono::seconds(c.seconds)), c.want) << c.seconds;
}

TEST(FormatTable, AlignsColumnsThreeSpacesApart) {
  std::string got =
      FormatTable({"NAME", "READY", "AGE"}, {{"iris", "True", "5s"}, {"a-longer-name", "", "12m"}});
  EXPECT_EQ(got,
            "NAME            READY   AGE\n"
            "iris            True    5s\n"
            "a-longer-name           12m\n");
}

TEST(AgeSince, ParsesRfc3339) {
  auto now = std::chrono::system_clock::from_time_t(1767225600 + 90);  // 2026-01-01T00:01:30Z
  EXPECT_EQ(AgeSince("2026-01-01T00:00:00Z", now).count(), 90);
  EXPECT_EQ(AgeSince("garbage", now).count(), 0);
}

}  // namespace
}  // namespace osprey::cli
