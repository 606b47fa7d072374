// `osprey gateway`: the gateway `osprey up` embeds, for a Kubernetes
// cluster. Routes come from InferenceServices' status and their revisions'
// EndpointSlices, and revisions are scaled through their Deployments' scale
// subresource by the KPA on the gateway's own measurements
// (controlplane/kube/gateway_sync.h).

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/cpus.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/prometheus.h"
#include "common/strings.h"
#include "controlplane/kube/gateway_sync.h"
#include "gateway/gateway.h"
#ifdef OSPREY_WITH_GRPC
#include "gateway/grpc_ingress.h"
#endif
#include "kube/config.h"
#include "kube/leader.h"
#include "net/http_server.h"
#include "signals.h"
#include "tracing_flags.h"

namespace osprey {
namespace {

constexpr char kUsage[] =
    "osprey gateway [flags]\n\n"
    "The in-cluster entry point of InferenceServices that `osprey operator` runs: routes by\n"
    "Host / :authority or model name to each revision's ready endpoints, splits traffic as\n"
    "the InferenceService's status says (canary, latest- and prev- tags, mirror), holds\n"
    "requests for a revision at zero while it scales up, and scales revisions with the KPA.\n"
    "/healthz, /readyz and /metrics on the HTTP port. Credentials: --kubeconfig, else\n"
    "$KUBECONFIG, else the pod's service account.";

// The gateway's own endpoints, for requests no InferenceService's host
// claims (kubelet probes and Prometheus scrapes come with the pod's
// address); everything else goes to the gateway.
class Front : public HttpHandler {
 public:
  Front(gateway::Gateway* gateway, controlplane::GatewaySync* sync, kube::Client* client,
        kube::LeaderElector* elector)
      : gateway_(gateway), sync_(sync), client_(client), elector_(elector) {}

  void Handle(const HttpRequest& req, HttpDone done) override {
    const std::string_view path = req.target.substr(0, req.target.find('?'));
    if ((path == "/healthz" || path == "/readyz" || path == "/metrics") && req.method == "GET" &&
        gateway::MatchRoute(*sync_->routes(), FindHeader(req.headers, "Host"), path,
                            [&](std::string_view n) { return FindHeader(req.headers, n); }) ==
            nullptr) {
      done(Own(path));
      return;
    }
    gateway_->Handle(req, std::move(done));
  }

 private:
  HttpResponse Own(std::string_view path) {
    HttpResponse r;
    r.content_type = "text/plain";
    if (path == "/healthz") {
      r.body = "ok\n";
    } else if (path == "/readyz") {
      const bool ready = sync_->synced();
      r.status = ready ? 200 : 503;
      r.body = ready ? "ok\n" : "routes not synced yet\n";
    } else {
      auto s = sync_->stats();
      r.content_type = "text/plain; version=0.0.4";
      r.body = gateway_->RenderMetrics() + trace::RenderMetrics();
      StrAppend(
          &r.body,
          "# HELP osprey_gateway_route_updates_total Route tables taken from the cluster.\n"
          "# TYPE osprey_gateway_route_updates_total counter\n"
          "osprey_gateway_route_updates_total ",
          s.route_updates,
          "\n"
          "# HELP osprey_gateway_scale_writes_total Deployment scale patches sent.\n"
          "# TYPE osprey_gateway_scale_writes_total counter\n"
          "osprey_gateway_scale_writes_total ",
          s.scale_writes,
          "\n"
          "# HELP osprey_gateway_scale_errors_total Deployment scale patches that failed.\n"
          "# TYPE osprey_gateway_scale_errors_total counter\n"
          "osprey_gateway_scale_errors_total ",
          s.scale_errors,
          "\n"
          "# HELP osprey_gateway_activations_total Revisions scaled up from zero for a held "
          "request.\n"
          "# TYPE osprey_gateway_activations_total counter\n"
          "osprey_gateway_activations_total ",
          s.activations,
          "\n"
          "# HELP osprey_gateway_api_requests_total Requests sent to the API server.\n"
          "# TYPE osprey_gateway_api_requests_total counter\n"
          "osprey_gateway_api_requests_total ",
          client_->requests(),
          "\n"
          "# HELP osprey_gateway_autoscaler_leader Whether this gateway's autoscaler decides (1) "
          "or stands by (0).\n"
          "# TYPE osprey_gateway_autoscaler_leader gauge\n"
          "osprey_gateway_autoscaler_leader ",
          elector_ == nullptr || elector_->leading() ? 1 : 0, "\n");
      // The endpoints each routed revision has in the table now.
      r.body +=
          "# HELP osprey_gateway_ready_replicas Ready endpoints the gateway routes to, per "
          "revision.\n"
          "# TYPE osprey_gateway_ready_replicas gauge\n";
      for (const auto& t : sync_->routes()->revisions) {
        const std::string_view ns = std::string_view(t.key).substr(0, t.key.find('/'));
        const auto [service, component] = gateway::RevisionService(t.revision);
        StrAppend(&r.body, "osprey_gateway_ready_replicas{namespace=\"", prometheus::LabelValue(ns),
                  "\",inferenceservice=\"", prometheus::LabelValue(service), "\",component=\"",
                  prometheus::LabelValue(component), "\",revision=\"",
                  prometheus::LabelValue(t.revision), "\"} ", t.ports.size(), "\n");
      }
    }
    return r;
  }

  gateway::Gateway* gateway_;
  controlplane::GatewaySync* sync_;
  kube::Client* client_;
  kube::LeaderElector* elector_;
};

}  // namespace

int GatewayMain(const std::vector<std::string_view>& args) {
  const int cpus = UsableCpus();
  std::string kubeconfig, ns, log_level, access_log, lease_namespace;
  std::string lease_name = "osprey-gateway";
  controlplane::GatewaySyncOptions sync_options;
  sync_options.platform.gateway_port = 80;
  gateway::Gateway::Options gateway_options;
  HttpServer::Options http;
  int http_port = 8080, grpc_port = 8081, threads = cpus, qps = 50, burst = 100;
  bool no_grpc = false, autoscale = true, leader_elect = false, help = false;
  std::chrono::milliseconds lease_duration{15000};
  TracingFlags tracing;
  std::vector<FlagSpec> specs = {
      StringFlag("kubeconfig", &kubeconfig, "kubeconfig file ($KUBECONFIG, else in-cluster)",
                 "FILE"),
      StringFlag("namespace", &ns, "route this namespace only (default: all)", "NS"),
      StringFlag("endpointslice-selector", &sync_options.endpointslice_selector,
                 "label selector of the EndpointSlices to watch (default: all; "
                 "app.kubernetes.io/managed-by=osprey keeps to the operator's revisions)",
                 "SELECTOR"),
      PortFlag("http-port", &http_port, "HTTP port (8080; 0 picks a free one)"),
      PortFlag("grpc-port", &grpc_port, "gRPC port (8081; 0 picks a free one)"),
      BoolFlag("no-grpc", &no_grpc, "no gRPC ingress"),
      StringFlag("address", &http.address, "address to listen on (0.0.0.0)", "ADDR"),
      StringFlag("domain", &sync_options.platform.domain,
                 "domain of InferenceService URLs (example.com)", "DOMAIN"),
      StringFlag("domain-template", &sync_options.platform.domain_template,
                 "host of an InferenceService ({{.Name}}-{{.Namespace}}.{{.Domain}})", "TEMPLATE"),
      IntFlag("threads", &threads, 1, 1024, "event loops (default: the CPUs it may run on)"),
      DurationFlag("queue-deadline-s", &gateway_options.queue_deadline, std::chrono::seconds(1),
                   "how long a request is held for a replica (30)"),
      StringFlag("access-log", &access_log, "append one line per request to FILE (default none)",
                 "FILE"),
      BoolFlag("autoscale", &autoscale,
               "scale revisions' Deployments with the KPA (true; false leaves them to the "
               "operator's floor)"),
      DurationFlag("autoscale-tick-ms", &sync_options.autoscale_tick, std::chrono::milliseconds(1),
                   "how often the autoscaler decides (2000)"),
      DurationFlag("stable-window-s", &sync_options.kpa.stable_window, std::chrono::seconds(1),
                   "autoscaler stable window (60; panic window 10% of it)"),
      DurationFlag("scale-to-zero-grace-s", &sync_options.kpa.scale_to_zero_grace,
                   std::chrono::seconds(1), "idle time past the stable window before zero (30)"),
      BoolFlag("leader-elect", &leader_elect,
               "with several gateways, one autoscaler decides (a Lease); all route and activate"),
      StringFlag("lease-namespace", &lease_namespace,
                 "namespace of the Lease ($POD_NAMESPACE, else osprey-system)", "NS"),
      StringFlag("lease-name", &lease_name, "name of the Lease (osprey-gateway)", "NAME"),
      DurationFlag("lease-duration-s", &lease_duration, std::chrono::seconds(1),
                   "how long a leader's lease lasts unrenewed (15)"),
      IntFlag("qps", &qps, 1, 100000, "API requests per second (50)"),
      IntFlag("burst", &burst, 1, 100000, "API requests in a burst (100)"),
      StringFlag("log-level", &log_level, "debug, info, warning or error (default info)", "LEVEL"),
      BoolFlag("help", &help, "show this help"),
  };
  tracing.Add(&specs);
  auto parsed = ParseFlags(args, specs);
  if (!parsed.ok()) {
    std::fprintf(stderr, "osprey gateway: %s\n\n%s", std::string(parsed.status().message()).c_str(),
                 FlagsHelp(kUsage, specs).c_str());
    return 2;
  }
  if (help) {
    std::printf("%s", FlagsHelp(kUsage, specs).c_str());
    return 0;
  }
  if (!ApplyLogLevelFlag(*parsed, "gateway")) return 2;
  std::unique_ptr<trace::Tracer> tracer;  // lives until exit
  if (!tracing.Start("gateway", "osprey-gateway", &tracer)) return 2;
  if (sync_options.autoscale_tick.count() <= 0) {
    std::fprintf(stderr, "osprey gateway: --autoscale-tick-ms must be above 0, got '%s'\n",
                 (*parsed)["autoscale-tick-ms"].c_str());
    return 2;
  }

  const sigset_t signals = BlockStopSignals();
  kube::ClientOptions client_options;
  client_options.qps = qps;
  client_options.burst = burst;
  client_options.user_agent = "osprey-gateway";
  auto connected = kube::Connect(kubeconfig, client_options);
  if (!connected.ok()) {
    std::fprintf(stderr, "osprey gateway: %s\n", std::string(connected.status().message()).c_str());
    return 1;
  }
  kube::Client& client = **connected;
  const kube::Config& config = client.config();

  std::atomic<controlplane::GatewaySync*> sync_ptr{nullptr};
  gateway_options.access_log = access_log;
  gateway_options.on_demand = [&sync_ptr](const std::string& revision_key) {
    if (auto* s = sync_ptr.load()) s->Activate(revision_key);
  };
  gateway::Gateway gateway(gateway_options);

  std::unique_ptr<kube::LeaderElector> elector;
  if (leader_elect) {
    elector = std::make_unique<kube::LeaderElector>(
        config, client_options,
        kube::LeaseSettings(lease_namespace, lease_name, lease_duration, "osprey-system"));
    sync_options.may_scale = [e = elector.get()] { return e->valid(); };
  }
  sync_options.namespace_ = ns;
  sync_options.autoscale = autoscale;
  sync_options.on_routes = [&gateway](std::shared_ptr<const gateway::RouteTable> table) {
    gateway.Update(std::move(table));
  };
  sync_options.collect_stats = [&gateway] { return gateway.CollectStats(); };
  controlplane::GatewaySync sync(&client, sync_options);

  Front front(&gateway, &sync, &client, elector.get());
  http.port = static_cast<uint16_t>(http_port);
  http.threads = threads;
  auto server = HttpServer::Start(http, &front);
  if (!server.ok()) {
    OSPREY_LOG(kError) << "gateway: " << server.status().message();
    return 1;
  }
#ifdef OSPREY_WITH_GRPC
  std::unique_ptr<gateway::GrpcIngress> grpc_ingress;
  if (!no_grpc) {
    gateway::GrpcIngress::Options grpc_options;
    grpc_options.address = http.address;
    grpc_options.port = static_cast<uint16_t>(grpc_port);
    auto started = gateway::GrpcIngress::Start(grpc_options, &gateway);
    if (!started.ok()) {
      OSPREY_LOG(kError) << "gateway: " << started.status().message();
      return 1;
    }
    grpc_ingress = *std::move(started);
  }
#else
  (void)grpc_port;
  (void)no_grpc;
#endif
  sync_ptr.store(&sync);
  sync.Start();
  if (elector != nullptr) elector->Start(nullptr, nullptr);
  std::string listening = StrCat("HTTP on ", http.address, ":", (*server)->port());
#ifdef OSPREY_WITH_GRPC
  if (grpc_ingress) StrAppend(&listening, ", gRPC on ", http.address, ":", grpc_ingress->port());
#endif
  OSPREY_LOG(kInfo) << "osprey " << OSPREY_VERSION << " gateway: " << listening << "; API server "
                    << config.server << " (" << config.source << ")";

  const int sig = WaitForStopSignal(signals);
  OSPREY_LOG(kInfo) << "gateway: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ": stopping";
#ifdef OSPREY_WITH_GRPC
  std::thread grpc_drain;
  if (grpc_ingress)
    grpc_drain = std::thread([&grpc_ingress] { grpc_ingress->Shutdown(std::chrono::seconds(10)); });
#endif
  (*server)->Drain(std::chrono::seconds(10));
#ifdef OSPREY_WITH_GRPC
  if (grpc_drain.joinable()) grpc_drain.join();
#endif
  gateway.StopReaper();  // before the server (declared after the gateway) goes
  sync_ptr.store(nullptr);
  if (elector != nullptr) elector->Stop();
  sync.Stop();
  return 0;
}

}  // namespace osprey
