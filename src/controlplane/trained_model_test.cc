#include "controlplane/trained_model.h"

#include <gtest/gtest.h>

namespace osprey::controlplane {
namespace {

resources::TrainedModel Tm() {
  resources::TrainedModel tm;
  tm.meta.name = "model1";
  tm.meta.namespace_ = "default";
  tm.inference_service = "mms";
  tm.framework = "sklearn";
  tm.memory_bytes = 100;
  return tm;
}

TrainedModelTarget Good() {
  TrainedModelTarget t;
  t.exists = t.multi_model = t.ready = true;
  t.url = "http://mms-default.example.com";
  t.runtime = "kserve-sklearnserver";
  t.formats = {"sklearn"};
  t.memory_requested = 100;
  return t;
}

// The status, as "Type=Status[:reason]" per condition.
std::vector<std::string> Conditions(const TrainedModelPlan& p) {
  std::vector<std::string> out;
  for (const auto& c : p.status.conditions)
    out.push_back(c.type + "=" + c.status + (c.reason.empty() ? "" : ":" + c.reason));
  return out;
}

TEST(PlanTrainedModel, Table) {
  struct Row {
    std::string what;
    TrainedModelTarget target;
    TrainedModelPlacement placement;
    bool place, ready;
    std::vector<std::string> failing;  // condition types that are False
    std::string message;               // part of the first False condition's message
  };
  auto with = [](auto f) {
    TrainedModelTarget t = Good();
    f(t);
    return t;
  };
  const std::vector<Row> rows = {
      {.what = "placed",
       .target = Good(),
       .placement = {.placed = true},
       .place = true,
       .ready = true},
      {.what = "being placed",
       .target = Good(),
       .place = true,
       .failing = {"Ready"},
       .message = "being placed"},
      {.what = "failed to load",
       .target = Good(),
       .placement = {.placed = true, .error = "boom"},
       .place = true,
       .failing = {"Ready"},
       .message = "boom"},
      {.what = "no service",
       .target = TrainedModelTarget{},
       .failing = {"FrameworkSupported", "InferenceServiceReady", "IsMMSPredictor", "Ready"},
       .message = "InferenceService mms does not exist"},
      {.what = "framework",
       .target = with([](auto& t) {
         t.formats = {"xgboost", "lightgbm"};
       }),
       .failing = {"FrameworkSupported", "Ready"},
       .message = "framework sklearn is not supported by runtime kserve-sklearnserver (it serves "
                  "xgboost, lightgbm)"},
      {.what = "service not ready",
       .target = with([](auto& t) { t.ready = false; }),
       .failing = {"InferenceServiceReady", "Ready"},
       .message = "mms is not ready"},
      {.what = "single model",
       .target = with([](auto& t) { t.multi_model = false; }),
       .failing = {"IsMMSPredictor", "Ready"},
       .message = "is not multi-model"},
      {.what = "memory",
       .target = with([](auto& t) {
         t.memory_limit = 150;
         t.memory_requested = 200;
       }),
       .failing = {"MemoryResourceAvailable", "Ready"},
       .message = "ask for 200 bytes; its predictor's memory limit is 150 bytes"},
      {.what = "memory that fits",
       .target = with([](auto& t) { t.memory_limit = 200; }),
       .placement = {.placed = true},
       .place = true,
       .ready = true},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.what);
    TrainedModelPlan p = PlanTrainedModel(Tm(), row.target, row.placement);
    EXPECT_EQ(p.place, row.place);
    EXPECT_EQ(p.status.ready, row.ready);
    ASSERT_EQ(p.status.conditions.size(), 5u);
    std::vector<std::string> failing;
    std::string first;
    for (const auto& c : p.status.conditions)
      if (c.status == "False") {
        failing.push_back(c.type);
        if (first.empty()) first = c.message;
      }
    EXPECT_EQ(failing, row.failing) << testing::PrintToString(Conditions(p));
    EXPECT_NE(first.find(row.message), std::string::npos) << first;
    EXPECT_EQ(p.status.url,
              row.target.exists ? "http://mms-default.example.com/v1/models/model1" : "");
  }
}

TEST(ModelCacheBudget, TheLimitLessTheServersOwn) {
  constexpr uint64_t MiB = 1ull << 20, GiB = 1ull << 30;
  struct Case {
    uint64_t limit, want;
  } cases[] = {
      {4 * GiB, 4 * GiB - 512 * MiB},  // an eighth
      {256 * MiB, 192 * MiB},          // at least 64 MiB for the server
      {100 * MiB, 50 * MiB},           // never under half
      {16 * GiB, 15 * GiB},            // at most 1 GiB for the server
      {0, 0},
  };
  for (const auto& c : cases) EXPECT_EQ(ModelCacheBudget(c.limit), c.want) << c.limit;
}

TEST(MemoryLimit, FromResources) {
  EXPECT_EQ(MemoryLimit(R"({"limits":{"memory":"1Gi","cpu":"1"}})"), 1073741824u);
  EXPECT_EQ(MemoryLimit(R"({"requests":{"memory":"1Gi"}})"), std::nullopt);
  EXPECT_EQ(MemoryLimit("{}"), std::nullopt);
  EXPECT_EQ(MemoryLimit(R"({"limits":{"memory":"lots"}})"), std::nullopt);
}

}  // namespace
}  // namespace osprey::controlplane
