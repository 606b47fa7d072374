#pragma once

// The PyTorch backend as the server sees it: libtorch lives in a plugin
// (libosprey_torch.so) that is loaded the first time a PyTorch model loads.
// Loading libtorch costs about half a second of static initialisation, which
// every other model server, `osprey up` and every CLI call would otherwise pay
// at start.
//
// Plugin lookup: $OSPREY_TORCH_PLUGIN, else the path the build wrote it to,
// else libosprey_torch.so beside the running binary. A missing or broken
// plugin fails the model's load with the path and the loader's reason.

#include "backends/backend.h"
#include "backends/model_config.h"

namespace osprey {

// The plugin's entry point, `osprey_torch_backend`. The plugin reads no
// config.pbtxt itself (the generated protobuf code is registered once per
// process, so it lives in the server only): the server hands the model's
// configuration over in LoadOptions::config.
using TorchPluginEntry = const Backend* (*)();

const Backend& LazyTorchBackend();

}  // namespace osprey
