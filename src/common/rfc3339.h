#pragma once

// Now as Kubernetes writes times in objects (RFC 3339, UTC, whole seconds):
// "2026-12-04T19:31:34Z".

#include <ctime>
#include <string>

namespace osprey {

inline std::string Rfc3339Now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace osprey
