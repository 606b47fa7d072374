#include "server/batcher.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "common/logging.h"
#include "common/strings.h"

namespace osprey {
namespace {

using Clock = std::chrono::steady_clock;

// Requests looked at per decision: keeps a decision cheap under a deep queue.
constexpr size_t kScanLimit = 4096;

void HashMix(uint64_t* h, uint64_t v) { *h ^= v + 0x9e3779b97f4a7c15ULL + (*h << 6) + (*h >> 2); }

void HashString(uint64_t* h, std::string_view s) { HashMix(h, std::hash<std::string_view>{}(s)); }

void HashParameters(uint64_t* h, const Parameters& params) {
  for (const auto& [key, value] : params) {
    HashString(h, key);
    HashMix(h, value.index());
    std::visit(
        [h](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>)
            HashString(h, v);
          else
            HashMix(h, std::hash<T>{}(v));
        },
        value);
  }
}

}  // namespace

BatchDecision DecideBatch(std::span<const QueuedRequest> queue, const BatchingOptions& options,
                          Clock::time_point now) {
  BatchDecision d;
  const QueuedRequest& head = queue[0];
  d.take.push_back(0);
  // A request that cannot be batched, or fills a batch by itself, runs alone.
  if (head.rows <= 0 || head.rows >= options.max_batch_size) return d;
  int64_t total = head.rows;
  bool full = false;
  const int64_t largest_preferred = options.preferred_batch_sizes.empty()
                                        ? 0
                                        : *std::max_element(options.preferred_batch_sizes.begin(),
                                                            options.preferred_batch_sizes.end());
  auto preferred = [&](int64_t rows) {
    return std::find(options.preferred_batch_sizes.begin(), options.preferred_batch_sizes.end(),
                     rows) != options.preferred_batch_sizes.end();
  };
  size_t preferred_prefix = preferred(total) ? 1 : 0;  // requests in the largest preferred prefix
  int64_t preferred_rows = preferred_prefix ? total : 0;
  for (size_t i = 1; i < queue.size() && i < kScanLimit && total < options.max_batch_size; ++i) {
    const QueuedRequest& q = queue[i];
    if (q.rows <= 0 || q.key != head.key) continue;
    if (total + q.rows > options.max_batch_size) {
      full = true;
      break;
    }
    d.take.push_back(i);
    total += q.rows;
    if (preferred(total)) {
      preferred_prefix = d.take.size();
      preferred_rows = total;
    }
  }
  if (full || total >= options.max_batch_size) return d;
  if (largest_preferred > 0 && preferred_rows == largest_preferred) {
    d.take.resize(preferred_prefix);
    return d;
  }
  Clock::time_point deadline = head.enqueued + options.max_queue_delay;
  if (now >= deadline) return d;
  d.take.clear();
  d.wake_at = deadline;
  return d;
}

QueuedRequest DescribeRequest(const InferRequest& request) {
  QueuedRequest q;
  q.enqueued = Clock::now();
  if (request.inputs.empty()) return q;
  uint64_t h = 0;
  int64_t rows = -1;
  for (const Tensor& t : request.inputs) {
    const Shape& shape = t.shape();
    if (shape.empty()) return q;  // a scalar has no batch dimension
    if (rows >= 0 && shape[0] != rows) return q;
    rows = shape[0];
    HashString(&h, t.name());
    HashMix(&h, static_cast<uint64_t>(t.datatype()));
    HashMix(&h, shape.size());
    for (size_t i = 1; i < shape.size(); ++i) HashMix(&h, static_cast<uint64_t>(shape[i]));
  }
  HashParameters(&h, request.parameters);
  q.rows = rows;
  q.key = h;
  return q;
}

absl::StatusOr<InferRequest> MergeRequests(std::span<const InferRequest* const> requests) {
  const InferRequest& first = *requests[0];
  InferRequest merged;
  merged.model_name = first.model_name;
  merged.model_version = first.model_version;
  merged.parameters = first.parameters;
  for (size_t i = 0; i < first.inputs.size(); ++i) {
    const Tensor& head = first.inputs[i];
    Shape shape = head.shape();
    shape[0] = 0;
    size_t bytes = 0;
    for (const InferRequest* r : requests) {
      if (r->inputs.size() != first.inputs.size() || r->inputs[i].name() != head.name() ||
          r->inputs[i].datatype() != head.datatype() ||
          r->inputs[i].shape().size() != head.shape().size())
        return absl::InternalError(
            StrCat("batched requests disagree on input '", head.name(), "'"));
      shape[0] += r->inputs[i].shape()[0];
      bytes += r->inputs[i].data().size();
    }
    Tensor t(head.name(), head.datatype(), std::move(shape));
    std::string* out = t.mutable_owned_data();
    out->reserve(bytes);
    for (const InferRequest* r : requests) out->append(r->inputs[i].data());
    merged.inputs.push_back(std::move(t));
  }
  return merged;
}

absl::Status SplitResponse(const InferResponse& merged, std::span<const int64_t> rows,
                           std::span<InferResponse* const> responses) {
  int64_t total = 0;
  for (int64_t r : rows) total += r;
  for (const Tensor& out : merged.outputs) {
    const Shape& shape = out.shape();
    if (shape.empty() || shape[0] != total)
      return absl::InvalidArgumentError(StrCat("output '", out.name(), "' of shape ",
                                               ShapeToString(shape), " has no batch dimension of ",
                                               total, " rows; the model cannot be batched"));
    std::string_view data = out.data();
    const int64_t per_row = total == 0 ? 0 : out.element_count() / total;
    BytesReader reader(data);  // for BYTES: element boundaries
    size_t offset = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      Shape part_shape = shape;
      part_shape[0] = rows[i];
      size_t len = 0;
      if (out.datatype() == DataType::kBytes) {
        std::string_view element;
        for (int64_t e = 0; e < rows[i] * per_row; ++e) {
          if (!reader.Next(&element))
            return absl::InternalError(StrCat("output '", out.name(), "' is malformed"));
          len += 4 + element.size();
        }
      } else {
        len = static_cast<size_t>(rows[i] * per_row) * ElementSize(out.datatype());
      }
      if (offset + len > data.size())
        return absl::InternalError(StrCat("output '", out.name(), "' is shorter than its shape"));
      Tensor part(out.name(), out.datatype(), std::move(part_shape));
      *part.mutable_parameters() = out.parameters();
      part.SetData(std::string(data.substr(offset, len)));
      offset += len;
      responses[i]->outputs.push_back(std::move(part));
    }
  }
  for (InferResponse* r : responses) r->parameters = merged.parameters;
  return absl::OkStatus();
}

Batcher::Batcher(Model* model, ModelMetrics* metrics, BatchingOptions options)
    : model_(model), metrics_(metrics), options_(std::move(options)) {
  run_at_rows_ = options_.max_batch_size;
  const auto& preferred = options_.preferred_batch_sizes;
  if (!preferred.empty())
    run_at_rows_ = std::min(run_at_rows_, *std::max_element(preferred.begin(), preferred.end()));
  const int n = std::max(1, options_.executors);
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { Run(); });
}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void Batcher::Submit(const InferRequest* request, InferResponse* response, BatchDone done) {
  QueuedRequest q = DescribeRequest(*request);
  std::vector<Pending> batch;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Pending{request, response, std::move(done)});
    described_.push_back(q);
    queued_rows_ += std::max<int64_t>(q.rows, 1);
    // This request filled a batch (or reached the largest preferred size):
    // run it here, on the caller's thread, rather than pay a hand-off to an
    // executor and back (one waiting for a deadline would not look sooner).
    if (queued_rows_ >= run_at_rows_) batch = TakeLocked(Clock::now());
    // Wake an executor only when that changes something (one is idle and
    // there is work). Waking on every arrival would cost a context switch per
    // request; one waiting for a deadline wakes up on its own.
    wake = idle_ > 0 && !queue_.empty();
  }
  if (wake) cv_.notify_one();
  if (!batch.empty()) Execute(batch);
}

std::vector<Batcher::Pending> Batcher::TakeLocked(Clock::time_point now) {
  std::vector<Pending> batch;
  const size_t scan = std::min(kScanLimit, described_.size());
  BatchDecision d = DecideBatch(std::span(described_.data(), scan), options_, now);
  batch.reserve(d.take.size());
  for (size_t i : d.take) {
    batch.push_back(std::move(queue_[i]));
    queued_rows_ -= std::max<int64_t>(described_[i].rows, 1);
  }
  // Erase taken entries (indices ascending) from both queues.
  for (size_t k = d.take.size(); k-- > 0;) {
    queue_.erase(queue_.begin() + static_cast<ptrdiff_t>(d.take[k]));
    described_.erase(described_.begin() + static_cast<ptrdiff_t>(d.take[k]));
  }
  next_wake_ = d.wake_at;
  return batch;
}

void Batcher::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (queue_.empty() && !stopping_) {
      ++idle_;
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      --idle_;
    }
    if (queue_.empty()) return;  // stopping, nothing left
    std::vector<Pending> batch = TakeLocked(Clock::now());
    if (batch.empty()) {
      if (stopping_) {  // no more arrivals to wait for: run the oldest
        batch.push_back(std::move(queue_.front()));
        queued_rows_ -= std::max<int64_t>(described_.front().rows, 1);
        queue_.pop_front();
        described_.erase(described_.begin());
      } else {
        ++timed_;
        cv_.wait_until(lock, next_wake_);
        --timed_;
        continue;
      }
    }
    // Another executor may be able to start on what is left.
    if (!queue_.empty() && idle_ > 0) cv_.notify_one();
    lock.unlock();
    Execute(batch);
    lock.lock();
  }
}

void Batcher::ExecuteAlone(Pending& p) {
  ExecutionTimes times;
  times.start = Clock::now();
  InferTask task{p.request, p.response, absl::OkStatus()};
  try {
    model_->Execute(std::span<InferTask>(&task, 1));
  } catch (const std::exception& e) {
    task.status = absl::InternalError(StrCat("internal error: ", e.what()));
  }
  times.end = Clock::now();
  metrics_->executions.fetch_add(1, std::memory_order_relaxed);
  Complete(p, std::move(task.status), times);
}

void Batcher::ExecuteTogether(std::vector<Pending>& batch) {
  std::vector<InferTask> tasks;
  tasks.reserve(batch.size());
  for (const Pending& p : batch)
    tasks.push_back(InferTask{p.request, p.response, absl::OkStatus()});
  ExecutionTimes times;
  times.start = Clock::now();
  try {
    model_->Execute(std::span<InferTask>(tasks));
  } catch (const std::exception& e) {
    for (InferTask& t : tasks) t.status = absl::InternalError(StrCat("internal error: ", e.what()));
  }
  times.end = Clock::now();
  metrics_->executions.fetch_add(1, std::memory_order_relaxed);
  metrics_->batched_requests.fetch_add(batch.size(), std::memory_order_relaxed);
  for (size_t i = 0; i < batch.size(); ++i) Complete(batch[i], std::move(tasks[i].status), times);
}

void Batcher::Complete(Pending& p, absl::Status status, ExecutionTimes times) {
  // Completions encode answers; nothing there throws by design, and this
  // guard keeps a bug from taking the executor thread down.
  try {
    p.done(std::move(status), times);
  } catch (const std::exception& e) {
    OSPREY_LOG(kError) << "completing a request failed: " << e.what();
  }
}

void Batcher::Execute(std::vector<Pending>& batch) {
  if (batch.size() == 1) {
    ExecuteAlone(batch[0]);
    return;
  }
  if (!options_.merge) {
    ExecuteTogether(batch);
    return;
  }
  std::vector<const InferRequest*> requests;
  std::vector<InferResponse*> responses;
  std::vector<int64_t> rows;
  for (const Pending& p : batch) {
    requests.push_back(p.request);
    responses.push_back(p.response);
    rows.push_back(p.request->inputs[0].shape()[0]);
  }
  ExecutionTimes times;
  times.start = Clock::now();
  absl::Status status;
  InferResponse merged_response;
  auto merged = MergeRequests(requests);
  if (!merged.ok()) {
    status = merged.status();
  } else {
    InferTask task{&*merged, &merged_response, absl::OkStatus()};
    try {
      model_->Execute(std::span<InferTask>(&task, 1));
    } catch (const std::exception& e) {
      task.status = absl::InternalError(StrCat("internal error: ", e.what()));
    }
    status = task.status;
  }
  times.end = Clock::now();
  times.batch_size = static_cast<int>(batch.size());
  metrics_->executions.fetch_add(1, std::memory_order_relaxed);
  if (status.ok()) status = SplitResponse(merged_response, rows, responses);
  if (status.ok()) {
    metrics_->batched_requests.fetch_add(batch.size(), std::memory_order_relaxed);
    for (Pending& p : batch) Complete(p, absl::OkStatus(), times);
    return;
  }
  // Keep a bad request (or a model that cannot be batched) from failing its
  // neighbours: each runs alone and gets its own answer.
  OSPREY_LOG(kDebug) << "batch of " << batch.size() << " failed (" << status.message()
                     << "); running its requests one by one";
  for (Pending& p : batch) {
    p.response->outputs.clear();
    ExecuteAlone(p);
  }
}

}  // namespace osprey
