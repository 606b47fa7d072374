#pragma once

// The protocol-neutral request path every frontend calls: find the model,
// validate, execute, keep only the requested outputs, record metrics.
// Stateless apart from the registry and metrics it points to; safe to call
// from any number of threads.

#include <chrono>
#include <memory>

#include "server/model_registry.h"

namespace osprey {

class InferenceCore {
 public:
  using Clock = std::chrono::steady_clock;

  explicit InferenceCore(ModelRegistry* registry) : registry_(registry) {}

  // Runs `request` on the model it names. `arrival` is when the frontend had
  // the whole request (queue time counts from there). On success `response`
  // carries model name, version, the request id and the outputs.
  absl::Status Infer(const InferRequest& request, InferResponse* response,
                     Clock::time_point arrival);

  // Counts a request that failed before it could be decoded into an
  // InferRequest (bad JSON, ...) against the model it addressed, if known.
  void CountDecodeFailure(std::string_view model_name);

  ModelRegistry* registry() const { return registry_; }

 private:
  ModelRegistry* registry_;
};

}  // namespace osprey
