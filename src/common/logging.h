#pragma once

// Minimal leveled logging to stderr, one line per call, safe from any thread.
// Usage: OSPREY_LOG(kInfo) << "loaded model " << name;

#include <sstream>
#include <string_view>

namespace osprey {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Parses "debug", "info", "warning", "error"; returns false for anything else.
bool ParseLogLevel(std::string_view text, LogLevel* level);

namespace internal {
class LogLine {
 public:
  explicit LogLine(LogLevel level) : level_(level) {}
  ~LogLine();
  template <typename T>
  LogLine& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};
}  // namespace internal

}  // namespace osprey

#define OSPREY_LOG(severity)                                    \
  if (::osprey::LogLevel::severity < ::osprey::GetLogLevel()) { \
  } else                                                        \
    ::osprey::internal::LogLine(::osprey::LogLevel::severity)
