#include "common/files.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "common/strings.h"

namespace osprey {

absl::Status WriteFileAtomically(const std::string& path, const std::string& text,
                                 bool owner_only) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
    if (owner_only) ::chmod(tmp.c_str(), 0600);  // a file not made fails the write below
    out << text;
    if (!out) return absl::InternalError(StrCat("cannot write ", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(StrCat("cannot write ", path, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace osprey
