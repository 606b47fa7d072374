#include "cli/table.h"

#include <gtest/gtest.h>

namespace osprey::cli {
namespace {

TEST(FormatTable, AlignsColumnsThreeSpacesApart) {
  std::string got =
      FormatTable({"NAME", "READY", "AGE"}, {{"iris", "True", "5s"}, {"a-longer-name", "", "12m"}});
  EXPECT_EQ(got,
            "NAME            READY   AGE\n"
            "iris            True    5s\n"
            "a-longer-name           12m\n");
}

}  // namespace
}  // namespace osprey::cli
