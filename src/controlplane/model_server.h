#pragma once

// Osprey's model server (`osprey serve`) in place of KServe's model-server
// images, on any platform: which images it stands in for, and the backend it
// loads each model format with. The local placement runs it as a process,
// the Kubernetes placement as the container of a pod; both read this table.

#include <string>
#include <string_view>
#include <vector>

#include "controlplane/reconciler.h"

namespace osprey::controlplane {

struct ServeFormat {
  std::string_view format;   // KServe's model format name
  std::string_view backend;  // `osprey serve --model-format`; "" recognised from the files
  // Set when no Osprey backend serves the format: why.
  std::string_view unsupported;
};
const std::vector<ServeFormat>& ServeFormats();
const ServeFormat* FindServeFormat(std::string_view format);

// "kserve/sklearnserver" from "docker.io/kserve/sklearnserver:v0.14@sha256:...".
std::string ImageRepository(std::string image);

// KServe's runtime images (repositories) that `osprey serve` stands in for.
const std::vector<std::string>& ModelServerImages();

// Where a model server listens and finds its model, as the platform lays it out.
struct ServeLayout {
  std::string binary = "osprey";
  std::string model_dir = "/mnt/models";
  std::string http_address;  // "" listens on all addresses
  std::string http_port = "8080";
  std::string grpc_port;           // "" keeps the default
  std::vector<std::string> extra;  // more flags (sockets of a local replica)
};

// The value of the last `--flag value` or `--flag=value` in args ("" when absent).
std::string LastFlagValue(const std::vector<std::string>& args, std::string_view flag);

// The name the revision's model is served under, as KServe's model servers
// take it: the last --model_name (or --model_name=) of its container's args
// (the runtime's, then the InferenceService's own), else MLSERVER_MODEL_NAME
// in its env (MLServer's runtime), else the InferenceService's name.
std::string ServedModelName(const RevisionSpec& rev);

// True when `rev` runs Triton (the image nvcr.io/nvidia/tritonserver, or a
// container whose command, or args without one, start with tritonserver):
// its storage is a Triton model repository, served whole, each model under
// its directory's name, whatever the model format.
bool ServesTritonRepository(const RevisionSpec& rev);

// True when `rev` runs TorchServe (the images pytorch/torchserve-kfs and
// pytorch/torchserve, or a command, or args without one, starting with
// torchserve): its storage is KServe's torchserve layout, each model served
// under the name its config.properties gives it (torchserve_store.h).
bool ServesTorchServeStore(const RevisionSpec& rev);

// True when `rev` runs KServe's ART explainer (the image
// kserve/art-explainer): Osprey serves it as `osprey serve --model-format art`
// (python_backend.h), in place of KServe's artserver.
bool ServesArtExplainer(const RevisionSpec& rev);

// argv of `osprey serve` for an ART explainer revision: the container's
// args go to the explainer as --model-args (its --model_name names it, its
// --workers become --python-workers; the server's ports and storage are the
// platform's, ServeLayout).
std::vector<std::string> ArtExplainerArgv(const RevisionSpec& rev, const ServeLayout& layout);

// True when `rev` is a multi-model predictor (KServe's model form without a
// storageUri, on a runtime `osprey serve` stands in for): its replicas serve
// a repository the TrainedModels of the service land in, each model loaded on
// request (--load-on-demand), the memory limit as the model cache's budget.
bool ServesMultiModel(const RevisionSpec& rev);

// argv of `osprey serve` for `rev` (a model-server revision with a format
// Osprey serves: check FindServeFormat first), serving the model under
// ServedModelName (a Triton repository: --model-repository, every model in
// it), and the readiness path (a Triton repository or a TorchServe store: the
// server's, ready once every model is). Of KServe's server flags in the container's args,
// --workers N becomes --python-workers N; the ports are the platform's
// (ServeLayout); the rest (--nthread, --max_threads, logging, Triton's own
// flags) have no counterpart and are left.
std::vector<std::string> OspreyServeArgv(const RevisionSpec& rev, const ServeFormat& format,
                                         const ServeLayout& layout);
std::string OspreyServeReadyPath(const RevisionSpec& rev);

// What a replica's trace spans say they serve, as the OpenTelemetry
// Operator tells a pod's SDK: OTEL_SERVICE_NAME "{isvc}-{component}" and
// OTEL_RESOURCE_ATTRIBUTES (`platform`'s, then service.namespace,
// k8s.namespace.name, osprey.inferenceservice, osprey.component,
// osprey.revision, osprey.model and osprey.model.format when it has one).
// A container's own env comes after these and wins. Pure.
std::vector<std::pair<std::string, std::string>> ReplicaTraceEnv(const RevisionSpec& rev,
                                                                 std::string_view platform);

}  // namespace osprey::controlplane
