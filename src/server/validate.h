#pragma once

// Checks a decoded request against a model's metadata before it reaches the
// backend, so every backend can rely on the guarantees listed in backend.h.

#include "backends/backend.h"

namespace osprey {

// InvalidArgument naming the input or output and the expected vs actual
// count, shape or datatype. A single-input model accepts its input under any
// name, as KServe's servers do.
absl::Status ValidateRequest(const ModelMetadata& metadata, const InferRequest& request);

// The inputs part of ValidateRequest only (explanations have outputs of
// their own).
absl::Status ValidateInputs(const ModelMetadata& metadata, const InferRequest& request);

// Runs one request of zeros (batch 1 for variable dimensions) through the
// model; the error names the model when it does not answer. Skipped when the
// metadata says zeros are no valid input (skip_warm_up).
absl::Status WarmUp(Model& model);

}  // namespace osprey
