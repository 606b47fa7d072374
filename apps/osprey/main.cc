// osprey: one binary, several roles, chosen by the first argument.

#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "cli/cli.h"
#include "common/strings.h"
#include "platform_paths.h"
#include "storage/storage.h"

namespace osprey {
int ServeMain(const std::vector<std::string_view>& args);
int UpMain(const std::vector<std::string_view>& args);
int OperatorMain(const std::vector<std::string_view>& args);
int GatewayMain(const std::vector<std::string_view>& args);

}  // namespace osprey

namespace {
void Usage() {
  std::fprintf(stderr,
               "usage: osprey <command> [flags]\n\n"
               "commands:\n"
               "  serve     serve models over KServe V1/V2 REST and gRPC (osprey serve --help)\n"
               "  up        run the local platform: API, reconciler, replicas, gateway (--help)\n"
               "  operator  reconcile InferenceServices on a Kubernetes cluster (--help)\n"
               "  gateway   route and scale InferenceServices on a Kubernetes cluster (--help)\n"
               "  apply     apply KServe YAML: osprey apply -f FILE [-n NS] [--wait]\n"
               "  get       list resources: osprey get isvc|servingruntimes|"
               "clusterservingruntimes|revisions|kpa|events [NAME] [-o yaml|json]\n"
               "  describe  show one resource with its revisions and events\n"
               "  delete    delete resources: osprey delete isvc NAME | -f FILE\n"
               "  logs      replica logs of an InferenceService: osprey logs NAME\n"
               "  cost      what each revision used (replica- and CPU-seconds, memory,\n"
               "            requests), last hour and total: osprey cost [NAME]\n"
               "  top       what each revision uses now (CPU, memory, requests/s)\n"
               "  kubeconfig  print the kubeconfig osprey up wrote (KUBECONFIG for kubectl)\n"
               "  storage   storage initializer: osprey storage pull URI DIR (--help)\n"
               "  version   print the version\n");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Usage();
    return 2;
  }
  // Debian's abseil is built without NDEBUG, so every absl::Mutex (gRPC locks
  // several per call) maintains a lock-order graph for deadlock detection:
  // about 6% of a gRPC server's CPU. Osprey's own locks are std::mutex.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::string_view command = argv[1];
  std::vector<std::string_view> args(argv + 2, argv + argc);
  if (command == "serve") return osprey::ServeMain(args);
  if (command == "up") return osprey::UpMain(args);
  if (command == "operator") return osprey::OperatorMain(args);
  if (command == "gateway") return osprey::GatewayMain(args);
  if (command == "storage") return osprey::storage::StorageMain(args);
  if (command == "apply" || command == "get" || command == "describe" || command == "delete" ||
      command == "logs" || command == "cost" || command == "top" || command == "kubeconfig")
    return osprey::cli::CliMain(command, args, osprey::DefaultDataDir());
  if (command == "version" || command == "--version") {
    std::printf("osprey %s\n", OSPREY_VERSION);
    return 0;
  }
  if (command == "help" || command == "--help" || command == "-h") {
    Usage();
    return 0;
  }
  std::fprintf(stderr, "osprey: unknown command '%s'\n\n", argv[1]);
  Usage();
  return 2;
}
