#include "controlplane/local/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace osprey::controlplane {
namespace {

std::string TempDb() {
  auto dir = std::filesystem::temp_directory_path() / ("osprey-store-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / "test.db";
  std::filesystem::remove(path);
  return path.string();
}

TEST(Store, PutGetListDeleteSurviveReopen) {
  std::string path = TempDb();
  {
    auto store = Store::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->Put("isvc/default/iris", "{\"a\":1}").ok());
    ASSERT_TRUE((*store)->Put("isvc/default/flowers", "{\"b\":2}").ok());
    ASSERT_TRUE((*store)->Put("isvc/team/iris", "{}").ok());
    ASSERT_TRUE((*store)->Put("revision/default/iris-predictor-00001", "{}").ok());
    ASSERT_TRUE((*store)->Put("isvc/default/iris", "{\"a\":3}").ok());  // replaces
  }
  auto store = Store::Open(path);
  ASSERT_TRUE(store.ok());
  auto v = (*store)->Get("isvc/default/iris");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "{\"a\":3}");
  EXPECT_EQ((*store)->Get("isvc/default/none").status().code(), absl::StatusCode::kNotFound);
  auto list = (*store)->List("isvc/default/");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].first, "isvc/default/flowers");
  EXPECT_EQ((*list)[1].first, "isvc/default/iris");
  ASSERT_TRUE((*store)->DeletePrefix("isvc/").ok());
  EXPECT_TRUE((*store)->List("isvc/")->empty());
  EXPECT_EQ((*store)->List("revision/")->size(), 1u);
  ASSERT_TRUE((*store)->Delete("revision/default/iris-predictor-00001").ok());
  EXPECT_TRUE((*store)->List("")->empty());
}

TEST(Store, UnwritableLocationIsAnError) {
  auto store = Store::Open("/proc/osprey-cannot-be-here/x.db");
  EXPECT_FALSE(store.ok());
}

}  // namespace
}  // namespace osprey::controlplane
