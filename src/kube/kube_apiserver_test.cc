// The Kubernetes client against a real kube-apiserver and etcd, started by
// scripts/k8s-testenv.sh (built from the Go module proxy into a cache; `make
// test` builds them first).

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "common/json_dom.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/informer.h"
#include "kube/leader.h"
#include "net/http_client.h"

namespace osprey::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const ResourceRef kConfigMaps{"", "v1", "configmaps", true};
const ResourceRef kNamespaces{"", "v1", "namespaces", false};

std::string Shell(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  if (rc != 0) out = "FAILED: " + out;
  return out;
}

template <typename F>
bool WaitFor(F cond, milliseconds timeout = milliseconds(10000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

class ApiServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::filesystem::temp_directory_path() /
                           ("osprey-kube-" + std::to_string(::getpid())));
    // Without the watch cache a watch is served from etcd, so a compacted
    // resourceVersion is refused with 410 Gone (InformerRelistsOnGone).
    std::string out = Shell("WITH_KCM=0 WITH_SCHEDULER=0 APISERVER_ARGS=--watch-cache=false " +
                            Script() + " start " + *dir_ + " 2>&1");
    started_ = out.find("export KUBECONFIG=") != std::string::npos;
    if (!started_) std::fprintf(stderr, "k8s-testenv start failed:\n%s\n", out.c_str());
  }
  static void TearDownTestSuite() {
    Shell(Script() + " stop " + *dir_ + " 2>&1");
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::string Script() { return std::string(OSPREY_SOURCE_DIR) + "/scripts/k8s-testenv.sh"; }

  void SetUp() override {
    ASSERT_TRUE(started_) << "the test API server did not start (see stderr; "
                             "scripts/k8s-testenv.sh build builds it)";
    auto config = LoadKubeconfig(*dir_ + "/kubeconfig");
    ASSERT_TRUE(config.ok()) << config.status();
    client_ = std::make_unique<Client>(*config);
    ns_ = std::string("t-") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : ns_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto r = client_->Call(
        "POST", ResourcePath(kNamespaces, ""),
        R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":")" + ns_ + "\"}}");
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(r->status == 201 || r->status == 409) << r->body;
  }

  std::string ConfigMap(const std::string& name, const std::string& key, const std::string& value) {
    return R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name +
           R"(","namespace":")" + ns_ + R"("},"data":{")" + key + R"(":")" + value + "\"}}";
  }

  static std::string* dir_;
  static bool started_;
  std::unique_ptr<Client> client_;
  std::string ns_;
};
std::string* ApiServerTest::dir_ = nullptr;
bool ApiServerTest::started_ = false;

TEST_F(ApiServerTest, ClientCertificateFromKubeconfigData) {
  auto version = client_->Get("/version");
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_NE(version->find("\"gitVersion\""), std::string::npos);
}

TEST_F(ApiServerTest, TokenAuthAndBadToken) {
  auto config = LoadKubeconfig(*dir_ + "/kcm.kubeconfig");  // a bearer token, CA file
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->token.empty());
  Client good(*config);
  EXPECT_TRUE(good.Get("/api/v1/namespaces/default").ok());
  config->token = "not-a-token";
  Client bad(*config);
  EXPECT_EQ(bad.Get("/api/v1/namespaces/default").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(ApiServerTest, TokenFileIsReadAgainWhenItChanges) {
  auto config = LoadKubeconfig(*dir_ + "/kcm.kubeconfig");
  ASSERT_TRUE(config.ok());
  std::string token_file = *dir_ + "/token-" + ns_;
  std::ofstream(token_file) << "stale-token\n";
  std::string good = config->token;
  config->token.clear();
  config->token_file = token_file;
  Client client(*config);
  EXPECT_EQ(client.Get("/api/v1/namespaces/default").status().code(),
            absl::StatusCode::kUnauthenticated);
  // The rotated token (a later mtime) is used from the next request on.
  std::filesystem::last_write_time(
      token_file, std::filesystem::last_write_time(token_file) - std::chrono::hours(1));
  std::ofstream(token_file) << good << "\n";
  EXPECT_TRUE(client.Get("/api/v1/namespaces/default").ok());
}

TEST_F(ApiServerTest, ServerSideApplyReportsConflictsAndForceTakesTheField) {
  const std::string path = ResourcePath(kConfigMaps, ns_, "cm");
  auto first = client_->Apply(path, ConfigMap("cm", "size", "1"), "osprey");
  ASSERT_TRUE(first.ok()) << first.status();
  // Applying the same again changes nothing.
  auto same = client_->Apply(path, ConfigMap("cm", "size", "1"), "osprey");
  ASSERT_TRUE(same.ok());
  rapidjson::Document a, b;
  a.Parse(first->c_str());
  b.Parse(same->c_str());
  EXPECT_EQ(json::GetString(a["metadata"], "resourceVersion"),
            json::GetString(b["metadata"], "resourceVersion"));
  // Another manager's value for the same field is a conflict, not an overwrite.
  auto other = client_->Apply(path, ConfigMap("cm", "size", "2"), "someone-else");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAborted);
  EXPECT_NE(std::string(other.status().message()).find("conflict"), std::string::npos)
      << other.status();
  auto forced = client_->Apply(path, ConfigMap("cm", "size", "2"), "someone-else", true);
  ASSERT_TRUE(forced.ok()) << forced.status();
  auto got = client_->Get(path);
  ASSERT_TRUE(got.ok());
  EXPECT_NE(got->find("\"size\":\"2\""), std::string::npos);
}

TEST_F(ApiServerTest, InformerListsThenWatchesChanges) {
  for (int i = 0; i < 5; ++i) {
    std::string name = "pre-" + std::to_string(i);
    ASSERT_TRUE(
        client_->Apply(ResourcePath(kConfigMaps, ns_, name), ConfigMap(name, "k", "v"), "osprey")
            .ok());
  }
  InformerOptions options;
  options.resource = kConfigMaps;
  options.namespace_ = ns_;
  options.page_size = 2;  // the list comes in pages
  Informer informer(client_.get(), options);
  std::mutex mu;
  std::vector<std::string> events;
  informer.AddHandler([&](const ObjectPtr& now, const ObjectPtr& before) {
    std::lock_guard<std::mutex> lock(mu);
    std::string what = now == nullptr ? "deleted" : before == nullptr ? "added" : "modified";
    events.push_back(what + " " + (now ? now : before)->name);
  });
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(seconds(10)));
  // kube-root-ca.crt is made by the controller manager, which does not run here.
  EXPECT_EQ(informer.size(), 5u);
  ASSERT_TRUE(
      client_
          ->Apply(ResourcePath(kConfigMaps, ns_, "pre-0"), ConfigMap("pre-0", "k", "w"), "osprey")
          .ok());
  ASSERT_TRUE(client_->Call("DELETE", ResourcePath(kConfigMaps, ns_, "pre-1")).ok());
  ASSERT_TRUE(
      client_->Apply(ResourcePath(kConfigMaps, ns_, "new"), ConfigMap("new", "k", "v"), "osprey")
          .ok());
  ASSERT_TRUE(WaitFor([&] { return informer.Get(ns_ + "/new") != nullptr; }));
  EXPECT_TRUE(WaitFor([&] { return informer.Get(ns_ + "/pre-1") == nullptr; }));
  auto pre0 = informer.Get(ns_ + "/pre-0");
  ASSERT_NE(pre0, nullptr);
  EXPECT_EQ(json::GetString(pre0->doc["data"], "k"), "w");
  informer.Stop();
  std::set<std::string> seen(events.begin(), events.end());
  EXPECT_TRUE(seen.contains("added pre-4"));
  EXPECT_TRUE(seen.contains("modified pre-0"));
  EXPECT_TRUE(seen.contains("deleted pre-1"));
  EXPECT_TRUE(seen.contains("added new"));
  EXPECT_EQ(informer.lists(), 1u);
}

TEST_F(ApiServerTest, InformerResumesAfterTheServerEndsAWatch) {
  InformerOptions options;
  options.resource = kConfigMaps;
  options.namespace_ = ns_;
  options.watch_timeout_seconds = 1;  // the server closes each watch after a second
  Informer informer(client_.get(), options);
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(seconds(10)));
  ASSERT_TRUE(WaitFor([&] { return informer.watches() >= 3; }));
  ASSERT_TRUE(
      client_->Apply(ResourcePath(kConfigMaps, ns_, "late"), ConfigMap("late", "k", "v"), "osprey")
          .ok());
  EXPECT_TRUE(WaitFor([&] { return informer.Get(ns_ + "/late") != nullptr; }));
  EXPECT_EQ(informer.lists(), 1u);  // resumed from its resourceVersion, never listed again
}

// etcd's own JSON API: the current revision, and a compaction up to it.
void CompactEtcd(const std::string& dir) {
  std::ifstream port_file(dir + "/etcd.port");
  int port = 0;
  port_file >> port;
  HttpClient http;
  HttpClientRequest range;
  range.method = "POST";
  range.url = "http://127.0.0.1:" + std::to_string(port) + "/v3/kv/range";
  range.body = R"({"key":"AA=="})";
  auto r = http.Send(range);
  ASSERT_TRUE(r.ok()) << r.status();
  rapidjson::Document d;
  d.Parse(r->body.c_str());
  ASSERT_TRUE(d.IsObject() && d.HasMember("header")) << r->body;
  std::string revision = json::GetString(d["header"], "revision");
  HttpClientRequest compact;
  compact.method = "POST";
  compact.url = "http://127.0.0.1:" + std::to_string(port) + "/v3/kv/compaction";
  compact.body = R"({"revision":")" + revision + R"(","physical":true})";
  auto c = http.Send(compact);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->status, 200) << c->body;
}

TEST_F(ApiServerTest, InformerRelistsOnGone) {
  InformerOptions options;
  options.resource = kConfigMaps;
  options.namespace_ = ns_;
  options.watch_timeout_seconds = 1;  // it watches again every second, from its version
  Informer informer(client_.get(), options);
  std::atomic<int> added{0};
  informer.AddHandler([&](const ObjectPtr& now, const ObjectPtr& before) {
    if (now != nullptr && before == nullptr) added.fetch_add(1);
  });
  informer.Start();
  ASSERT_TRUE(informer.WaitForSync(seconds(10)));
  // Writes elsewhere move etcd on; compacting them away leaves the
  // informer's version behind: its next watch gets 410 and it lists again.
  const std::string other = ns_ + "-other";
  ASSERT_TRUE(
      client_
          ->Call("POST", ResourcePath(kNamespaces, ""),
                 R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":")" + other + "\"}}")
          .ok());
  std::string saved_ns = ns_;
  int i = 0;
  bool relisted = WaitFor(
      [&] {
        ns_ = other;
        std::string name = "w" + std::to_string(i++);
        client_->Apply(ResourcePath(kConfigMaps, other, name), ConfigMap(name, "k", "v"), "osprey")
            .IgnoreError();
        ns_ = saved_ns;
        CompactEtcd(*dir_);
        return informer.lists() >= 2;
      },
      milliseconds(30000));
  EXPECT_TRUE(relisted) << "lists: " << informer.lists();
  // And it keeps working after the relist.
  ASSERT_TRUE(
      client_
          ->Apply(ResourcePath(kConfigMaps, ns_, "after"), ConfigMap("after", "k", "v"), "osprey")
          .ok());
  EXPECT_TRUE(WaitFor([&] { return informer.Get(ns_ + "/after") != nullptr; }));
  informer.Stop();
}

TEST_F(ApiServerTest, LeaderElectionOneLeadsAndAnotherTakesOver) {
  LeaderOptions options;
  options.namespace_ = ns_;
  options.name = "election";
  options.lease_duration = milliseconds(2000);
  options.renew_deadline = milliseconds(1500);
  options.retry_period = milliseconds(100);
  options.identity = "a";
  LeaderElector a(client_.get(), options);
  options.identity = "b";
  LeaderElector b(client_.get(), options);
  a.Start([] {}, [] {});
  ASSERT_TRUE(WaitFor([&] { return a.leading(); }));
  EXPECT_TRUE(a.valid());
  b.Start([] {}, [] {});
  // b keeps waiting while a renews.
  std::this_thread::sleep_for(milliseconds(2500));
  EXPECT_TRUE(a.leading());
  EXPECT_FALSE(b.leading());
  auto stopped = std::chrono::steady_clock::now();
  a.Stop();  // gives the lease up
  EXPECT_FALSE(a.leading());
  EXPECT_FALSE(a.valid());
  ASSERT_TRUE(WaitFor([&] { return b.leading(); }, milliseconds(5000)));
  EXPECT_LT(std::chrono::steady_clock::now() - stopped, milliseconds(2000));
  b.Stop();
}

}  // namespace
}  // namespace osprey::kube
