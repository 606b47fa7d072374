#include "controlplane/local/api_meta.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/strings.h"

namespace osprey::controlplane {
namespace {

std::string TempDb() {
  auto dir =
      std::filesystem::temp_directory_path() / ("osprey-api-meta-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / "test.db";
  std::filesystem::remove(path);
  return path.string();
}

std::string Obj(const char* name, const char* created) {
  return StrCat(R"({"apiVersion":"v","kind":"K","metadata":{"name":")", name,
                R"(","namespace":"ns","creationTimestamp":")", created, R"("},"spec":{}})");
}

std::string UidIn(const std::string& json) {
  const size_t at = json.find("\"uid\":\"");
  return at == std::string::npos ? "" : json.substr(at + 7, 36);
}

TEST(ApiMetadata, UidsFinalizersAndManagedFieldsFollowTheirObject) {
  const std::string db = TempDb();
  auto store = Store::Open(db);
  ASSERT_TRUE(store.ok()) << store.status();
  std::string uid_a;
  {
    ApiMetadata meta(store->get());
    std::vector<std::string> objects = {Obj("a", "t1"), Obj("b", "t1")};
    meta.Decorate("ks", &objects);
    uid_a = UidIn(objects[0]);
    ASSERT_EQ(uid_a.size(), 36u) << objects[0];
    EXPECT_NE(UidIn(objects[1]), uid_a);
    EXPECT_EQ(objects[0].find("finalizers"), std::string::npos);
    // A record written changes what is served; the same object keeps its uid.
    ApiMetadata::Record r = meta.Get("ks", "ns", "a", "t1");
    EXPECT_EQ(r.uid, uid_a);
    r.finalizers = {"example.com/hold"};
    r.managed = {{"kubectl", "Apply", "v", "t", {{"spec", "x"}}}};
    ASSERT_TRUE(meta.Put("ks", "ns", "a", r).ok());
    objects = {Obj("a", "t1"), Obj("b", "t1")};
    meta.Decorate("ks", &objects);
    EXPECT_NE(objects[0].find(R"("finalizers":["example.com/hold"])"), std::string::npos)
        << objects[0];
    EXPECT_NE(objects[0].find(R"("managedFields":[{"manager":"kubectl")"), std::string::npos);
    EXPECT_EQ(UidIn(objects[0]), uid_a);
    // b no longer listed: its record goes.
    objects = {Obj("a", "t1")};
    meta.Decorate("ks", &objects);
    EXPECT_EQ(meta.Uid("ks", "ns", "b"), "");
  }
  {
    // Reopened: the records are read back.
    ApiMetadata meta(store->get());
    EXPECT_EQ(meta.Uid("ks", "ns", "a"), uid_a);
    EXPECT_EQ(meta.Get("ks", "ns", "a", "t1").finalizers,
              std::vector<std::string>{"example.com/hold"});
    // Made again (another creation): another object, none of the old record.
    std::vector<std::string> objects = {Obj("a", "t2")};
    meta.Decorate("ks", &objects);
    EXPECT_NE(UidIn(objects[0]), uid_a);
    EXPECT_EQ(objects[0].find("finalizers"), std::string::npos);
    // A record written before its object exists takes the object's creation.
    ApiMetadata::Record early{.uid = ApiMetadata::NewUid(), .finalizers = {"f"}};
    ASSERT_TRUE(meta.Put("ks", "ns", "c", early).ok());
    objects = {Obj("a", "t2"), Obj("c", "t3")};
    meta.Decorate("ks", &objects);
    EXPECT_EQ(UidIn(objects[1]), early.uid);
    EXPECT_EQ(meta.Get("ks", "ns", "c", "t3").created, "t3");
  }
}

}  // namespace
}  // namespace osprey::controlplane
