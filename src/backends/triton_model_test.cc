#include "backends/triton_model.h"

#include <gtest/gtest.h>

namespace osprey {
namespace {

using Kind = InstanceGroup::Kind;

struct PlanCase {
  const char* label;
  std::string platform, backend;
  std::set<std::string> files;
  // Expected: the Osprey backend and model file, or a status code and a
  // fragment of the message.
  std::string osprey, file, platform_after, backend_after;
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string fragment;
};

TEST(PlanTritonModel, PlatformsAndBackends) {
  // clang-format off
  const PlanCase cases[] = {
      // label, platform, backend, files: Osprey backend, file, platform, backend after
      {"platform pytorch", "pytorch_libtorch", "", {"model.pt"},
       "pytorch", "model.pt", "pytorch_libtorch", "pytorch"},
      {"backend pytorch", "", "pytorch", {},
       "pytorch", "model.pt", "pytorch_libtorch", "pytorch"},
      {"platform onnx", "onnxruntime_onnx", "", {},
       "onnx", "model.onnx", "onnxruntime_onnx", "onnxruntime"},
      {"backend onnxruntime", "", "onnxruntime", {},
       "onnx", "model.onnx", "onnxruntime_onnx", "onnxruntime"},
      {"backend python", "", "python", {"model.py"},
       "python", "model.py", "", "python"},
      {"savedmodel", "tensorflow_savedmodel", "", {},
       "tensorflow", "model.savedmodel", "tensorflow_savedmodel", "tensorflow"},
      {"files: model.pt", "", "", {"model.pt"},
       "pytorch", "model.pt", "pytorch_libtorch", "pytorch"},
      {"files: model.onnx", "", "", {"model.onnx", "labels.txt"},
       "onnx", "model.onnx", "onnxruntime_onnx", "onnxruntime"},
      {"files: model.py", "", "", {"model.py", "helper.py"},
       "python", "model.py", "", "python"},
      {"files: savedmodel", "", "", {"model.savedmodel/"},
       "tensorflow", "model.savedmodel", "tensorflow_savedmodel", "tensorflow"},
      {"files: none known", "", "", {"model.joblib"}, "", "", "", ""},
      // Refused: the status and a fragment of the reason.
      {"tensorrt platform", "tensorrt_plan", "", {}, "", "", "", "",
       absl::StatusCode::kFailedPrecondition, "TensorRT"},
      {"tensorrt backend", "", "tensorrt", {}, "", "", "", "",
       absl::StatusCode::kFailedPrecondition, "GPU"},
      {"files: model.plan", "", "", {"model.plan"}, "", "", "", "",
       absl::StatusCode::kFailedPrecondition, "TensorRT"},
      {"graphdef", "tensorflow_graphdef", "", {}, "", "", "", "",
       absl::StatusCode::kUnimplemented, "GraphDef"},
      {"files: model.graphdef", "", "", {"model.graphdef"}, "", "", "", "",
       absl::StatusCode::kUnimplemented, "SavedModel"},
      {"ensemble", "ensemble", "", {}, "", "", "", "",
       absl::StatusCode::kUnimplemented, "InferenceGraph"},
      {"vllm", "", "vllm", {}, "", "", "", "",
       absl::StatusCode::kFailedPrecondition, "GPU"},
      {"unknown backend", "", "fil", {}, "", "", "", "",
       absl::StatusCode::kUnimplemented, "backend 'fil' is not served by Osprey"},
      {"unknown platform", "caffe2_netdef", "", {}, "", "", "", "",
       absl::StatusCode::kUnimplemented, "platform 'caffe2_netdef'"},
      {"disagree", "pytorch_libtorch", "onnxruntime", {}, "", "", "", "",
       absl::StatusCode::kInvalidArgument, "disagree"},
  };
  // clang-format on
  for (const PlanCase& c : cases) {
    ModelConfigFile config;
    config.platform = c.platform;
    config.backend = c.backend;
    auto plan = PlanTritonModel("m", c.files, &config);
    if (c.code != absl::StatusCode::kOk) {
      ASSERT_FALSE(plan.ok()) << c.label;
      EXPECT_EQ(plan.status().code(), c.code) << c.label << ": " << plan.status();
      EXPECT_NE(plan.status().message().find(c.fragment), std::string_view::npos)
          << c.label << ": " << plan.status();
      EXPECT_EQ(plan.status().message().substr(0, 11), "model 'm': ") << plan.status();
      continue;
    }
    ASSERT_TRUE(plan.ok()) << c.label << ": " << plan.status();
    EXPECT_EQ(plan->backend, c.osprey) << c.label;
    EXPECT_EQ(plan->model_file, c.file) << c.label;
    EXPECT_EQ(config.platform, c.platform_after) << c.label;
    EXPECT_EQ(config.backend, c.backend_after) << c.label;
    EXPECT_EQ(config.name, "m") << c.label;
    EXPECT_EQ(plan->instances, 0) << c.label;
  }
}

TEST(PlanTritonModel, KeepsTheNamedModelFile) {
  ModelConfigFile config;
  config.platform = "pytorch_libtorch";
  config.name = "given";
  config.default_model_filename = "net.pt";
  auto plan = PlanTritonModel("dir", {"net.pt"}, &config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->model_file, "net.pt");
  EXPECT_EQ(config.name, "given");
}

TEST(PlanTritonModel, InstanceGroups) {
  struct Case {
    const char* label;
    std::string backend;
    std::vector<InstanceGroup> groups;
    int instances;
    std::vector<int> counts;  // after completion
    absl::StatusCode code = absl::StatusCode::kOk;
  } cases[] = {
      {"none", "python", {}, 0, {}},
      {"cpu 3", "python", {{"", Kind::kCpu, 3, {}}}, 3, {3}},
      {"two groups", "pytorch", {{"", Kind::kCpu, 2, {}}, {"", Kind::kModel, 1, {}}}, 3, {2, 1}},
      {"no count: python 1", "python", {{"", Kind::kCpu, 0, {}}}, 1, {1}},
      {"no count: onnxruntime 2", "onnxruntime", {{"", Kind::kCpu, 0, {}}}, 2, {2}},
      {"auto with gpus runs on cpu", "pytorch", {{"", Kind::kAuto, 2, {0}}}, 2, {2}},
      {"gpu",
       "pytorch",
       {{"", Kind::kCpu, 1, {}}, {"", Kind::kGpu, 1, {0}}},
       0,
       {},
       absl::StatusCode::kFailedPrecondition},
  };
  for (const Case& c : cases) {
    ModelConfigFile config;
    config.backend = c.backend;
    config.instance_groups = c.groups;
    auto plan = PlanTritonModel("m", {}, &config);
    if (c.code != absl::StatusCode::kOk) {
      ASSERT_FALSE(plan.ok()) << c.label;
      EXPECT_EQ(plan.status().code(), c.code) << c.label;
      EXPECT_NE(plan.status().message().find("instance_group 'm_1' asks for KIND_GPU"),
                std::string_view::npos)
          << plan.status();
      continue;
    }
    ASSERT_TRUE(plan.ok()) << c.label << ": " << plan.status();
    EXPECT_EQ(plan->instances, c.instances) << c.label;
    std::vector<int> counts;
    for (size_t i = 0; i < config.instance_groups.size(); ++i) {
      const InstanceGroup& g = config.instance_groups[i];
      counts.push_back(g.count);
      EXPECT_EQ(g.kind == Kind::kModel ? Kind::kModel : Kind::kCpu, g.kind) << c.label;
      EXPECT_EQ(g.name, "m_" + std::to_string(i)) << c.label;
      EXPECT_TRUE(g.gpus.empty()) << c.label;
    }
    EXPECT_EQ(counts, c.counts) << c.label;
  }
}

TEST(PlanTritonModel, RefusesWhatOspreyDoesNotRun) {
  struct Case {
    const char* label;
    void (*set)(ModelConfigFile*);
    std::string fragment;
  } cases[] = {
      {"decoupled", [](ModelConfigFile* c) { c->decoupled = true; }, "decoupled"},
      {"sequence", [](ModelConfigFile* c) { c->sequence_batching = true; }, "sequence batching"},
      {"ensemble", [](ModelConfigFile* c) { c->ensemble_scheduling = true; }, "ensemble"},
      {"env", [](ModelConfigFile* c) { c->parameters["EXECUTION_ENV_PATH"] = "/x.tar.gz"; },
       "EXECUTION_ENV_PATH"},
  };
  for (const Case& c : cases) {
    ModelConfigFile config;
    config.backend = "python";
    c.set(&config);
    auto plan = PlanTritonModel("m", {"model.py"}, &config);
    ASSERT_FALSE(plan.ok()) << c.label;
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kUnimplemented) << c.label;
    EXPECT_NE(plan.status().message().find(c.fragment), std::string_view::npos) << plan.status();
  }
}

TEST(SelectVersions, Policies) {
  struct Case {
    const char* label;
    VersionPolicy policy;
    std::vector<int64_t> available, expected;
    std::string error;
  } cases[] = {
      {"latest 1", {}, {1, 3, 2}, {3}, ""},
      {"latest 2", {VersionPolicy::Kind::kLatest, 2, {}}, {1, 3, 2}, {2, 3}, ""},
      {"latest more than there are", {VersionPolicy::Kind::kLatest, 9, {}}, {7}, {7}, ""},
      {"all", {VersionPolicy::Kind::kAll, 1, {}}, {10, 2}, {2, 10}, ""},
      {"specific", {VersionPolicy::Kind::kSpecific, 1, {3, 1}}, {1, 2, 3}, {1, 3}, ""},
      {"specific missing",
       {VersionPolicy::Kind::kSpecific, 1, {1, 4, 5}},
       {1, 2},
       {},
       "model 'm': version_policy asks for version(s) 4, 5, which it does not have (it has 1, 2)"},
      {"none", {}, {}, {}, "model 'm' has no version directory"},
  };
  for (const Case& c : cases) {
    auto got = SelectVersions("m", c.policy, c.available);
    if (!c.error.empty()) {
      ASSERT_FALSE(got.ok()) << c.label;
      EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << c.label;
      EXPECT_NE(got.status().message().find(c.error), std::string_view::npos) << got.status();
      continue;
    }
    ASSERT_TRUE(got.ok()) << c.label << ": " << got.status();
    EXPECT_EQ(*got, c.expected) << c.label;
  }
}

}  // namespace
}  // namespace osprey
