#include "backends/model_files.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/strings.h"

namespace osprey {

namespace fs = std::filesystem;

absl::StatusOr<fs::path> FindModelFile(const fs::path& dir, std::string_view what,
                                       const std::function<bool(const fs::path&)>& accept) {
  std::error_code ec;
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file(ec) && accept(entry.path())) found.push_back(entry.path());
  }
  if (ec)
    return absl::NotFoundError(
        StrCat("cannot read model directory ", dir.string(), ": ", ec.message()));
  if (found.empty()) return absl::NotFoundError(StrCat("no ", what, " in ", dir.string()));
  if (found.size() == 1) return found[0];
  // Prefer KServe's conventional name when several candidates exist.
  for (const auto& p : found)
    if (p.stem() == "model") return p;
  std::vector<std::string> names;
  for (const auto& p : found) names.push_back(p.filename().string());
  std::sort(names.begin(), names.end());
  return absl::InvalidArgumentError(StrCat("several candidates for one ", what, " in ",
                                           dir.string(), " (", absl::StrJoin(names, ", "),
                                           "); keep one or name it model.*"));
}

absl::StatusOr<std::string> ReadFile(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return absl::NotFoundError(StrCat("cannot read ", file.string()));
  return text;
}

bool FileStartsWith(const fs::path& file, std::string_view prefix) {
  std::ifstream in(file, std::ios::binary);
  std::string head(prefix.size(), '\0');
  if (!in.read(head.data(), static_cast<std::streamsize>(head.size()))) return false;
  return head == prefix;
}

}  // namespace osprey
