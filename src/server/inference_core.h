#pragma once

// The protocol-neutral request path every frontend calls: find the model,
// validate, execute (inline, or through the model's batcher), keep only the
// requested outputs, record metrics. Stateless apart from the registry it
// points to; safe to call from any number of threads.

#include <chrono>
#include <memory>

#include "absl/functional/any_invocable.h"
#include "server/model_registry.h"
#include "server/monitoring.h"

namespace osprey {

// Completion of one inference: OK with the response filled, or the error.
using InferDone = absl::AnyInvocable<void(absl::Status)>;

class InferenceCore {
 public:
  using Clock = std::chrono::steady_clock;

  explicit InferenceCore(ModelRegistry* registry) : registry_(registry) {}

  // Runs `request` on the model it names and calls `done` exactly once: on
  // this thread before Infer returns when the model executes inline or the
  // request fails early, else later on the model's batcher thread, or on the
  // registry's resumer thread when the model had to be loaded first (the
  // model cache: ModelRegistry::LoadsOnDemand). The caller
  // keeps `request` and `response` alive until then. `arrival` is when the
  // frontend had the whole request (queue time counts from there). On success
  // `response` carries model name, version, the request id and the outputs.
  // Inputs with KServe's content types are first decoded in place
  // (protocol/content_type.h), so a rejected request may have been rewritten.
  void Infer(InferRequest& request, InferResponse* response, Clock::time_point arrival,
             InferDone done);

  // Explains `request` with the model it names (Model::Explain), inline on
  // this thread: validated as Infer validates inputs; requested outputs may
  // name only "contributions". Unimplemented naming the model when it does
  // not explain. On success `response` carries model name, version, the
  // request id and the "contributions" tensor.
  absl::Status Explain(const InferRequest& request, InferResponse* response);

  // Counts a request that failed before it could be decoded into an
  // InferRequest (bad JSON, ...) against the model it addressed, if known.
  void CountDecodeFailure(std::string_view model_name);

  ModelRegistry* registry() const { return registry_; }

  // Drift and outlier detection of one model (monitoring.h): Infer hands it
  // every validated request for that model. Set before serving; not owned.
  void SetMonitor(const RequestMonitor* monitor) { monitor_ = monitor; }
  const RequestMonitor* monitor() const { return monitor_; }

 private:
  ModelRegistry* registry_;
  const RequestMonitor* monitor_ = nullptr;
};

}  // namespace osprey
