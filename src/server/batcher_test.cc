#include "server/batcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <future>

namespace osprey {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::microseconds;

TEST(DecideBatchTest, Table) {
  const Clock::time_point t0 = Clock::now();
  auto at = [&](int us) { return t0 + microseconds(us); };
  BatchingOptions opts;
  opts.max_batch_size = 8;
  opts.max_queue_delay = microseconds(100);
  BatchingOptions preferred = opts;
  preferred.preferred_batch_sizes = {2, 4};
  BatchingOptions no_delay = opts;
  no_delay.max_queue_delay = microseconds(0);

  struct Case {
    const char* name;
    std::vector<QueuedRequest> queue;
    const BatchingOptions* options;
    int now_us;
    std::vector<size_t> take;  // empty: wait
    int wake_us;               // when waiting
  } cases[] = {
      {"lone request waits for the delay", {{1, 7, at(0)}}, &opts, 10, {}, 100},
      {"delay passed: runs what is there", {{1, 7, at(0)}, {2, 7, at(5)}}, &opts, 100, {0, 1}, 0},
      {"no delay: runs at once", {{1, 7, at(0)}}, &no_delay, 0, {0}, 0},
      {"full batch runs at once", {{4, 7, at(0)}, {4, 7, at(1)}}, &opts, 2, {0, 1}, 0},
      {"next compatible does not fit: runs at once",
       {{5, 7, at(0)}, {2, 7, at(1)}, {3, 7, at(2)}},
       &opts,
       3,
       {0, 1},
       0},
      {"other shapes are skipped, not merged",
       {{1, 7, at(0)}, {1, 9, at(1)}, {1, 7, at(2)}},
       &opts,
       200,
       {0, 2},
       0},
      {"unbatchable head runs alone", {{0, 7, at(0)}, {1, 7, at(1)}}, &opts, 1, {0}, 0},
      {"unbatchable requests are never joined", {{1, 7, at(0)}, {0, 7, at(1)}}, &opts, 200, {0}, 0},
      {"request over the limit runs alone", {{20, 7, at(0)}, {1, 7, at(1)}}, &opts, 1, {0}, 0},
      {"request exactly the limit runs alone", {{8, 7, at(0)}, {1, 7, at(1)}}, &opts, 1, {0}, 0},
      {"largest preferred size runs at once",
       {{2, 7, at(0)}, {2, 7, at(1)}, {1, 7, at(2)}},
       &preferred,
       3,
       {0, 1},
       0},
      {"smaller preferred size waits for more", {{2, 7, at(0)}}, &preferred, 3, {}, 100},
      {"wait is timed from the oldest", {{1, 7, at(50)}, {1, 7, at(90)}}, &opts, 60, {}, 150},
  };
  for (const Case& c : cases) {
    BatchDecision d = DecideBatch(c.queue, *c.options, at(c.now_us));
    EXPECT_EQ(d.take, c.take) << c.name;
    if (c.take.empty()) {
      EXPECT_EQ(d.wake_at, at(c.wake_us)) << c.name;
    }
  }
}

Tensor Fp32(std::string name, Shape shape, std::vector<float> values) {
  Tensor t(std::move(name), DataType::kFp32, std::move(shape));
  t.SetData(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
  return t;
}

std::vector<float> Floats(const Tensor& t) {
  std::vector<float> v(t.data().size() / 4);
  std::memcpy(v.data(), t.data().data(), t.data().size());
  return v;
}

TEST(BatcherTest, DescribeKeysByShapeAndParameters) {
  InferRequest a, b, c, d;
  a.inputs.push_back(Fp32("x", {2, 3}, std::vector<float>(6)));
  b.inputs.push_back(Fp32("x", {5, 3}, std::vector<float>(15)));
  c.inputs.push_back(Fp32("x", {2, 4}, std::vector<float>(8)));
  d = InferRequest{};
  d.inputs.push_back(Fp32("x", {2, 3}, std::vector<float>(6)));
  d.parameters.push_back({"raw", true});
  EXPECT_EQ(DescribeRequest(a).rows, 2);
  EXPECT_EQ(DescribeRequest(b).rows, 5);
  EXPECT_EQ(DescribeRequest(a).key, DescribeRequest(b).key);
  EXPECT_NE(DescribeRequest(a).key, DescribeRequest(c).key);
  EXPECT_NE(DescribeRequest(a).key, DescribeRequest(d).key);
  InferRequest scalar;
  scalar.inputs.push_back(Fp32("x", {}, {1}));
  EXPECT_EQ(DescribeRequest(scalar).rows, 0);
  InferRequest ragged;
  ragged.inputs.push_back(Fp32("x", {2}, {1, 2}));
  ragged.inputs.push_back(Fp32("y", {3}, {1, 2, 3}));
  EXPECT_EQ(DescribeRequest(ragged).rows, 0);
}

TEST(BatcherTest, MergeAndSplitRoundTrip) {
  InferRequest a, b;
  a.inputs.push_back(Fp32("x", {1, 2}, {1, 2}));
  b.inputs.push_back(Fp32("x", {2, 2}, {3, 4, 5, 6}));
  const InferRequest* both[] = {&a, &b};
  auto merged = MergeRequests(both);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->inputs[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(Floats(merged->inputs[0]), (std::vector<float>{1, 2, 3, 4, 5, 6}));

  InferResponse out;
  out.outputs.push_back(Fp32("y", {3}, {10, 20, 30}));
  Tensor names("label", DataType::kBytes, {3, 1});
  for (const char* s : {"a", "bb", "ccc"}) AppendBytesElement(s, names.mutable_owned_data());
  out.outputs.push_back(std::move(names));
  InferResponse ra, rb;
  int64_t rows[] = {1, 2};
  InferResponse* responses[] = {&ra, &rb};
  ASSERT_TRUE(SplitResponse(out, rows, responses).ok());
  EXPECT_EQ(Floats(ra.outputs[0]), (std::vector<float>{10}));
  EXPECT_EQ(Floats(rb.outputs[0]), (std::vector<float>{20, 30}));
  EXPECT_EQ(rb.outputs[1].shape(), (Shape{2, 1}));
  BytesReader reader(rb.outputs[1].data());
  std::string_view e;
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e, "bb");
  ASSERT_TRUE(reader.Next(&e));
  EXPECT_EQ(e, "ccc");

  InferResponse no_batch_dim;
  no_batch_dim.outputs.push_back(Fp32("z", {2}, {1, 2}));
  absl::Status s = SplitResponse(no_batch_dim, rows, responses);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'z'"), std::string_view::npos) << s;
}

// Doubles its input row by row; records the rows of every execution. A row
// whose first value is negative fails the whole execution.
class DoublingModel : public Model {
 public:
  const ModelMetadata& metadata() const override { return metadata_; }
  void Execute(std::span<InferTask> tasks) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls.push_back(tasks.size());
    }
    for (InferTask& task : tasks) {
      const Tensor& in = task.request->inputs[0];
      {
        std::lock_guard<std::mutex> lock(mu_);
        executions.push_back(in.shape()[0]);
      }
      std::vector<float> v = Floats(in);
      for (int64_t r = 0; r < in.shape()[0]; ++r)
        if (v[static_cast<size_t>(r * in.shape()[1])] < 0) {
          task.status = absl::InvalidArgumentError("negative value");
          break;
        }
      if (!task.status.ok()) continue;
      for (float& x : v) x *= 2;
      task.response->outputs.push_back(Fp32("y", in.shape(), v));
    }
  }
  std::vector<int64_t> Executions() {
    std::lock_guard<std::mutex> lock(mu_);
    return executions;
  }
  // Tasks per Execute call.
  std::vector<size_t> Calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls;
  }

 private:
  ModelMetadata metadata_;
  std::mutex mu_;
  std::vector<int64_t> executions;
  std::vector<size_t> calls;
};

struct Call {
  InferRequest request;
  InferResponse response;
  std::promise<absl::Status> done;
};

std::unique_ptr<Call> MakeCall(std::vector<float> values, int64_t cols = 2) {
  auto c = std::make_unique<Call>();
  int64_t rows = static_cast<int64_t>(values.size()) / cols;
  c->request.inputs.push_back(Fp32("x", {rows, cols}, std::move(values)));
  return c;
}

void Submit(Batcher& b, Call* c) {
  b.Submit(&c->request, &c->response,
           [c](absl::Status s, ExecutionTimes) { c->done.set_value(std::move(s)); });
}

TEST(BatcherTest, MergesConcurrentRequestsAndAnswersEachCaller) {
  DoublingModel model;
  ModelMetrics metrics;
  BatchingOptions opts;
  opts.max_batch_size = 16;
  opts.max_queue_delay = std::chrono::seconds(5);  // only a full batch runs
  opts.preferred_batch_sizes = {6};
  Batcher batcher(&model, &metrics, opts);
  std::vector<std::unique_ptr<Call>> calls;
  calls.push_back(MakeCall({1, 2}));
  calls.push_back(MakeCall({3, 4, 5, 6}));
  calls.push_back(MakeCall({7, 8, 9, 10, 11, 12}));  // 1 + 2 + 3 rows = preferred 6
  for (auto& c : calls) Submit(batcher, c.get());
  for (auto& c : calls) {
    auto f = c->done.get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(3)), std::future_status::ready);
    ASSERT_TRUE(f.get().ok());
  }
  EXPECT_EQ(model.Executions(), (std::vector<int64_t>{6}));
  EXPECT_EQ(Floats(calls[0]->response.outputs[0]), (std::vector<float>{2, 4}));
  EXPECT_EQ(Floats(calls[1]->response.outputs[0]), (std::vector<float>{6, 8, 10, 12}));
  EXPECT_EQ(calls[2]->response.outputs[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(metrics.executions.load(), 1u);
  EXPECT_EQ(metrics.batched_requests.load(), 3u);
}

// The executor already waits for the first request's deadline when the
// others arrive: the one that reaches the largest preferred size runs the
// batch, long before the deadline.
TEST(BatcherTest, ReachingThePreferredSizeRunsTheBatchAtOnce) {
  DoublingModel model;
  ModelMetrics metrics;
  BatchingOptions opts;
  opts.max_batch_size = 16;
  opts.max_queue_delay = std::chrono::seconds(30);
  opts.preferred_batch_sizes = {2, 4};
  // The calls outlive the batcher, which runs what is left when destroyed.
  auto first = MakeCall({1, 2});
  std::vector<std::unique_ptr<Call>> rest;
  Batcher batcher(&model, &metrics, opts);
  Submit(batcher, first.get());
  auto f = first->done.get_future();
  // The executor took the first request and waits for its deadline.
  EXPECT_EQ(f.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
  for (int i = 0; i < 3; ++i) {
    rest.push_back(MakeCall({3, 4}));
    Submit(batcher, rest.back().get());
  }
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(f.get().ok());
  for (auto& c : rest) EXPECT_TRUE(c->done.get_future().get().ok());
  EXPECT_EQ(model.Executions(), (std::vector<int64_t>{4}));
}

TEST(BatcherTest, WithoutMergingABatchReachesTheModelAsItsRequests) {
  DoublingModel model;
  ModelMetrics metrics;
  BatchingOptions opts;
  opts.max_batch_size = 16;
  opts.max_queue_delay = std::chrono::seconds(5);  // only a full batch runs
  opts.preferred_batch_sizes = {6};
  opts.merge = false;
  Batcher batcher(&model, &metrics, opts);
  std::vector<std::unique_ptr<Call>> calls;
  calls.push_back(MakeCall({1, 2}));
  calls.push_back(MakeCall({-3, 4, 5, 6}));  // fails alone
  calls.push_back(MakeCall({7, 8, 9, 10, 11, 12}));
  for (auto& c : calls) Submit(batcher, c.get());
  std::vector<absl::Status> statuses;
  for (auto& c : calls) {
    auto f = c->done.get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(3)), std::future_status::ready);
    statuses.push_back(f.get());
  }
  EXPECT_EQ(model.Calls(), (std::vector<size_t>{3}));  // one call, three tasks
  EXPECT_EQ(model.Executions(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(statuses[0].ok());
  EXPECT_EQ(statuses[1].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(statuses[2].ok());
  EXPECT_EQ(Floats(calls[0]->response.outputs[0]), (std::vector<float>{2, 4}));
  EXPECT_EQ(calls[2]->response.outputs[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(metrics.executions.load(), 1u);
  EXPECT_EQ(metrics.batched_requests.load(), 3u);
}

TEST(BatcherTest, DifferentShapesAreNotMerged) {
  DoublingModel model;
  ModelMetrics metrics;
  BatchingOptions opts;
  opts.max_batch_size = 4;
  opts.max_queue_delay = microseconds(20000);
  Batcher batcher(&model, &metrics, opts);
  auto a = MakeCall({1, 2}, 2);
  auto b = MakeCall({1, 2, 3}, 3);
  Submit(batcher, a.get());
  Submit(batcher, b.get());
  EXPECT_TRUE(a->done.get_future().get().ok());
  EXPECT_TRUE(b->done.get_future().get().ok());
  EXPECT_EQ(model.Executions(), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(Floats(b->response.outputs[0]), (std::vector<float>{2, 4, 6}));
  EXPECT_EQ(metrics.batched_requests.load(), 0u);
}

TEST(BatcherTest, BadRequestFailsAloneNotItsBatch) {
  DoublingModel model;
  ModelMetrics metrics;
  BatchingOptions opts;
  opts.max_batch_size = 3;
  opts.max_queue_delay = std::chrono::seconds(5);
  Batcher batcher(&model, &metrics, opts);
  auto good1 = MakeCall({1, 1});
  auto bad = MakeCall({-1, 1});
  auto good2 = MakeCall({2, 2});
  for (Call* c : {good1.get(), bad.get(), good2.get()}) Submit(batcher, c);
  EXPECT_TRUE(good1->done.get_future().get().ok());
  absl::Status s = bad->done.get_future().get();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(good2->done.get_future().get().ok());
  EXPECT_EQ(Floats(good2->response.outputs[0]), (std::vector<float>{4, 4}));
  EXPECT_EQ(good1->response.outputs.size(), 1u);
}

TEST(BatcherTest, DestructionRunsWhatIsQueued) {
  DoublingModel model;
  ModelMetrics metrics;
  BatchingOptions opts;
  opts.max_batch_size = 100;
  opts.max_queue_delay = std::chrono::seconds(60);
  std::vector<std::unique_ptr<Call>> calls;
  {
    Batcher batcher(&model, &metrics, opts);
    for (int i = 0; i < 5; ++i) {
      calls.push_back(MakeCall({float(i), 1}));
      Submit(batcher, calls.back().get());
    }
  }  // would wait 60 s for a fuller batch; stopping runs it now
  for (auto& c : calls) {
    auto f = c->done.get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    EXPECT_TRUE(f.get().ok());
  }
}

}  // namespace
}  // namespace osprey
