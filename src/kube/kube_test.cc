#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "kube/client.h"
#include "kube/config.h"
#include "kube/leader.h"
#include "kube/workqueue.h"

namespace osprey::kube {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ResourcePathTest, Table) {
  const ResourceRef pods{"", "v1", "pods", true};
  const ResourceRef deploy{"apps", "v1", "deployments", true};
  const ResourceRef csr{"serving.kserve.io", "v1alpha1", "clusterservingruntimes", false};
  struct Row {
    ResourceRef ref;
    std::string ns, name, sub, want;
  } rows[] = {
      {pods, "default", "", "", "/api/v1/namespaces/default/pods"},
      {pods, "", "", "", "/api/v1/pods"},
      {pods, "ns", "p", "status", "/api/v1/namespaces/ns/pods/p/status"},
      {deploy, "ns", "d", "scale", "/apis/apps/v1/namespaces/ns/deployments/d/scale"},
      {csr, "ignored", "kserve-sklearnserver", "",
       "/apis/serving.kserve.io/v1alpha1/clusterservingruntimes/kserve-sklearnserver"},
  };
  for (const auto& r : rows) EXPECT_EQ(ResourcePath(r.ref, r.ns, r.name, r.sub), r.want);
  EXPECT_EQ(QueryEscape("app in (a,b)"), "app%20in%20%28a%2Cb%29");
}

TEST(StatusOfTest, MapsCodesAndKeepsTheServersMessage) {
  struct Row {
    int status;
    std::string body;
    absl::StatusCode code;
    std::string contains;
  } rows[] = {
      {200, "{}", absl::StatusCode::kOk, ""},
      {404, R"({"kind":"Status","reason":"NotFound","message":"pods \"x\" not found"})",
       absl::StatusCode::kNotFound, "pods \"x\" not found"},
      {409, R"({"reason":"AlreadyExists","message":"exists"})", absl::StatusCode::kAlreadyExists,
       "exists"},
      {409, R"({"reason":"Conflict","message":"Apply failed with 1 conflict"})",
       absl::StatusCode::kAborted, "1 conflict"},
      {410, R"({"reason":"Expired","message":"too old resource version"})",
       absl::StatusCode::kOutOfRange, "too old"},
      {403, R"({"reason":"Forbidden","message":"cannot create"})",
       absl::StatusCode::kPermissionDenied, "cannot create"},
      {422, R"({"reason":"Invalid","message":"spec.replicas: Invalid value"})",
       absl::StatusCode::kInvalidArgument, "spec.replicas"},
      {503, "not json", absl::StatusCode::kUnavailable, "not json"},
  };
  for (const auto& r : rows) {
    absl::Status s = StatusOf(Response{r.status, r.body}, "GET /x");
    EXPECT_EQ(s.code(), r.code) << r.status;
    EXPECT_NE(std::string(s.message()).find(r.contains), std::string::npos) << s;
  }
}

TEST(StatusOfTest, KeepsTheCausesOfARefusal) {
  absl::Status terminating = StatusOf(
      Response{403, R"({"kind":"Status","reason":"Forbidden","message":"unable to create new )"
                    R"(content in namespace ns because it is being terminated","details":{)"
                    R"("causes":[{"reason":"FieldValueInvalid"},{"reason":"NamespaceTerminating",)"
                    R"("field":"metadata.namespace"}]}})"},
      "PATCH /x");
  EXPECT_EQ(terminating.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(HasCause(terminating, "NamespaceTerminating"));
  EXPECT_TRUE(HasCause(terminating, "FieldValueInvalid"));
  EXPECT_FALSE(HasCause(terminating, "Namespace"));
  EXPECT_FALSE(HasCause(StatusOf(Response{403, R"({"reason":"Forbidden"})"}, "GET /x"),
                        "NamespaceTerminating"));
  EXPECT_FALSE(HasCause(absl::OkStatus(), "NamespaceTerminating"));
}

TEST(RateLimiterTest, BurstThenQps) {
  RateLimiter limiter(10, 3);  // 10/s, burst 3
  auto t0 = RateLimiter::Clock::now();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Take(t0), RateLimiter::Clock::duration::zero());
  // The fourth waits a tenth of a second, the fifth two tenths.
  EXPECT_NEAR(std::chrono::duration<double>(limiter.Take(t0)).count(), 0.1, 1e-6);
  EXPECT_NEAR(std::chrono::duration<double>(limiter.Take(t0)).count(), 0.2, 1e-6);
  // A second later the bucket has refilled to its burst, no more.
  auto t1 = t0 + seconds(2);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Take(t1), RateLimiter::Clock::duration::zero());
  EXPECT_GT(limiter.Take(t1), RateLimiter::Clock::duration::zero());
}

TEST(WorkQueueTest, DeduplicatesWaitingKeys) {
  WorkQueue q;
  q.Add("ns/a");
  q.Add("ns/b");
  q.Add("ns/a");
  EXPECT_EQ(q.Len(), 2u);
  EXPECT_EQ(*q.Get(), "ns/a");
  EXPECT_EQ(*q.Get(), "ns/b");
  EXPECT_EQ(q.Len(), 0u);
}

TEST(WorkQueueTest, AKeyInProgressIsNotHandedOutTwice) {
  WorkQueue q;
  q.Add("ns/a");
  ASSERT_EQ(*q.Get(), "ns/a");
  q.Add("ns/a");  // changed while a worker holds it
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_EQ(q.Processing(), 1u);
  q.Done("ns/a");  // now it is queued again, once
  EXPECT_EQ(q.Len(), 1u);
  EXPECT_EQ(*q.Get(), "ns/a");
  q.Done("ns/a");
  EXPECT_EQ(q.Len(), 0u);
}

TEST(WorkQueueTest, ConcurrentWorkersNeverShareAKey) {
  WorkQueue q(milliseconds(1), milliseconds(5));
  std::atomic<int> inside[4] = {0, 0, 0, 0};
  std::atomic<bool> overlap{false};
  std::atomic<int> done{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      while (auto key = q.Get()) {
        int k = (*key)[0] - 'a';
        if (inside[k].fetch_add(1) != 0) overlap = true;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        inside[k].fetch_sub(1);
        done.fetch_add(1);
        q.Done(*key);
      }
    });
  }
  for (int i = 0; i < 400; ++i) q.Add(std::string(1, static_cast<char>('a' + i % 4)));
  auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while ((q.Len() > 0 || q.Processing() > 0) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(1));
  q.ShutDown();
  for (auto& t : workers) t.join();
  EXPECT_FALSE(overlap.load());
  EXPECT_GE(done.load(), 4);
  EXPECT_LE(done.load(), 400);
}

TEST(WorkQueueTest, BackoffDoublesPerKeyUntilForgotten) {
  WorkQueue q(milliseconds(10), milliseconds(50));
  struct Row {
    int failures;
    int64_t want_ms;
  } rows[] = {{0, 10}, {1, 20}, {2, 40}, {3, 50}, {10, 50}};
  for (const auto& r : rows) {
    WorkQueue fresh(milliseconds(10), milliseconds(50));
    for (int i = 0; i < r.failures; ++i) fresh.AddRateLimited("k");
    EXPECT_EQ(std::chrono::duration_cast<milliseconds>(fresh.NextDelay("k")).count(), r.want_ms)
        << r.failures;
    EXPECT_EQ(fresh.NextDelay("other"), milliseconds(10));
    fresh.ShutDown();
  }
  q.AddRateLimited("k");
  q.AddRateLimited("k");
  EXPECT_EQ(q.Failures("k"), 2);
  q.Forget("k");
  EXPECT_EQ(q.Failures("k"), 0);
  EXPECT_EQ(q.NextDelay("k"), milliseconds(10));
}

TEST(WorkQueueTest, DelayedKeysComeBackAfterTheirDelay) {
  WorkQueue q;
  auto start = std::chrono::steady_clock::now();
  q.AddAfter("late", milliseconds(80));
  q.AddAfter("early", milliseconds(20));
  EXPECT_EQ(q.Len(), 0u);
  EXPECT_EQ(*q.Get(), "early");
  EXPECT_EQ(*q.Get(), "late");
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(80));
  q.ShutDown();
  EXPECT_FALSE(q.Get().has_value());
}

TEST(LeaseTest, DecisionTable) {
  using A = LeaseAction;
  struct Row {
    bool exists;
    std::string holder;
    int lease_seconds;
    int64_t unchanged_ms;
    A want;
  } rows[] = {
      {false, "", 0, 0, A::kCreate},
      {true, "me", 15, 0, A::kRenew},
      {true, "me", 15, 60000, A::kRenew},
      {true, "", 15, 0, A::kTakeOver},  // released by its holder
      {true, "other", 15, 14999, A::kWait},
      {true, "other", 15, 15000, A::kTakeOver},
  };
  for (const auto& r : rows) {
    LeaseRecord rec{r.holder, r.lease_seconds, 0};
    EXPECT_EQ(DecideLease(r.exists, rec, "me", milliseconds(r.unchanged_ms)), r.want)
        << r.holder << " " << r.unchanged_ms;
  }
}

class KubeconfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("osprey-kubeconfig-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  std::filesystem::path dir_;
};

TEST_F(KubeconfigTest, CurrentContextWithDataAndToken) {
  // "-----BEGIN CERTIFICATE-----" in base64
  std::string path = Write("config", R"(apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: c1
  cluster:
    server: https://10.0.0.1:6443/
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
- name: c2
  cluster: {server: https://other:443}
users:
- name: u1
  user: {token: abc123}
contexts:
- name: prod
  context: {cluster: c1, user: u1, namespace: models}
- name: dev
  context: {cluster: c2, user: u1}
)");
  auto c = LoadKubeconfig(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_EQ(c->ca_pem, "-----BEGIN CERTIFICATE-----");
  EXPECT_EQ(c->token, "abc123");
  EXPECT_EQ(c->namespace_, "models");
  auto dev = LoadKubeconfig(path, "dev");
  ASSERT_TRUE(dev.ok());
  EXPECT_EQ(dev->server, "https://other:443");
  EXPECT_EQ(dev->namespace_, "default");
}

TEST_F(KubeconfigTest, RelativeFilesAreReadFromTheConfigsDirectory) {
  std::string path = Write("config", R"(current-context: x
clusters: [{name: c, cluster: {server: "https://h", certificate-authority: ca.crt}}]
users: [{name: u, user: {client-certificate: certs/u.crt, client-key: /abs/u.key}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
)");
  auto c = LoadKubeconfig(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->ca_file, (dir_ / "ca.crt").string());
  EXPECT_EQ(c->cert_file, (dir_ / "certs/u.crt").string());
  EXPECT_EQ(c->key_file, "/abs/u.key");
}

TEST_F(KubeconfigTest, ErrorsNameTheProblem) {
  struct Row {
    std::string text, context, contains;
  } rows[] = {
      {"clusters: []\n", "", "no current-context"},
      {"current-context: a\ncontexts: []\n", "", "no context named a"},
      {"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n", "",
       "names cluster c"},
      {"current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
       "clusters: [{name: c, cluster: {server: https://h}}]\n"
       "users: [{name: u, user: {exec: {command: aws}}}]\n",
       "", "exec plugin"},
      {": : :\n  - [", "", "kubeconfig"},
  };
  for (const auto& r : rows) {
    auto c = LoadKubeconfig(Write("bad", r.text), r.context);
    ASSERT_FALSE(c.ok()) << r.text;
    EXPECT_NE(std::string(c.status().message()).find(r.contains), std::string::npos) << c.status();
  }
  EXPECT_EQ(LoadKubeconfig((dir_ / "missing").string()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(KubeconfigTest, InClusterReadsTheServiceAccount) {
  Write("token", "tok\n");
  Write("ca.crt", "pem");
  Write("namespace", "osprey-system\n");
  ::setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto c = InClusterConfig(dir_.string());
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  ::unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->token_file, (dir_ / "token").string());
  EXPECT_EQ(c->ca_file, (dir_ / "ca.crt").string());
  EXPECT_EQ(c->namespace_, "osprey-system");
  EXPECT_EQ(InClusterConfig(dir_.string()).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace osprey::kube
