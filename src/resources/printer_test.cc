#include "resources/printer.h"

#include <gtest/gtest.h>

namespace osprey::resources {
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

TEST(AgeSince, ParsesRfc3339) {
  auto now = std::chrono::system_clock::from_time_t(1767225600 + 90);  // 2026-01-01T00:01:30Z
  EXPECT_EQ(AgeSince("2026-01-01T00:00:00Z", now).count(), 90);
  EXPECT_EQ(AgeSince("garbage", now).count(), 0);
}

TEST(PrintColumns, InferenceServicesAsKServesPrinterColumns) {
  auto now = std::chrono::system_clock::from_time_t(1767225600 + 300);  // 00:05:00Z
  const char* list = R"({"items":[{"metadata":{"name":"iris","namespace":"ns1",
      "creationTimestamp":"2026-01-01T00:00:00Z"},
      "status":{"url":"http://iris-ns1.example.com",
        "conditions":[{"type":"PredictorReady","status":"True"},{"type":"Ready","status":"True"}],
        "components":{"predictor":{"latestReadyRevision":"iris-predictor-00002",
          "previousRolledoutRevision":"iris-predictor-00001",
          "traffic":[{"revisionName":"iris-predictor-00002","latestRevision":true,"percent":10},
                     {"revisionName":"iris-predictor-00001","tag":"prev","percent":90}]}}}},
      {"metadata":{"name":"new"}}]})";
  auto t = PrintColumns("inferenceservices", list, now);
  ASSERT_TRUE(t.ok()) << t.status();
  std::vector<std::string> names;
  for (const auto& c : t->columns) names.push_back(c.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"NAME", "URL", "READY", "PREV", "LATEST",
                                      "PREVROLLEDOUTREVISION", "LATESTREADYREVISION", "AGE"}));
  EXPECT_EQ(t->columns[0].format, "name");
  EXPECT_EQ(t->columns.back().type, "date");
  ASSERT_EQ(t->rows.size(), 2u);
  EXPECT_EQ(t->rows[0].cells,
            (std::vector<std::string>{"iris", "http://iris-ns1.example.com", "True", "90", "10",
                                      "iris-predictor-00001", "iris-predictor-00002", "5m"}));
  EXPECT_EQ(t->rows[0].namespace_, "ns1");
  EXPECT_NE(t->rows[0].metadata_json.find("\"creationTimestamp\""), std::string::npos);
  // What an object lacks is an empty cell, never a shifted row.
  EXPECT_EQ(t->rows[1].cells.size(), t->columns.size());
  EXPECT_EQ(t->rows[1].cells[0], "new");
}

TEST(PrintColumns, OneObjectAndWideColumns) {
  auto now = std::chrono::system_clock::from_time_t(1767225600);
  auto t = PrintColumns("revisions",
                        R"({"metadata":{"name":"r1","labels":{"serving.knative.dev/service":"web"}},
                            "status":{"phase":"Failed","reason":"CrashLoop"}})",
                        now);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->rows.size(), 1u);
  EXPECT_EQ(t->columns.back().name, "REASON");
  EXPECT_EQ(t->columns.back().priority, 1);
  EXPECT_EQ(t->rows[0].cells[1], "web");
  EXPECT_EQ(t->rows[0].cells.back(), "CrashLoop");
  EXPECT_FALSE(PrintColumns("revisions", "[1]", now).ok());
  EXPECT_FALSE(PrintColumns("revisions", R"({"items":3})", now).ok());
}

}  // namespace
}  // namespace osprey::resources
