#pragma once

// Finding a backend's model file in a model directory, the way KServe's
// servers do: exactly one candidate, or the one named model.* among several.

#include <filesystem>
#include <functional>
#include <string_view>

#include "common/status.h"

namespace osprey {

// The one regular file in `dir` for which `accept` is true. NotFound when
// there is none (the message names `what`, e.g. "XGBoost model file (*.json,
// *.ubj or *.bst)"), InvalidArgument listing them when there are several and
// none has the stem "model".
absl::StatusOr<std::filesystem::path> FindModelFile(
    const std::filesystem::path& dir, std::string_view what,
    const std::function<bool(const std::filesystem::path&)>& accept);

// The whole file; NotFound naming it when it cannot be read.
absl::StatusOr<std::string> ReadFile(const std::filesystem::path& file);

// True when the file's first bytes are `prefix` (false when unreadable).
bool FileStartsWith(const std::filesystem::path& file, std::string_view prefix);

}  // namespace osprey
