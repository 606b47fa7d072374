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
  const fs::path archive = root / "model.tar", dest = root / "dest", sibling = root / "sibling";
  fs::remove_all(dest);
  fs::remove_all(sibling);
  fs::create_directories(dest);
  fs::create_directories(sibling);
  {
    std::ofstream out(archive, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  (void)osprey::storage::UnpackArchive(archive, dest);
  // Nothing outside the destination: the sibling stays empty, the root
  // holds only what the fuzzer made.
  if (!fs::is_empty(sibling)) std::abort();
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (name != "model.tar" && name != "dest" && name != "sibling") std::abort();
  }
  return 0;
}
