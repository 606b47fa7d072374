#pragma once

// What local replicas use, from the kernel's own accounting (/proc): the CPU
// time of each replica process and its descendants (a model server's Python
// workers; children already reaped count through the parent's cutime and
// cstime), and their resident memory now.

#include <cstdint>
#include <map>
#include <string_view>
#include <vector>

namespace osprey::controlplane {

struct ProcessUsage {
  double cpu_seconds = 0;  // since the process started, its descendants included
  uint64_t rss_bytes = 0;  // now, its descendants included
};

// One /proc/<pid>/stat line's fields: (pid, ppid, cpu ticks, rss pages), or
// nullopt-like pid 0 when malformed. Pure (the parsing of a stat line).
struct StatFields {
  int pid = 0;
  int ppid = 0;
  uint64_t ticks = 0;  // utime + stime + cutime + cstime
  uint64_t rss_pages = 0;
};
StatFields ParseStat(std::string_view line);

// The usage of each process tree rooted at `pids` (absent when the process
// is gone).
std::map<int, ProcessUsage> ReadProcessTrees(const std::vector<int>& pids);

}  // namespace osprey::controlplane
