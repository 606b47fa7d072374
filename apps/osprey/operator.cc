// `osprey operator`: the Kubernetes operator (controlplane/kube/operator.h)
// with its health and metrics endpoints and, optionally, leader election.

#include "controlplane/kube/operator.h"

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/flags.h"
#include "common/logging.h"
#include "kube/config.h"
#include "kube/leader.h"
#include "net/http_server.h"
#include "signals.h"
#include "tracing_flags.h"

namespace osprey {
namespace {

constexpr char kUsage[] =
    "osprey operator [flags]\n\n"
    "Reconciles KServe's InferenceService, ServingRuntime and ClusterServingRuntime on a\n"
    "Kubernetes cluster with the same rules as `osprey up`: each revision runs as a\n"
    "Deployment and a Service; Knative Services (serving.knative.dev/v1) too, when the\n"
    "cluster serves them. Credentials: --kubeconfig, else $KUBECONFIG, else the pod's\n"
    "service account. The tracing flags (or this process's OTEL_* environment) say how\n"
    "the model servers it starts trace requests.";

// /healthz, /readyz (informers synced and, with leader election, either
// leading or standing by) and /metrics.
class HealthHandler : public HttpHandler {
 public:
  HealthHandler(controlplane::Operator* op, kube::Client* client, kube::LeaderElector* elector)
      : op_(op), client_(client), elector_(elector) {}
  void Handle(const HttpRequest& req, HttpDone done) override {
    HttpResponse r;
    r.content_type = "text/plain";
    if (req.target == "/healthz") {
      r.body = "ok\n";
    } else if (req.target == "/readyz") {
      bool ready = elector_ != nullptr ? true : op_->synced();
      r.status = ready ? 200 : 503;
      r.body = ready ? "ok\n" : "informers not synced\n";
    } else if (req.target == "/metrics") {
      auto s = op_->stats();
      r.content_type = "text/plain; version=0.0.4";
      r.body = StrCat(
          "# HELP osprey_operator_reconciles_total InferenceService reconciles.\n"
          "# TYPE osprey_operator_reconciles_total counter\n"
          "osprey_operator_reconciles_total ",
          s.reconciles, "\n",
          "# HELP osprey_operator_applies_total Server-side applies sent.\n"
          "# TYPE osprey_operator_applies_total counter\n"
          "osprey_operator_applies_total ",
          s.applies, "\n",
          "# HELP osprey_operator_reconcile_errors_total Reconciles that failed and were retried.\n"
          "# TYPE osprey_operator_reconcile_errors_total counter\n"
          "osprey_operator_reconcile_errors_total ",
          s.errors, "\n",
          "# HELP osprey_operator_api_requests_total Requests sent to the API server.\n"
          "# TYPE osprey_operator_api_requests_total counter\n"
          "osprey_operator_api_requests_total ",
          client_->requests(), "\n",
          "# HELP osprey_operator_api_writes_total Writes (non-GET requests) sent to the API "
          "server.\n"
          "# TYPE osprey_operator_api_writes_total counter\n"
          "osprey_operator_api_writes_total ",
          client_->writes(), "\n",
          "# HELP osprey_operator_leader Whether this operator leads (1) or stands by (0).\n"
          "# TYPE osprey_operator_leader gauge\n"
          "osprey_operator_leader ",
          elector_ == nullptr || elector_->leading() ? 1 : 0, "\n");
    } else {
      r.status = 404;
      r.body = "not found\n";
    }
    done(std::move(r));
  }

 private:
  controlplane::Operator* op_;
  kube::Client* client_;
  kube::LeaderElector* elector_;
};

}  // namespace

int OperatorMain(const std::vector<std::string_view>& args) {
  std::string kubeconfig, ns, claim = "all", log_level, health_address = "0.0.0.0";
  std::string lease_namespace, lease_name = "osprey-operator";
  controlplane::OperatorOptions options;
  options.platform.gateway_port = 80;
  int workers = 4, health_port = 8090, qps = 50, burst = 100;
  bool leader_elect = false, help = false, no_knative = false;
  std::chrono::milliseconds lease_duration{15000};
  std::vector<FlagSpec> specs = {
      StringFlag("kubeconfig", &kubeconfig, "kubeconfig file ($KUBECONFIG, else in-cluster)",
                 "FILE"),
      StringFlag("namespace", &ns, "watch this namespace only (default: all)", "NS"),
      StringFlag("claim", &claim,
                 "which InferenceServices to take: all (but those annotated "
                 "serving.osprey.dev/controller with another value) or annotated (only "
                 "serving.osprey.dev/controller: osprey) (all)",
                 "all|annotated"),
      BoolFlag("no-knative", &no_knative,
               "leave Knative Services (serving.knative.dev) to Knative's own controller"),
      IntFlag("workers", &workers, 1, 256, "InferenceServices reconciled at once (4)"),
      IntFlag("qps", &qps, 1, 100000, "API requests per second (50)"),
      IntFlag("burst", &burst, 1, 100000, "API requests in a burst (100)"),
      StringFlag("image", &options.placement.image,
                 "Osprey's image, for model servers and the storage initializer (osprey:dev)",
                 "IMAGE"),
      StringFlag("image-pull-policy", &options.placement.image_pull_policy,
                 "pull policy of Osprey's containers (IfNotPresent)", "POLICY"),
      StringFlag("gateway-address", &options.placement.gateway_address,
                 "where transformers and explainers reach their predictor: the gateway's "
                 "host[:port] (osprey-gateway.osprey-system)",
                 "HOST"),
      StringFlag("domain", &options.platform.domain,
                 "domain of InferenceService URLs (example.com)", "DOMAIN"),
      StringFlag("domain-template", &options.platform.domain_template,
                 "host of an InferenceService ({{.Name}}-{{.Namespace}}.{{.Domain}})", "TEMPLATE"),
      BoolFlag("leader-elect", &leader_elect, "elect one active operator through a Lease"),
      StringFlag("lease-namespace", &lease_namespace,
                 "namespace of the Lease ($POD_NAMESPACE, else osprey-system)", "NS"),
      StringFlag("lease-name", &lease_name, "name of the Lease (osprey-operator)", "NAME"),
      DurationFlag("lease-duration-s", &lease_duration, std::chrono::seconds(1),
                   "how long a leader's lease lasts unrenewed (15)"),
      StringFlag("health-address", &health_address, "address of /healthz, /readyz, /metrics",
                 "ADDR"),
      PortFlag("health-port", &health_port, "port of /healthz, /readyz, /metrics (8090)"),
      StringFlag("log-level", &log_level, "debug, info, warning or error (default info)", "LEVEL"),
      BoolFlag("help", &help, "show this help"),
  };
  // Not the operator's own spans: the tracing of the pods it makes.
  TracingFlags tracing;
  tracing.Add(&specs);
  auto parsed = ParseFlags(args, specs);
  if (!parsed.ok()) {
    std::fprintf(stderr, "osprey operator: %s\n\n%s",
                 std::string(parsed.status().message()).c_str(), FlagsHelp(kUsage, specs).c_str());
    return 2;
  }
  if (help) {
    std::printf("%s", FlagsHelp(kUsage, specs).c_str());
    return 0;
  }
  if (!ApplyLogLevelFlag(*parsed, "operator")) return 2;
  if (claim != "all" && claim != "annotated") {
    std::fprintf(stderr, "osprey operator: --claim must be all or annotated, got '%s'\n",
                 claim.c_str());
    return 2;
  }
  options.claim = claim == "all" ? controlplane::Claim::kAll : controlplane::Claim::kAnnotated;
  // The replicas trace as the flags say, else as this process's OTEL_*
  // environment does (an exporter set: tracing on).
  auto setting = [](const std::string& flag, const char* name) -> std::string {
    if (!flag.empty()) return flag;
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
  };
  const std::string endpoint = setting(tracing.endpoint, "OTEL_EXPORTER_OTLP_ENDPOINT");
  const std::string traces_endpoint =
      tracing.endpoint.empty() ? setting("", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") : "";
  const std::string sampler = setting(tracing.sampler, "OTEL_TRACES_SAMPLER");
  const std::string sampler_arg = setting(tracing.sampler_arg, "OTEL_TRACES_SAMPLER_ARG");
  if (!sampler.empty() || !sampler_arg.empty())
    if (auto checked = trace::ParseSampler(sampler.empty() ? "parentbased_traceidratio" : sampler,
                                           sampler_arg);
        !checked.ok()) {
      std::fprintf(stderr, "osprey operator: %s\n",
                   std::string(checked.status().message()).c_str());
      return 2;
    }
  if (!endpoint.empty() && endpoint != "none")
    options.placement.trace_env.emplace_back("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
  if (!traces_endpoint.empty())
    options.placement.trace_env.emplace_back("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces_endpoint);
  if (!options.placement.trace_env.empty()) {
    if (!sampler.empty()) options.placement.trace_env.emplace_back("OTEL_TRACES_SAMPLER", sampler);
    if (!sampler_arg.empty())
      options.placement.trace_env.emplace_back("OTEL_TRACES_SAMPLER_ARG", sampler_arg);
  }
  options.placement.trace_resource = setting("", "OTEL_RESOURCE_ATTRIBUTES");
  options.knative = !no_knative;
  options.namespace_ = ns;
  options.workers = workers;

  const sigset_t signals = BlockStopSignals();
  kube::ClientOptions client_options;
  client_options.qps = qps;
  client_options.burst = burst;
  client_options.user_agent = "osprey-operator";
  auto connected = kube::Connect(kubeconfig, client_options);
  if (!connected.ok()) {
    std::fprintf(stderr, "osprey operator: %s\n",
                 std::string(connected.status().message()).c_str());
    return 1;
  }
  kube::Client& client = **connected;
  const kube::Config& config = client.config();
  std::unique_ptr<kube::LeaderElector> elector;
  if (leader_elect) {
    elector = std::make_unique<kube::LeaderElector>(
        config, client_options,
        kube::LeaseSettings(lease_namespace, lease_name, lease_duration, "osprey-system"));
    // A leader whose lease is not fresh writes nothing, even before the
    // elector notices it lost it.
    options.may_write = [e = elector.get()] { return e->valid(); };
  }
  controlplane::Operator op(&client, options);
  HealthHandler health(&op, &client, elector.get());
  HttpServer::Options http;
  http.address = health_address;
  http.port = static_cast<uint16_t>(health_port);
  http.threads = 1;
  auto server = HttpServer::Start(http, &health);
  if (!server.ok()) {
    std::fprintf(stderr, "osprey operator: health endpoint: %s\n",
                 std::string(server.status().message()).c_str());
    return 1;
  }
  OSPREY_LOG(kInfo) << "operator: API server " << config.server << " (" << config.source
                    << "); health on " << health_address << ":" << (*server)->port();
  // The operator starts on its own thread (it waits for its informers'
  // first lists), so that a signal is answered meanwhile.
  std::thread starter;
  std::mutex starter_mu;
  std::atomic<bool> stopping{false};
  auto start = [&] {
    std::lock_guard<std::mutex> lock(starter_mu);
    if (stopping.load() || starter.joinable()) return;
    starter = std::thread([&op] {
      absl::Status s = op.Start();
      if (!s.ok() && !absl::IsCancelled(s)) {
        OSPREY_LOG(kError) << "operator: " << s.message();
      }
    });
  };
  if (elector != nullptr) {
    elector->Start(start, [] {
      // Another may lead now: stop acting at once, as controllers do.
      OSPREY_LOG(kError) << "operator: lost the lease; exiting";
      std::_Exit(1);
    });
  } else {
    start();
  }
  const char* name = "";
  WaitForStopSignal(signals, &name);
  OSPREY_LOG(kInfo) << "operator: " << name << ": stopping";
  stopping.store(true);
  op.Stop();
  {
    std::lock_guard<std::mutex> lock(starter_mu);
    if (starter.joinable()) starter.join();
  }
  if (elector != nullptr) elector->Stop();  // gives the lease up: another takes over at once
  (*server)->Drain(std::chrono::milliseconds(500));
  return 0;
}

}  // namespace osprey
