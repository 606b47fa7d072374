#pragma once

// When a replica that is no longer wanted is stopped, as a pure function. It
// leaves the routes first; it is stopped (SIGTERM, then it drains) only after
// the drain delay, so that no request the gateway already sent its way meets
// a closed port. A replica that is not ready takes no traffic and stops at
// once.

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace osprey::controlplane {

struct ReplicaPresence {
  std::string id;
  bool ready = false;
  bool stopping = false;  // already told to stop
};

// `retiring` holds, per replica id, when it was first found unwanted; the
// call updates it (entries of replicas wanted again or gone are dropped).
// Returns the replicas to stop now.
std::vector<std::string> ReplicasToStop(
    const std::vector<ReplicaPresence>& present, const std::set<std::string>& wanted,
    std::chrono::steady_clock::time_point now, std::chrono::milliseconds drain_delay,
    std::map<std::string, std::chrono::steady_clock::time_point>* retiring);

}  // namespace osprey::controlplane
