#include "cli/table.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace osprey::cli {

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < cells.size() ? cells[i] : "";
      text += cell;
      if (i + 1 < width.size()) text.append(width[i] - cell.size() + 3, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text;
    out += '\n';
  };
  line(header);
  for (const auto& row : rows) line(row);
  return out;
}

std::string HumanAge(std::chrono::seconds age) {
  long long s = std::max<long long>(0, age.count());
  char buf[32];
  if (s < 120) {
    std::snprintf(buf, sizeof(buf), "%llds", s);
  } else if (s < 600) {
    long long m = s / 60, r = s % 60;
    if (r == 0)
      std::snprintf(buf, sizeof(buf), "%lldm", m);
    else
      std::snprintf(buf, sizeof(buf), "%lldm%llds", m, r);
  } else if (s < 3 * 3600) {
    std::snprintf(buf, sizeof(buf), "%lldm", s / 60);
  } else if (s < 8 * 3600) {
    long long h = s / 3600, m = (s % 3600) / 60;
    if (m == 0)
      std::snprintf(buf, sizeof(buf), "%lldh", h);
    else
      std::snprintf(buf, sizeof(buf), "%lldh%lldm", h, m);
  } else if (s < 48 * 3600) {
    std::snprintf(buf, sizeof(buf), "%lldh", s / 3600);
  } else {
    std::snprintf(buf, sizeof(buf), "%lldd", s / 86400);
  }
  return buf;
}

std::chrono::seconds AgeSince(const std::string& rfc3339,
                              std::chrono::system_clock::time_point now) {
  std::tm tm{};
  if (strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm) == nullptr)
    return std::chrono::seconds(0);
  std::time_t t = timegm(&tm);
  return std::chrono::duration_cast<std::chrono::seconds>(
      now - std::chrono::system_clock::from_time_t(t));
}

}  // namespace osprey::cli
