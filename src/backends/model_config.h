#pragma once

// Reads Triton's config.pbtxt (users of Triton and of KServe's Triton runtime
// have these files): name, platform, backend, max_batch_size, input/output
// {name, data_type, dims, reshape}, default_model_filename, dynamic_batching
// {preferred_batch_size, max_queue_delay_microseconds}, version_policy,
// instance_group {name, kind, count, gpus}, parameters, and whether it asks
// for what Osprey does not run (decoupled responses, sequence batching,
// ensembles). Other fields are accepted and ignored.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace osprey {

struct InstanceGroup {
  enum class Kind { kAuto, kGpu, kCpu, kModel };
  std::string name;
  Kind kind = Kind::kAuto;
  int count = 0;  // 0: not given
  std::vector<int> gpus;
};
std::string_view InstanceKindName(InstanceGroup::Kind kind);  // "KIND_CPU"

struct VersionPolicy {
  enum class Kind { kLatest, kAll, kSpecific };
  Kind kind = Kind::kLatest;
  int64_t num_versions = 1;       // kLatest
  std::vector<int64_t> versions;  // kSpecific
};

struct ModelConfigFile {
  std::string name;
  std::string platform;
  std::string backend;
  std::string default_model_filename;
  // As Triton: > 0 means dim 0 of every tensor is the batch, not listed in dims.
  int64_t max_batch_size = 0;
  // Shapes with the batch dimension (-1) in front when max_batch_size > 0.
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  // A tensor's `reshape`, by name: the shape the model itself takes (an
  // input) or gives (an output) in place of dims, without the batch dimension.
  std::map<std::string, Shape> reshapes;
  std::optional<BatchingHint> dynamic_batching;
  bool has_version_policy = false;
  VersionPolicy version_policy;  // latest 1 when not given
  std::vector<InstanceGroup> instance_groups;
  std::map<std::string, std::string> parameters;  // string_value by key
  bool decoupled = false;                         // model_transaction_policy
  bool sequence_batching = false;
  bool ensemble_scheduling = false;
};

// nullopt when `dir` has no config.pbtxt; InvalidArgument naming the line and
// column of a syntax error, or the tensor with an unsupported datatype.
absl::StatusOr<std::optional<ModelConfigFile>> ReadModelConfig(const std::filesystem::path& dir);

// The configuration as Triton's model configuration JSON (GET
// /v2/models/<m>/config, and the model_config a Python model's initialize()
// is given): Triton's field names, enums by name, dims without the batch
// dimension, every field Osprey keeps.
std::string ModelConfigJson(const ModelConfigFile& config);

}  // namespace osprey
