#pragma once

// kubectl-like output: aligned columns, human ages.

#include <chrono>
#include <string>
#include <vector>

namespace osprey::cli {

// Header and rows padded to the widest cell of each column, three spaces
// between columns, no trailing spaces; one line per row.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// kubectl's age: 45s, 3m12s, 25m, 2h15m, 30h, 5d.
std::string HumanAge(std::chrono::seconds age);

// Seconds since an RFC 3339 UTC time ("2026-01-02T03:04:05Z"); 0 if unreadable.
std::chrono::seconds AgeSince(const std::string& rfc3339,
                              std::chrono::system_clock::time_point now);

}  // namespace osprey::cli
