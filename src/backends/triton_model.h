#pragma once

// How Osprey serves a model that comes with Triton's config.pbtxt (a model of
// a Triton model repository): pure decisions over the parsed configuration
// and the names of the files beside it.
//
//   platform / backend                   Osprey backend   model file
//   pytorch_libtorch / pytorch           pytorch          model.pt
//   onnxruntime_onnx / onnxruntime       onnx             model.onnx
//   tensorflow_savedmodel / tensorflow   tensorflow       model.savedmodel/
//   python (backend)                     python           model.py
//
// Neither given: the version directory's files decide, as Triton's
// auto-completion does (model.plan, model.graphdef, model.savedmodel,
// model.onnx, model.pt, model.py, in that order); none of them: the backends
// recognise the files as for any model directory. Refused at load, with the
// reason: TensorRT plans and the GPU-only backends (no GPU here), TensorFlow
// GraphDefs, ensembles, any other backend, instance groups of KIND_GPU,
// decoupled models (several responses per request), sequence batching
// (stateful models), and a Python model's packed environment
// (EXECUTION_ENV_PATH).
//
// Instance groups: the count of every group (KIND_CPU, KIND_AUTO and
// KIND_MODEL all run on CPU; a group without a count gets Triton's default
// for the backend: 2 for onnxruntime and tensorflow, else 1) summed; that
// many instances run: Python worker processes, or concurrent executions of a
// TorchScript model. No instance_group: the server's own defaults.

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "backends/model_config.h"

namespace osprey {

struct TritonModelPlan {
  std::string backend;     // Osprey backend name; "" : recognise from the files
  std::string model_file;  // in the version directory; "" : the backend's own search
  int instances = 0;       // 0: the server's default
};

// Plans model `name` (its directory's name) from its configuration and the
// file names of the version directory to load (directories end with '/').
// Completes `config` as Triton completes it: the name, platform and backend
// from each other or from the files, default_model_filename, and each
// instance group's name, CPU kind and count. FailedPrecondition (a GPU or
// TensorRT) or Unimplemented (what Osprey does not run), naming the model
// and the reason; InvalidArgument when platform and backend disagree.
absl::StatusOr<TritonModelPlan> PlanTritonModel(std::string_view name,
                                                const std::set<std::string>& version_files,
                                                ModelConfigFile* config);

// The versions to serve, ascending, of the numeric version directories
// `available` under `policy` (latest N: the N highest; all; specific: those
// listed, each of which must exist). InvalidArgument naming `name` and what
// is missing when nothing (or not everything asked for) is there.
absl::StatusOr<std::vector<int64_t>> SelectVersions(std::string_view name,
                                                    const VersionPolicy& policy,
                                                    std::vector<int64_t> available);

}  // namespace osprey
