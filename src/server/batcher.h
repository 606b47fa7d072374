#pragma once

// Dynamic batching: concurrent requests to one model are queued, merged along
// the batch dimension (dim 0 of every input) into one execution, and the
// outputs are split back to each caller by rows.
//
// Who joins a batch: requests with the same batch key (same input names and
// datatypes, same dims after the first, same request parameters) whose rows
// together stay within max_batch_size. A request that cannot join (different
// shape, or more rows than max_batch_size) runs alone when its turn comes.
// The queue is served oldest first: the oldest request always goes in the next
// batch, later compatible ones join it, incompatible ones wait their turn.
//
// When a batch runs (DecideBatch, a pure function): at once when it is full
// (max_batch_size rows, or the next compatible request does not fit) or has
// the largest preferred size; otherwise when its oldest request has waited
// max_queue_delay (0: whatever is queued when an executor is free, the
// adaptive batching that costs no latency).
//
// A merged execution that fails is retried request by request, so one bad
// request fails alone and its neighbours still answer. Without merging
// (BatchingOptions::merge false) the batch's requests go to Model::Execute
// as one span of tasks, each answered with its own status.
//
// Threading: Submit is thread-safe; `executors` threads per model take
// batches and run Model::Execute; completions are called on those threads,
// except that the request which fills a batch runs that batch on its own
// (the submitting) thread, saving two thread hand-offs per batch.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "backends/backend.h"
#include "server/metrics.h"

namespace osprey {

struct BatchingOptions {
  int64_t max_batch_size = 0;  // rows per execution; 0 turns batching off
  std::chrono::microseconds max_queue_delay{0};
  std::vector<int64_t> preferred_batch_sizes;  // rows; any order
  int executors = 1;                           // threads executing batches, per model
  // False: the requests of a batch are handed to Model::Execute together,
  // one task each, instead of merged into one request (BatchingHint::merge).
  bool merge = true;
  bool enabled() const { return max_batch_size > 0; }
};

// What the decision needs to know about one queued request.
struct QueuedRequest {
  int64_t rows = 0;  // dim 0; <= 0 when the request cannot be batched
  uint64_t key = 0;  // batch key hash; equal keys may be merged
  std::chrono::steady_clock::time_point enqueued;
};

struct BatchDecision {
  std::vector<size_t> take;                       // queue indices to run now, oldest first
  std::chrono::steady_clock::time_point wake_at;  // when `take` is empty: decide again then
};

// Pure: which queued requests run now, or until when to wait. The queue is in
// arrival order and not empty.
BatchDecision DecideBatch(std::span<const QueuedRequest> queue, const BatchingOptions& options,
                          std::chrono::steady_clock::time_point now);

// The batch key of a request, and its rows (0 when it has no common dim 0).
QueuedRequest DescribeRequest(const InferRequest& request);

// Concatenates the inputs of requests (all with one batch key) along dim 0.
// The result owns its bytes.
absl::StatusOr<InferRequest> MergeRequests(std::span<const InferRequest* const> requests);

// Splits every output of `merged` by rows: requests[i] gets rows[i] rows, in
// order. InvalidArgument, naming the output, when one has no batch dimension.
absl::Status SplitResponse(const InferResponse& merged, std::span<const int64_t> rows,
                           std::span<InferResponse* const> responses);

struct ExecutionTimes {
  std::chrono::steady_clock::time_point start, end;
  int batch_size = 1;  // requests in the execution
};
using BatchDone = absl::AnyInvocable<void(absl::Status, ExecutionTimes)>;

class Batcher {
 public:
  // `model` and `metrics` outlive the batcher.
  Batcher(Model* model, ModelMetrics* metrics, BatchingOptions options);
  // Runs what is still queued, then stops the executors.
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues a validated request. The caller keeps request and response alive
  // until `done` is called (once, on an executor thread).
  void Submit(const InferRequest* request, InferResponse* response, BatchDone done);

  const BatchingOptions& options() const { return options_; }

 private:
  struct Pending {
    const InferRequest* request;
    InferResponse* response;
    BatchDone done;
  };

  void Run();
  // Under mu_: removes and returns what DecideBatch says runs now (may be
  // nothing; then next_wake_ says when to decide again).
  std::vector<Pending> TakeLocked(std::chrono::steady_clock::time_point now);
  void Execute(std::vector<Pending>& batch);
  void ExecuteAlone(Pending& p);
  void ExecuteTogether(std::vector<Pending>& batch);
  static void Complete(Pending& p, absl::Status status, ExecutionTimes times);

  Model* model_;
  ModelMetrics* metrics_;
  BatchingOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  std::vector<QueuedRequest> described_;  // parallel to queue_; contiguous for DecideBatch
  std::chrono::steady_clock::time_point next_wake_;
  int64_t queued_rows_ = 0;  // rows in queue_ (an unbatchable request counts 1)
  // Queued rows at which a submission decides at once: max_batch_size, or
  // the largest preferred size when smaller.
  int64_t run_at_rows_ = 0;
  int idle_ = 0;   // executors waiting for any request
  int timed_ = 0;  // executors waiting for a batch's deadline
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace osprey
