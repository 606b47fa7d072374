#include "server/monitoring.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "backends/testing/fake_backend.h"
#include "server/inference_core.h"

namespace osprey {
namespace {

Tensor Fp32(std::string name, Shape shape, std::vector<float> values) {
  Tensor t(std::move(name), DataType::kFp32, std::move(shape));
  t.SetData(
      std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  return t;
}

TEST(RequestRows, Table) {
  struct Case {
    const char* name;
    std::vector<Tensor> inputs;
    size_t n, features;
    std::vector<double> rows;
    const char* error;  // nullptr: OK
  };
  Tensor bytes("b", DataType::kBytes, {1});
  std::vector<Case> cases;
  cases.push_back({"one [n, F] input",
                   {Fp32("x", {2, 3}, {1, 2, 3, 4, 5, 6})},
                   2,
                   3,
                   {1, 2, 3, 4, 5, 6},
                   nullptr});
  cases.push_back(
      {"one [F] input is one row", {Fp32("x", {3}, {1, 2, 3})}, 1, 3, {1, 2, 3}, nullptr});
  cases.push_back({"inputs side by side",
                   {Fp32("a", {2}, {1, 2}), Fp32("b", {2, 2}, {10, 11, 20, 21})},
                   2,
                   3,
                   {1, 10, 11, 2, 20, 21},
                   nullptr});
  cases.push_back({"BYTES", {bytes}, 0, 0, {}, "not numeric"});
  cases.push_back(
      {"rows differ", {Fp32("a", {2}, {1, 2}), Fp32("b", {3}, {1, 2, 3})}, 0, 0, {}, "3 rows"});
  for (const Case& c : cases) {
    InferRequest request;
    request.inputs = c.inputs;
    std::vector<double> rows;
    size_t n = 0, features = 0;
    absl::Status s = RequestRows(request, &rows, &n, &features);
    if (c.error != nullptr) {
      EXPECT_FALSE(s.ok()) << c.name;
      EXPECT_NE(s.message().find(c.error), std::string_view::npos) << c.name << ": " << s;
      continue;
    }
    ASSERT_TRUE(s.ok()) << c.name << ": " << s;
    EXPECT_EQ(n, c.n) << c.name;
    EXPECT_EQ(features, c.features) << c.name;
    EXPECT_EQ(rows, c.rows) << c.name;
  }
}

// The core hands every validated request of the monitored model to its
// detector, whatever the frontend (REST and gRPC both call Infer).
TEST(ModelRowWidth, Table) {
  struct Case {
    std::vector<TensorSpec> inputs;
    std::optional<size_t> want;
  } cases[] = {
      {{{"x", DataType::kFp32, {-1, 4}}}, 4},
      {{{"x", DataType::kFp32, {-1, 3, 2}}, {"y", DataType::kInt64, {-1, 1}}}, 7},
      {{{"x", DataType::kFp32, {-1, -1}}}, std::nullopt},
      {{{"x", DataType::kBytes, {-1, 4}}}, std::nullopt},
      {{{"x", DataType::kFp32, {-1}}}, std::nullopt},
      {{}, std::nullopt},
  };
  for (const Case& c : cases) {
    ModelMetadata md;
    md.inputs = c.inputs;
    EXPECT_EQ(ModelRowWidth(md), c.want) << c.inputs.size();
  }
}

TEST(RequestMonitor, InferenceCoreFeedsTheDetectorAndScoresTheResponse) {
  testing::FakeRepository repo;
  repo.Add("m");
  testing::FakeBackend fake;
  Metrics metrics;
  ModelRegistry::Options options;
  options.repository = repo.root();
  options.backends = {&fake};
  ModelRegistry registry(options, &metrics);
  ASSERT_TRUE(registry.LoadFromRepository("m").ok());
  InferenceCore core(&registry);

  monitor::DetectorOptions o;
  o.model = "m";
  o.window = 4;
  std::vector<double> reference;
  for (int i = 0; i < 40; ++i)
    for (int f = 0; f < 4; ++f) reference.push_back((i * (f + 3)) % 7 + 0.1 * f);
  o.reference = monitor::Matrix{40, 4, reference};
  auto detector = monitor::Detector::Start(std::move(o));
  ASSERT_TRUE(detector.ok()) << detector.status();
  RequestMonitor monitor("m", *std::move(detector), /*score_header=*/true);
  core.SetMonitor(&monitor);

  for (int r = 0; r < 2; ++r) {
    InferRequest request;
    request.model_name = "m";
    request.inputs.push_back(Fp32("INPUT0", {2, 4}, {1, 2, 3, 4, 100, 2, 3, 4}));
    InferResponse response;
    absl::Status status = absl::UnknownError("not completed");
    core.Infer(request, &response, InferenceCore::Clock::now(),
               [&status](absl::Status s) { status = std::move(s); });
    ASSERT_TRUE(status.ok()) << status;
    ASSERT_TRUE(response.outlier_score.has_value());
    EXPECT_GT(*response.outlier_score, 10.0);  // the second row is far out
  }
  ASSERT_TRUE(monitor.detector().WaitForWindows(1, std::chrono::seconds(10)));
  EXPECT_NE(monitor.detector().StateJson().find("\"rows_seen\":4"), std::string::npos);
}

}  // namespace
}  // namespace osprey
