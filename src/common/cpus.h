#pragma once

// How many CPUs this process may run on: its affinity mask (taskset,
// a container's cpuset), else the machine's count. At least 1.

#include <sched.h>

#include <algorithm>
#include <thread>

namespace osprey {

inline int UsableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace osprey
