#pragma once

// Reading members of an archive (zip, tar, tar.gz, ... as libarchive knows
// them) into memory, e.g. a TorchServe model archive (.mar, a zip).

#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace osprey {

// The bytes of member `name` of the archive at `path`. NotFound when the
// archive has no such member; InvalidArgument when it is not an archive or is
// corrupt; ResourceExhausted past `max_bytes`.
absl::StatusOr<std::string> ReadArchiveMember(const std::filesystem::path& path,
                                              std::string_view name,
                                              size_t max_bytes = size_t{4} << 30);

}  // namespace osprey
