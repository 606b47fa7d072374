#include "common/flags.h"

#include <cstdio>

#include "common/logging.h"

namespace osprey {

bool ApplyLogLevelFlag(const std::map<std::string, std::string>& flags, const char* command) {
  auto it = flags.find("log-level");
  if (it == flags.end()) return true;
  LogLevel level;
  if (!ParseLogLevel(it->second, &level)) {
    std::fprintf(stderr, "osprey %s: unknown --log-level '%s' (debug, info, warning or error)\n",
                 command, it->second.c_str());
    return false;
  }
  SetLogLevel(level);
  return true;
}

absl::StatusOr<std::map<std::string, std::string>> ParseFlags(
    const std::vector<std::string_view>& args, const std::vector<FlagSpec>& specs,
    std::vector<std::string>* positional) {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a.substr(0, 2) != "--") {
      if (positional == nullptr)
        return absl::InvalidArgumentError(StrCat("unexpected argument '", a, "'"));
      positional->emplace_back(a);
      continue;
    }
    a.remove_prefix(2);
    std::string_view value;
    bool has_value = false;
    if (size_t eq = a.find('='); eq != std::string_view::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const auto& s : specs)
      if (s.name == a) spec = &s;
    if (spec == nullptr) return absl::InvalidArgumentError(StrCat("unknown flag --", a));
    if (spec->is_bool) {
      out[spec->name] = has_value ? std::string(value) : "true";
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size())
        return absl::InvalidArgumentError(StrCat("flag --", a, " needs a value"));
      value = args[++i];
    }
    out[spec->name] = std::string(value);
  }
  return out;
}
}  // namespace osprey
