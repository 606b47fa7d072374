#include "server/model_registry.h"

#include <algorithm>
#include <cstdlib>
#include <system_error>

#include "common/logging.h"
#include "common/strings.h"
#include "server/validate.h"

namespace osprey {
namespace {

namespace fs = std::filesystem;

bool IsVersionDir(const fs::directory_entry& e) {
  std::string n = e.path().filename().string();
  std::error_code ec;
  return e.is_directory(ec) && !n.empty() &&
         std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The highest numeric version subdirectory, or (dir, "1") when there is none.
std::pair<fs::path, std::string> ResolveVersion(const fs::path& dir) {
  std::error_code ec;
  fs::path best;
  long long best_v = -1;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!IsVersionDir(e)) continue;
    long long v = std::atoll(e.path().filename().c_str());
    if (v > best_v) {
      best_v = v;
      best = e.path();
    }
  }
  if (best_v < 0) return {dir, "1"};
  return {best, std::to_string(best_v)};
}

}  // namespace

std::string_view ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kUnavailable:
      return "UNAVAILABLE";
    case ModelState::kLoading:
      return "LOADING";
    case ModelState::kReady:
      return "READY";
    case ModelState::kUnloading:
      return "UNLOADING";
  }
  return "UNKNOWN";
}

ModelRegistry::ModelRegistry(Options options, Metrics* metrics)
    : options_(std::move(options)), metrics_(metrics) {}

ModelRegistry::~ModelRegistry() { StopAsync(); }

void ModelRegistry::SetState(const std::string& name, ModelState state, std::string reason) {
  std::unique_lock lock(mu_);
  Entry& e = entries_[name];
  e.state = state;
  e.reason = std::move(reason);
}

absl::StatusOr<std::shared_ptr<const ServedModel>> ModelRegistry::LoadModel(const std::string& name,
                                                                            const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return absl::NotFoundError(StrCat("model directory ", dir.string(), " does not exist"));
  auto [model_dir, version] = ResolveVersion(dir);

  const Backend* backend = nullptr;
  if (!options_.format.empty()) {
    for (const Backend* b : options_.backends) {
      if (b->name() == options_.format) {
        backend = b;
        break;
      }
    }
    if (backend == nullptr)
      return absl::InvalidArgumentError(
          StrCat("model format '", options_.format, "' is not built into this server"));
  } else {
    for (const Backend* b : options_.backends) {
      if (b->Recognizes(model_dir)) {
        backend = b;
        break;
      }
    }
    if (backend == nullptr)
      return absl::InvalidArgumentError(StrCat(
          "no backend recognises the files in ", model_dir.string(),
          " (XGBoost expects one *.json, *.ubj or *.bst model file; LightGBM one text model, *.txt "
          "or *.bst)"));
  }

  LoadOptions load;
  load.name = name;
  load.version = version;
  load.dir = model_dir;
  load.threads_per_call = options_.threads_per_call;
  load.workers = options_.workers;
  OSPREY_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, backend->Load(load));
  // Ready means the model answered: one warm-up request through the real path.
  OSPREY_RETURN_IF_ERROR(WarmUp(*model));

  auto served = std::make_shared<ServedModel>();
  served->name = name;
  served->version = version;
  served->model = std::move(model);
  served->metrics = metrics_->ForModel(name);
  // The model's own batching request (its config.pbtxt) wins over the flags.
  BatchingOptions batching = options_.batching;
  if (const auto& hint = served->model->metadata().batching) {
    if (!(hint->overridable && options_.batching.enabled())) {
      batching.max_batch_size = hint->max_batch_size;
      batching.max_queue_delay = std::chrono::microseconds(hint->max_queue_delay_us);
      batching.preferred_batch_sizes = hint->preferred_batch_sizes;
    }
    if (hint->executors > 0) batching.executors = hint->executors;
  }
  if (batching.enabled()) {
    if (served->model->metadata().batchable) {
      served->batcher = std::make_unique<Batcher>(served->model.get(), served->metrics, batching);
      OSPREY_LOG(kInfo) << "model '" << name << "': dynamic batching up to "
                        << batching.max_batch_size << " rows, max queue delay "
                        << batching.max_queue_delay.count() << " us";
    } else {
      OSPREY_LOG(kInfo) << "model '" << name
                        << "' declares no batch dimension: its requests run one by one";
    }
  }
  return std::shared_ptr<const ServedModel>(std::move(served));
}

absl::Status ModelRegistry::Load(const std::string& name, const fs::path& dir) {
  // Loads, unloads and their change notifications happen one at a time, so
  // listeners see them in order.
  std::lock_guard<std::mutex> load_lock(load_mu_);
  absl::Status status = DoLoad(name, dir);
  Changed();
  return status;
}

absl::Status ModelRegistry::DoLoad(const std::string& name, const fs::path& dir) {
  {
    std::unique_lock lock(mu_);
    Entry& e = entries_[name];
    e.wanted = true;
    if (e.served == nullptr) e.version = ResolveVersion(dir).second;
    if (e.served == nullptr) e.state = ModelState::kLoading;
  }
  OSPREY_LOG(kInfo) << "loading model '" << name << "' from " << dir.string();
  auto loaded = LoadModel(name, dir);
  std::shared_ptr<const ServedModel> replaced;  // freed after the lock, not under it
  std::unique_lock lock(mu_);
  Entry& e = entries_[name];
  if (!loaded.ok()) {
    OSPREY_LOG(kError) << "model '" << name << "' failed to load: " << loaded.status().message();
    if (e.served == nullptr) {
      e.state = ModelState::kUnavailable;
      e.reason = std::string(loaded.status().message());
    }
    return loaded.status();
  }
  replaced = std::move(e.served);
  e.served = *std::move(loaded);
  e.version = e.served->version;
  e.state = ModelState::kReady;
  e.reason.clear();
  OSPREY_LOG(kInfo) << "model '" << name << "' version " << e.version << " is ready";
  return absl::OkStatus();
}

absl::Status ModelRegistry::LoadFromRepository(const std::string& name) {
  if (options_.repository.empty()) {
    std::shared_lock lock(mu_);
    auto it = entries_.find(name);
    if (it != entries_.end() && it->second.served != nullptr) return absl::OkStatus();
    return absl::NotFoundError(
        StrCat("model '", name, "' is not in a model repository (server has none)"));
  }
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    return absl::InvalidArgumentError(StrCat("invalid model name '", name, "'"));
  fs::path dir = options_.repository / name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return absl::NotFoundError(
        StrCat("model '", name, "' not found in repository ", options_.repository.string()));
  return Load(name, dir);
}

absl::Status ModelRegistry::LoadAllFromRepository() {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(options_.repository, ec))
    if (e.is_directory(ec)) names.push_back(e.path().filename().string());
  if (ec)
    return absl::NotFoundError(
        StrCat("cannot read model repository ", options_.repository.string(), ": ", ec.message()));
  std::sort(names.begin(), names.end());
  absl::Status first;
  for (const auto& n : names) {
    absl::Status s = LoadFromRepository(n);
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

absl::Status ModelRegistry::Unload(const std::string& name) {
  std::lock_guard<std::mutex> load_lock(load_mu_);
  std::shared_ptr<const ServedModel> old;
  {
    std::unique_lock lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end() || it->second.served == nullptr)
      return absl::NotFoundError(StrCat("model '", name, "' is not loaded"));
    it->second.state = ModelState::kUnloading;
    it->second.wanted = false;
    old = std::move(it->second.served);
    it->second.served = nullptr;
  }
  // In-flight requests hold their own references; the model is freed when the
  // last one finishes, here or on their thread.
  old.reset();
  SetState(name, ModelState::kUnavailable, "unloaded");
  OSPREY_LOG(kInfo) << "model '" << name << "' unloaded";
  Changed();
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const ServedModel>> ModelRegistry::Get(
    std::string_view name, std::string_view version) const {
  std::shared_lock lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return absl::NotFoundError(StrCat("model '", name, "' not found"));
  const Entry& e = it->second;
  if (e.served == nullptr)
    return absl::UnavailableError(StrCat("model '", name, "' is not ready (",
                                         ModelStateName(e.state), e.reason.empty() ? "" : ": ",
                                         e.reason, ")"));
  if (!version.empty() && version != e.served->version)
    return absl::NotFoundError(StrCat("model '", name, "' has no version '", version,
                                      "' (serving version ", e.served->version, ")"));
  return e.served;
}

std::vector<ModelStatus> ModelRegistry::Index() const {
  std::map<std::string, ModelStatus> all;
  if (!options_.repository.empty()) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(options_.repository, ec)) {
      if (!e.is_directory(ec)) continue;
      std::string n = e.path().filename().string();
      all[n] = ModelStatus{n, ResolveVersion(e.path()).second, ModelState::kUnavailable, ""};
    }
  }
  std::shared_lock lock(mu_);
  for (const auto& [name, e] : entries_)
    all[name] = ModelStatus{name, e.version, e.state, e.reason};
  std::vector<ModelStatus> out;
  for (auto& [_, s] : all) out.push_back(std::move(s));
  return out;
}

std::vector<std::string> ModelRegistry::ReadyNames() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_)
    if (e.served != nullptr) out.push_back(name);
  return out;
}

bool ModelRegistry::AllReady() const {
  std::shared_lock lock(mu_);
  if (entries_.empty()) return false;
  for (const auto& [_, e] : entries_)
    if (e.wanted && e.state != ModelState::kReady) return false;
  return true;
}

absl::Status ModelRegistry::NotRun(const Job& job) {
  return absl::UnavailableError(StrCat("the server is shutting down: the ",
                                       job.load ? "load" : "unload", " of model '", job.name,
                                       "' did not run"));
}

void ModelRegistry::LoadFromRepositoryAsync(std::string name, AsyncDone done) {
  Enqueue(Job{std::move(name), true, std::move(done)});
}

void ModelRegistry::UnloadAsync(std::string name, AsyncDone done) {
  Enqueue(Job{std::move(name), false, std::move(done)});
}

void ModelRegistry::Enqueue(Job job) {
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    if (!jobs_stopped_) {
      if (!loader_.joinable()) loader_ = std::thread([this] { RunJobs(); });
      jobs_.push_back(std::move(job));
      jobs_cv_.notify_one();
      return;
    }
  }
  job.done(NotRun(job));
}

void ModelRegistry::RunJobs() {
  std::unique_lock<std::mutex> lock(jobs_mu_);
  while (true) {
    jobs_cv_.wait(lock, [this] { return jobs_stopped_ || !jobs_.empty(); });
    if (jobs_stopped_) return;  // StopAsync answers what is queued
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    absl::Status status = job.load ? LoadFromRepository(job.name) : Unload(job.name);
    job.done(std::move(status));
    job.done = nullptr;  // what it holds is released outside jobs_mu_
    lock.lock();
  }
}

void ModelRegistry::StopAsync() {
  std::deque<Job> left;
  std::thread loader;
  {
    std::lock_guard<std::mutex> lock(jobs_mu_);
    jobs_stopped_ = true;
    left.swap(jobs_);
    loader = std::move(loader_);
  }
  jobs_cv_.notify_all();
  for (Job& job : left) job.done(NotRun(job));
  if (loader.joinable()) loader.join();
}

}  // namespace osprey
