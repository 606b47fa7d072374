#pragma once

// Reads the subset of Triton's config.pbtxt that declares a model's tensors
// and batching (users of Triton and of KServe's Triton runtime have these
// files): name, max_batch_size, input/output {name, data_type, dims},
// default_model_filename, dynamic_batching {preferred_batch_size,
// max_queue_delay_microseconds}. Other fields are accepted and ignored.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace osprey {

struct ModelConfigFile {
  std::string name;
  std::string platform;
  std::string default_model_filename;
  // As Triton: > 0 means dim 0 of every tensor is the batch, not listed in dims.
  int64_t max_batch_size = 0;
  // Shapes with the batch dimension (-1) in front when max_batch_size > 0.
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  std::optional<BatchingHint> dynamic_batching;
};

// nullopt when `dir` has no config.pbtxt; InvalidArgument naming the line and
// column of a syntax error, or the tensor with an unsupported datatype.
absl::StatusOr<std::optional<ModelConfigFile>> ReadModelConfig(const std::filesystem::path& dir);

}  // namespace osprey
