#pragma once

// Local placement: how a revision (reconciler.h, in KServe's terms) runs on
// this machine, as a pure function. KServe's model-server images run as
// Osprey's own model server (`osprey serve` with the model's format); other
// images run their container's command, or the command an image table maps
// them to. A revision this machine cannot run gets a reason, which the
// controller reports as an observed failure of the revision (as Kubernetes
// reports ImagePullBackOff), not as an invalid spec.

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "controlplane/reconciler.h"

namespace osprey::controlplane {

// How a container image runs here: as `osprey serve` with the model's format,
// or as a local command (the container's args appended).
struct ImageMapping {
  std::string image;  // repository without tag, e.g. "kserve/sklearnserver"
  bool osprey_serve = false;
  std::vector<std::string> command;  // when !osprey_serve
};
// KServe's runtime images mapped onto `osprey serve`.
std::vector<ImageMapping> DefaultImageTable();

struct LocalConfig {
  std::string osprey_binary;  // path of `osprey` for replicas
  std::vector<ImageMapping> images = DefaultImageTable();
  // Where a transformer or explainer reaches its predictor: the gateway's
  // HTTP port (path /serving/{ns}/{isvc}-predictor) and its gRPC ingress for
  // predictors (GrpcIngress::Options::component; 0: none).
  uint16_t gateway_port = 8080;
  uint16_t predictor_grpc_port = 0;
  // The platform's own OTEL_RESOURCE_ATTRIBUTES ("k=v,k=v"), which each
  // replica's extends (ReplicaTraceEnv).
  std::string trace_resource;
  // What a replica's resourceFieldRef reads when its container sets no limit
  // (a node's allocatable): this machine's cores and memory.
  int node_cpus = 1;
  uint64_t node_memory_bytes = uint64_t{1} << 30;
  uint64_t node_ephemeral_bytes = uint64_t{10} << 30;  // the data directory's disk
  std::string node_name = "localhost";
};

// Adds the entries of a JSON image map ({"repo/image": ["command", "arg", ...]},
// ["osprey-serve"] for Osprey's model server) to config->images; they win over
// the built-in ones.
absl::Status LoadImageMap(const std::string& path, LocalConfig* config);

// What this machine says of model formats no Osprey backend serves
// (PlatformConfig::format_notes).
std::map<std::string, std::string> LocalFormatNotes();

// The backends `osprey serve --model-format` is given for the formats it
// serves (a test checks each is compiled in).
std::vector<std::string> LocalFormatBackends();

// A revision as a local process.
struct LocalCommand {
  // argv and env with templates the supervisor fills per replica:
  // {{.Port}}, {{.ModelDir}}, and the Unix sockets a replica serves the
  // gateway on, {{.GrpcSocket}}, {{.HttpSocket}} and {{.LinkSocket}}.
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  // Readiness: GET this path (ready on 2xx or 3xx); empty: a TCP connect.
  std::string health_path;
  // Set when it cannot run here (argv empty): RuntimeNotRecognized,
  // NoSupportingRuntime.
  std::string failure_reason;
  std::string failure_message;
};

// `rev` must have no failure of its own. A transformer's or explainer's
// --predictor_host (KServe's in-cluster {isvc}-predictor.{ns}) becomes the
// gateway's path route to that predictor, 127.0.0.1:{port}/serving/{ns}/
// {isvc}-predictor, or, when its args choose gRPC (--protocol or
// --predictor_protocol grpc-v2), 127.0.0.1:{predictor_grpc_port}; a KServe
// model server's own gRPC port is turned off (--enable_grpc=false) unless
// its args set --enable_grpc or --grpc_port, as replicas share one machine.
// A container's port flags name the replica's ports: HTTP ones (--http_port,
// --port, ...) {{.Port}}, gRPC ones (--grpc_port) {{.GrpcPort}}, where the
// gateway sends the revision's gRPC. A predictor's own container running
// KServe's model server (its args give --model_name) is told both when its
// args do not set them; one declaring an h2c port is told its gRPC port.
// An env var's valueFrom resolves as the kubelet would, on this machine:
// fieldRef metadata.name (the replica's own name,
// {revision}-deployment-{port}), metadata.namespace, metadata.labels['k'] and
// metadata.annotations['k'] (the revision's), status.podIP and
// status.hostIP (127.0.0.1), spec.nodeName, spec.serviceAccountName;
// resourceFieldRef (limits and requests of cpu, memory and
// ephemeral-storage, by the divisor, rounded up; no limit: the machine's; no
// request: the limit, else 0);
// configMapKeyRef and secretKeyRef are left unset when optional, else the
// revision fails (CreateContainerConfigError): this machine has no ConfigMaps
// or Secrets.
LocalCommand PlaceLocally(const RevisionSpec& rev, const LocalConfig& config);

}  // namespace osprey::controlplane
