// `osprey serve`: the model server (a predictor replica).

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "backends/registry.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/strings.h"
#ifdef OSPREY_WITH_GRPC
#include "server/grpc_server.h"
#endif
#include "net/http_server.h"
#include "server/inference_core.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/rest_handler.h"

namespace osprey {
namespace {

namespace fs = std::filesystem;

const std::vector<FlagSpec>& ServeFlags() {
  static const std::vector<FlagSpec> flags = {
      {"model-dir", false, "directory of one model (its files, or numeric version dirs)"},
      {"model-name", false, "name of the --model-dir model (default: the directory's name)"},
      {"model-repository", false, "directory of model directories, each served by its name"},
      {"no-load-on-start", true, "with --model-repository: load models only on request"},
      {"model-format", false, "backend to use (xgboost); default: recognised from the files"},
      {"http-address", false, "address to listen on (default 0.0.0.0)"},
      {"http-port", false, "HTTP port (default 8080; 0 picks a free one)"},
      {"http-threads", false, "HTTP event loops (default: number of CPUs)"},
      {"grpc-port", false, "gRPC port (default 8081; 0 picks a free one)"},
      {"grpc-socket", false, "serve gRPC on this Unix domain socket instead of a port"},
      {"http-socket", false, "also serve HTTP on this Unix domain socket"},
      {"link-socket", false,
       "also take the gateway's link (multiplexed, batched requests) on this Unix domain socket"},
      {"no-grpc", true, "serve REST only"},
      {"exit-on-load-failure", true,
       "with --model-dir: exit with status 1 if the model fails to load"},
      {"max-batch-size", false,
       "dynamic batching: rows per execution for batchable models (default 0: off)"},
      {"max-queue-delay-us", false,
       "dynamic batching: longest a request waits for others to join (default 0)"},
      {"preferred-batch-sizes", false, "dynamic batching: comma-separated sizes to run at once"},
      {"batch-executors", false, "dynamic batching: threads executing batches per model (1)"},
      {"python-workers", false, "worker processes per Python model (default 2)"},
      {"max-request-bytes", false, "largest request body accepted (default 67108864)"},
      {"grace-period-seconds", false, "on SIGTERM, time to finish in-flight requests (30)"},
      {"log-level", false, "debug, info, warning or error (default info)"},
      {"help", true, "show this help"},
  };
  return flags;
}

void PrintHelp() {
  std::fprintf(stderr,
               "usage: osprey serve (--model-dir DIR | --model-repository DIR) [flags]\n\n");
  for (const auto& f : ServeFlags())
    std::fprintf(stderr, "  --%-22s %s\n", f.name.c_str(), f.help.c_str());
}

template <typename T>
bool ParseNumber(const std::map<std::string, std::string>& flags, const std::string& name, T* out) {
  auto it = flags.find(name);
  if (it == flags.end()) return true;
  bool ok;
  if constexpr (std::is_floating_point_v<T>)
    ok = absl::SimpleAtod(it->second, out);
  else
    ok = absl::SimpleAtoi(it->second, out);
  if (!ok) {
    std::fprintf(stderr, "osprey serve: --%s must be a number, got '%s'\n", name.c_str(),
                 it->second.c_str());
    return false;
  }
  return true;
}

// --max-batch-size and friends; false (after a message) when malformed.
bool ParseBatching(const std::map<std::string, std::string>& flags, BatchingOptions* out) {
  int64_t delay_us = 0;
  if (!ParseNumber(flags, "max-batch-size", &out->max_batch_size) ||
      !ParseNumber(flags, "max-queue-delay-us", &delay_us) ||
      !ParseNumber(flags, "batch-executors", &out->executors))
    return false;
  if (out->max_batch_size < 0 || delay_us < 0 || out->executors < 1) {
    std::fprintf(stderr,
                 "osprey serve: --max-batch-size and --max-queue-delay-us must be >= 0, "
                 "--batch-executors >= 1\n");
    return false;
  }
  out->max_queue_delay = std::chrono::microseconds(delay_us);
  if (auto it = flags.find("preferred-batch-sizes"); it != flags.end()) {
    for (absl::string_view part : absl::StrSplit(it->second, ',', absl::SkipEmpty())) {
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
  }
  if (!out->preferred_batch_sizes.empty() && out->max_batch_size == 0) {
    std::fprintf(stderr, "osprey serve: --preferred-batch-sizes needs --max-batch-size\n");
    return false;
  }
  return true;
}

}  // namespace

int ServeMain(const std::vector<std::string_view>& args) {
  auto parsed = ParseFlags(args, ServeFlags());
  if (!parsed.ok()) {
    std::fprintf(stderr, "osprey serve: %s\n\n", std::string(parsed.status().message()).c_str());
    PrintHelp();
    return 2;
  }
  auto& flags = *parsed;
  if (flags.count("help")) {
    PrintHelp();
    return 0;
  }
  if (!ApplyLogLevelFlag(flags, "serve")) return 2;
  bool has_dir = flags.count("model-dir") > 0;
  bool has_repo = flags.count("model-repository") > 0;
  if (has_dir == has_repo) {
    std::fprintf(stderr, "osprey serve: give exactly one of --model-dir or --model-repository\n");
    return 2;
  }

  HttpServer::Options http;
  int port = 8080;
  int grpc_port = 8081;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  uint64_t max_bytes = http.max_request_bytes;
  double grace_seconds = 30;
  if (!ParseNumber(flags, "http-port", &port) || !ParseNumber(flags, "grpc-port", &grpc_port) ||
      !ParseNumber(flags, "http-threads", &threads) ||
      !ParseNumber(flags, "max-request-bytes", &max_bytes) ||
      !ParseNumber(flags, "grace-period-seconds", &grace_seconds))
    return 2;
  if (port < 0 || port > 65535 || grpc_port < 0 || grpc_port > 65535 || threads < 1) {
    std::fprintf(stderr,
                 "osprey serve: --http-port and --grpc-port must be 0..65535, "
                 "--http-threads >= 1\n");
    return 2;
  }
  http.port = static_cast<uint16_t>(port);
  http.threads = threads;
  http.max_request_bytes = max_bytes;
  if (auto it = flags.find("http-address"); it != flags.end()) http.address = it->second;
  if (auto it = flags.find("http-socket"); it != flags.end()) http.unix_socket = it->second;
  if (auto it = flags.find("link-socket"); it != flags.end()) http.link_socket = it->second;

  // SIGTERM/SIGINT are taken synchronously by this thread; every thread
  // started below inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Metrics metrics;
  ModelRegistry::Options registry_options;
  registry_options.backends = AllBackends();
  if (has_repo) registry_options.repository = flags["model-repository"];
  if (auto it = flags.find("model-format"); it != flags.end()) registry_options.format = it->second;
  if (!ParseBatching(flags, &registry_options.batching)) return 2;
  if (!ParseNumber(flags, "python-workers", &registry_options.workers)) return 2;
  if (registry_options.workers < 1) {
    std::fprintf(stderr, "osprey serve: --python-workers must be >= 1\n");
    return 2;
  }
  ModelRegistry registry(registry_options, &metrics);
  InferenceCore core(&registry);
  RestHandler handler(ServerInfo{}, &core, &metrics);

  // Models load before the port opens, so a client that sees the port open
  // and asks for readiness gets the truth.
  if (has_dir) {
    fs::path dir = flags["model-dir"];
    std::string name = flags.count("model-name")
                           ? flags["model-name"]
                           : fs::absolute(dir).lexically_normal().filename().string();
    if (name.empty()) name = fs::absolute(dir).lexically_normal().parent_path().filename();
    // Failures are logged and kept in the index, unless the caller (the
    // control plane's supervisor) wants a replica that cannot load to exit.
    absl::Status loaded = registry.Load(name, dir);
    if (!loaded.ok() && flags.count("exit-on-load-failure")) {
      std::fprintf(stderr, "osprey serve: model %s failed to load: %s\n", name.c_str(),
                   std::string(loaded.message()).c_str());
      return 1;
    }
  } else if (!flags.count("no-load-on-start")) {
    (void)registry.LoadAllFromRepository();
  }

#ifdef OSPREY_WITH_GRPC
  std::unique_ptr<GrpcServer> grpc;
  // gRPC health follows model readiness. The callback is in place before the
  // gRPC server can take a load or unload call; it sees the server once started.
  std::atomic<GrpcServer*> health{nullptr};
  registry.SetOnChange([&health, &registry] {
    if (GrpcServer* g = health.load()) g->SetServing(registry.AllReady());
  });
  if (!flags.count("no-grpc")) {
    GrpcServer::Options grpc_options;
    grpc_options.address = http.address;
    grpc_options.port = static_cast<uint16_t>(grpc_port);
    if (auto it = flags.find("grpc-socket"); it != flags.end())
      grpc_options.unix_socket = it->second;
    grpc_options.max_message_bytes =
        static_cast<int>(std::min<uint64_t>(max_bytes, std::numeric_limits<int>::max()));
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
                    << (*server)->port() << " with " << threads << " thread(s)";

  int sig = 0;
  sigwait(&signals, &sig);
  OSPREY_LOG(kInfo) << "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
                    << ": draining for up to " << grace_seconds << " s";
  auto grace = std::chrono::milliseconds(static_cast<int64_t>(grace_seconds * 1000));
#ifdef OSPREY_WITH_GRPC
  // gRPC drains on its own thread while HTTP drains here, under one deadline.
  std::thread grpc_drain;
  if (grpc) {
    grpc_drain = std::thread([&grpc, grace] { grpc->Shutdown(grace); });
  }
#endif
  bool clean = (*server)->Drain(grace);
  // A load still running when the grace period ended finishes here, before
  // the HTTP server its answer goes to is gone.
  registry.StopAsync();
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
