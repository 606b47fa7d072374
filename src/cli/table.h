#pragma once

// kubectl-like output: aligned columns (ages: resources/printer.h).

#include <string>
#include <vector>

namespace osprey::cli {

// Header and rows padded to the widest cell of each column, three spaces
// between columns, no trailing spaces; one line per row.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

}  // namespace osprey::cli
