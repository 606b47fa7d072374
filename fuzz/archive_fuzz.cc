// Model archive unpacking (.tar, .tgz, .zip, through libarchive) on any
// bytes: whatever it extracts stays inside the destination (a sibling
// directory is never written), whether it succeeds or refuses an entry.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "storage/unpack.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path root = [] {
    fs::path p = fs::temp_directory_path() / ("osprey-fuzz-archive-" + std::to_string(getpid()));
    fs::create_directories(p);
    return p;
  }();
  // The destination a few levels down: an entry climbing out by "../../x"
  // lands inside the fuzzer's root, where the walk below sees it.
  const fs::path archive = root / "model.tar", dest = root / "a" / "b" / "dest",
                 sibling = root / "a" / "b" / "sibling";
  fs::remove_all(root / "a");
  for (const auto& e : fs::directory_iterator(root))
    if (e.path().filename() != "model.tar") fs::remove_all(e.path());
  fs::create_directories(dest);
  fs::create_directories(sibling);
  {
    std::ofstream out(archive, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  (void)osprey::storage::UnpackArchive(archive, dest);
  // Nothing outside the destination: the fuzzer's root holds only what the
  // fuzzer made and what lies under the destination.
  const std::string inside = dest.string() + "/";
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const fs::path& p = it->path();
    if (p == archive || p == root / "a" || p == root / "a" / "b" || p == sibling || p == dest)
      continue;
    if (!p.string().starts_with(inside)) std::abort();
    if (it->is_symlink()) it.disable_recursion_pending();
  }
  return 0;
}
