#pragma once

// The gateway's view of where traffic goes: an immutable snapshot that the
// control plane replaces as a whole on every change (readers keep the
// shared_ptr they took for the duration of one request).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace osprey::gateway {

// Where the gateway sends traffic for one InferenceService.
struct RouteTarget {
  std::string namespace_;
  std::string name;
  std::string revision;         // receives the traffic
  std::vector<uint16_t> ports;  // its ready replicas on 127.0.0.1
  int timeout_seconds = 0;      // 0: the gateway's default
};

struct RouteTable {
  std::vector<RouteTarget> targets;
  std::vector<std::pair<std::string, size_t>> hosts;  // host -> index in targets
};

}  // namespace osprey::gateway
