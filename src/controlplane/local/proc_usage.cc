#include "controlplane/local/proc_usage.h"

#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

namespace osprey::controlplane {

StatFields ParseStat(std::string_view line) {
  StatFields out;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  const size_t open = line.find(" (");
  const size_t close = line.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return {};
  int pid = 0;
  if (std::from_chars(line.data(), line.data() + open, pid).ec != std::errc()) return {};
  // Fields after comm, numbered from 3 (state).
  std::vector<std::string_view> f;
  std::string_view rest = line.substr(close + 1);
  while (!rest.empty()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    size_t end = rest.find(' ');
    if (end == std::string_view::npos) end = rest.size();
    if (end > 0) f.push_back(rest.substr(0, end));
    rest.remove_prefix(end);
  }
  auto field = [&](int n) -> uint64_t {  // proc(5) numbering
    const size_t i = static_cast<size_t>(n - 3);
    if (i >= f.size()) return 0;
    uint64_t v = 0;
    std::from_chars(f[i].data(), f[i].data() + f[i].size(), v);
    return v;
  };
  if (f.size() < 22) return {};
  out.pid = pid;
  out.ppid = static_cast<int>(field(4));
  out.ticks = field(14) + field(15) + field(16) + field(17);
  out.rss_pages = field(24);
  return out;
}

std::map<int, ProcessUsage> ReadProcessTrees(const std::vector<int>& pids) {
  std::map<int, StatFields> all;
  std::map<int, std::vector<int>> children;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    StatFields s = ParseStat(line);
    if (s.pid == 0) continue;
    all[s.pid] = s;
    children[s.ppid].push_back(s.pid);
  }
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::map<int, ProcessUsage> out;
  for (int root : pids) {
    if (!all.contains(root)) continue;
    ProcessUsage u;
    std::vector<int> stack = {root};
    std::set<int> seen;
    while (!stack.empty()) {
      const int p = stack.back();
      stack.pop_back();
      if (!seen.insert(p).second) continue;
      const StatFields& s = all[p];
      u.cpu_seconds += static_cast<double>(s.ticks) / hz;
      u.rss_bytes += s.rss_pages * page;
      for (int c : children[p]) stack.push_back(c);
    }
    out[root] = u;
  }
  return out;
}

}  // namespace osprey::controlplane
