#include "storage/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <system_error>

#include "common/strings.h"

namespace osprey::storage {
namespace fs = std::filesystem;

namespace {

// libarchive's message for its last error; it has none for some failures
// (a null that would crash a message built from it: a fuzzer's find).
const char* ErrorOf(struct archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? message : "unreadable archive data";
}

using ArchiveReader = std::unique_ptr<archive, int (*)(archive*)>;

bool EndsWithNoCase(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  return std::equal(suffix.begin(), suffix.end(), s.end() - suffix.size(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
}

// Lexically normalizes `p` (relative); false when it climbs above its start.
bool NormalizeWithin(const fs::path& p, fs::path* out) {
  fs::path n = p.lexically_normal();
  for (const auto& part : n)
    if (part == "..") return false;
  if (n == ".") n.clear();
  *out = n;
  return true;
}

// True when `p` is `root` or below it (both absolute and canonical).
bool IsWithin(const fs::path& root, const fs::path& p) {
  auto [r, q] = std::mismatch(root.begin(), root.end(), p.begin(), p.end());
  return r == root.end();
}

absl::Status Refuse(const fs::path& archive, std::string_view entry, std::string_view why) {
  return absl::InvalidArgumentError(
      StrCat("archive ", archive.filename().string(), ": refusing entry '", entry, "': ", why));
}

// After extraction: every symlink, resolved on disk (chains included), must
// stay under root. Catches chains that each look harmless lexically.
absl::Status CheckSymlinks(const fs::path& archive, const fs::path& root) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_symlink(ec)) continue;
    fs::path resolved = fs::weakly_canonical(it->path(), ec);
    if (ec || !IsWithin(root, resolved))
      return Refuse(archive, it->path().lexically_relative(root).string(),
                    "symlink resolves outside the model directory");
  }
  if (ec) return absl::InternalError(StrCat("cannot walk ", root.string(), ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

bool IsArchiveName(std::string_view file_name) {
  return EndsWithNoCase(file_name, ".tar") || EndsWithNoCase(file_name, ".tgz") ||
         EndsWithNoCase(file_name, ".tar.gz") || EndsWithNoCase(file_name, ".zip");
}

absl::StatusOr<fs::path> SafeRelativePath(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("empty path");
  if (name.find('\0') != std::string_view::npos)
    return absl::InvalidArgumentError(StrCat("path '", name, "' holds a NUL byte"));
  fs::path p(name);
  if (p.is_absolute() || name.starts_with('/'))
    return absl::InvalidArgumentError(StrCat("path '", name, "' is absolute"));
  fs::path normal;
  if (!NormalizeWithin(p, &normal))
    return absl::InvalidArgumentError(StrCat("path '", name, "' escapes its directory with .."));
  if (normal.empty()) return absl::InvalidArgumentError(StrCat("path '", name, "' names no file"));
  return normal;
}

absl::Status UnpackArchive(const fs::path& archive_path, const fs::path& dest_dir) {
  std::error_code ec;
  // Canonical, so that SECURE_SYMLINKS does not trip over a symlink above the
  // model directory (a cache under a symlinked home, say).
  fs::path root = fs::canonical(dest_dir, ec);
  if (ec)
    return absl::InternalError(StrCat("cannot resolve ", dest_dir.string(), ": ", ec.message()));

  ArchiveReader in(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(in.get());
  archive_read_support_format_tar(in.get());
  archive_read_support_format_gnutar(in.get());
  archive_read_support_format_zip(in.get());
  if (archive_read_open_filename(in.get(), archive_path.c_str(), 1 << 16) != ARCHIVE_OK)
    return absl::InvalidArgumentError(
        StrCat("cannot open archive ", archive_path.filename().string(), ": ", ErrorOf(in.get())));
  ArchiveReader out(archive_write_disk_new(), archive_write_free);
  archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                ARCHIVE_EXTRACT_SECURE_NODOTDOT);
  archive_write_disk_set_standard_lookup(out.get());

  archive_entry* entry = nullptr;
  int rc;
  while ((rc = archive_read_next_header(in.get(), &entry)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
    const char* raw = archive_entry_pathname(entry);
    std::string name = raw != nullptr ? raw : "";
    if (name.empty() || name.starts_with('/')) return Refuse(archive_path, name, "absolute path");
    fs::path rel;
    if (!NormalizeWithin(fs::path(name), &rel))
      return Refuse(archive_path, name, "path escapes the model directory");
    if (rel.empty()) continue;  // "./" itself

    mode_t type = archive_entry_filetype(entry);
    const char* hardlink = archive_entry_hardlink(entry);
    if (hardlink != nullptr) {
      std::string target = hardlink;
      fs::path target_rel;
      if (target.starts_with('/') || !NormalizeWithin(fs::path(target), &target_rel) ||
          target_rel.empty())
        return Refuse(archive_path, name,
                      StrCat("hard link to '", target, "' outside the model directory"));
      archive_entry_set_hardlink(entry, (root / target_rel).c_str());
    } else if (type == AE_IFLNK) {
      const char* link = archive_entry_symlink(entry);
      std::string target = link != nullptr ? link : "";
      fs::path resolved;
      if (target.empty() || target.starts_with('/'))
        return Refuse(archive_path, name, StrCat("symlink to absolute path '", target, "'"));
      if (!NormalizeWithin(rel.parent_path() / fs::path(target), &resolved))
        return Refuse(archive_path, name,
                      StrCat("symlink to '", target, "' outside the model directory"));
    } else if (type != AE_IFREG && type != AE_IFDIR) {
      return Refuse(archive_path, name, "not a file, directory or link");
    }
    archive_entry_set_pathname(entry, (root / rel).c_str());
    // Files readable by all and directories traversable, whatever the archive says.
    mode_t perm = archive_entry_perm(entry);
    archive_entry_set_perm(entry,
                           type == AE_IFDIR ? ((perm | 0700) & 0755) : ((perm | 0600) & 0755));

    if (archive_write_header(out.get(), entry) < ARCHIVE_WARN)
      return absl::InvalidArgumentError(StrCat("archive ", archive_path.filename().string(),
                                               ": cannot extract '", name,
                                               "': ", ErrorOf(out.get())));
    // Whatever the header says of the size (a streamed zip entry may not know it).
    if (type == AE_IFREG && hardlink == nullptr) {
      const void* buf;
      size_t size;
      la_int64_t offset;
      int r;
      while ((r = archive_read_data_block(in.get(), &buf, &size, &offset)) == ARCHIVE_OK) {
        if (archive_write_data_block(out.get(), buf, size, offset) < ARCHIVE_WARN)
          return absl::InternalError(StrCat("archive ", archive_path.filename().string(),
                                            ": cannot write '", name, "': ", ErrorOf(out.get())));
      }
      if (r != ARCHIVE_EOF)
        return absl::InvalidArgumentError(StrCat("archive ", archive_path.filename().string(),
                                                 ": corrupt entry '", name,
                                                 "': ", ErrorOf(in.get())));
    }
    if (archive_write_finish_entry(out.get()) < ARCHIVE_WARN)
      return absl::InternalError(StrCat("archive ", archive_path.filename().string(),
                                        ": cannot finish '", name, "': ", ErrorOf(out.get())));
  }
  if (rc != ARCHIVE_EOF)
    return absl::InvalidArgumentError(
        StrCat("corrupt archive ", archive_path.filename().string(), ": ", ErrorOf(in.get())));
  if (archive_write_close(out.get()) < ARCHIVE_WARN)
    return absl::InternalError(
        StrCat("archive ", archive_path.filename().string(), ": ", ErrorOf(out.get())));
  return CheckSymlinks(archive_path, root);
}

}  // namespace osprey::storage
