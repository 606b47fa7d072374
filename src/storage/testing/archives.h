#pragma once

// Test helper: writes tar, tar.gz and zip archives with libarchive, including
// entries no honest archiver would write (absolute paths, "..", links out).

#include <archive.h>
#include <archive_entry.h>

#include <filesystem>
#include <string>
#include <vector>

namespace osprey::storage::testing {

struct ArchiveEntry {
  std::string path;
  std::string data;
  mode_t type = AE_IFREG;
  std::string symlink;   // target, for AE_IFLNK
  std::string hardlink;  // target, for a hard link entry
};

inline ArchiveEntry File(std::string path, std::string data) {
  return ArchiveEntry{std::move(path), std::move(data), AE_IFREG, "", ""};
}
inline ArchiveEntry Dir(std::string path) {
  return ArchiveEntry{std::move(path), "", AE_IFDIR, "", ""};
}
inline ArchiveEntry Symlink(std::string path, std::string target) {
  return ArchiveEntry{std::move(path), "", AE_IFLNK, std::move(target), ""};
}
inline ArchiveEntry Hardlink(std::string path, std::string target) {
  return ArchiveEntry{std::move(path), "", AE_IFREG, "", std::move(target)};
}
inline ArchiveEntry Special(std::string path, mode_t type) {
  return ArchiveEntry{std::move(path), "", type, "", ""};
}

enum class ArchiveFormat { kTar, kTarGz, kZip };

// False (with `error` set) when libarchive refuses to write.
inline bool WriteArchive(const std::filesystem::path& file, ArchiveFormat format,
                         const std::vector<ArchiveEntry>& entries, std::string* error) {
  archive* a = archive_write_new();
  if (format == ArchiveFormat::kZip) {
    archive_write_set_format_zip(a);
  } else {
    archive_write_set_format_pax_restricted(a);
    if (format == ArchiveFormat::kTarGz) archive_write_add_filter_gzip(a);
  }
  bool ok = archive_write_open_filename(a, file.c_str()) == ARCHIVE_OK;
  for (size_t i = 0; ok && i < entries.size(); ++i) {
    const ArchiveEntry& e = entries[i];
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, e.type == AE_IFDIR ? 0755 : 0644);
    if (!e.symlink.empty()) archive_entry_set_symlink(entry, e.symlink.c_str());
    if (!e.hardlink.empty()) archive_entry_set_hardlink(entry, e.hardlink.c_str());
    bool has_data = e.type == AE_IFREG && e.hardlink.empty();
    archive_entry_set_size(entry, has_data ? static_cast<la_int64_t>(e.data.size()) : 0);
    ok = archive_write_header(a, entry) == ARCHIVE_OK;
    if (ok && has_data && !e.data.empty())
      ok = archive_write_data(a, e.data.data(), e.data.size()) ==
           static_cast<la_ssize_t>(e.data.size());
    archive_entry_free(entry);
  }
  if (!ok && error != nullptr) *error = archive_error_string(a) ? archive_error_string(a) : "?";
  ok = archive_write_close(a) == ARCHIVE_OK && ok;
  archive_write_free(a);
  return ok;
}

}  // namespace osprey::storage::testing
