// `osprey serve`: the model server (a predictor replica).

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "backends/registry.h"
#include "backends/torchserve_store.h"
#include "common/cpus.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/strings.h"
#include "rapidjson/document.h"
#ifdef OSPREY_WITH_GRPC
#include "server/grpc_server.h"
#endif
#include "net/http_server.h"
#include "server/inference_core.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/monitoring.h"
#include "server/rest_handler.h"
#include "signals.h"
#include "storage/storage.h"
#include "tracing_flags.h"

namespace osprey {
namespace {

namespace fs = std::filesystem;

// --model-args: a JSON array of strings.
absl::StatusOr<std::vector<std::string>> ParseStringArray(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  constexpr char kWant[] = R"(expected a JSON array of strings, e.g. ["--nb_classes", "10"])";
  if (d.HasParseError() || !d.IsArray()) return absl::InvalidArgumentError(kWant);
  std::vector<std::string> out;
  for (const auto& v : d.GetArray()) {
    if (!v.IsString()) return absl::InvalidArgumentError(kWant);
    out.emplace_back(v.GetString(), v.GetStringLength());
  }
  return out;
}

// An empty directory of its own, removed when it goes.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    std::string pattern = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Everything `osprey serve` reads from its flags, at its defaults.
struct ServeFlags {
  std::string model_dir, model_name, model_repository, model_format, model_args;
  bool no_load_on_start = false;
  std::string http_address = "0.0.0.0";
  int http_port = 8080;
  int http_threads = UsableCpus();
  int grpc_port = 8081;
  std::string grpc_socket, http_socket, link_socket;
  bool no_grpc = false;
  bool exit_on_load_failure = false;
  BatchingOptions batching;
  int64_t max_queue_delay_us = 0;
  std::string preferred_batch_sizes;
  int python_workers = 2;
  uint64_t model_memory_budget = 0;
  bool load_on_demand = false;
  std::chrono::milliseconds model_load_wait{60000};
  int64_t max_request_bytes = 64ll << 20;
  std::chrono::milliseconds grace{30000};
  std::string log_level;
  // Drift and outlier detection (server/monitoring.h).
  std::string drift_reference, drift_p_value = "0.05", drift_categorical;
  std::string outlier_quantile = "0.99", drift_cache_dir;
  int64_t drift_window = 500, drift_stride = 0;
  bool outlier_header = false;
  bool help = false;

  std::vector<FlagSpec> Specs() {
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    return {
        StringFlag("model-dir", &model_dir,
                   "directory of one model (its files, or numeric version dirs)", "DIR"),
        StringFlag("model-name", &model_name,
                   "name of the --model-dir model (default: the directory's name)", "NAME"),
        StringFlag("model-repository", &model_repository,
                   "directory of model directories, each served by its name", "DIR"),
        BoolFlag("no-load-on-start", &no_load_on_start,
                 "with --model-repository: load models only on request"),
        StringFlag("model-format", &model_format,
                   "backend to use (xgboost); default: recognised from the files", "NAME"),
        StringFlag("model-args", &model_args,
                   "the model's own arguments as a JSON array of strings (an explainer's "
                   "settings, e.g. [\"--nb_classes\", \"10\"])",
                   "JSON"),
        StringFlag("http-address", &http_address, "address to listen on (default 0.0.0.0)", "ADDR"),
        PortFlag("http-port", &http_port, "HTTP port (default 8080; 0 picks a free one)"),
        IntFlag("http-threads", &http_threads, 1, 1024,
                "HTTP event loops (default: the CPUs it may run on)"),
        PortFlag("grpc-port", &grpc_port, "gRPC port (default 8081; 0 picks a free one)"),
        StringFlag("grpc-socket", &grpc_socket,
                   "serve gRPC on this Unix domain socket instead of a port", "PATH"),
        StringFlag("http-socket", &http_socket, "also serve HTTP on this Unix domain socket",
                   "PATH"),
        StringFlag("link-socket", &link_socket,
                   "also take the gateway's link (multiplexed, batched requests) on this Unix "
                   "domain socket",
                   "PATH"),
        BoolFlag("no-grpc", &no_grpc, "serve REST only"),
        BoolFlag("exit-on-load-failure", &exit_on_load_failure,
                 "exit with status 1 if the model (with --model-repository: any model) fails "
                 "to load at start"),
        IntFlag("max-batch-size", &batching.max_batch_size, 0, kMax,
                "dynamic batching: rows per execution for batchable models (default 0: off)"),
        IntFlag("max-queue-delay-us", &max_queue_delay_us, 0, kMax,
                "dynamic batching: longest a request waits for others to join (default 0)"),
        StringFlag("preferred-batch-sizes", &preferred_batch_sizes,
                   "dynamic batching: comma-separated sizes to run at once", "N,N"),
        IntFlag("batch-executors", &batching.executors, 1, 1024,
                "dynamic batching: threads executing batches per model (1)"),
        IntFlag("python-workers", &python_workers, 1, 1024,
                "worker processes per Python model (default 2)"),
        ByteSizeFlag("model-memory-budget", &model_memory_budget,
                     "with --model-repository: bytes the models may hold together; past it, "
                     "the least recently used idle models are unloaded, and a request for an "
                     "unloaded model loads it (e.g. 512Mi; default 0: no budget)"),
        BoolFlag("load-on-demand", &load_on_demand,
                 "with --model-repository: a request for a model of the repository that is "
                 "not loaded loads it (implied by --model-memory-budget)"),
        DurationFlag("model-load-wait-s", &model_load_wait, std::chrono::seconds(1),
                     "a request for a model being loaded on demand waits this long, then is "
                     "answered 503 while the load goes on (default 60; 0: as long as it takes)"),
        IntFlag("max-request-bytes", &max_request_bytes, 1, kMax,
                "largest request body accepted (default 67108864)"),
        DurationFlag("grace-period-seconds", &grace, std::chrono::seconds(1),
                     "on SIGTERM, time to finish in-flight requests (30)"),
        StringFlag("log-level", &log_level, "debug, info, warning or error (default info)",
                   "LEVEL"),
        StringFlag("drift-reference", &drift_reference,
                   "turn on drift and outlier detection against this reference: a storage URI "
                   "of a .npy or .csv file (rows x features), or first:N (the first N rows "
                   "served)",
                   "URI"),
        IntFlag("drift-window", &drift_window, 2, 10000,
                "drift: rows per tested window of recent inputs (default 500)"),
        IntFlag("drift-stride", &drift_stride, 0, kMax,
                "drift: rows between tests (default 0: the window, no overlap)"),
        StringFlag("drift-p-value", &drift_p_value,
                   "drift: p-value threshold before the Bonferroni correction (default 0.05)", "P"),
        StringFlag("drift-categorical", &drift_categorical,
                   "drift: comma-separated indices of categorical features (chi-squared)", "I,J"),
        StringFlag("outlier-quantile", &outlier_quantile,
                   "outliers: reference quantile of the score threshold (default 0.99; 0: off)",
                   "Q"),
        BoolFlag("outlier-header", &outlier_header,
                 "outliers: answer each REST inference with x-osprey-outlier-score"),
        StringFlag("drift-cache-dir", &drift_cache_dir,
                   "where a remote drift reference is downloaded (default: a temporary dir)",
                   "DIR"),
        BoolFlag("help", &help, "show this help"),
    };
  }
};

constexpr char kUsage[] = "osprey serve (--model-dir DIR | --model-repository DIR) [flags]";

// --preferred-batch-sizes, checked against --max-batch-size; false (after a
// message) when malformed.
bool ParsePreferredSizes(const std::string& text, BatchingOptions* out) {
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t size = 0;
    if (!absl::SimpleAtoi(part, &size) || size < 1 ||
        (out->max_batch_size > 0 && size > out->max_batch_size)) {
      std::fprintf(stderr,
                   "osprey serve: --preferred-batch-sizes takes sizes from 1 to "
                   "--max-batch-size, got '%s'\n",
                   std::string(part).c_str());
      return false;
    }
    out->preferred_batch_sizes.push_back(size);
  }
  if (!out->preferred_batch_sizes.empty() && out->max_batch_size == 0) {
    std::fprintf(stderr, "osprey serve: --preferred-batch-sizes needs --max-batch-size\n");
    return false;
  }
  return true;
}

// The drift detector of model `name` from the --drift-* and --outlier-*
// flags; the reference is fetched with the storage initializer's schemes.
absl::StatusOr<std::unique_ptr<RequestMonitor>> StartMonitor(const ServeFlags& f,
                                                             const std::string& name) {
  monitor::DetectorOptions o;
  o.model = name;
  o.window = static_cast<size_t>(f.drift_window);
  o.stride = static_cast<size_t>(f.drift_stride);
  if (!absl::SimpleAtod(f.drift_p_value, &o.p_value))
    return absl::InvalidArgumentError(
        StrCat("--drift-p-value: expected a number, got '", f.drift_p_value, "'"));
  if (!absl::SimpleAtod(f.outlier_quantile, &o.outlier_quantile))
    return absl::InvalidArgumentError(
        StrCat("--outlier-quantile: expected a number, got '", f.outlier_quantile, "'"));
  for (absl::string_view part : absl::StrSplit(f.drift_categorical, ',', absl::SkipWhitespace())) {
    size_t index = 0;
    if (!absl::SimpleAtoi(part, &index))
      return absl::InvalidArgumentError(
          StrCat("--drift-categorical: '", std::string(part), "' is not a feature index"));
    o.categorical.push_back(index);
  }
  const std::string& ref = f.drift_reference;
  if (ref.starts_with("first:")) {
    if (!absl::SimpleAtoi(ref.substr(6), &o.first_rows) || o.first_rows < 2)
      return absl::InvalidArgumentError(
          StrCat("--drift-reference: first:N takes N >= 2 rows, got '", ref, "'"));
  } else {
    storage::Options so;
    so.cache_dir = !f.drift_cache_dir.empty()
                       ? f.drift_cache_dir
                       : (fs::temp_directory_path() / "osprey-drift-references").string();
    OSPREY_ASSIGN_OR_RETURN(std::string local, storage::Fetch(ref, so));
    // A remote single file lands inside its cache entry, under its own name.
    if (fs::is_directory(local)) {
      const std::string base = fs::path(ref).filename().string();
      local = (fs::path(local) / base).string();
    }
    std::ifstream in(local, std::ios::binary);
    if (!in) return absl::NotFoundError(StrCat("--drift-reference: cannot read ", local));
    std::stringstream bytes;
    bytes << in.rdbuf();
    OSPREY_ASSIGN_OR_RETURN(o.reference, monitor::ParseReference(local, bytes.str()));
  }
  OSPREY_ASSIGN_OR_RETURN(auto detector, monitor::Detector::Start(std::move(o)));
  return std::make_unique<RequestMonitor>(name, std::move(detector), f.outlier_header);
}

}  // namespace

int ServeMain(const std::vector<std::string_view>& args) {
  ServeFlags f;
  TracingFlags tracing;
  std::vector<FlagSpec> specs = f.Specs();
  tracing.Add(&specs);
  auto parsed = ParseFlags(args, specs);
  if (!parsed.ok()) {
    std::fprintf(stderr, "osprey serve: %s\n\n%s", std::string(parsed.status().message()).c_str(),
                 FlagsHelp(kUsage, specs).c_str());
    return 2;
  }
  auto& flags = *parsed;
  if (f.help) {
    std::printf("%s", FlagsHelp(kUsage, specs).c_str());
    return 0;
  }
  if (!ApplyLogLevelFlag(flags, "serve")) return 2;
  std::unique_ptr<trace::Tracer> tracer;  // lives until exit
  if (!tracing.Start("serve", "osprey-serve", &tracer)) return 2;
  bool has_dir = flags.count("model-dir") > 0;
  bool has_repo = flags.count("model-repository") > 0;
  // The ART explainer has no files of its own: an empty directory stands in.
  std::optional<TempDir> no_files;
  if (!has_dir && !has_repo && f.model_format == "art") {
    no_files.emplace("osprey-explainer");
    f.model_dir = no_files->path().string();
    if (f.model_name.empty()) f.model_name = "explainer";
    has_dir = true;
  }
  if (has_dir == has_repo) {
    std::fprintf(stderr, "osprey serve: give exactly one of --model-dir or --model-repository\n");
    return 2;
  }
  f.batching.max_queue_delay = std::chrono::microseconds(f.max_queue_delay_us);
  if (!ParsePreferredSizes(f.preferred_batch_sizes, &f.batching)) return 2;

  HttpServer::Options http;
  http.port = static_cast<uint16_t>(f.http_port);
  http.threads = f.http_threads;
  http.max_request_bytes = static_cast<uint64_t>(f.max_request_bytes);
  http.address = f.http_address;
  http.unix_socket = f.http_socket;
  http.link_socket = f.link_socket;

  // SIGTERM/SIGINT are taken synchronously by this thread; every thread
  // started below inherits the blocked mask.
  const sigset_t signals = BlockStopSignals();

  Metrics metrics;
  ModelRegistry::Options registry_options;
  registry_options.backends = AllBackends();
  registry_options.repository = f.model_repository;
  registry_options.format = f.model_format;
  registry_options.batching = f.batching;
  registry_options.workers = f.python_workers;
  registry_options.memory_budget = f.model_memory_budget;
  registry_options.load_on_demand = f.load_on_demand;
  registry_options.load_wait_deadline = f.model_load_wait;
  if (!f.model_args.empty()) {
    auto args = ParseStringArray(f.model_args);
    if (!args.ok()) {
      std::fprintf(stderr, "osprey serve: --model-args: %s\n",
                   std::string(args.status().message()).c_str());
      return 2;
    }
    registry_options.model_args = *std::move(args);
  }
  ModelRegistry registry(registry_options, &metrics);
  InferenceCore core(&registry);
  RestHandler handler(ServerInfo{}, &core, &metrics);
  std::unique_ptr<RequestMonitor> monitor;  // outlives the servers below

  // Models load before the port opens, so a client that sees the port open
  // and asks for readiness gets the truth.
  if (has_dir) {
    fs::path dir = f.model_dir;
    std::string name = !f.model_name.empty()
                           ? f.model_name
                           : fs::absolute(dir).lexically_normal().filename().string();
    if (name.empty()) name = fs::absolute(dir).lexically_normal().parent_path().filename();
    if (!f.drift_reference.empty()) {
      auto started = StartMonitor(f, name);
      if (!started.ok()) {
        std::fprintf(stderr, "osprey serve: drift detection of model %s: %s\n", name.c_str(),
                     std::string(started.status().message()).c_str());
        return 2;
      }
      monitor = *std::move(started);
      core.SetMonitor(monitor.get());
      OSPREY_LOG(kInfo) << "drift detection of model " << name << " against " << f.drift_reference;
    }
    // A TorchServe store serves its models under the names its configuration
    // gives them (as TorchServe does), whatever the directory's name.
    std::vector<std::string> names = {name};
    if ((f.model_format.empty() || f.model_format == "pytorch") && torchserve::IsStore(dir)) {
      auto store = torchserve::StoreModels(dir);
      if (!store.ok()) {
        std::fprintf(stderr, "osprey serve: %s: %s\n", dir.c_str(),
                     std::string(store.status().message()).c_str());
        return f.exit_on_load_failure ? 1 : 2;
      }
      names.clear();
      for (const auto& m : *store) names.push_back(m.name);
      if (names.size() == 1) name = names[0];
    }
    // Failures are logged and kept in the index, unless the caller (the
    // control plane's supervisor) wants a replica that cannot load to exit.
    absl::Status loaded = absl::OkStatus();
    for (const std::string& n : names) {
      absl::Status one = registry.Load(n, dir);
      if (!one.ok() && f.exit_on_load_failure) {
        std::fprintf(stderr, "osprey serve: model %s failed to load: %s\n", n.c_str(),
                     std::string(one.message()).c_str());
        return 1;
      }
      if (loaded.ok()) loaded = one;
    }
    if (monitor != nullptr && loaded.ok()) {
      // A reference of another width than the model's rows would leave every
      // request unmonitored: refused at the start, naming both.
      auto served = registry.Get(name, "");
      const size_t reference = monitor->detector().features();
      const std::optional<size_t> width =
          served.ok() ? ModelRowWidth((*served)->model->metadata()) : std::nullopt;
      if (reference != 0 && width.has_value() && *width != reference) {
        std::fprintf(stderr,
                     "osprey serve: --drift-reference has %zu features per row; model %s takes "
                     "%zu\n",
                     reference, name.c_str(), *width);
        return 2;
      }
    }
  } else {
    if (!f.drift_reference.empty()) {
      std::fprintf(stderr, "osprey serve: --drift-reference needs --model-dir\n");
      return 2;
    }
    if (!f.no_load_on_start) {
      absl::Status loaded = registry.LoadAllFromRepository();
      if (loaded.ok() && registry.Index().empty())
        loaded = absl::NotFoundError(
            StrCat("model repository ", f.model_repository,
                   " holds no model directory (a repository holds <model>/config.pbtxt and "
                   "<model>/<version>/<model file>)"));
      // As Triton by default: a model that cannot load stops the server, when
      // the caller (the control plane's supervisor) wants that.
      if (!loaded.ok() && f.exit_on_load_failure) {
        bool named = false;
        for (const ModelStatus& m : registry.Index()) {
          if (m.state == ModelState::kReady || m.reason.empty()) continue;
          std::fprintf(stderr, "osprey serve: model %s failed to load: %s\n", m.name.c_str(),
                       m.reason.c_str());
          named = true;
        }
        if (!named)
          std::fprintf(stderr, "osprey serve: %s\n", std::string(loaded.message()).c_str());
        return 1;
      }
      if (!loaded.ok()) OSPREY_LOG(kWarning) << loaded.message();
    }
  }

#ifdef OSPREY_WITH_GRPC
  std::unique_ptr<GrpcServer> grpc;
  // gRPC health follows model readiness. The callback is in place before the
  // gRPC server can take a load or unload call; it sees the server once started.
  std::atomic<GrpcServer*> health{nullptr};
  registry.SetOnChange([&health, &registry] {
    if (GrpcServer* g = health.load()) g->SetServing(registry.AllReady());
  });
  if (!f.no_grpc) {
    GrpcServer::Options grpc_options;
    grpc_options.address = http.address;
    grpc_options.port = static_cast<uint16_t>(f.grpc_port);
    grpc_options.unix_socket = f.grpc_socket;
    grpc_options.max_message_bytes =
        static_cast<int>(std::min<int64_t>(f.max_request_bytes, std::numeric_limits<int>::max()));
    auto started = GrpcServer::Start(grpc_options, &core, ServerInfo{});
    if (!started.ok()) {
      OSPREY_LOG(kError) << started.status().message();
      return 1;
    }
    grpc = *std::move(started);
    grpc->SetServing(registry.AllReady());
    health.store(grpc.get());
    if (grpc_options.unix_socket.empty()) {
      OSPREY_LOG(kInfo) << "serving gRPC on " << http.address << ":" << grpc->port();
    } else {
      OSPREY_LOG(kInfo) << "serving gRPC on unix:" << grpc_options.unix_socket;
    }
  }
#endif

  auto server = HttpServer::Start(http, &handler);
  if (!server.ok()) {
    OSPREY_LOG(kError) << server.status().message();
    return 1;
  }
  OSPREY_LOG(kInfo) << "osprey " << OSPREY_VERSION << " serving HTTP on " << http.address << ":"
                    << (*server)->port() << " with " << f.http_threads << " thread(s)";

  const int sig = WaitForStopSignal(signals);
  OSPREY_LOG(kInfo) << "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
                    << ": draining for up to " << f.grace.count() / 1000.0 << " s";
  const auto grace = f.grace;
#ifdef OSPREY_WITH_GRPC
  // gRPC drains on its own thread while HTTP drains here, under one deadline.
  std::thread grpc_drain;
  if (grpc) {
    grpc_drain = std::thread([&grpc, grace] { grpc->Shutdown(grace); });
  }
#endif
  bool clean = (*server)->Drain(grace);
  // A load or an explanation still running when the grace period ended
  // finishes here, before the HTTP server its answer goes to is gone.
  registry.StopAsync();
  handler.StopExplain();
  server->reset();
#ifdef OSPREY_WITH_GRPC
  if (grpc_drain.joinable()) grpc_drain.join();
  health.store(nullptr);
  // Deliberately not destroyed: grpc::Server's destructor can wait ~10 s for
  // an idle executor thread to wake from its poll, past the grace period. The
  // process is about to exit and the kernel reclaims everything. Kept
  // reachable from a static so leak checkers do not report it.
  static GrpcServer* const kept_until_exit = grpc.release();
  (void)kept_until_exit;
#endif
  OSPREY_LOG(kInfo) << (clean ? "drained; exiting" : "grace period over; exiting");
  return 0;
}

}  // namespace osprey
