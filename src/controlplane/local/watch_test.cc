#include "controlplane/local/watch.h"

#include <gtest/gtest.h>

#include <atomic>

namespace osprey::controlplane {
namespace {

ObjectView Obj(std::string ns, std::string name, std::map<std::string, std::string> labels = {}) {
  ObjectView o;
  o.ns = std::move(ns);
  o.name = std::move(name);
  o.labels = std::move(labels);
  return o;
}

TEST(Selector, LabelsAndFieldsAsKubernetesReadsThem) {
  struct Case {
    const char* labels;
    const char* fields;
    bool want;
  } cases[] = {
      {"", "", true},
      {"app=iris", "", true},
      {"app==iris", "", true},
      {"app=other", "", false},
      {"app!=other", "", true},
      {"app!=iris", "", false},
      {"missing!=x", "", true},
      {"tier", "", true},
      {"!tier", "", false},
      {"!absent", "", true},
      {"app=iris, tier=web", "", true},
      {"app=iris,tier=db", "", false},
      {"", "metadata.name=iris", true},
      {"", "metadata.name==iris,metadata.namespace=ns1", true},
      {"", "metadata.namespace!=ns1", false},
      {"app=iris", "metadata.name=other", false},
      {"app in (iris,wine)", "", true},
      {"app in (wine)", "", false},
      {"absent in (x)", "", false},
      {"app notin (wine, beer)", "", true},
      {"app notin (iris)", "", false},
      {"absent notin (x)", "", true},
      {"app in (iris),tier in (web, db),!absent", "", true},
      {"tier in (db, cache), app=iris", "", false},
  };
  ObjectView o = Obj("ns1", "iris", {{"app", "iris"}, {"tier", "web"}});
  for (const auto& c : cases) {
    auto s = Selector::Parse(c.labels, c.fields);
    ASSERT_TRUE(s.ok()) << c.labels << " " << c.fields << ": " << s.status();
    EXPECT_EQ(s->Matches(o), c.want) << c.labels << " | " << c.fields;
  }
  EXPECT_FALSE(Selector::Parse("app in a,b", "").ok());
  EXPECT_FALSE(Selector::Parse("app in ()", "").ok());
  EXPECT_FALSE(Selector::Parse("app within (a)", "").ok());
  EXPECT_FALSE(Selector::Parse("", "spec.x=1").ok());
  EXPECT_FALSE(Selector::Parse("", "metadata.name").ok());
  EXPECT_FALSE(Selector::Parse("=x", "").ok());
}

TEST(WithResourceVersion, IntoMetadata) {
  EXPECT_EQ(WithResourceVersion(R"({"kind":"X","metadata":{"name":"a"}})", 7),
            R"({"kind":"X","metadata":{"resourceVersion":"7","name":"a"}})");
  EXPECT_EQ(WithResourceVersion(R"({"metadata":{}})", 8),
            R"({"metadata":{"resourceVersion":"8"}})");
  EXPECT_EQ(WithResourceVersion(R"({"kind":"X"})", 9), R"({"kind":"X"})");
}

// The hub over a fake lister: versions grow with each change, watchers get
// ADDED/MODIFIED/DELETED in order, resume from a version, and a version
// older than the kept changes gets 410.
TEST(WatchHub, VersionsAndEvents) {
  std::mutex mu;
  std::vector<std::string> objects;
  auto set = [&](std::vector<std::string> v) {
    std::lock_guard<std::mutex> lock(mu);
    objects = std::move(v);
  };
  auto obj = [](const char* name, const char* spec) {
    return StrCat(
        R"({"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService","metadata":{"name":")",
        name, R"(","namespace":"default"},"spec":)", spec, "}");
  };
  WatchHub::Options options;
  options.poll = std::chrono::milliseconds(5);
  options.history = 3;
  WatchHub hub(
      [&](const resources::KindInfo&) -> absl::StatusOr<std::vector<ObjectView>> {
        std::lock_guard<std::mutex> lock(mu);
        std::vector<ObjectView> out;
        for (const auto& json : objects) out.push_back(*ObjectViewOf(json));
        return out;
      },
      options);
  const auto* isvc = resources::FindKind("isvc");
  set({obj("a", "1")});
  auto first = hub.Sync(*isvc);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->items.size(), 1u);
  const uint64_t rv_a = first->items[0]->resource_version;
  EXPECT_EQ(first->resource_version, rv_a);
  EXPECT_NE(first->items[0]->json.find(StrCat("\"resourceVersion\":\"", rv_a, "\"")),
            std::string::npos);
  // Unchanged: the same version.
  EXPECT_EQ(hub.Sync(*isvc)->resource_version, rv_a);

  // A watch from the list's version sees what changes after it, in order.
  auto stream = std::make_shared<HttpStream>();
  WatchHub::WatchRequest w;
  w.kind = isvc;
  w.since = first->resource_version;
  w.encode = [](const ObjectView& o) { return o.json; };
  ASSERT_TRUE(hub.Watch(w, stream).ok());
  set({obj("a", "2"), obj("b", "1")});
  ASSERT_TRUE(hub.Sync(*isvc).ok());
  set({obj("b", "1")});
  ASSERT_TRUE(hub.Sync(*isvc).ok());
  bool ended = false;
  std::string got = stream->Take(&ended, nullptr);
  size_t modified = got.find(R"({"type":"MODIFIED","object":{"apiVersion")");
  size_t added = got.find(R"({"type":"ADDED")");
  size_t deleted = got.find(R"({"type":"DELETED")");
  ASSERT_NE(modified, std::string::npos) << got;
  ASSERT_NE(added, std::string::npos) << got;
  ASSERT_NE(deleted, std::string::npos) << got;
  EXPECT_LT(modified, added);
  EXPECT_LT(added, deleted);
  EXPECT_EQ(std::count(got.begin(), got.end(), '\n'), 3);

  // A new watch without a version starts with what exists, as ADDED.
  auto fresh = std::make_shared<HttpStream>();
  w.since.reset();
  w.selector = *Selector::Parse("", "metadata.name=b");
  ASSERT_TRUE(hub.Watch(w, fresh).ok());
  got = fresh->Take(&ended, nullptr);
  EXPECT_EQ(std::count(got.begin(), got.end(), '\n'), 1) << got;
  EXPECT_NE(got.find(R"("name":"b")"), std::string::npos) << got;

  // Older than the three changes kept: 410 Expired, and the stream ends.
  for (int i = 0; i < 4; ++i) {
    set({obj("b", std::to_string(10 + i).c_str())});
    ASSERT_TRUE(hub.Sync(*isvc).ok());
  }
  auto old = std::make_shared<HttpStream>();
  w.since = rv_a;
  w.selector = Selector();
  ASSERT_TRUE(hub.Watch(w, old).ok());
  got = old->Take(&ended, nullptr);
  EXPECT_NE(got.find(R"({"type":"ERROR","object":{"kind":"Status")"), std::string::npos) << got;
  EXPECT_NE(got.find("\"code\":410"), std::string::npos) << got;
  EXPECT_FALSE(old->open());

  // The poller observes watched kinds by itself; Stop ends every watch.
  set({obj("c", "1")});
  std::string seen;
  for (int i = 0; i < 2000 && seen.find(R"("name":"c")") == std::string::npos; ++i) {
    seen += stream->Take(&ended, nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_NE(seen.find(R"("name":"c")"), std::string::npos);
  EXPECT_GE(hub.watchers(), 2u);
  hub.Stop();
  EXPECT_FALSE(stream->open());
  EXPECT_FALSE(fresh->open());
}

}  // namespace
}  // namespace osprey::controlplane
