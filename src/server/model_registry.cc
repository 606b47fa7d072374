#include "server/model_registry.h"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <system_error>

#include "absl/strings/str_join.h"
#include "backends/model_config.h"
#include "backends/triton_model.h"
#include "common/logging.h"
#include "common/prometheus.h"
#include "common/strings.h"
#include "server/validate.h"

namespace osprey {
namespace {

namespace fs = std::filesystem;

bool IsVersionDir(const fs::directory_entry& e) {
  std::string n = e.path().filename().string();
  std::error_code ec;
  return e.is_directory(ec) && !n.empty() && n.size() <= 18 &&
         std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The numeric version subdirectories of `dir`, by version.
std::map<int64_t, fs::path> VersionDirs(const fs::path& dir) {
  std::error_code ec;
  std::map<int64_t, fs::path> out;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (IsVersionDir(e)) out[std::atoll(e.path().filename().c_str())] = e.path();
  return out;
}

// The highest numeric version subdirectory, or (dir, "1") when there is none.
std::pair<fs::path, std::string> ResolveVersion(const fs::path& dir) {
  auto versions = VersionDirs(dir);
  if (versions.empty()) return {dir, "1"};
  return {versions.rbegin()->second, std::to_string(versions.rbegin()->first)};
}

// The names in a version directory, directories with a trailing '/'.
std::set<std::string> FileNames(const fs::path& dir) {
  std::error_code ec;
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir, ec))
    out.insert(e.path().filename().string() + (e.is_directory(ec) ? "/" : ""));
  return out;
}

// Bytes this process's heap holds (glibc's arenas and mmapped chunks).
uint64_t HeapBytes() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// The size a model's directory declares for it (the file kDeclaredMemoryFile:
// a byte count, a TrainedModel's spec.model.memory), 0 when none.
uint64_t DeclaredBytes(const fs::path& dir) {
  std::ifstream in(dir / kDeclaredMemoryFile);
  uint64_t bytes = 0;
  if (!(in >> bytes)) return 0;
  return bytes;
}

// The size of the files under `dir`: a model's first size estimate.
uint64_t DirectoryBytes(const fs::path& dir) {
  std::error_code ec;
  uint64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec))
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  return total;
}

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
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

absl::StatusOr<std::vector<std::shared_ptr<const ServedModel>>> ModelRegistry::LoadModel(
    const std::string& name, const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return absl::NotFoundError(StrCat("model directory ", dir.string(), " does not exist"));
  const std::map<int64_t, fs::path> dirs = VersionDirs(dir);
  // Triton's configuration sits beside the version directories; a model
  // directory of Osprey's own layout may keep it with the model file.
  OSPREY_ASSIGN_OR_RETURN(std::optional<ModelConfigFile> config, ReadModelConfig(dir));
  if (!config.has_value() && !dirs.empty()) {
    OSPREY_ASSIGN_OR_RETURN(config, ReadModelConfig(dirs.rbegin()->second));
  }

  std::vector<std::pair<fs::path, std::string>> chosen;
  if (dirs.empty()) {
    chosen.emplace_back(dir, "1");
  } else if (config.has_value()) {
    std::vector<int64_t> available;
    for (const auto& [v, _] : dirs) available.push_back(v);
    OSPREY_ASSIGN_OR_RETURN(std::vector<int64_t> versions,
                            SelectVersions(name, config->version_policy, available));
    for (int64_t v : versions) chosen.emplace_back(dirs.at(v), std::to_string(v));
  } else {
    chosen.emplace_back(dirs.rbegin()->second, std::to_string(dirs.rbegin()->first));
  }
  std::vector<std::string> names;
  for (const auto& [_, version] : chosen) names.push_back(version);
  std::vector<std::shared_ptr<const ServedModel>> out;
  for (const auto& [version_dir, version] : chosen) {
    OSPREY_ASSIGN_OR_RETURN(auto served,
                            LoadVersion(name, dir, version_dir, version, names, config));
    out.push_back(std::move(served));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const ServedModel>> ModelRegistry::LoadVersion(
    const std::string& name, const fs::path& root, const fs::path& model_dir,
    const std::string& version, const std::vector<std::string>& versions,
    const std::optional<ModelConfigFile>& config_file) {
  LoadOptions load;
  load.name = name;
  load.version = version;
  load.dir = model_dir;
  load.model_root = root;
  load.threads_per_call = options_.threads_per_call;
  load.workers = options_.workers;
  load.args = options_.model_args;
  std::string planned;  // the backend the configuration names
  if (config_file.has_value()) {
    load.config = config_file;
    OSPREY_ASSIGN_OR_RETURN(TritonModelPlan plan,
                            PlanTritonModel(name, FileNames(model_dir), &*load.config));
    planned = plan.backend;
    load.instances = plan.instances;
    if (plan.instances > 0) load.workers = plan.instances;
    // A model "file" that is a directory (a SavedModel) is what the backend loads.
    std::error_code ec;
    if (!plan.model_file.empty() && fs::is_directory(model_dir / plan.model_file, ec))
      load.dir = model_dir / plan.model_file;
  }

  const Backend* backend = nullptr;
  const std::string& wanted = !options_.format.empty() ? options_.format : planned;
  if (!wanted.empty()) {
    // Several backends may serve one format (pytorch: TorchScript, TorchServe
    // archives): the one that recognises the files, else the first.
    for (const Backend* b : options_.backends) {
      if (b->name() != wanted) continue;
      if (backend == nullptr) backend = b;
      if (b->Recognizes(model_dir)) {
        backend = b;
        break;
      }
    }
    if (backend == nullptr)
      return absl::InvalidArgumentError(
          options_.format.empty()
              ? StrCat("model '", name, "': its platform needs the ", wanted,
                       " backend, which is not built into this server")
              : StrCat("model format '", options_.format, "' is not built into this server"));
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

  const uint64_t heap_before = HeapBytes();
  OSPREY_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, backend->Load(load));
  // Ready means the model answered: one warm-up request through the real path.
  OSPREY_RETURN_IF_ERROR(WarmUp(*model));
  const uint64_t heap_after = HeapBytes();

  auto served = std::make_shared<ServedModel>();
  served->name = name;
  served->version = version;
  served->versions = versions;
  if (load.config.has_value()) {
    // Tensors the file leaves out are the model's own (Triton completes them
    // from the model the same way).
    ModelConfigFile& c = *load.config;
    if (c.inputs.empty()) c.inputs = model->metadata().inputs;
    if (c.outputs.empty()) c.outputs = model->metadata().outputs;
    served->config_json = ModelConfigJson(c);
  }
  served->resident_bytes =
      (heap_after > heap_before ? heap_after - heap_before : 0) + model->ExternalResidentBytes();
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
    batching.merge = hint->merge;
  }
  if (batching.enabled()) {
    if (served->model->metadata().batchable) {
      served->batcher = std::make_unique<Batcher>(served->model.get(), served->metrics, batching);
      OSPREY_LOG(kInfo) << "model '" << name << "' version " << version
                        << ": dynamic batching up to " << batching.max_batch_size
                        << " rows, max queue delay " << batching.max_queue_delay.count() << " us";
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
  const uint64_t budget = options_.memory_budget;
  std::vector<std::shared_ptr<const ServedModel>> freed;  // evicted, freed outside the lock
  const uint64_t declared = budget > 0 ? DeclaredBytes(dir) : 0;
  const uint64_t files =
      budget > 0 && declared == 0 ? DirectoryBytes(dir) : 0;  // not under the lock
  {
    std::unique_lock lock(mu_);
    Entry& e = entries_[name];
    e.wanted = true;
    ++e.attempts;
    if (e.served == nullptr) e.version = ResolveVersion(dir).second;
    if (e.served == nullptr) e.state = ModelState::kLoading;
    // Room first: the size of its last load, else of its files.
    if (budget > 0)
      MakeRoom(name,
               declared > 0           ? declared
               : e.resident_bytes > 0 ? e.resident_bytes
                                      : files,
               &freed);
  }
  freed.clear();
  OSPREY_LOG(kInfo) << "loading model '" << name << "' from " << dir.string();
  auto loaded = LoadModel(name, dir);
  uint64_t resident = 0;
  if (loaded.ok())
    for (const auto& v : *loaded) resident += v->resident_bytes;
  if (declared > 0) resident = declared;  // the model's own word wins over a measurement
  if (loaded.ok() && budget > 0 && resident > budget)
    loaded =
        absl::UnavailableError(StrCat("model '", name, "' holds ", resident,
                                      " bytes, more than the memory budget (", budget, " bytes)"));
  std::shared_ptr<const ServedModel> replaced;  // freed after the lock, not under it
  std::unique_lock lock(mu_);
  Entry& e = entries_[name];
  if (!loaded.ok()) {
    OSPREY_LOG(kError) << "model '" << name << "' failed to load: " << loaded.status().message();
    if (e.served == nullptr) {
      e.state = ModelState::kUnavailable;
      e.reason = std::string(loaded.status().message());
      e.evicted = false;  // its failure answers now, not another load
    }
    return loaded.status();
  }
  replaced = std::move(e.served);
  std::vector<std::shared_ptr<const ServedModel>> replaced_versions = std::move(e.versions);
  e.versions = *std::move(loaded);
  e.served = e.versions.back();
  e.version = e.served->version;
  e.state = ModelState::kReady;
  e.reason.clear();
  e.resident_bytes = resident;
  e.evicted = false;
  e.last_used.store(NowNanos(), std::memory_order_relaxed);
  loads_.fetch_add(1, std::memory_order_relaxed);
  // The measured size may pass the estimate: make room after it too.
  if (budget > 0) MakeRoom(name, 0, &freed);
  OSPREY_LOG(kInfo) << "model '" << name << "' version"
                    << (e.versions.size() > 1
                            ? StrCat("s ", absl::StrJoin(e.served->versions, ", "))
                            : StrCat(" ", e.version))
                    << (e.versions.size() > 1 ? " are" : " is") << " ready";
  lock.unlock();  // the replaced and evicted instances are freed outside the lock
  return absl::OkStatus();
}

uint64_t ModelRegistry::UsedBytesLocked() const {
  uint64_t used = 0;
  for (const auto& [_, e] : entries_)
    if (e.served != nullptr) used += e.resident_bytes;
  return used;
}

void ModelRegistry::MakeRoom(const std::string& keep, uint64_t need,
                             std::vector<std::shared_ptr<const ServedModel>>* freed) {
  const uint64_t budget = options_.memory_budget;
  uint64_t used = UsedBytesLocked();
  // Idle: no request holds an instance (the entry holds each version once,
  // the served one twice). A busy model is never evicted.
  auto idle = [](const Entry& e) {
    for (const auto& v : e.versions) {
      if (v.use_count() > (v == e.served ? 2 : 1)) return false;
      // Requests queued in its batcher hold no reference, but count here.
      if (v->metrics != nullptr && v->metrics->pending.load(std::memory_order_relaxed) > 0)
        return false;
    }
    return true;
  };
  while (used + need > budget) {
    std::string victim;
    Entry* v = nullptr;
    for (auto& [n, e] : entries_) {
      if (n == keep || e.served == nullptr || !idle(e)) continue;
      if (v == nullptr || e.last_used.load(std::memory_order_relaxed) <
                              v->last_used.load(std::memory_order_relaxed)) {
        v = &e;
        victim = n;
      }
    }
    if (v == nullptr) return;  // everything else is busy: over budget until they finish
    used -= std::min(used, v->resident_bytes);
    for (auto& instance : v->versions) freed->push_back(std::move(instance));
    v->versions.clear();
    v->served.reset();
    v->state = ModelState::kUnavailable;
    v->reason = "evicted to fit the memory budget";
    v->evicted = true;
    v->wanted = false;  // not expected to be ready until asked for again
    evictions_.fetch_add(1, std::memory_order_relaxed);
    OSPREY_LOG(kInfo) << "model '" << victim << "' evicted (" << v->resident_bytes
                      << " bytes) to fit the memory budget of " << budget << " bytes";
  }
}

bool ModelRegistry::LoadsOnDemand(std::string_view name) const {
  if ((options_.memory_budget == 0 && !options_.load_on_demand) || options_.repository.empty() ||
      name.empty() || name.find('/') != std::string_view::npos || name == "." || name == "..")
    return false;
  // Not whether it is READY now: a request that just failed to find it may
  // see it READY here (a load finished between), and its load job will then
  // answer at once. A model whose last load failed is not tried again by
  // every request for it (its error answers them); an explicit load is.
  {
    std::shared_lock lock(mu_);
    auto it = entries_.find(name);
    if (it != entries_.end() && it->second.served == nullptr &&
        it->second.state == ModelState::kUnavailable && !it->second.evicted &&
        !it->second.reason.empty() && it->second.reason != "unloaded")
      return false;
  }
  std::error_code ec;
  return fs::is_directory(options_.repository / std::string(name), ec);
}

bool ModelRegistry::CachesModels() const {
  return (options_.memory_budget > 0 || options_.load_on_demand) && !options_.repository.empty();
}

void ModelRegistry::CountLookup(bool hit) const {
  (hit ? hits_ : misses_).fetch_add(1, std::memory_order_relaxed);
}

std::string ModelRegistry::CacheMetrics() const {
  if (!CachesModels()) return "";
  std::string out;
  std::map<std::string, uint64_t> resident;
  uint64_t used = 0;
  {
    std::shared_lock lock(mu_);
    used = UsedBytesLocked();
    for (const auto& [name, e] : entries_)
      if (e.served != nullptr) resident[name] = e.resident_bytes;
  }
  using prometheus::AppendFamily;
  AppendFamily("osprey_model_cache_budget_bytes", "gauge",
               "Bytes the models of this server may hold together (--model-memory-budget).", &out);
  StrAppend(&out, "osprey_model_cache_budget_bytes ", options_.memory_budget, "\n");
  AppendFamily("osprey_model_cache_used_bytes", "gauge", "Bytes the loaded models hold.", &out);
  StrAppend(&out, "osprey_model_cache_used_bytes ", used, "\n");
  AppendFamily("osprey_model_cache_loads_total", "counter", "Model loads.", &out);
  StrAppend(&out, "osprey_model_cache_loads_total ", loads_.load(), "\n");
  AppendFamily("osprey_model_cache_evictions_total", "counter",
               "Models unloaded to fit the memory budget.", &out);
  StrAppend(&out, "osprey_model_cache_evictions_total ", evictions_.load(), "\n");
  AppendFamily("osprey_model_cache_requests_total", "counter",
               "Requests that found their model loaded (hit) or had to load it (miss).", &out);
  StrAppend(&out, "osprey_model_cache_requests_total{result=\"hit\"} ", hits_.load(), "\n");
  StrAppend(&out, "osprey_model_cache_requests_total{result=\"miss\"} ", misses_.load(), "\n");
  const uint64_t hits = hits_.load(), lookups = hits + misses_.load();
  AppendFamily("osprey_model_cache_hit_ratio", "gauge",
               "Share of the requests since the start that found their model loaded (1 before "
               "any request).",
               &out);
  StrAppend(&out, "osprey_model_cache_hit_ratio ",
            lookups == 0 ? 1.0 : static_cast<double>(hits) / static_cast<double>(lookups), "\n");
  AppendFamily("osprey_model_resident_bytes", "gauge",
               "Bytes a loaded model holds (its heap at load and its worker processes).", &out);
  for (const auto& [name, bytes] : resident)
    StrAppend(&out, "osprey_model_resident_bytes{model=\"", prometheus::LabelValue(name), "\"} ",
              bytes, "\n");
  return out;
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
  std::vector<std::shared_ptr<const ServedModel>> old_versions;
  {
    std::unique_lock lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end() || it->second.served == nullptr) {
      // Nothing to free; no longer expected to be ready either.
      if (it != entries_.end()) it->second.wanted = false;
      return absl::NotFoundError(StrCat("model '", name, "' is not loaded"));
    }
    it->second.state = ModelState::kUnloading;
    it->second.wanted = false;
    old = std::move(it->second.served);
    it->second.served = nullptr;
    old_versions = std::move(it->second.versions);
  }
  // In-flight requests hold their own references; the model is freed when the
  // last one finishes, here or on their thread.
  old.reset();
  old_versions.clear();
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
  if (options_.memory_budget > 0) e.last_used.store(NowNanos(), std::memory_order_relaxed);
  if (e.served == nullptr)
    return absl::UnavailableError(StrCat("model '", name, "' is not ready (",
                                         ModelStateName(e.state), e.reason.empty() ? "" : ": ",
                                         e.reason, ")"));
  if (version.empty() || version == e.served->version) return e.served;
  for (const auto& v : e.versions)
    if (v->version == version) return v;
  return absl::NotFoundError(StrCat("model '", name, "' has no version '", version,
                                    "' (serving version", e.versions.size() > 1 ? "s " : " ",
                                    absl::StrJoin(e.served->versions, ", "), ")"));
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
  std::map<std::string, std::vector<ModelStatus>> more;  // the other versions served
  for (const auto& [name, e] : entries_) {
    all[name] = ModelStatus{name, e.version, e.state, e.reason};
    for (const auto& v : e.versions)
      if (v != e.served) more[name].push_back(ModelStatus{name, v->version, e.state, ""});
  }
  std::vector<ModelStatus> out;
  for (auto& [name, s] : all) {
    if (auto it = more.find(name); it != more.end())
      for (ModelStatus& m : it->second) out.push_back(std::move(m));
    out.push_back(std::move(s));
  }
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
  // Loading on demand, a server with nothing loaded yet is ready to load.
  // Loading on demand, the server is ready to load: a model loading, or one
  // that failed, answers its own requests (a probe must not restart the
  // replica that holds the others).
  const bool on_demand =
      (options_.memory_budget > 0 || options_.load_on_demand) && !options_.repository.empty();
  if (on_demand) return true;
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

void ModelRegistry::LoadIfAbsentAsync(std::string name, AsyncDone done) {
  if (options_.load_wait_deadline.count() > 0) {
    auto waiter = std::make_shared<Waiter>();
    waiter->done = std::move(done);
    waiter->name = name;
    done = [waiter](absl::Status status) {
      AsyncDone take;
      {
        std::lock_guard<std::mutex> lock(waiter->mu);
        take = std::move(waiter->done);
        waiter->done = nullptr;
      }
      if (take) take(std::move(status));
    };
    std::lock_guard<std::mutex> lock(resume_mu_);
    if (!resume_stopped_) {
      if (!resumer_.joinable()) resumer_ = std::thread([this] { RunResumes(); });
      deadlines_.emplace(std::chrono::steady_clock::now() + options_.load_wait_deadline,
                         std::move(waiter));
      resume_cv_.notify_one();
    }
  }
  Job job{std::move(name), true, std::move(done)};
  job.if_absent = true;
  {
    std::shared_lock lock(mu_);
    auto it = entries_.find(job.name);
    job.attempts = it != entries_.end() ? it->second.attempts : 0;
  }
  Enqueue(std::move(job));
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
    // A waiter's load is done when the model is READY, or when a load of it
    // ended since the waiter asked (its outcome answers: many waiters, one
    // load, even when it failed).
    // A failed load settles; a model that loaded and was evicted again since
    // (by the loads between) is loaded again, not answered with its eviction.
    std::optional<absl::Status> settled;
    std::shared_ptr<const ServedModel> pin;
    if (job.if_absent) {
      auto got = Get(job.name, "");
      if (got.ok()) {
        settled = absl::OkStatus();
        pin = *std::move(got);
      } else {
        std::shared_lock lock(mu_);
        auto it = entries_.find(job.name);
        if (it != entries_.end() && it->second.attempts > job.attempts && !it->second.evicted)
          settled = got.status();
      }
    }
    absl::Status status = settled.has_value() ? *settled
                          : job.load          ? LoadFromRepository(job.name)
                                              : Unload(job.name);
    if (job.if_absent) {
      // Held until the waiter has run: the loads queued behind it must not
      // evict what it waited for before it resumes (a held instance is busy).
      if (status.ok() && pin == nullptr) {
        auto got = Get(job.name, "");
        if (got.ok()) pin = *std::move(got);
      }
      // A waiting request resumes on the resumer thread: its inference must
      // not hold up the loads behind it.
      Resume(
          [done = std::move(job.done), status = std::move(status), pin = std::move(pin)]() mutable {
            done(std::move(status));
            pin.reset();  // by now the request holds its own reference, or is queued in the batcher
          });
    } else {
      job.done(std::move(status));
    }
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
  // The requests that resumed still run, then the resumer ends.
  std::thread resumer;
  {
    std::lock_guard<std::mutex> lock(resume_mu_);
    resume_stopped_ = true;
    resumer = std::move(resumer_);
  }
  resume_cv_.notify_all();
  if (resumer.joinable()) resumer.join();
}

void ModelRegistry::Resume(absl::AnyInvocable<void()> work) {
  {
    std::lock_guard<std::mutex> lock(resume_mu_);
    if (!resume_stopped_) {
      if (!resumer_.joinable()) resumer_ = std::thread([this] { RunResumes(); });
      resumes_.push_back(std::move(work));
      resume_cv_.notify_one();
      return;
    }
  }
  work();  // stopping: answered here
}

void ModelRegistry::RunResumes() {
  std::unique_lock<std::mutex> lock(resume_mu_);
  while (true) {
    auto ready = [this] { return resume_stopped_ || !resumes_.empty(); };
    if (deadlines_.empty())
      resume_cv_.wait(lock, ready);
    else
      resume_cv_.wait_until(lock, deadlines_.begin()->first, ready);
    // Waiters past their deadline are answered; their loads go on.
    const auto now = std::chrono::steady_clock::now();
    while (!deadlines_.empty() && (deadlines_.begin()->first <= now || resume_stopped_)) {
      std::shared_ptr<Waiter> waiter = std::move(deadlines_.begin()->second);
      deadlines_.erase(deadlines_.begin());
      AsyncDone take;
      {
        std::lock_guard<std::mutex> waiter_lock(waiter->mu);
        take = std::move(waiter->done);
        waiter->done = nullptr;
      }
      if (!take) continue;  // already answered by its load
      lock.unlock();
      take(absl::DeadlineExceededError(StrCat("model '", waiter->name, "' did not load within ",
                                              options_.load_wait_deadline.count() / 1000.0, " s")));
      lock.lock();
    }
    if (resumes_.empty()) {
      if (resume_stopped_) return;  // stopped, and nothing left
      continue;
    }
    auto work = std::move(resumes_.front());
    resumes_.pop_front();
    lock.unlock();
    work();
    work = nullptr;
    lock.lock();
  }
}

}  // namespace osprey
