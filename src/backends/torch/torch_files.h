#pragma once

// Finding a PyTorch model's files: no libtorch here, so that recognising a
// model directory does not load the (large) library. Linked into both the
// server and the plugin, so it depends on nothing with global registrations
// (config.pbtxt is read by the server and handed to the plugin).

#include <filesystem>
#include <string>

#include "common/status.h"

namespace osprey::torch_files {

// The TorchScript archive of `dir`: `named` when given (config.pbtxt's
// default_model_filename), else the one *.pt / *.pth / *.torchscript zip.
absl::StatusOr<std::filesystem::path> FindTorchFile(const std::filesystem::path& dir,
                                                    const std::string& named);

}  // namespace osprey::torch_files
