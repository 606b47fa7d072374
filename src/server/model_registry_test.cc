#include "server/model_registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "backends/testing/fake_backend.h"
#include "server/inference_core.h"

namespace osprey {
namespace {

using testing::FakeBackend;
using testing::FakeGate;
using testing::FakeRepository;

ModelRegistry::Options RepositoryOptions(const FakeRepository& repo,
                                         std::vector<const Backend*> backends) {
  ModelRegistry::Options options;
  options.repository = repo.root();
  options.backends = std::move(backends);
  return options;
}

// One row of the fake's default input (FP32 [-1, 4]) starting with `first`.
InferRequest OneRow(std::string model, float first, std::string id = "") {
  InferRequest request;
  request.model_name = std::move(model);
  request.id = std::move(id);
  Tensor t("INPUT0", DataType::kFp32, {1, 4});
  float values[4] = {first, 2, 3, 4};
  t.SetData(std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  request.inputs.push_back(std::move(t));
  return request;
}

// One inference through the core on its own thread, to be held in the model.
struct BackgroundInfer {
  InferRequest request;
  InferResponse response;
  absl::Status status = absl::UnknownError("not completed");
  std::jthread thread;

  BackgroundInfer(InferenceCore* core, InferRequest r) : request(std::move(r)) {
    thread = std::jthread([this, core] {
      core->Infer(request, &response, InferenceCore::Clock::now(),
                  [this](absl::Status s) { status = std::move(s); });
    });
  }
};

ModelStatus IndexEntry(const ModelRegistry& registry, const std::string& name) {
  for (const ModelStatus& s : registry.Index())
    if (s.name == name) return s;
  return ModelStatus{};
}

TEST(ModelRegistryTest, LoadsTheHighestVersionServesAndUnloads) {
  FakeRepository repo;
  repo.Add("m", "1");
  repo.Add("m", "10");
  repo.Add("m", "9");
  repo.Add("other");
  FakeBackend fake;
  Metrics metrics;
  ModelRegistry registry(RepositoryOptions(repo, {&fake}), &metrics);
  int changes = 0;
  registry.SetOnChange([&changes] { ++changes; });

  EXPECT_FALSE(registry.AllReady());
  ModelStatus before = IndexEntry(registry, "m");
  EXPECT_EQ(before.state, ModelState::kUnavailable);
  EXPECT_EQ(before.version, "10");

  ASSERT_TRUE(registry.LoadFromRepository("m").ok());
  EXPECT_EQ(changes, 1);
  auto served = registry.Get("m", "");
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ((*served)->version, "10");
  EXPECT_EQ((*served)->model->metadata().platform, "fake");
  EXPECT_EQ((*served)->model->metadata().inputs.at(0).name, "INPUT0");
  EXPECT_TRUE(registry.Get("m", "10").ok());
  EXPECT_EQ(registry.Get("m", "9").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.Get("nope", "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(IndexEntry(registry, "m").state, ModelState::kReady);
  EXPECT_EQ(IndexEntry(registry, "other").state, ModelState::kUnavailable);
  EXPECT_EQ(registry.ReadyNames(), std::vector<std::string>{"m"});
  EXPECT_TRUE(registry.AllReady());
  EXPECT_EQ(fake.live_models(), 1);
  EXPECT_EQ(fake.executed_rows(), std::vector<int64_t>{1});  // the warm-up

  served = nullptr;
  ASSERT_TRUE(registry.Unload("m").ok());
  EXPECT_EQ(changes, 2);
  EXPECT_EQ(fake.live_models(), 0);
  EXPECT_EQ(IndexEntry(registry, "m").state, ModelState::kUnavailable);
  EXPECT_EQ(IndexEntry(registry, "m").reason, "unloaded");
  absl::Status gone = registry.Get("m", "").status();
  EXPECT_EQ(gone.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(gone.message().find("unloaded"), std::string_view::npos) << gone;
  EXPECT_EQ(registry.Unload("m").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(registry.ReadyNames().empty());

  EXPECT_EQ(registry.LoadFromRepository("absent").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.LoadFromRepository("..").code(), absl::StatusCode::kInvalidArgument);
}

void WriteConfig(const std::filesystem::path& model_dir, const std::string& text) {
  std::ofstream(model_dir / "config.pbtxt") << text;
}

TEST(ModelRegistryTest, ServesTheVersionsATritonConfigAsksFor) {
  FakeRepository repo;
  for (const char* v : {"1", "2", "3"}) repo.Add("all", v);
  for (const char* v : {"1", "2", "3"}) repo.Add("latest2", v);
  for (const char* v : {"1", "2", "3"}) repo.Add("missing", v);
  WriteConfig(repo.root() / "all", "version_policy: { all { } }");
  WriteConfig(repo.root() / "latest2", "version_policy: { latest { num_versions: 2 } }");
  WriteConfig(repo.root() / "missing", "version_policy: { specific { versions: [ 1, 4 ] } }");
  FakeBackend fake;
  Metrics metrics;
  ModelRegistry registry(RepositoryOptions(repo, {&fake}), &metrics);

  ASSERT_TRUE(registry.LoadFromRepository("all").ok());
  auto served = registry.Get("all", "");
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ((*served)->version, "3");  // no version asked: the highest
  EXPECT_EQ((*served)->versions, (std::vector<std::string>{"1", "2", "3"}));
  for (const char* v : {"1", "2", "3"}) {
    auto one = registry.Get("all", v);
    ASSERT_TRUE(one.ok()) << v << ": " << one.status();
    EXPECT_EQ((*one)->version, v);
  }
  EXPECT_EQ(fake.live_models(), 3);
  // Triton's configuration JSON, completed with the model's own tensors.
  EXPECT_NE((*served)->config_json.find(R"("name":"all")"), std::string::npos);
  EXPECT_NE((*served)->config_json.find(R"("input":[{"name":"INPUT0","data_type":"TYPE_FP32")"),
            std::string::npos)
      << (*served)->config_json;
  std::vector<std::string> rows;
  for (const ModelStatus& s : registry.Index())
    if (s.name == "all") rows.push_back(s.version);
  EXPECT_EQ(rows, (std::vector<std::string>{"1", "2", "3"}));

  ASSERT_TRUE(registry.LoadFromRepository("latest2").ok());
  EXPECT_EQ(registry.Get("latest2", "1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(registry.Get("latest2", "2").ok());
  EXPECT_EQ((*registry.Get("latest2", ""))->version, "3");

  absl::Status missing = registry.LoadFromRepository("missing");
  EXPECT_EQ(missing.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.message().find("version(s) 4"), std::string_view::npos) << missing;
  EXPECT_NE(IndexEntry(registry, "missing").reason.find("version(s) 4"), std::string::npos);

  served = nullptr;
  ASSERT_TRUE(registry.Unload("all").ok());
  EXPECT_EQ(fake.live_models(), 2);  // latest2's two
}

TEST(ModelRegistryTest, ATritonConfigSetsInstancesAndRefusesAGpu) {
  FakeRepository repo;
  repo.Add("cpu", "1");
  repo.Add("gpu", "1");
  repo.Add("plan", "1");
  WriteConfig(repo.root() / "cpu", "instance_group [ { count: 3 kind: KIND_CPU } ]");
  WriteConfig(repo.root() / "gpu", "instance_group [ { kind: KIND_GPU } ]");
  WriteConfig(repo.root() / "plan", "platform: \"tensorrt_plan\"");
  std::atomic<int> instances{-1}, workers{-1};
  FakeBackend fake(FakeBackend::Options{.on_load = [&](const LoadOptions& o) {
    instances = o.instances;
    workers = o.workers;
    EXPECT_TRUE(o.config.has_value());
    EXPECT_EQ(o.model_root.filename(), "cpu");
    EXPECT_EQ(o.dir.filename(), "1");
    return absl::OkStatus();
  }});
  Metrics metrics;
  ModelRegistry registry(RepositoryOptions(repo, {&fake}), &metrics);
  ASSERT_TRUE(registry.LoadFromRepository("cpu").ok());
  EXPECT_EQ(instances.load(), 3);
  EXPECT_EQ(workers.load(), 3);
  EXPECT_NE((*registry.Get("cpu", ""))->config_json.find(R"("kind":"KIND_CPU","count":3)"),
            std::string::npos);

  absl::Status gpu = registry.LoadFromRepository("gpu");
  EXPECT_EQ(gpu.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(gpu.message().find("model 'gpu': instance_group 'gpu_0' asks for KIND_GPU"),
            std::string_view::npos)
      << gpu;
  absl::Status plan = registry.LoadFromRepository("plan");
  EXPECT_EQ(plan.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(plan.message().find("TensorRT"), std::string_view::npos) << plan;
  EXPECT_EQ(IndexEntry(registry, "gpu").state, ModelState::kUnavailable);
  EXPECT_EQ(IndexEntry(registry, "gpu").reason, std::string(gpu.message()));
  EXPECT_EQ(fake.live_models(), 1);
}

TEST(ModelRegistryTest, ChoosesTheBackendByFormatOrByTheFiles) {
  FakeRepository repo;
  repo.Add("m", "", "a");
  repo.Add("m", "", "b");  // both recognise m
  repo.Add("only_b", "", "b");
  repo.Add("unknown", "", "c");
  FakeBackend a(FakeBackend::Options{.name = "a"});
  FakeBackend b(FakeBackend::Options{.name = "b"});
  Metrics metrics;

  ModelRegistry by_files(RepositoryOptions(repo, {&a, &b}), &metrics);
  ASSERT_TRUE(by_files.LoadFromRepository("m").ok());
  EXPECT_EQ((*by_files.Get("m", ""))->model->metadata().platform, "a");  // the first in the list
  ASSERT_TRUE(by_files.LoadFromRepository("only_b").ok());
  EXPECT_EQ((*by_files.Get("only_b", ""))->model->metadata().platform, "b");
  absl::Status unknown = by_files.LoadFromRepository("unknown");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("no backend recognises"), std::string_view::npos) << unknown;

  ModelRegistry reversed(RepositoryOptions(repo, {&b, &a}), &metrics);
  ASSERT_TRUE(reversed.LoadFromRepository("m").ok());
  EXPECT_EQ((*reversed.Get("m", ""))->model->metadata().platform, "b");

  ModelRegistry::Options options = RepositoryOptions(repo, {&a, &b});
  options.format = "b";
  ModelRegistry by_format(options, &metrics);
  ASSERT_TRUE(by_format.LoadFromRepository("m").ok());
  EXPECT_EQ((*by_format.Get("m", ""))->model->metadata().platform, "b");

  options.format = "c";
  ModelRegistry not_built(options, &metrics);
  absl::Status c = not_built.LoadFromRepository("m");
  EXPECT_EQ(c.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.message().find("'c' is not built into this server"), std::string_view::npos) << c;

  // A format names the backend even for files it would not recognise.
  options.format = "a";
  ModelRegistry format_a(options, &metrics);
  EXPECT_TRUE(format_a.LoadFromRepository("only_b").ok());

  ModelRegistry none(RepositoryOptions(repo, {}), &metrics);
  EXPECT_EQ(none.LoadFromRepository("m").code(), absl::StatusCode::kInvalidArgument);
}

TEST(ModelRegistryTest, AFailedLoadKeepsItsReason) {
  FakeRepository repo;
  repo.Add("m");
  FakeBackend broken(FakeBackend::Options{.load_status = absl::InternalError("weights missing")});
  // Zeros are the warm-up's input: a model failing them is not ready.
  FakeBackend cold(FakeBackend::Options{.fail_marker = 0.0});
  Metrics metrics;

  ModelRegistry registry(RepositoryOptions(repo, {&broken}), &metrics);
  EXPECT_EQ(registry.LoadFromRepository("m").code(), absl::StatusCode::kInternal);
  ModelStatus s = IndexEntry(registry, "m");
  EXPECT_EQ(s.state, ModelState::kUnavailable);
  EXPECT_EQ(s.reason, "weights missing");
  absl::Status get = registry.Get("m", "").status();
  EXPECT_EQ(get.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(get.message().find("weights missing"), std::string_view::npos) << get;
  EXPECT_FALSE(registry.AllReady());

  ModelRegistry warm(RepositoryOptions(repo, {&cold}), &metrics);
  absl::Status w = warm.LoadFromRepository("m");
  EXPECT_EQ(w.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(w.message().find("failed its warm-up inference"), std::string_view::npos) << w;
  EXPECT_EQ(cold.live_models(), 0);
}

// A reload keeps answering with the old instance until the new one is ready;
// a request running on the old one finishes there, and the old instance goes
// when that request does.
TEST(ModelRegistryTest, AReloadServesTheOldInstanceUntilTheNewOneIsReady) {
  FakeRepository repo;
  repo.Add("m", "1");
  FakeGate load_gate, execute_gate;
  FakeBackend fake(FakeBackend::Options{
      .on_load =
          [&load_gate](const LoadOptions& o) {
            if (o.version == "2") load_gate.Pass();
            return absl::OkStatus();
          },
      .on_execute =
          [&execute_gate](const InferRequest& r) {
            if (r.id == "held") execute_gate.Pass();
          },
  });
  Metrics metrics;
  ModelRegistry registry(RepositoryOptions(repo, {&fake}), &metrics);
  InferenceCore core(&registry);
  ASSERT_TRUE(registry.LoadFromRepository("m").ok());

  BackgroundInfer held(&core, OneRow("m", 1, "held"));
  ASSERT_TRUE(execute_gate.WaitArrivals(1));

  repo.Add("m", "2");
  absl::Status reloaded = absl::UnknownError("not returned");
  std::atomic<bool> returned{false};
  std::jthread reload([&] {
    reloaded = registry.LoadFromRepository("m");
    returned = true;
  });
  ASSERT_TRUE(load_gate.WaitArrivals(1));
  // Version 2 is loading: version 1 still answers, and the model is READY.
  EXPECT_EQ(IndexEntry(registry, "m").state, ModelState::kReady);
  EXPECT_EQ(IndexEntry(registry, "m").version, "1");
  EXPECT_TRUE(registry.AllReady());
  InferRequest during = OneRow("m", 7);
  InferResponse response;
  absl::Status status = absl::UnknownError("not called");
  core.Infer(during, &response, InferenceCore::Clock::now(),
             [&status](absl::Status s) { status = std::move(s); });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(response.model_version, "1");
  EXPECT_FALSE(returned.load());

  load_gate.Open();
  reload.join();
  ASSERT_TRUE(reloaded.ok()) << reloaded;
  EXPECT_EQ((*registry.Get("m", ""))->version, "2");
  EXPECT_EQ(registry.Get("m", "1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(fake.live_models(), 2);  // the held request keeps version 1

  execute_gate.Open();
  held.thread.join();
  ASSERT_TRUE(held.status.ok()) << held.status;
  EXPECT_EQ(held.response.model_version, "1");
  EXPECT_EQ(fake.live_models(), 1);
}

TEST(ModelRegistryTest, AFailedReloadKeepsServingTheOldInstance) {
  FakeRepository repo;
  repo.Add("m", "1");
  FakeBackend fake(FakeBackend::Options{.on_load = [](const LoadOptions& o) {
    return o.version == "2" ? absl::InvalidArgumentError("bad version 2") : absl::OkStatus();
  }});
  Metrics metrics;
  ModelRegistry registry(RepositoryOptions(repo, {&fake}), &metrics);
  ASSERT_TRUE(registry.LoadFromRepository("m").ok());
  repo.Add("m", "2");
  EXPECT_EQ(registry.LoadFromRepository("m").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(IndexEntry(registry, "m").state, ModelState::kReady);
  EXPECT_EQ(IndexEntry(registry, "m").version, "1");
  EXPECT_EQ((*registry.Get("m", ""))->version, "1");
  EXPECT_EQ(fake.live_models(), 1);
}

// An unload during a load waits for it: the model ends unloaded, and the
// instance the load made is freed.
TEST(ModelRegistryTest, AnUnloadDuringALoadWaitsForIt) {
  FakeRepository repo;
  repo.Add("m");
  FakeGate load_gate;
  FakeBackend fake(FakeBackend::Options{.on_load = [&load_gate](const LoadOptions&) {
    load_gate.Pass();
    return absl::OkStatus();
  }});
  Metrics metrics;
  ModelRegistry registry(RepositoryOptions(repo, {&fake}), &metrics);
  std::vector<std::string> seen;  // states seen by the change listener, in order
  registry.SetOnChange(
      [&] { seen.push_back(std::string(ModelStateName(IndexEntry(registry, "m").state))); });

  absl::Status loaded, unloaded;
  std::jthread loader([&] { loaded = registry.LoadFromRepository("m"); });
  ASSERT_TRUE(load_gate.WaitArrivals(1));
  EXPECT_EQ(IndexEntry(registry, "m").state, ModelState::kLoading);
  EXPECT_FALSE(registry.AllReady());
  EXPECT_EQ(registry.Get("m", "").status().code(), absl::StatusCode::kUnavailable);
  std::jthread unloader([&] { unloaded = registry.Unload("m"); });
  load_gate.Open();
  loader.join();
  unloader.join();
  EXPECT_TRUE(loaded.ok()) << loaded;
  EXPECT_TRUE(unloaded.ok()) << unloaded;
  EXPECT_EQ(IndexEntry(registry, "m").state, ModelState::kUnavailable);
  EXPECT_EQ(registry.Get("m", "").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(fake.live_models(), 0);
  EXPECT_EQ(seen, (std::vector<std::string>{"READY", "UNAVAILABLE"}));
}

TEST(ModelRegistryTest, AnUnloadedModelLivesUntilItsLastRequestEnds) {
  FakeRepository repo;
  repo.Add("m");
  FakeGate execute_gate;
  FakeBackend fake(FakeBackend::Options{.on_execute = [&execute_gate](const InferRequest& r) {
    if (r.id == "held") execute_gate.Pass();
  }});
  Metrics metrics;
  ModelRegistry registry(RepositoryOptions(repo, {&fake}), &metrics);
  InferenceCore core(&registry);
  ASSERT_TRUE(registry.LoadFromRepository("m").ok());

  BackgroundInfer held(&core, OneRow("m", 5, "held"));
  ASSERT_TRUE(execute_gate.WaitArrivals(1));
  ASSERT_TRUE(registry.Unload("m").ok());
  EXPECT_EQ(registry.Get("m", "").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(fake.live_models(), 1);

  execute_gate.Open();
  held.thread.join();
  ASSERT_TRUE(held.status.ok()) << held.status;
  EXPECT_EQ(held.response.outputs.at(0).data(), held.request.inputs.at(0).data());
  EXPECT_EQ(fake.live_models(), 0);
}

// The asynchronous forms, on the registry's loader thread.

// The answer of an asynchronous load or unload, waited for with a deadline.
class AsyncResult {
 public:
  ModelRegistry::AsyncDone Callback() {
    return [this](absl::Status s) {
      std::lock_guard<std::mutex> lock(mu_);
      status_ = std::move(s);
      cv_.notify_all();
    };
  }
  bool done() {
    std::lock_guard<std::mutex> lock(mu_);
    return status_.has_value();
  }
  absl::Status Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(30), [this] { return status_.has_value(); }))
      return absl::DeadlineExceededError("no answer within 30 s");
    return *status_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<absl::Status> status_;
};

// An unload asked while the model loads runs after the load, in order.
TEST(ModelRegistryTest, AnUnloadAskedDuringAnAsynchronousLoadRunsAfterIt) {
  FakeRepository repo;
  repo.Add("m");
  FakeGate load_gate;
  FakeBackend fake(FakeBackend::Options{.on_load = [&load_gate](const LoadOptions&) {
    load_gate.Pass();
    return absl::OkStatus();
  }});
  Metrics metrics;
  ModelRegistry registry(RepositoryOptions(repo, {&fake}), &metrics);
  AsyncResult load, unload;
  registry.LoadFromRepositoryAsync("m", load.Callback());
  ASSERT_TRUE(load_gate.WaitArrivals(1));
  EXPECT_EQ(IndexEntry(registry, "m").state, ModelState::kLoading);
  registry.UnloadAsync("m", unload.Callback());
  EXPECT_FALSE(unload.done());  // queued behind the load the loader thread is in
  EXPECT_FALSE(load.done());

  load_gate.Open();
  ASSERT_TRUE(load.Wait().ok());
  ASSERT_TRUE(unload.Wait().ok());
  EXPECT_EQ(IndexEntry(registry, "m").state, ModelState::kUnavailable);
  EXPECT_EQ(fake.live_models(), 0);

  AsyncResult again, absent;
  registry.LoadFromRepositoryAsync("m", again.Callback());
  registry.LoadFromRepositoryAsync("absent", absent.Callback());
  EXPECT_TRUE(again.Wait().ok());
  EXPECT_EQ(absent.Wait().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(IndexEntry(registry, "m").state, ModelState::kReady);
}

TEST(ModelRegistryTest, AsynchronousCallsAfterStopAreAnsweredAtOnce) {
  FakeRepository repo;
  repo.Add("m");
  FakeGate load_gate;
  FakeBackend fake(FakeBackend::Options{.on_load = [&load_gate](const LoadOptions&) {
    load_gate.Pass();
    return absl::OkStatus();
  }});
  Metrics metrics;
  ModelRegistry registry(RepositoryOptions(repo, {&fake}), &metrics);
  AsyncResult running, queued, late;
  registry.LoadFromRepositoryAsync("m", running.Callback());
  ASSERT_TRUE(load_gate.WaitArrivals(1));
  registry.UnloadAsync("m", queued.Callback());
  std::jthread stopper([&registry] { registry.StopAsync(); });
  // The queued unload is answered without running; the running load finishes.
  absl::Status q = queued.Wait();
  EXPECT_EQ(q.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(q.message().find("the unload of model 'm' did not run"), std::string_view::npos) << q;
  load_gate.Open();
  stopper.join();
  EXPECT_TRUE(running.Wait().ok());
  EXPECT_EQ(IndexEntry(registry, "m").state, ModelState::kReady);

  registry.LoadFromRepositoryAsync("m", late.Callback());
  EXPECT_TRUE(late.done());
  EXPECT_EQ(late.Wait().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace osprey

namespace osprey {
namespace {

// The model cache's on-demand path: a request for a model of the repository
// that is not loaded loads it and is answered (on the loader thread); a
// model whose load failed is not tried again by every request.
TEST(ModelCacheTest, RequestsLoadOnDemandAndFailuresDoNotStorm) {
  FakeRepository repo;
  repo.Add("good");
  repo.Add("bad");
  std::atomic<int> bad_loads{0};
  testing::FakeBackendOptions fo;
  fo.on_load = [&](const LoadOptions& o) {
    if (o.name != "bad") return absl::OkStatus();
    ++bad_loads;
    return absl::InvalidArgumentError("bad model files");
  };
  FakeBackend fake(fo);
  Metrics metrics;
  ModelRegistry::Options options = RepositoryOptions(repo, {&fake});
  options.load_on_demand = true;
  ModelRegistry registry(options, &metrics);
  InferenceCore core(&registry);
  EXPECT_TRUE(registry.AllReady());  // nothing loaded yet, ready to load
  EXPECT_TRUE(registry.LoadsOnDemand("good"));
  EXPECT_FALSE(registry.LoadsOnDemand("absent"));
  EXPECT_FALSE(registry.LoadsOnDemand("../good"));

  auto infer = [&](const std::string& model) {
    InferRequest request = OneRow(model, 1);
    InferResponse response;
    std::mutex mu;
    std::condition_variable cv;
    std::optional<absl::Status> status;
    core.Infer(request, &response, InferenceCore::Clock::now(), [&](absl::Status s) {
      std::lock_guard<std::mutex> lock(mu);
      status = std::move(s);
      cv.notify_all();
    });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return status.has_value(); });
    return status.value_or(absl::DeadlineExceededError("no answer"));
  };
  EXPECT_TRUE(infer("good").ok());
  EXPECT_TRUE(registry.Get("good", "").ok());
  absl::Status bad = infer("bad");
  EXPECT_EQ(bad.code(), absl::StatusCode::kUnavailable) << bad;
  EXPECT_NE(bad.message().find("bad model files"), std::string::npos) << bad;
  EXPECT_EQ(bad_loads.load(), 1);
  // A failed on-demand load does not make the server unready (a probe would
  // restart the replica holding the other models).
  EXPECT_TRUE(registry.AllReady());
  // Its failure answers the next requests without another load.
  EXPECT_FALSE(registry.LoadsOnDemand("bad"));
  EXPECT_EQ(infer("bad").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(bad_loads.load(), 1);
  // An explicit load tries again.
  EXPECT_FALSE(registry.LoadFromRepository("bad").ok());
  EXPECT_EQ(bad_loads.load(), 2);
  registry.StopAsync();
}

// A budget that fits one model: a waiter's model is never evicted by the
// loads queued behind it before the waiter has run, and a model that loaded
// and was evicted again is loaded again for the next waiter, not answered
// with its eviction.
TEST(ModelCacheTest, WaitersGetTheirModelDespiteTheLoadsBehindThem) {
  FakeRepository repo;
  for (const char* m : {"a", "b"}) std::ofstream(repo.Add(m) / kDeclaredMemoryFile) << "100\n";
  FakeGate b_gate;
  std::function<void()> before_b = [&b_gate] { b_gate.Pass(); };
  FakeBackend fake(FakeBackend::Options{.on_load = [&before_b](const LoadOptions& o) {
    if (o.name == "b") before_b();
    return absl::OkStatus();
  }});
  Metrics metrics;
  ModelRegistry::Options options = RepositoryOptions(repo, {&fake});
  options.memory_budget = 150;
  ModelRegistry registry(options, &metrics);

  // The first waiter of "a" resumes only after "b" has loaded: "a" is held
  // for it meanwhile ("b" goes over the budget until then).
  FakeGate resume_gate;
  std::atomic<bool> a_there{false};
  AsyncResult first, b;
  registry.LoadIfAbsentAsync("a", [&](absl::Status st) {
    resume_gate.Pass();
    a_there = st.ok() && registry.Get("a", "").ok();
    first.Callback()(std::move(st));
  });
  registry.LoadIfAbsentAsync("b", b.Callback());
  ASSERT_TRUE(b_gate.WaitArrivals(1));
  b_gate.Open();
  ASSERT_TRUE(resume_gate.WaitArrivals(1));
  // "b" is loaded before the first waiter runs.
  for (int i = 0; i < 1000 && IndexEntry(registry, "b").state != ModelState::kReady; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(IndexEntry(registry, "b").state, ModelState::kReady);
  resume_gate.Open();
  ASSERT_TRUE(first.Wait().ok());
  EXPECT_TRUE(a_there.load());
  ASSERT_TRUE(b.Wait().ok());

  // Two waiters of "a" asked before it loads, with a load of "b" queued
  // between them that evicts "a" once the first waiter has run: the second
  // gets "a" loaded again.
  std::ofstream(repo.Add("c") / kDeclaredMemoryFile) << "100\n";
  ASSERT_TRUE(registry.LoadFromRepository("c").ok());  // evicts what is idle
  EXPECT_FALSE(registry.Get("a", "").ok());
  EXPECT_FALSE(registry.Get("b", "").ok());
  AsyncResult w1, w2, between;
  // "b" loads after the first waiter ran (and, but for a moment, let go of
  // "a": either way the second waiter must get "a").
  before_b = [&w1] { w1.Wait(); };
  registry.LoadIfAbsentAsync("a", w1.Callback());
  registry.LoadIfAbsentAsync("b", between.Callback());
  registry.LoadIfAbsentAsync("a", w2.Callback());
  ASSERT_TRUE(w1.Wait().ok());
  ASSERT_TRUE(between.Wait().ok());
  absl::Status second = w2.Wait();
  EXPECT_TRUE(second.ok()) << second;
  registry.StopAsync();
}

// A request waits for its model's load at most load_wait_deadline: then it
// is answered DeadlineExceeded, the load goes on, and the next request finds
// the model loaded. The cache's series include the hit ratio.
TEST(ModelCacheTest, WaitersHaveADeadline) {
  FakeRepository repo;
  repo.Add("slow");
  FakeGate gate;
  FakeBackend fake(FakeBackend::Options{.on_load = [&gate](const LoadOptions&) {
    gate.Pass();
    return absl::OkStatus();
  }});
  Metrics metrics;
  ModelRegistry::Options options = RepositoryOptions(repo, {&fake});
  options.load_on_demand = true;
  options.load_wait_deadline = std::chrono::milliseconds(50);
  ModelRegistry registry(options, &metrics);
  AsyncResult waiter;
  registry.LoadIfAbsentAsync("slow", waiter.Callback());
  ASSERT_TRUE(gate.WaitArrivals(1));
  absl::Status st = waiter.Wait();  // while the load is held at the gate
  EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
  EXPECT_NE(st.message().find("model 'slow' did not load within 0.05 s"), std::string::npos) << st;
  gate.Open();
  // The load went on; the next waiter finds the model.
  AsyncResult next;
  registry.LoadIfAbsentAsync("slow", next.Callback());
  EXPECT_TRUE(next.Wait().ok());
  EXPECT_TRUE(registry.Get("slow", "").ok());
  registry.CountLookup(true);
  registry.CountLookup(true);
  registry.CountLookup(true);
  registry.CountLookup(false);
  const std::string text = registry.CacheMetrics();
  EXPECT_NE(text.find("osprey_model_cache_hit_ratio 0.75\n"), std::string::npos) << text;
  EXPECT_NE(text.find("osprey_model_cache_requests_total{result=\"miss\"} 1\n"), std::string::npos);
  registry.StopAsync();
}

}  // namespace
}  // namespace osprey
