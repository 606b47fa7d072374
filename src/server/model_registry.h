#pragma once

// The models a server holds, their lifecycle, and lookup on the request path.
//
// State of a model name:
//
//   UNAVAILABLE --Load--> LOADING --loaded and answered warm-up--> READY
//        ^                   |                                        |
//        |                   +--failed (reason kept)--> UNAVAILABLE   |
//        +--------------------------- UNLOADING <------Unload---------+
//
// A reload of a READY model keeps serving the old instance until the new one
// is READY, then swaps atomically. Requests in flight keep their instance alive
// through the shared_ptr they hold; unloading frees it when the last finishes.
//
// Threading: Get() is on the request path (shared lock, no allocation); Load
// and Unload serialise among themselves and may run on any thread. Their
// asynchronous forms run on the registry's one loader thread, so a frontend's
// thread (an HTTP event loop) never waits for a model to load.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "backends/backend.h"
#include "server/batcher.h"
#include "server/metrics.h"

namespace osprey {

enum class ModelState { kUnavailable, kLoading, kReady, kUnloading };

// A file in a model's directory declaring its size in bytes (a TrainedModel's
// spec.model.memory, written by the control plane): the model cache accounts
// the model at that size instead of the one it measures.
inline constexpr char kDeclaredMemoryFile[] = ".osprey-memory";
std::string_view ModelStateName(ModelState state);

struct ServedModel {
  std::string name;
  std::string version;
  // Every version of the model being served (this one included), ascending.
  std::vector<std::string> versions;
  // Triton's model configuration JSON of a model with a config.pbtxt
  // (backends/model_config.h ModelConfigJson); empty for the others.
  std::string config_json;
  std::unique_ptr<Model> model;
  ModelMetrics* metrics = nullptr;  // owned by Metrics, outlives the registry's users
  // Set when batching is on and the model is batchable. Declared after
  // `model`: destroyed first, after running what is still queued.
  std::unique_ptr<Batcher> batcher;
  // What the model holds: the heap its load kept plus its worker processes'
  // resident memory (Model::ExternalResidentBytes), measured after the load.
  uint64_t resident_bytes = 0;
};

struct ModelStatus {
  std::string name;
  std::string version;
  ModelState state = ModelState::kUnavailable;
  std::string reason;
};

class ModelRegistry {
 public:
  struct Options {
    // Directory of model directories, for load by name; empty when serving a
    // single --model-dir.
    std::filesystem::path repository;
    // The backends models may load with, in the order they are tried on a
    // model directory (the apps pass backends/registry.h's AllBackends()).
    // Not owned: they outlive the registry.
    std::vector<const Backend*> backends;
    // Backend to use (e.g. "xgboost"); empty: the first that recognises the files.
    std::string format;
    int threads_per_call = 1;
    int workers = 2;                      // processes per model for process-based backends (Python)
    BatchingOptions batching;             // applies to every batchable model
    std::vector<std::string> model_args;  // LoadOptions::args of every model
    // The memory-aware model cache (ModelMesh's idea, in one process): the
    // bytes the models may hold together, 0 for no budget. Each model's size
    // is what its directory declares (kDeclaredMemoryFile), else measured
    // after its load (the heap it kept, plus its worker processes' resident
    // memory; ServedModel::resident_bytes); a load that
    // would pass the budget first unloads the least recently used idle models
    // (evicted: UNAVAILABLE, not counted by AllReady). With a budget and a
    // repository, a request for a model of the repository that is not loaded
    // loads it (LoadsOnDemand, LoadIfAbsentAsync) and waits for it.
    uint64_t memory_budget = 0;
    // Load a repository's models on request without a budget too (a
    // multi-model InferenceService's replicas: TrainedModels arrive later).
    bool load_on_demand = false;
    // How long a request waits for its model's load (LoadIfAbsentAsync)
    // before it is answered DeadlineExceeded; 0: as long as the load takes.
    std::chrono::milliseconds load_wait_deadline{0};
  };

  ModelRegistry(Options options, Metrics* metrics);
  // Stops the loader (see StopAsync).
  ~ModelRegistry();
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // Called on the loading thread after every load or unload attempt, e.g. to
  // update a health service. Calls are serialised with loads and unloads (the
  // registry's lookup lock is not held), so they arrive in order; the callback
  // must not load or unload. Set it before anything can load or unload.
  void SetOnChange(std::function<void()> on_change) { on_change_ = std::move(on_change); }

  // Loads `name` from `dir` (a model directory, or one with numeric version
  // subdirectories, of which the highest is served). With Triton's
  // config.pbtxt in `dir` (or, without one there, in the version directory)
  // the configuration decides as Triton's does (backends/triton_model.h): the
  // backend from its platform, the versions from its version_policy (each
  // loaded; requests without a version get the highest), the instances from
  // its instance groups. Errors: NotFound for a missing directory,
  // InvalidArgument/Internal naming why the model failed, FailedPrecondition
  // or Unimplemented for what its configuration asks that Osprey does not run.
  absl::Status Load(const std::string& name, const std::filesystem::path& dir);
  // Load from <repository>/<name>. NotFound when there is no such directory.
  absl::Status LoadFromRepository(const std::string& name);
  // Every subdirectory of the repository, in name order; errors are recorded
  // per model (see Index) and the first is returned.
  absl::Status LoadAllFromRepository();
  absl::Status Unload(const std::string& name);

  // LoadFromRepository and Unload on the registry's loader thread (started at
  // the first call): `done` is called there, with what they return. Jobs run
  // one at a time in the order asked, e.g. an unload asked during a load runs
  // after it. After StopAsync, `done` is called at once with Unavailable.
  using AsyncDone = absl::AnyInvocable<void(absl::Status)>;
  void LoadFromRepositoryAsync(std::string name, AsyncDone done);
  void UnloadAsync(std::string name, AsyncDone done);
  // LoadFromRepositoryAsync, unless the model is READY when the job runs
  // (then `done` gets OK at once): what a request for an evicted model asks,
  // however many such requests arrive together. `done` runs on the
  // registry's resumer thread (not the loader: the request's inference must
  // not hold up the loads behind it).
  // With Options::load_wait_deadline, a waiter still waiting then gets
  // DeadlineExceeded (on the resumer thread) and the load goes on for others.
  void LoadIfAbsentAsync(std::string name, AsyncDone done);
  // True when a request that did not find `name` READY should load it rather
  // than fail: a memory budget is set (or load_on_demand), the repository
  // holds `name`, and its last load did not fail (no reload storm: the error
  // answers until a load is asked for explicitly).
  bool LoadsOnDemand(std::string_view name) const;
  // A request found its model READY (hit) or had to load it (miss); counted
  // for the cache's hit ratio when loading on demand.
  void CountLookup(bool hit) const;
  // Models are loaded on request (a budget, or load_on_demand, and a
  // repository): the cache's counters and series apply.
  bool CachesModels() const;
  // The cache's Prometheus series (loads, evictions, hits and misses, the
  // budget, the bytes in use and each model's resident bytes); "" without a
  // budget.
  std::string CacheMetrics() const;
  uint64_t memory_budget() const { return options_.memory_budget; }

  // Answers the queued jobs with Unavailable and waits for the one in
  // progress (its `done` is called). The destructor calls it; a server calls it
  // earlier when answers must not outlive the frontend they go to. Not from a
  // `done` callback.
  void StopAsync();

  // The READY model of that name (and version, when non-empty: any version
  // being served; empty: the highest). NotFound for an unknown name or
  // version, Unavailable (with the reason) when not ready.
  absl::StatusOr<std::shared_ptr<const ServedModel>> Get(std::string_view name,
                                                         std::string_view version) const;

  // Known models, plus the repository's unloaded directories, in name order;
  // a model serving several versions has one row per version.
  std::vector<ModelStatus> Index() const;
  std::vector<std::string> ReadyNames() const;
  // True when at least one model is known (or models load on demand) and
  // every model that should be served is READY (models explicitly unloaded or
  // evicted are not counted).
  bool AllReady() const;

 private:
  struct Entry {
    ModelState state = ModelState::kUnavailable;
    std::string reason;
    std::string version;
    std::shared_ptr<const ServedModel> served;                 // the highest version served
    std::vector<std::shared_ptr<const ServedModel>> versions;  // all of them, ascending
    bool wanted = true;  // false once explicitly unloaded: not counted by AllReady
    // The cache (Options::memory_budget): bytes measured at the last load
    // (kept after an eviction, the estimate for the next), the last request's
    // time (steady clock, ns), evictions of this model.
    uint64_t resident_bytes = 0;
    mutable std::atomic<int64_t> last_used{0};
    bool evicted = false;
    uint64_t attempts = 0;  // loads started (waiters join the next one's outcome)
  };

  absl::Status DoLoad(const std::string& name, const std::filesystem::path& dir);
  // Every version to serve, ascending.
  absl::StatusOr<std::vector<std::shared_ptr<const ServedModel>>> LoadModel(
      const std::string& name, const std::filesystem::path& dir);
  // One of them: `version` from `dir`, its model's directory `root`.
  absl::StatusOr<std::shared_ptr<const ServedModel>> LoadVersion(
      const std::string& name, const std::filesystem::path& root, const std::filesystem::path& dir,
      const std::string& version, const std::vector<std::string>& versions,
      const std::optional<ModelConfigFile>& config);
  void SetState(const std::string& name, ModelState state, std::string reason);
  // Evicts least recently used idle models (never `keep`) until `need` more
  // bytes fit the budget; the evicted instances go to `freed` (released
  // outside the lock). Under mu_ (unique).
  void MakeRoom(const std::string& keep, uint64_t need,
                std::vector<std::shared_ptr<const ServedModel>>* freed);
  uint64_t UsedBytesLocked() const;

  void Changed() {
    if (on_change_) on_change_();
  }

  struct Job {
    std::string name;
    bool load = true;  // else unload
    AsyncDone done;
    bool if_absent = false;  // a load that is done when the model is READY
    uint64_t attempts = 0;   // if_absent: the model's load attempts when it was asked
  };
  static absl::Status NotRun(const Job& job);
  void Enqueue(Job job);
  void RunJobs();

  Options options_;
  Metrics* metrics_;
  std::function<void()> on_change_;
  std::mutex load_mu_;  // serialises Load/Unload
  mutable std::shared_mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;

  std::mutex jobs_mu_;  // guards the four below
  std::condition_variable jobs_cv_;
  std::deque<Job> jobs_;
  bool jobs_stopped_ = false;
  std::thread loader_;  // started by the first job

  // Where waiters of LoadIfAbsentAsync resume (their inference runs there, not
  // on the loader thread); drained by StopAsync.
  void Resume(absl::AnyInvocable<void()> work);
  void RunResumes();
  std::mutex resume_mu_;
  std::condition_variable resume_cv_;
  std::deque<absl::AnyInvocable<void()>> resumes_;
  // Waiters with a deadline: whoever takes `done` first (the load's outcome
  // or the deadline) answers.
  struct Waiter {
    std::mutex mu;
    AsyncDone done;
    std::string name;
  };
  std::multimap<std::chrono::steady_clock::time_point, std::shared_ptr<Waiter>> deadlines_;
  bool resume_stopped_ = false;
  std::thread resumer_;

  // The cache's counters (Options::memory_budget).
  mutable std::atomic<uint64_t> loads_{0}, evictions_{0}, hits_{0}, misses_{0};
};

}  // namespace osprey
