// `osprey up`: the local platform. Control-plane API, store, reconciler,
// replica supervisor and the gateway entry point, in one process.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "common/cpus.h"
#include "common/files.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/strings.h"
#include "controlplane/local/api.h"
#include "controlplane/local/controller.h"
#include "controlplane/local/kube_api.h"
#include "gateway/gateway.h"
#include "net/tls_pki.h"
#ifdef OSPREY_WITH_GRPC
#include "gateway/grpc_ingress.h"
#endif
#include "net/http_server.h"
#include "platform_paths.h"
#include "signals.h"
#include "tracing_flags.h"

namespace osprey {
namespace {

namespace fs = std::filesystem;

constexpr char kUsage[] = "osprey up [flags]";

absl::StatusOr<std::string> ReadOrMakeToken(const std::string& path) {
  std::ifstream in(path);
  std::string token;
  if (in && std::getline(in, token) && !token.empty()) return token;
  unsigned char bytes[24];
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::read(fd, bytes, sizeof(bytes)) != static_cast<ssize_t>(sizeof(bytes))) {
    if (fd >= 0) ::close(fd);
    return absl::InternalError("cannot read /dev/urandom for the API token");
  }
  ::close(fd);
  static const char kHex[] = "0123456789abcdef";
  for (unsigned char b : bytes) {
    token.push_back(kHex[b >> 4]);
    token.push_back(kHex[b & 15]);
  }
  // Owner-only from the moment it exists, like a kubeconfig.
  fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(StrCat("cannot write ", path));
  std::string line = token + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::fchmod(fd, 0600);
  ::close(fd);
  if (!ok) return absl::InternalError(StrCat("cannot write ", path));
  return token;
}

}  // namespace

int UpMain(const std::vector<std::string_view>& args) {
  controlplane::Controller::Options options;
  gateway::Gateway::Options gateway_opts;
  HttpServer::Options gateway_options;
  const int cpus = UsableCpus();
  std::string data_dir, pvc_root, image_map, apply, log_level, propagate_headers;
  int http_port = 8080, api_port = 8090, grpc_port = 8081, gateway_threads = cpus, https_port = 0;
  int api_tls_port = -1;  // -1: 8443, else a free one
  bool no_grpc = false, keep = false, help = false;
  TracingFlags tracing;
  std::vector<FlagSpec> specs = {
      StringFlag("data-dir", &data_dir,
                 "store, token, logs and model cache (default $OSPREY_HOME or ~/.osprey)", "DIR"),
      PortFlag("http-port", &http_port, "gateway port (default 8080; 0 picks a free one)"),
      PortFlag("https-port", &https_port,
               "the gateway's HTTPS port: where Istio Gateway servers on port 443 are served "
               "(default: 443 itself)"),
      PortFlag("api-port", &api_port, "control-plane API port (default 8090; 0 picks a free one)"),
      PortFlag("api-tls-port", &api_tls_port,
               "the API over TLS, for kubectl and Kubernetes clients (DATA_DIR/kubeconfig; "
               "certificates from a CA in DATA_DIR/pki). Default 8443, or a free port when "
               "8443 is taken; 0 picks a free one"),
      PortFlag("grpc-port", &grpc_port, "gateway gRPC port (default 8081; 0 picks a free one)"),
      BoolFlag("no-grpc", &no_grpc, "no gRPC ingress"),
      StringFlag("address", &gateway_options.address,
                 "address the gateway listens on (default 0.0.0.0; the API: 127.0.0.1)", "ADDR"),
      StringFlag("domain", &options.platform.domain,
                 "domain of InferenceService URLs (default example.com)", "DOMAIN"),
      StringFlag("domain-template", &options.platform.domain_template,
                 "host of an InferenceService (default {{.Name}}-{{.Namespace}}.{{.Domain}})",
                 "TEMPLATE"),
      StringFlag("pvc-root", &pvc_root,
                 "directory holding pvc://{claim}/... (default DATA_DIR/pvc)", "DIR"),
      StringFlag("image-map", &image_map,
                 "JSON file mapping container images to local commands: "
                 "{\"repo/image\": [\"cmd\", ...]}",
                 "FILE"),
      StringFlag("apply", &apply,
                 "apply this KServe YAML file at start (comma-separated for several)", "FILE"),
      BoolFlag("keep-replicas", &keep,
               "on SIGTERM, leave replicas running for the next start to adopt"),
      DurationFlag("replica-startup-timeout-s", &options.replica_startup_timeout,
                   std::chrono::seconds(1), "a replica not ready by then is restarted (120)"),
      DurationFlag("autoscale-tick-ms", &options.autoscale_tick, std::chrono::milliseconds(1),
                   "how often the autoscaler decides (2000)"),
      DurationFlag("cost-window-s", &options.cost_window, std::chrono::seconds(1),
                   "the cost view's recent window (osprey cost; 3600); right-sizing advice "
                   "needs half of it observed"),
      DurationFlag("stable-window-s", &options.kpa.stable_window, std::chrono::seconds(1),
                   "autoscaler stable window, seconds (60; panic window 10% of it)"),
      DurationFlag("scale-to-zero-grace-s", &options.kpa.scale_to_zero_grace,
                   std::chrono::seconds(1), "idle time past the stable window before zero (30)"),
      DurationFlag("queue-deadline-s", &gateway_opts.queue_deadline, std::chrono::seconds(1),
                   "how long the gateway holds a request for a replica (30)"),
      IntFlag("gateway-threads", &gateway_threads, 1, 1024,
              "event loops of the gateway (default: the CPUs it may run on)"),
      StringFlag("graph-propagate-headers", &propagate_headers,
                 "InferenceGraph steps get the request headers whose names match these regular "
                 "expressions (comma-separated; KServe's router headers.propagate; default none)",
                 "PATTERNS"),
      StringFlag("log-level", &log_level, "debug, info, warning or error (default info)", "LEVEL"),
      BoolFlag("help", &help, "show this help"),
  };
  tracing.Add(&specs);
  auto parsed = ParseFlags(args, specs);
  if (!parsed.ok()) {
    std::fprintf(stderr, "osprey up: %s\n\n%s", std::string(parsed.status().message()).c_str(),
                 FlagsHelp(kUsage, specs).c_str());
    return 2;
  }
  auto flags = *parsed;
  if (help) {
    std::printf("%s", FlagsHelp(kUsage, specs).c_str());
    return 0;
  }
  if (!ApplyLogLevelFlag(flags, "up")) return 2;
  // Before any replica starts: they inherit the tracing environment.
  std::unique_ptr<trace::Tracer> tracer;  // lives until exit
  if (!tracing.Start("up", "osprey-gateway", &tracer)) return 2;
  for (const auto& [flag, value] :
       {std::pair{"replica-startup-timeout-s", options.replica_startup_timeout},
        std::pair{"autoscale-tick-ms", options.autoscale_tick},
        std::pair{"cost-window-s", options.cost_window}}) {
    if (value.count() <= 0) {
      std::fprintf(stderr, "osprey up: --%s must be above 0, got '%s'\n", flag,
                   flags[flag].c_str());
      return 2;
    }
  }

  options.data_dir = data_dir.empty() ? DefaultDataDir() : data_dir;
  options.data_dir = fs::absolute(options.data_dir).lexically_normal().string();
  if (options.data_dir.size() > 1 && options.data_dir.back() == '/') options.data_dir.pop_back();
  options.pvc_root = pvc_root.empty() ? options.data_dir + "/pvc" : pvc_root;
  options.local.osprey_binary = fs::canonical("/proc/self/exe").string();
  options.platform.format_notes = controlplane::LocalFormatNotes();
  if (!image_map.empty()) {
    auto st = controlplane::LoadImageMap(image_map, &options.local);
    if (!st.ok()) {
      std::fprintf(stderr, "osprey up: %s\n", std::string(st.message()).c_str());
      return 2;
    }
  }

  const sigset_t signals = BlockStopSignals();

  std::error_code ec;
  fs::create_directories(options.data_dir, ec);
  auto token = ReadOrMakeToken(options.data_dir + "/token");
  if (!token.ok()) {
    std::fprintf(stderr, "osprey up: %s\n", std::string(token.status().message()).c_str());
    return 1;
  }

  // The gateway binds first: its port is part of every InferenceService URL.
  std::atomic<controlplane::Controller*> controller_ptr{nullptr};
  gateway_opts.access_log = options.data_dir + "/access.log";
  for (std::stringstream in(propagate_headers); !propagate_headers.empty();) {
    std::string pattern;
    if (!std::getline(in, pattern, ',')) break;
    if (!pattern.empty()) gateway_opts.graph_propagate_headers.push_back(pattern);
  }
  gateway_opts.on_demand = [&controller_ptr](const std::string& revision_key) {
    if (auto* c = controller_ptr.load()) c->Activate(revision_key);
  };
  gateway_options.port = static_cast<uint16_t>(http_port);
  gateway_options.threads = gateway_threads;
  // Replicas run a loop per CPU; each link is served by one of them.
  gateway_opts.links_per_replica = (cpus + gateway_options.threads - 1) / gateway_options.threads;
  gateway::Gateway gateway(gateway_opts);
  auto gateway_server = HttpServer::Start(gateway_options, &gateway);
  if (!gateway_server.ok()) {
    OSPREY_LOG(kError) << "gateway: " << gateway_server.status().message();
    return 1;
  }
  options.platform.gateway_port = (*gateway_server)->port();
#ifdef OSPREY_WITH_GRPC
  std::unique_ptr<gateway::GrpcIngress> grpc_ingress;
  std::unique_ptr<gateway::GrpcIngress> predictor_grpc_ingress;
  if (!no_grpc) {
    gateway::GrpcIngress::Options grpc_options;
    grpc_options.address = gateway_options.address;
    grpc_options.port = static_cast<uint16_t>(grpc_port);
    auto started = gateway::GrpcIngress::Start(grpc_options, &gateway);
    if (!started.ok()) {
      OSPREY_LOG(kError) << "gateway: " << started.status().message();
      return 1;
    }
    grpc_ingress = *std::move(started);
    // Where transformers' gRPC calls reach their predictors: a model name
    // finds the predictor's route here, not the service's (the transformer).
    grpc_options.address = "127.0.0.1";
    grpc_options.port = 0;
    grpc_options.component = "predictor";
    started = gateway::GrpcIngress::Start(grpc_options, &gateway);
    if (!started.ok()) {
      OSPREY_LOG(kError) << "gateway: " << started.status().message();
      return 1;
    }
    predictor_grpc_ingress = *std::move(started);
    options.local.predictor_grpc_port = predictor_grpc_ingress->port();
  }
#endif
  options.local.gateway_port = options.platform.gateway_port;
  if (const char* resource = std::getenv("OTEL_RESOURCE_ATTRIBUTES"))
    options.local.trace_resource = resource;
  // The node a replica's downward API describes: this machine.
  options.local.node_cpus = cpus;
  if (long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE); pages > 0 && page > 0)
    options.local.node_memory_bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
  if (char host[256] = {}; gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0')
    options.local.node_name = host;
  if (struct statvfs fs; statvfs(options.data_dir.c_str(), &fs) == 0)
    options.local.node_ephemeral_bytes =
        static_cast<uint64_t>(fs.f_blocks) * static_cast<uint64_t>(fs.f_frsize);
  options.collect_stats = [&gateway] { return gateway.CollectStats(); };
  options.on_routes = [&gateway](std::shared_ptr<const gateway::RouteTable> table) {
    gateway.Update(std::move(table));
  };
  // Istio Gateway servers on other ports: more ports of the gateway's own
  // server (its loops; nothing to stop but an acceptor), over TLS for HTTPS
  // servers; port 443 is served on --https-port when given. The platform's
  // own ports are never taken.
  const std::set<int> own_ports = {static_cast<int>((*gateway_server)->port()), api_port,
                                   grpc_port};
  options.https_port = https_port;
  options.on_listeners = [&gateway_server, own_ports,
                          https_port](const std::map<int, controlplane::Listener>& listeners) {
    std::map<int, std::string> failed;
    HttpServer& server = **gateway_server;
    auto bound_to = [&](int port) {
      return port == gateway::kMainTlsPort && https_port != 0 ? https_port : port;
    };
    std::set<int> bound;
    for (const auto& [port, l] : listeners) bound.insert(bound_to(port));
    for (uint16_t open : server.listening())
      if (!bound.contains(open)) server.StopListening(open);
    for (const auto& [port, l] : listeners) {
      const int at = bound_to(port);
      if (own_ports.contains(at)) {
        failed[port] = "it is one of the platform's own ports (gateway, API, gRPC)";
        continue;
      }
      HttpServer::ListenOptions listen;
      listen.request_port = static_cast<uint16_t>(port);
      for (const auto& c : l.certificates)
        listen.tls.push_back({c.hosts, c.certificate, c.private_key});
      listen.tls13_only = l.tls13_only;
      if (absl::Status st = server.Listen(static_cast<uint16_t>(at), listen); !st.ok())
        failed[port] = std::string(st.message());
    }
    return failed;
  };

  auto controller = controlplane::Controller::Start(options);
  if (!controller.ok()) {
    OSPREY_LOG(kError) << controller.status().message();
    return 1;
  }
  controller_ptr.store(controller->get());

  controlplane::ApiHandler api(controller->get(), *token, [&gateway] {
    return gateway.RenderMetrics() + trace::RenderMetrics();
  });
  HttpServer::Options api_options;
  api_options.address = "127.0.0.1";
  api_options.port = static_cast<uint16_t>(api_port);
  api_options.threads = 1;
  auto api_server = HttpServer::Start(api_options, &api);
  if (!api_server.ok()) {
    OSPREY_LOG(kError) << "API: " << api_server.status().message();
    return 1;
  }
  std::string api_url = StrCat("http://127.0.0.1:", (*api_server)->port());
  // The same API over TLS, for kubectl (which sends credentials over TLS only).
  std::string kube_url, ca_certificate_pem;
  if (auto pki = tls::EnsureServerPki(options.data_dir + "/pki", {"127.0.0.1", "localhost"});
      !pki.ok()) {
    OSPREY_LOG(kError) << "API over TLS: " << pki.status().message();
    return 1;
  } else {
    HttpServer::ListenOptions tls_listen;
    tls_listen.tls.push_back({{}, pki->server_certificate, pki->server_key});
    absl::StatusOr<uint16_t> port = absl::UnavailableError("");
    if (api_tls_port != 0)
      port = (*api_server)
                     ->Listen(static_cast<uint16_t>(api_tls_port < 0 ? 8443 : api_tls_port),
                              tls_listen)
                     .ok()
                 ? absl::StatusOr<uint16_t>(api_tls_port < 0 ? 8443 : api_tls_port)
                 : absl::UnavailableError(StrCat("cannot listen on 127.0.0.1:", api_tls_port));
    if (!port.ok() && api_tls_port <= 0) port = (*api_server)->ListenOnFreePort(tls_listen);
    if (!port.ok()) {
      OSPREY_LOG(kError) << "API over TLS: " << port.status().message();
      return 1;
    }
    kube_url = StrCat("https://127.0.0.1:", *port);
    std::ifstream ca(pki->ca_certificate);
    std::stringstream ca_pem;
    ca_pem << ca.rdbuf();
    ca_certificate_pem = ca_pem.str();
  }
  // Where the CLI finds this platform (with the token beside it).
  std::string endpoint =
      StrCat("api=", api_url, "\ngateway=http://127.0.0.1:", (*gateway_server)->port(), "\n");
#ifdef OSPREY_WITH_GRPC
  if (grpc_ingress) StrAppend(&endpoint, "grpc=127.0.0.1:", grpc_ingress->port(), "\n");
#endif
  // A scrape configuration for this platform: prometheus --config.file=...
  auto st = WriteFileAtomically(
      options.data_dir + "/prometheus.yml",
      StrCat("# Written by osprey up: Prometheus scrapes this platform (its API and gateway,\n"
             "# osprey_role=platform) and every ready replica (osprey_role=replica), found\n"
             "# through the API's HTTP service discovery as replicas come and go.\n"
             "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n"
             "scrape_configs:\n- job_name: osprey\n  http_sd_configs:\n  - url: ",
             api_url, "/osprey/v1/prometheus/targets\n    refresh_interval: 5s\n"));
  if (!st.ok()) {
    OSPREY_LOG(kError) << st.message();
  }

  // kubectl, client-go and the KServe SDK: KUBECONFIG=DATA_DIR/kubeconfig.
  st = WriteFileAtomically(
      options.data_dir + "/kubeconfig",
      controlplane::kube_api::KubeconfigYaml(kube_url, ca_certificate_pem, *token), true);
  if (!st.ok()) {
    OSPREY_LOG(kError) << st.message();
  }

  // Last: a client that finds the endpoint file finds the rest written.
  st = WriteFileAtomically(options.data_dir + "/endpoint", endpoint);
  if (!st.ok()) {
    OSPREY_LOG(kError) << st.message();
  }

  if (!apply.empty()) {
    std::stringstream files(apply);
    for (std::string file; std::getline(files, file, ',');) {
      std::ifstream in(file);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (!in) {
        OSPREY_LOG(kError) << "--apply: cannot read " << file;
        continue;
      }
      auto applied = (*controller)->Apply(text, "", fs::absolute(file).parent_path().string());
      if (!applied.ok()) {
        OSPREY_LOG(kError) << "--apply " << file << ": " << applied.status().message();
        continue;
      }
      for (const auto& r : *applied)
        OSPREY_LOG(kInfo) << r.kind << " " << r.namespace_ << "/" << r.name << " " << r.action;
    }
  }
  OSPREY_LOG(kInfo) << "osprey " << OSPREY_VERSION << " up: gateway on " << gateway_options.address
                    << ":" << (*gateway_server)->port() << ", API on " << api_url << ", data in "
                    << options.data_dir;

  const int sig = WaitForStopSignal(signals);

  OSPREY_LOG(kInfo) << "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ": stopping"
                    << (keep ? " (replicas keep running)" : " and stopping replicas");
  api.StopWatches();  // watches end now: the drain does not wait out their timeouts
  (*api_server)->Drain(std::chrono::seconds(5));
#ifdef OSPREY_WITH_GRPC
  std::thread grpc_drain;
  if (grpc_ingress)
    grpc_drain = std::thread([&grpc_ingress, &predictor_grpc_ingress] {
      grpc_ingress->Shutdown(std::chrono::seconds(10));
      if (predictor_grpc_ingress) predictor_grpc_ingress->Shutdown(std::chrono::seconds(1));
    });
#endif
  (*gateway_server)->Drain(std::chrono::seconds(10));
#ifdef OSPREY_WITH_GRPC
  if (grpc_drain.joinable()) grpc_drain.join();
#endif
  // The servers go before the gateway (declared after it): its reaper first.
  gateway.StopReaper();
  controller_ptr.store(nullptr);
  (*controller)->Shutdown(!keep);
  return 0;
}

}  // namespace osprey
