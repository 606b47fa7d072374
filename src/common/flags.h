#pragma once

// Tiny command-line flag reader: --name value, --name=value, --flag (bool).

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace osprey {

struct FlagSpec {
  std::string name;  // without dashes
  bool is_bool = false;
  std::string help;
};

// Applies --log-level when given; false (after saying why on stderr, as
// `command`) when the level is unknown.
bool ApplyLogLevelFlag(const std::map<std::string, std::string>& flags, const char* command);

// Parses args against specs; unknown flags and missing values are errors.
// Arguments not starting with "--" go to `positional`, or are an error when
// it is null.
absl::StatusOr<std::map<std::string, std::string>> ParseFlags(
    const std::vector<std::string_view>& args, const std::vector<FlagSpec>& specs,
    std::vector<std::string>* positional = nullptr);

}  // namespace osprey
