#include "controlplane/retire.h"

namespace osprey::controlplane {

std::vector<std::string> ReplicasToStop(
    const std::vector<ReplicaPresence>& present, const std::set<std::string>& wanted,
    std::chrono::steady_clock::time_point now, std::chrono::milliseconds drain_delay,
    std::map<std::string, std::chrono::steady_clock::time_point>* retiring) {
  std::vector<std::string> stop;
  std::set<std::string> ids;
  for (const auto& r : present) {
    ids.insert(r.id);
    if (wanted.count(r.id) || r.stopping) continue;
    auto [it, inserted] = retiring->emplace(r.id, now);
    if (!r.ready || now - it->second >= drain_delay) {
      stop.push_back(r.id);
      retiring->erase(it);
    }
  }
  for (auto it = retiring->begin(); it != retiring->end();)
    it = wanted.count(it->first) || !ids.count(it->first) ? retiring->erase(it) : std::next(it);
  return stop;
}

}  // namespace osprey::controlplane
