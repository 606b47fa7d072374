#include "backends/model_config.h"

#include <gtest/gtest.h>

#include <fstream>

namespace osprey {
namespace {

namespace fs = std::filesystem;

fs::path WriteConfig(const std::string& name, const std::string& text) {
  fs::path dir = fs::temp_directory_path() / ("osprey-config-test-" + name);
  fs::create_directories(dir);
  std::ofstream(dir / "config.pbtxt") << text;
  return dir;
}

TEST(ModelConfigTest, ReadsTritonsSubsetAndSkipsTheRest) {
  fs::path dir = WriteConfig("full", R"(
    name: "mlp"
    platform: "pytorch_libtorch"
    max_batch_size: 64
    input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
    output [ { name: "OUTPUT__0", data_type: TYPE_FP32, dims: [ 3 ] } ]
    instance_group [ { count: 2 kind: KIND_CPU } ]
    dynamic_batching { preferred_batch_size: [ 16, 32 ] max_queue_delay_microseconds: 2000 }
    version_policy: { latest { num_versions: 1 } }
  )");
  auto config = ReadModelConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->has_value());
  const ModelConfigFile& c = **config;
  EXPECT_EQ(c.name, "mlp");
  EXPECT_EQ(c.max_batch_size, 64);
  ASSERT_EQ(c.inputs.size(), 1u);
  EXPECT_EQ(c.inputs[0].name, "INPUT__0");
  EXPECT_EQ(c.inputs[0].datatype, DataType::kFp32);
  EXPECT_EQ(c.inputs[0].shape, (Shape{-1, 4}));
  EXPECT_EQ(c.outputs[0].shape, (Shape{-1, 3}));
  ASSERT_TRUE(c.dynamic_batching.has_value());
  EXPECT_EQ(c.dynamic_batching->max_queue_delay_us, 2000);
  EXPECT_EQ(c.dynamic_batching->preferred_batch_sizes, (std::vector<int64_t>{16, 32}));
}

TEST(ModelConfigTest, ReadsVersionsInstancesParametersAndRefusals) {
  fs::path dir = WriteConfig("more", R"(
    backend: "python"
    max_batch_size: 8
    input [ { name: "IN" data_type: TYPE_STRING dims: [ 1 ] reshape: { shape: [ ] } } ]
    output [ { name: "OUT" data_type: TYPE_INT64 dims: [ -1 ] label_filename: "labels.txt" } ]
    version_policy: { specific { versions: [ 1, 3 ] } }
    instance_group [ { count: 2 kind: KIND_CPU }, { name: "g" kind: KIND_GPU gpus: [ 0, 1 ] } ]
    parameters { key: "mode" value: { string_value: "fast" } }
    parameters: [ { key: "other", value: { string_value: "x" } } ]
    model_transaction_policy { decoupled: true }
    sequence_batching { max_sequence_idle_microseconds: 5000
      control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START } ] } ] }
    model_warmup [ { name: "w" batch_size: 1 inputs { key: "IN" value: { data_type: TYPE_STRING
      dims: [ 1 ] zero_data: true } } } ]
    optimization { execution_accelerators { gpu_execution_accelerator [ { name: "tensorrt" } ] } }
    input [ { name: "IN2" data_type: TYPE_FP32 format: FORMAT_NCHW dims: [ 3 ] optional: true } ]
  )");
  auto config = ReadModelConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  const ModelConfigFile& c = **config;
  EXPECT_EQ(c.backend, "python");
  ASSERT_EQ(c.inputs.size(), 2u);
  EXPECT_EQ(c.inputs[0].datatype, DataType::kBytes);
  EXPECT_EQ(c.reshapes.at("IN"), Shape{});
  EXPECT_EQ(c.reshapes.count("OUT"), 0u);
  EXPECT_TRUE(c.has_version_policy);
  EXPECT_EQ(c.version_policy.kind, VersionPolicy::Kind::kSpecific);
  EXPECT_EQ(c.version_policy.versions, (std::vector<int64_t>{1, 3}));
  ASSERT_EQ(c.instance_groups.size(), 2u);
  EXPECT_EQ(c.instance_groups[0].count, 2);
  EXPECT_EQ(c.instance_groups[0].kind, InstanceGroup::Kind::kCpu);
  EXPECT_EQ(c.instance_groups[1].name, "g");
  EXPECT_EQ(c.instance_groups[1].kind, InstanceGroup::Kind::kGpu);
  EXPECT_EQ(c.instance_groups[1].gpus, (std::vector<int>{0, 1}));
  EXPECT_EQ(c.parameters, (std::map<std::string, std::string>{{"mode", "fast"}, {"other", "x"}}));
  EXPECT_TRUE(c.decoupled);
  EXPECT_TRUE(c.sequence_batching);
  EXPECT_FALSE(c.ensemble_scheduling);
}

TEST(ModelConfigTest, DefaultsWithoutTheOptionalFields) {
  auto config = ReadModelConfig(WriteConfig("plain", "name: \"m\""));
  ASSERT_TRUE(config.ok()) << config.status();
  const ModelConfigFile& c = **config;
  EXPECT_FALSE(c.has_version_policy);
  EXPECT_EQ(c.version_policy.kind, VersionPolicy::Kind::kLatest);
  EXPECT_EQ(c.version_policy.num_versions, 1);
  EXPECT_TRUE(c.instance_groups.empty());
  EXPECT_FALSE(c.decoupled);
}

TEST(ModelConfigTest, JsonInTritonsLayout) {
  ModelConfigFile c;
  c.name = "add";
  c.backend = "python";
  c.max_batch_size = 4;
  c.inputs = {{"A", DataType::kBytes, {-1, 2}}};
  c.outputs = {{"B", DataType::kFp32, {-1, 2}}};
  c.reshapes["A"] = {2, 1};
  BatchingHint hint;
  hint.max_batch_size = 4;
  hint.max_queue_delay_us = 100;
  hint.preferred_batch_sizes = {2};
  c.dynamic_batching = hint;
  c.instance_groups = {{"add_0", InstanceGroup::Kind::kCpu, 3, {}}};
  c.parameters["k"] = "v";
  EXPECT_EQ(
      ModelConfigJson(c),
      R"({"name":"add","platform":"","backend":"python","version_policy":{"latest":{"num_versions":1}},)"
      R"("max_batch_size":4,"input":[{"name":"A","data_type":"TYPE_STRING","format":"FORMAT_NONE",)"
      R"("dims":[2],"reshape":{"shape":[2,1]},"is_shape_tensor":false,"allow_ragged_batch":false,)"
      R"("optional":false}],"output":[{"name":"B","data_type":"TYPE_FP32","dims":[2],)"
      R"("is_shape_tensor":false,"label_filename":""}],"dynamic_batching":{"preferred_batch_size":[2],)"
      R"("max_queue_delay_microseconds":100,"preserve_ordering":false},"instance_group":[{"name":"add_0",)"
      R"("kind":"KIND_CPU","count":3,"gpus":[],"secondary_devices":[],"profile":[],"passive":false,)"
      R"("host_policy":""}],"default_model_filename":"","cc_model_filenames":{},"metric_tags":{},)"
      R"("parameters":{"k":{"string_value":"v"}},"model_warmup":[]})");
}

TEST(ModelConfigTest, NoFileIsNoConfig) {
  fs::path dir = fs::temp_directory_path() / "osprey-config-test-none";
  fs::create_directories(dir);
  fs::remove(dir / "config.pbtxt");
  auto config = ReadModelConfig(dir);
  ASSERT_TRUE(config.ok());
  EXPECT_FALSE(config->has_value());
}

TEST(ModelConfigTest, ErrorsNameTheProblem) {
  struct Case {
    const char* text;
    const char* fragment;
  } cases[] = {
      {"max_batch_size: 8\ninput [ { name: \"x\" data_type: TYPE_FP32 dims: [ 4 ] ", "line 2"},
      {"input [ { name: \"x\" dims: [ 4 ] } ]", "tensor 'x' has no valid data_type"},
      {"input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 0 ] } ]", "dimension 0"},
      {"dynamic_batching { }", "needs max_batch_size"},
      {"max_batch_size: 4 dynamic_batching { preferred_batch_size: [ 8 ] }",
       "preferred_batch_size 8"},
      {"input [ { name: \"x\" data_type: TYPE_NOPE } ]", "TYPE_NOPE"},
      {"version_policy { specific { } }", "lists no versions"},
      {"version_policy { latest { num_versions: 0 } }", "num_versions >= 1"},
      {"instance_group [ { count: -1 } ]", "count must be >= 1"},
      {"input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 4 ] reshape { shape: [ 0 ] } } ]",
       "reshape dimension 0"},
  };
  int i = 0;
  for (const Case& c : cases) {
    auto config = ReadModelConfig(WriteConfig("bad" + std::to_string(i++), c.text));
    ASSERT_FALSE(config.ok()) << c.text;
    EXPECT_NE(config.status().message().find(c.fragment), std::string_view::npos)
        << config.status();
  }
}

}  // namespace
}  // namespace osprey
