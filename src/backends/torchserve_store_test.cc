#include "backends/torchserve_store.h"

#include <gtest/gtest.h>

namespace osprey::torchserve {
namespace {

TEST(ParseProperties, JavaForms) {
  auto p = ParseProperties(
      "# comment\n! also a comment\n  inference_address=http://0.0.0.0:8085\r\n"
      "model_store : /mnt/models/model-store\nkey value with spaces\n"
      "long=first \\\n    second\nescaped\\=key=x\\ty\nempty=\n"
      "model_snapshot={\"name\":\"startup.cfg\"}\rold_mac=line\nunicode=caf\\u00e9");
  EXPECT_EQ(p["inference_address"], "http://0.0.0.0:8085");
  EXPECT_EQ(p["model_store"], "/mnt/models/model-store");
  EXPECT_EQ(p["key"], "value with spaces");
  EXPECT_EQ(p["long"], "first second");
  EXPECT_EQ(p["escaped=key"], "x\ty");
  EXPECT_EQ(p["empty"], "");
  EXPECT_EQ(p["model_snapshot"], "{\"name\":\"startup.cfg\"}");
  EXPECT_FALSE(p.contains("# comment"));
  EXPECT_EQ(p["old_mac"], "line");
  EXPECT_EQ(p["unicode"], "caf\xc3\xa9");
}

TEST(PlanStoreModels, Table) {
  const std::map<std::string, std::string> archives = {
      {"mnist.mar", "mnist"}, {"resnet.mar", "resnet-18"}, {"bare.mar", ""}};
  struct Row {
    std::string what;
    std::map<std::string, std::string> properties;
    std::vector<std::string> want;  // name@version:archive
    std::string error;              // substring, when it fails
  };
  const std::vector<Row> rows = {
      {.what = "no configuration: every archive by its manifest name",
       .want = {"bare@:model-store/bare.mar", "mnist@:model-store/mnist.mar",
                "resnet-18@:model-store/resnet.mar"}},
      {.what = "snapshot names the model, its default version",
       .properties = {{"model_snapshot",
                       R"({"name":"startup.cfg","modelCount":1,"models":{"digits":{)"
                       R"("1.0":{"defaultVersion":false,"marName":"bare.mar"},)"
                       R"("2.0":{"defaultVersion":true,"marName":"mnist.mar"}}}})"}},
       .want = {"digits@2.0:model-store/mnist.mar"}},
      {.what = "snapshot with one version and no default",
       .properties = {{"model_snapshot", R"({"models":{"m":{"1.0":{"marName":"resnet.mar"}}}})"}},
       .want = {"m@1.0:model-store/resnet.mar"}},
      {.what = "snapshot wins over load_models",
       .properties = {{"load_models", "all"},
                      {"model_snapshot", R"({"models":{"m":{"1":{"marName":"bare.mar"}}}})"}},
       .want = {"m@1:model-store/bare.mar"}},
      {.what = "load_models list with a name",
       .properties = {{"load_models", " mnist.mar , renamed=resnet.mar"}},
       .want = {"mnist@:model-store/mnist.mar", "renamed@:model-store/resnet.mar"}},
      {.what = "snapshot naming an archive the store lacks",
       .properties = {{"model_snapshot", R"({"models":{"m":{"1":{"marName":"gone.mar"}}}})"}},
       .error = "model_snapshot.models.m.1.marName names gone.mar, which model-store/ does not "
                "hold (it has bare.mar, mnist.mar, resnet.mar)"},
      {.what = "snapshot without marName",
       .properties = {{"model_snapshot", R"({"models":{"m":{"1":{}}}})"}},
       .error = "model_snapshot.models.m.1 has no marName"},
      {.what = "snapshot that is not JSON",
       .properties = {{"model_snapshot", "{models"}},
       .error = "model_snapshot is not JSON"},
      {.what = "load_models All, as TorchServe compares it",
       .properties = {{"load_models", "All"}},
       .want = {"bare@:model-store/bare.mar", "mnist@:model-store/mnist.mar",
                "resnet-18@:model-store/resnet.mar"}},
      {.what = "two archives of one name",
       .properties = {{"load_models", "mnist.mar,mnist=resnet.mar"}},
       .error = "two archives serve the model name 'mnist' (mnist.mar and resnet.mar)"},
      {.what = "load_models naming a missing archive",
       .properties = {{"load_models", "x.mar"}},
       .error = "load_models names x.mar"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.what);
    auto got = PlanStoreModels(row.properties, archives);
    if (!row.error.empty()) {
      ASSERT_FALSE(got.ok());
      EXPECT_NE(got.status().message().find(row.error), std::string::npos) << got.status();
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.status();
    std::vector<std::string> names;
    for (const StoreModel& m : *got)
      names.push_back(m.name + "@" + m.version + ":" + m.archive.string());
    EXPECT_EQ(names, row.want);
  }
  EXPECT_FALSE(PlanStoreModels({}, {}).ok());
}

}  // namespace
}  // namespace osprey::torchserve
