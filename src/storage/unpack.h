#pragma once

// Unpacking a downloaded model archive (.tar, .tgz, .tar.gz, .zip) into a
// directory, refusing every entry that would land outside it.

#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace osprey::storage {

// True when `file_name` ends (case-insensitively) in .tar, .tgz, .tar.gz or .zip.
bool IsArchiveName(std::string_view file_name);

// The relative path `name` (an archive entry or an object key below a prefix)
// normalized lexically ("./a//b/../c" -> "a/c"); InvalidArgument when it is
// absolute, empty once normalized, or climbs out with "..".
absl::StatusOr<std::filesystem::path> SafeRelativePath(std::string_view name);

// Extracts `archive` into `dest_dir` (which exists). Regular files,
// directories, symlinks and hard links only. Refused, with InvalidArgument
// naming the entry: an absolute path or one escaping with "..", a symlink whose
// target is absolute or resolves outside `dest_dir`, a hard link to a path
// outside it, a device, FIFO or socket, and any write through a symlink
// (libarchive's ARCHIVE_EXTRACT_SECURE_SYMLINKS). On error `dest_dir` holds a
// partial tree, for the caller to remove. Owners and permissions are not
// restored; files get the process umask.
absl::Status UnpackArchive(const std::filesystem::path& archive,
                           const std::filesystem::path& dest_dir);

}  // namespace osprey::storage
