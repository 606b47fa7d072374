#include "controlplane/monitoring.h"

#include "controlplane/model_server.h"
#include "controlplane/views.h"
#include "gtest/gtest.h"

namespace osprey::controlplane {
namespace {

TEST(MonitorServeFlags, AnnotationsToFlags) {
  struct Case {
    const char* name;
    std::map<std::string, std::string> annotations;
    std::vector<std::string> flags;
  };
  const Case cases[] = {
      {"none", {}, {}},
      {"settings without a reference do nothing", {{"serving.osprey.dev/drift-window", "100"}}, {}},
      {"reference alone",
       {{kDriftReferenceAnnotation, "first:200"}},
       {"--drift-reference", "first:200"}},
      {"every setting, in table order",
       {{"serving.osprey.dev/outlier-header", "true"},
        {"serving.osprey.dev/drift-categorical", "1,3"},
        {"serving.osprey.dev/drift-p-value", "0.01"},
        {kDriftReferenceAnnotation, "s3://b/ref.npy"},
        {"serving.osprey.dev/drift-window", "300"},
        {"serving.osprey.dev/outlier-quantile", "0.995"},
        {"serving.osprey.dev/mirror-percent", "10"}},
       {"--drift-reference", "s3://b/ref.npy", "--drift-window", "300", "--drift-p-value", "0.01",
        "--drift-categorical", "1,3", "--outlier-quantile", "0.995", "--outlier-header"}},
      {"outlier-header other than true",
       {{kDriftReferenceAnnotation, "/r.csv"}, {"serving.osprey.dev/outlier-header", "yes"}},
       {"--drift-reference", "/r.csv"}},
  };
  for (const Case& c : cases) EXPECT_EQ(MonitorServeFlags(c.annotations), c.flags) << c.name;
}

TEST(PredictorSpecJson, FoldsTheServicesMonitorAnnotationsIntoTheRevision) {
  const std::string plain =
      R"({"metadata":{"name":"m","annotations":{"other":"x"}},"spec":{"predictor":{"model":{"storageUri":"/m"}}}})";
  EXPECT_EQ(PredictorSpecJson(plain), R"({"model":{"storageUri":"/m"}})");
  const std::string monitored =
      R"({"metadata":{"name":"m","annotations":{"serving.osprey.dev/drift-reference":"/r.npy","serving.osprey.dev/drift-window":"50"}},)"
      R"("spec":{"predictor":{"annotations":{"serving.osprey.dev/drift-window":"70"},"model":{"storageUri":"/m"}}}})";
  // The predictor's own setting wins; the service's reference is added.
  EXPECT_EQ(
      PredictorSpecJson(monitored),
      R"({"annotations":{"serving.osprey.dev/drift-window":"70","serving.osprey.dev/drift-reference":"/r.npy"},"model":{"storageUri":"/m"}})");
}

TEST(DriftTransition, Table) {
  DriftReport quiet{
      .ready = true, .drift = false, .windows_tested = 3, .min_p_value = 0.4, .threshold = 0.0125};
  DriftReport drifting{
      .ready = true, .drift = true, .windows_tested = 4, .min_p_value = 1e-9, .threshold = 0.0125};
  DriftReport failed{.error = "reference: bad"};
  struct Case {
    const char* name;
    std::optional<DriftReport> before;
    DriftReport now;
    const char* reason;  // nullptr: no event
  };
  const Case cases[] = {
      {"first report quiet", std::nullopt, quiet, nullptr},
      {"first report drifting", std::nullopt, drifting, "DriftDetected"},
      {"starts", quiet, drifting, "DriftDetected"},
      {"continues", drifting, drifting, nullptr},
      {"ends", drifting, quiet, "DriftEnded"},
      {"stays quiet", quiet, quiet, nullptr},
      {"detector fails", quiet, failed, "DriftDetectorFailed"},
      {"failure reported once", failed, failed, nullptr},
  };
  for (const Case& c : cases) {
    auto e = DriftTransition(c.before, c.now, "m-predictor-00001");
    if (c.reason == nullptr) {
      EXPECT_FALSE(e.has_value()) << c.name;
      continue;
    }
    ASSERT_TRUE(e.has_value()) << c.name;
    EXPECT_EQ(e->reason, c.reason) << c.name;
    EXPECT_NE(e->message.find("m-predictor-00001"), std::string::npos) << c.name;
  }
  EXPECT_EQ(DriftTransition(quiet, drifting, "r")->type, "Warning");
  EXPECT_EQ(DriftTransition(drifting, quiet, "r")->type, "Normal");
}

TEST(MergeDriftReports, AnyReplicaDrifting) {
  DriftReport a{.ready = true,
                .drift = false,
                .windows_tested = 3,
                .min_p_value = 0.2,
                .threshold = 0.01,
                .outliers_total = 1};
  DriftReport b{.ready = true,
                .drift = true,
                .windows_tested = 2,
                .min_p_value = 1e-5,
                .threshold = 0.01,
                .outliers_total = 4};
  DriftReport m = MergeDriftReports({a, b});
  EXPECT_TRUE(m.drift);
  EXPECT_EQ(m.windows_tested, 5u);
  EXPECT_EQ(m.outliers_total, 5u);
  EXPECT_DOUBLE_EQ(m.min_p_value, 1e-5);
  EXPECT_FALSE(MergeDriftReports({a, a}).drift);
}

TEST(ParseDriftReport, ReadsTheReplicasState) {
  auto r = ParseDriftReport(R"({"ready":true,"drift":true,"windows_tested":7,"outliers_total":2,)"
                            R"("last":{"threshold":0.0125,"p_values":[0.5,1e-12,0.3]}})");
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->drift);
  EXPECT_EQ(r->windows_tested, 7u);
  EXPECT_EQ(r->outliers_total, 2u);
  EXPECT_DOUBLE_EQ(r->min_p_value, 1e-12);
  EXPECT_DOUBLE_EQ(r->threshold, 0.0125);
  EXPECT_FALSE(ParseDriftReport("{\"error\":\"x\"}").has_value());
  EXPECT_FALSE(ParseDriftReport("not json").has_value());
}

}  // namespace
}  // namespace osprey::controlplane
