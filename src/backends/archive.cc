#include "backends/archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <memory>

#include "common/strings.h"

namespace osprey {
namespace {

// libarchive's message for its last error; it has none for some failures
// (a null a message must not be built from: the unpacker crashed on one).
const char* ErrorOf(archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? message : "unreadable archive data";
}

}  // namespace

absl::StatusOr<std::string> ReadArchiveMember(const std::filesystem::path& path,
                                              std::string_view name, size_t max_bytes) {
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_all(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK)
    return absl::InvalidArgumentError(
        StrCat("cannot open archive ", path.string(), ": ", ErrorOf(a.get())));
  archive_entry* entry = nullptr;
  int rc;
  while ((rc = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK) {
    const char* member = archive_entry_pathname(entry);
    std::string_view m = member != nullptr ? member : "";
    if (m.starts_with("./")) m.remove_prefix(2);
    if (m != name) continue;
    std::string out;
    char buf[1 << 16];
    la_ssize_t n;
    while ((n = archive_read_data(a.get(), buf, sizeof(buf))) > 0) {
      if (out.size() + static_cast<size_t>(n) > max_bytes)
        return absl::ResourceExhaustedError(StrCat("member ", name, " of ", path.string(),
                                                   " is larger than ", max_bytes, " bytes"));
      out.append(buf, static_cast<size_t>(n));
    }
    if (n < 0)
      return absl::InvalidArgumentError(
          StrCat("cannot read ", name, " from ", path.string(), ": ", ErrorOf(a.get())));
    return out;
  }
  if (rc != ARCHIVE_EOF)
    return absl::InvalidArgumentError(
        StrCat("corrupt archive ", path.string(), ": ", ErrorOf(a.get())));
  return absl::NotFoundError(StrCat(path.filename().string(), " has no member ", name));
}

}  // namespace osprey
