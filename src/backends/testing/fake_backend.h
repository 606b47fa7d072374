#pragma once

// FakeBackend and FakeModel: a backend for the model server's tests, and the
// smallest complete example of backends/backend.h to copy when adding a
// framework (Triton's identity backend and TF Serving's hashmap servable play
// this part there).
//
// A FakeModel echoes: output i is the request's input i (bytes, datatype and
// shape as sent) under the name of declared output i. FakeBackend::Options
// says what it declares and how it misbehaves:
//   - inputs, outputs, batchable: its metadata;
//   - load_delay, load_status: a slow load, a load that fails;
//   - execute_delay: a slow execution (per task);
//   - fail_marker: a task whose input 0 has a row whose first value equals the
//     marker fails with InvalidArgument naming that row; the other tasks of the
//     same Execute call still answer (backend.h's contract);
//   - on_load, on_execute: hooks run at the start of a load and of each task,
//     on that thread, where a test can hold a load or an execution at a point
//     it controls instead of sleeping.
//
// A directory is recognised when it holds a file named "model.<name>", e.g.
// "model.fake" (its contents are not read). Thread-safe like every backend:
// loads and executions may run concurrently. The backend's counters outlive it
// in the models it loaded, so either may be destroyed first.
//
// With them: FakeGate, where a hook holds a thread until the test lets it go,
// and FakeRepository, a model repository in a temporary directory.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace osprey::testing {

// What a FakeBackend's models declare and how they misbehave (see above).
struct FakeBackendOptions {
  std::string name = "fake";
  std::vector<TensorSpec> inputs = {{"INPUT0", DataType::kFp32, {-1, 4}, {}}};
  std::vector<TensorSpec> outputs = {{"OUTPUT0", DataType::kFp32, {-1, 4}, {}}};
  bool batchable = true;
  std::chrono::milliseconds load_delay{0};
  std::chrono::milliseconds execute_delay{0};
  absl::Status load_status;  // not OK: every load fails with it
  std::optional<double> fail_marker;
  // A non-OK status fails that load (e.g. only one version of a model).
  std::function<absl::Status(const LoadOptions&)> on_load;
  std::function<void(const InferRequest&)> on_execute;
};

class FakeBackend final : public Backend {
 public:
  using Options = FakeBackendOptions;

  explicit FakeBackend(Options options = {});

  std::string_view name() const override { return state_->options.name; }
  bool Recognizes(const std::filesystem::path& dir) const override;
  absl::StatusOr<std::unique_ptr<Model>> Load(const LoadOptions& options) const override;

  int live_models() const { return state_->live_models.load(); }
  // Dim 0 of input 0 of every task executed so far, in order (warm-ups included).
  std::vector<int64_t> executed_rows() const;

  // What a backend and its models share.
  struct State {
    Options options;
    std::atomic<int> live_models{0};
    mutable std::mutex mu;
    std::vector<int64_t> executed_rows;  // guarded by mu
  };

 private:
  std::shared_ptr<State> state_;
};

class FakeModel final : public Model {
 public:
  FakeModel(std::shared_ptr<FakeBackend::State> state, const LoadOptions& options);
  ~FakeModel() override;

  const ModelMetadata& metadata() const override { return metadata_; }
  void Execute(std::span<InferTask> tasks) override;

 private:
  absl::Status Echo(const InferRequest& request, InferResponse* response) const;

  std::shared_ptr<FakeBackend::State> state_;
  ModelMetadata metadata_;
};

// A hook calls Pass() to be counted and held until Open(); the test waits
// for the arrivals it expects. Every wait is bounded (kLimit), so a test that
// fails reports it instead of hanging.
class FakeGate {
 public:
  static constexpr std::chrono::seconds kLimit{30};
  void Pass();
  // True once `n` callers reached Pass (false after kLimit).
  bool WaitArrivals(int n);
  void Open();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int arrivals_ = 0;
  bool open_ = false;
};

// A model repository in a fresh temporary directory, removed with the object.
class FakeRepository {
 public:
  FakeRepository();
  ~FakeRepository();
  FakeRepository(const FakeRepository&) = delete;
  FakeRepository& operator=(const FakeRepository&) = delete;

  const std::filesystem::path& root() const { return root_; }
  // Writes <root>/<model>/model.<backend>, or
  // <root>/<model>/<version>/model.<backend>; returns the model's directory.
  std::filesystem::path Add(const std::string& model, const std::string& version = "",
                            const std::string& backend = "fake");

 private:
  std::filesystem::path root_;
};

}  // namespace osprey::testing
