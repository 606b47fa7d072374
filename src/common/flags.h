#pragma once

// Command-line flags: --name value, --name=value, --flag (bool). A flag may
// have a typed destination: its value is parsed into it and range-checked at
// parse time, and a bad value is an error that names the flag, the accepted
// range and what was given. Every command prints its help with FlagsHelp, in
// one format.

#include <chrono>
#include <cstdint>
#include <functional>
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
  // Shown after the name in the help ("N", "DIR", ...); "" for a bool.
  std::string value_name = is_bool ? "" : "V";
  // Parses a value into the flag's destination; null: kept as text only.
  std::function<absl::Status(std::string_view value)> set;
};

// Typed flags. `help` should end with the default in parentheses.
FlagSpec BoolFlag(std::string name, bool* out, std::string help);
FlagSpec StringFlag(std::string name, std::string* out, std::string help,
                    std::string value_name = "S");
// An integer in [min, max].
FlagSpec IntFlag(std::string name, int64_t* out, int64_t min, int64_t max, std::string help);
FlagSpec IntFlag(std::string name, int* out, int min, int max, std::string help);
// A port, 0..65535 (0: any free one).
FlagSpec PortFlag(std::string name, int* out, std::string help);
// A duration given as a number (fractions allowed, >= 0) of `unit`s.
FlagSpec DurationFlag(std::string name, std::chrono::milliseconds* out,
                      std::chrono::milliseconds unit, std::string help);

// A byte size as Kubernetes writes memory quantities: "1073741824", "512Mi",
// "1.5Gi", "800M" (no suffix: bytes).
absl::StatusOr<uint64_t> ParseByteSize(std::string_view text);
FlagSpec ByteSizeFlag(std::string name, uint64_t* out, std::string help);
// Applies --log-level when given; false (after saying why on stderr, as
// `command`) when the level is unknown.
bool ApplyLogLevelFlag(const std::map<std::string, std::string>& flags, const char* command);

// Parses args against specs; unknown flags, missing values and values a
// typed flag refuses are errors. Returns every flag given, by name, as text.
// Arguments not starting with "--" go to `positional`, or are an error when
// it is null.
absl::StatusOr<std::map<std::string, std::string>> ParseFlags(
    const std::vector<std::string_view>& args, const std::vector<FlagSpec>& specs,
    std::vector<std::string>* positional = nullptr);

// "usage: <usage>\n\nflags:\n  --name V   help\n..." with the names aligned.
std::string FlagsHelp(std::string_view usage, const std::vector<FlagSpec>& specs);

}  // namespace osprey
