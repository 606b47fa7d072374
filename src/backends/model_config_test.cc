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
