#pragma once

// THE extension point for frameworks. A Backend turns a model directory into a
// Model; a Model reports its metadata and executes requests.
//
// Lifecycle (TF Serving's Loader idea): a Backend is a stateless singleton
// (cheap, listed in backends/registry.cc, a list the apps hand to the model
// server; backends/testing/fake_backend.h is the smallest complete example).
// Backend::Load does all the expensive work and returns a ready Model or a
// Status naming why it could not load. Destroying the Model frees everything
// it holds.
//
// Contract of Model::Execute:
//   - Concurrency: Execute may be called from several threads at once, on
//     different tasks; the Model synchronises whatever its framework needs.
//   - Ownership: the caller owns requests and responses and keeps them alive
//     for the duration of the call. The Model fills task.response->outputs and
//     may borrow nothing from the request beyond the call.
//   - Validation done before Execute: input count, names (for multi-input
//     models), shapes against metadata (with -1 wildcards), byte sizes against
//     shape and datatype. Datatypes match metadata unless the metadata says
//     converts_input_datatypes. Requested output names exist.
//   - Errors: each task carries its own Status. A failure in one task (bad
//     values, framework exception) sets that task's status only; the others in
//     the same call still complete. Backends catch their framework's exceptions
//     at this edge and never throw.
//
// Optional capability, explanations (`:explain`): a Model that explains says
// so in explains() and implements Explain; the defaults say it does not, and
// the model server answers such a model's explain requests 501 naming it.
// Contract of Model::Explain:
//   - Input: a request validated as for Execute (input count, shapes,
//     datatypes against metadata); requested outputs are not consulted.
//   - Output: response->outputs gets one tensor "contributions", FP32 or
//     FP64, of shape [n, features + 1] (one output group) or [n, groups,
//     features + 1] (several, e.g. one per class): per row (and group) one
//     value per input feature, then the bias term, in the units of the raw
//     margin (before the objective's transform) so that they sum to it. This
//     is the layout of xgboost's pred_contribs.
//   - Concurrency and ownership as Execute: any number of threads at once,
//     also alongside Execute; the caller owns request and response. Never
//     batched: one call per request, on the caller's thread.
//   - Errors: a Status (InvalidArgument for bad values); never throws.

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/model_config.h"
#include "common/strings.h"
#include "tensor/tensor.h"

namespace osprey {

struct InferTask {
  const InferRequest* request = nullptr;
  InferResponse* response = nullptr;
  absl::Status status;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelMetadata& metadata() const = 0;
  virtual void Execute(std::span<InferTask> tasks) = 0;

  // Memory the model holds outside this process (its worker processes'
  // resident set), for the model cache's accounting; 0 for in-process models.
  virtual uint64_t ExternalResidentBytes() const { return 0; }

  // Explanations (see the contract above). explains() is cheap and constant.
  virtual bool explains() const { return false; }
  virtual absl::Status Explain(const InferRequest& /*request*/, InferResponse* /*response*/) {
    return absl::UnimplementedError(StrCat("model '", metadata().name, "' has no explainer"));
  }
};

struct LoadOptions {
  std::string name;
  std::string version;
  std::filesystem::path dir;  // the directory holding the model's files
  int threads_per_call = 1;   // framework threads per Execute call
  int workers = 2;            // worker processes, for backends that run models in them
  // The model's Triton configuration (config.pbtxt), completed as Triton
  // completes it (backends/triton_model.h), when the model has one: the
  // backend takes its tensors, batching and model file from it.
  std::optional<ModelConfigFile> config;
  // The model's own directory (config.pbtxt and the version directories);
  // `dir` when the model has no version directories.
  std::filesystem::path model_root;
  // Executions that may run at once, as the configuration's instance groups
  // ask (0: the backend's default). Backends with worker processes get as
  // many `workers`.
  int instances = 0;
  // The model's own arguments, when it takes any (an explainer's settings as
  // its container gives them, e.g. --nb_classes 10); empty for models whose
  // files say everything.
  std::vector<std::string> args;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Format name as KServe's modelFormat names it ("xgboost"); also the platform.
  virtual std::string_view name() const = 0;
  // True when `dir` holds files this backend recognises (a cheap look, no load).
  virtual bool Recognizes(const std::filesystem::path& dir) const = 0;
  virtual absl::StatusOr<std::unique_ptr<Model>> Load(const LoadOptions& options) const = 0;
};

}  // namespace osprey
