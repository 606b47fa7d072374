#include "server/inference_core.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "backends/testing/fake_backend.h"

namespace osprey {
namespace {

using testing::FakeBackend;
using testing::FakeRepository;

std::string Floats(std::vector<float> values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

InferRequest Request(std::string model, std::vector<float> values) {
  InferRequest request;
  request.model_name = std::move(model);
  Tensor t("INPUT0", DataType::kFp32, {static_cast<int64_t>(values.size() / 4), 4});
  t.SetData(Floats(std::move(values)));
  request.inputs.push_back(std::move(t));
  return request;
}

// A model "m" of `fake` loaded into a registry with `batching`.
struct Server {
  FakeRepository repo;
  Metrics metrics;
  std::unique_ptr<ModelRegistry> registry;
  std::unique_ptr<InferenceCore> core;

  Server(FakeBackend* fake, BatchingOptions batching = {}) {
    repo.Add("m");
    ModelRegistry::Options options;
    options.repository = repo.root();
    options.backends = {fake};
    options.batching = std::move(batching);
    registry = std::make_unique<ModelRegistry>(options, &metrics);
    core = std::make_unique<InferenceCore>(registry.get());
    absl::Status loaded = registry->LoadFromRepository("m");
    EXPECT_TRUE(loaded.ok()) << loaded;
  }
  ModelMetrics& m() { return *metrics.ForModel("m"); }
};

// Calls of Infer whose completions may come on other threads; waits for all.
class Completions {
 public:
  explicit Completions(size_t n) : statuses_(n, absl::UnknownError("not completed")) {}
  InferDone Done(size_t i) {
    return [this, i](absl::Status s) {
      std::lock_guard<std::mutex> lock(mu_);
      statuses_[i] = std::move(s);
      ++completed_;
      cv_.notify_all();
    };
  }
  bool WaitAll() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30),
                        [this] { return completed_ == statuses_.size(); });
  }
  const absl::Status& status(size_t i) const { return statuses_[i]; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<absl::Status> statuses_;
  size_t completed_ = 0;
};

TEST(InferenceCoreTest, EchoesKeepsRequestedOutputsAndCounts) {
  FakeBackend fake(FakeBackend::Options{
      .inputs = {{"A", DataType::kFp32, {-1, 2}}, {"B", DataType::kInt64, {-1}}},
      .outputs = {{"X", DataType::kFp32, {-1, 2}}, {"Y", DataType::kInt64, {-1}}},
      .batchable = false,
  });
  Server server(&fake);
  InferRequest request;
  request.model_name = "m";
  request.id = "r-1";
  Tensor a("A", DataType::kFp32, {1, 2});
  a.SetData(Floats({1.5f, -2}));
  Tensor b("B", DataType::kInt64, {1});
  int64_t seven = 7;
  b.SetData(std::string(reinterpret_cast<const char*>(&seven), sizeof(seven)));
  request.inputs = {a, b};
  request.outputs = {{"Y", {}}};
  InferResponse response;
  absl::Status status = absl::UnknownError("not called");
  server.core->Infer(request, &response, InferenceCore::Clock::now(),
                     [&status](absl::Status s) { status = std::move(s); });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(response.model_name, "m");
  EXPECT_EQ(response.model_version, "1");
  EXPECT_EQ(response.id, "r-1");
  ASSERT_EQ(response.outputs.size(), 1u);
  EXPECT_EQ(response.outputs[0].name(), "Y");
  EXPECT_EQ(response.outputs[0].datatype(), DataType::kInt64);
  EXPECT_EQ(response.outputs[0].data(), b.data());
  EXPECT_EQ(server.m().success.load(), 1u);
  EXPECT_EQ(server.m().executions.load(), 1u);
  EXPECT_EQ(server.m().pending.load(), 0);
}

TEST(InferenceCoreTest, ABadRequestNeverReachesTheModel) {
  FakeBackend fake;
  Server server(&fake);
  InferRequest wrong_shape = Request("m", {1, 2, 3, 4});
  wrong_shape.inputs[0].mutable_shape()->assign({2, 2});
  struct Case {
    InferRequest request;
    absl::StatusCode code;
    const char* message;
  } cases[] = {
      {wrong_shape, absl::StatusCode::kInvalidArgument, "expects shape [-1,4], got [2,2]"},
      {Request("nope", {1, 2, 3, 4}), absl::StatusCode::kNotFound, "model 'nope' not found"},
  };
  for (Case& c : cases) {
    InferResponse response;
    absl::Status status;
    server.core->Infer(c.request, &response, InferenceCore::Clock::now(),
                       [&status](absl::Status s) { status = std::move(s); });
    EXPECT_EQ(status.code(), c.code) << status;
    EXPECT_NE(status.message().find(c.message), std::string_view::npos) << status;
  }
  EXPECT_EQ(fake.executed_rows(), std::vector<int64_t>{1});  // the warm-up only
  EXPECT_EQ(server.m().failure.load(), 1u);
}

// Concurrent requests become one execution of the model; each caller gets its
// own rows back.
TEST(InferenceCoreTest, ConcurrentRequestsRunAsOneBatch) {
  FakeBackend fake;
  // Full at 4 rows; the delay is long enough that only a full batch runs.
  Server server(&fake,
                BatchingOptions{.max_batch_size = 4, .max_queue_delay = std::chrono::minutes(1)});
  constexpr size_t kRequests = 4;
  std::vector<InferRequest> requests;
  std::vector<InferResponse> responses(kRequests);
  for (size_t i = 0; i < kRequests; ++i)
    requests.push_back(Request("m", {float(i), 10.f + i, 20.f + i, 30.f + i}));
  Completions done(kRequests);
  std::vector<std::thread> callers;
  for (size_t i = 0; i < kRequests; ++i)
    callers.emplace_back([&, i] {
      server.core->Infer(requests[i], &responses[i], InferenceCore::Clock::now(), done.Done(i));
    });
  for (std::thread& t : callers) t.join();
  ASSERT_TRUE(done.WaitAll());
  for (size_t i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(done.status(i).ok()) << i << ": " << done.status(i);
    ASSERT_EQ(responses[i].outputs.size(), 1u);
    EXPECT_EQ(responses[i].outputs[0].name(), "OUTPUT0");
    EXPECT_EQ(responses[i].outputs[0].shape(), (Shape{1, 4}));
    EXPECT_EQ(responses[i].outputs[0].data(), requests[i].inputs[0].data()) << i;
  }
  EXPECT_EQ(fake.executed_rows(), (std::vector<int64_t>{1, 4}));  // warm-up, then one batch
  EXPECT_EQ(server.m().executions.load(), 1u);
  EXPECT_EQ(server.m().batched_requests.load(), kRequests);
  EXPECT_EQ(server.m().success.load(), kRequests);
}

// A row the model refuses fails its own request only: the batch fails, and
// its requests run again one by one.
TEST(InferenceCoreTest, AFailingRowFailsOnlyItsRequest) {
  FakeBackend fake(FakeBackend::Options{.fail_marker = -1.0});
  Server server(&fake,
                BatchingOptions{.max_batch_size = 4, .max_queue_delay = std::chrono::minutes(1)});
  constexpr size_t kRequests = 4;
  constexpr size_t kBad = 2;
  std::vector<InferRequest> requests;
  std::vector<InferResponse> responses(kRequests);
  for (size_t i = 0; i < kRequests; ++i)
    requests.push_back(Request("m", {i == kBad ? -1.f : float(i), 1, 2, 3}));
  Completions done(kRequests);
  // Infer returns once a request is queued; the fourth fills the batch.
  for (size_t i = 0; i < kRequests; ++i)
    server.core->Infer(requests[i], &responses[i], InferenceCore::Clock::now(), done.Done(i));
  ASSERT_TRUE(done.WaitAll());
  for (size_t i = 0; i < kRequests; ++i) {
    if (i == kBad) {
      EXPECT_EQ(done.status(i).code(), absl::StatusCode::kInvalidArgument) << done.status(i);
      EXPECT_NE(done.status(i).message().find("failure marker"), std::string_view::npos);
    } else {
      ASSERT_TRUE(done.status(i).ok()) << i << ": " << done.status(i);
      EXPECT_EQ(responses[i].outputs.at(0).data(), requests[i].inputs[0].data()) << i;
    }
  }
  EXPECT_EQ(fake.executed_rows(), (std::vector<int64_t>{1, 4, 1, 1, 1, 1}));
  EXPECT_EQ(server.m().success.load(), kRequests - 1);
  EXPECT_EQ(server.m().failure.load(), 1u);
  EXPECT_EQ(server.m().pending.load(), 0);
}

TEST(InferenceCoreTest, AModelWithoutABatchDimensionIsNotBatched) {
  FakeBackend fake(FakeBackend::Options{.batchable = false});
  Server server(&fake,
                BatchingOptions{.max_batch_size = 4, .max_queue_delay = std::chrono::minutes(1)});
  EXPECT_EQ((*server.registry->Get("m", ""))->batcher, nullptr);
  InferRequest request = Request("m", {1, 2, 3, 4});
  InferResponse response;
  absl::Status status = absl::UnknownError("not called");
  // Runs inline: answered before Infer returns, with no batch to wait for.
  server.core->Infer(request, &response, InferenceCore::Clock::now(),
                     [&status](absl::Status s) { status = std::move(s); });
  EXPECT_TRUE(status.ok()) << status;
}

}  // namespace
}  // namespace osprey
