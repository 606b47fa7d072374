#include "common/flags.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "common/logging.h"
#include "common/strings.h"

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
      if (!has_value) value = "true";
    } else if (!has_value) {
      if (i + 1 >= args.size())
        return absl::InvalidArgumentError(StrCat("flag --", a, " needs a value"));
      value = args[++i];
    }
    if (spec->set) {
      absl::Status st = spec->set(value);
      if (!st.ok())
        return absl::InvalidArgumentError(
            StrCat("--", spec->name, " ", st.message(), ", got '", value, "'"));
    }
    out[spec->name] = std::string(value);
  }
  return out;
}

FlagSpec BoolFlag(std::string name, bool* out, std::string help) {
  FlagSpec f{std::move(name), true, std::move(help), ""};
  f.set = [out](std::string_view v) {
    if (v == "true" || v == "1") {
      *out = true;
    } else if (v == "false" || v == "0") {
      *out = false;
    } else {
      return absl::InvalidArgumentError("takes true or false");
    }
    return absl::OkStatus();
  };
  return f;
}

FlagSpec StringFlag(std::string name, std::string* out, std::string help, std::string value_name) {
  FlagSpec f{std::move(name), false, std::move(help), std::move(value_name)};
  f.set = [out](std::string_view v) {
    *out = std::string(v);
    return absl::OkStatus();
  };
  return f;
}

FlagSpec IntFlag(std::string name, int64_t* out, int64_t min, int64_t max, std::string help) {
  FlagSpec f{std::move(name), false, std::move(help), "N"};
  f.set = [out, min, max](std::string_view v) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(absl::string_view(v.data(), v.size()), &n) || n < min || n > max)
      return absl::InvalidArgumentError(max == INT64_MAX
                                            ? StrCat("must be an integer >= ", min)
                                            : StrCat("must be an integer from ", min, " to ", max));
    *out = n;
    return absl::OkStatus();
  };
  return f;
}

FlagSpec IntFlag(std::string name, int* out, int min, int max, std::string help) {
  FlagSpec f{std::move(name), false, std::move(help), "N"};
  f.set = [out, min, max](std::string_view v) {
    int n = 0;
    if (!absl::SimpleAtoi(absl::string_view(v.data(), v.size()), &n) || n < min || n > max)
      return absl::InvalidArgumentError(max == INT32_MAX
                                            ? StrCat("must be an integer >= ", min)
                                            : StrCat("must be an integer from ", min, " to ", max));
    *out = n;
    return absl::OkStatus();
  };
  return f;
}

FlagSpec PortFlag(std::string name, int* out, std::string help) {
  FlagSpec f = IntFlag(std::move(name), out, 0, 65535, std::move(help));
  f.value_name = "PORT";
  return f;
}

FlagSpec DurationFlag(std::string name, std::chrono::milliseconds* out,
                      std::chrono::milliseconds unit, std::string help) {
  FlagSpec f{std::move(name), false, std::move(help), unit.count() == 1 ? "MS" : "S"};
  f.set = [out, unit](std::string_view v) {
    double n = 0;
    if (!absl::SimpleAtod(absl::string_view(v.data(), v.size()), &n) || !(n >= 0) || n > 1e12)
      return absl::InvalidArgumentError(StrCat("must be a non-negative number of ",
                                               unit.count() == 1 ? "milliseconds" : "seconds"));
    *out = std::chrono::milliseconds(static_cast<int64_t>(n * static_cast<double>(unit.count())));
    return absl::OkStatus();
  };
  return f;
}

absl::StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  static constexpr std::pair<std::string_view, double> kUnits[] = {
      {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
      {"k", 1e3},     {"K", 1e3},        {"M", 1e6},           {"G", 1e9},
      {"T", 1e12},    {"", 1.0}};
  for (const auto& [suffix, scale] : kUnits) {
    if (!text.ends_with(suffix)) continue;
    std::string_view number = text.substr(0, text.size() - suffix.size());
    double n = 0;
    if (number.empty() || !absl::SimpleAtod(absl::string_view(number.data(), number.size()), &n) ||
        !(n >= 0) || n * scale > 1.8e19)
      break;
    return static_cast<uint64_t>(n * scale);
  }
  return absl::InvalidArgumentError(
      StrCat("'", text, "' is not a byte size (bytes, or a number with K, M, G, Ki, Mi or Gi)"));
}

FlagSpec ByteSizeFlag(std::string name, uint64_t* out, std::string help) {
  FlagSpec f{std::move(name), false, std::move(help), "BYTES"};
  f.set = [out](std::string_view v) -> absl::Status {
    OSPREY_ASSIGN_OR_RETURN(*out, ParseByteSize(v));
    return absl::OkStatus();
  };
  return f;
}

std::string FlagsHelp(std::string_view usage, const std::vector<FlagSpec>& specs) {
  size_t width = 0;
  auto label = [](const FlagSpec& f) {
    return f.value_name.empty() ? f.name : StrCat(f.name, " ", f.value_name);
  };
  for (const auto& f : specs) width = std::max(width, label(f).size());
  std::string out = StrCat("usage: ", usage, "\n\nflags:\n");
  for (const auto& f : specs) {
    std::string l = label(f);
    StrAppend(&out, "  --", l, std::string(width - l.size() + 3, ' '), f.help, "\n");
  }
  return out;
}
}  // namespace osprey
