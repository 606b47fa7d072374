#include "storage/cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <vector>

#include "common/strings.h"
#include "storage/crypto.h"

namespace osprey::storage {
namespace fs = std::filesystem;

namespace {

bool IsHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string UniqueSuffix() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng(std::random_device{}());
  return StrCat(static_cast<int64_t>(getpid()), "-", counter.fetch_add(1), "-",
                static_cast<uint64_t>(rng() & 0xffffffff));
}

absl::Status MakeDirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(StrCat("cannot create ", dir.string(), ": ", ec.message()));
  return absl::OkStatus();
}

// Removes write permission from every file under `dir`: Pull hard-links them
// into model directories, where a write would corrupt the cached copy.
void MakeFilesReadOnly(const fs::path& dir) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec))
      fs::permissions(it->path(),
                      fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                      fs::perm_options::remove, ec);
  }
}

}  // namespace

absl::StatusOr<std::string> HashTree(const fs::path& dir) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec))
    entries.push_back(it->path().lexically_relative(dir));
  if (ec) return absl::InternalError(StrCat("cannot walk ", dir.string(), ": ", ec.message()));
  std::sort(entries.begin(), entries.end(), [](const fs::path& a, const fs::path& b) {
    return a.generic_string() < b.generic_string();
  });
  Sha256Hasher hasher;
  std::vector<char> buf(1 << 16);
  for (const fs::path& rel : entries) {
    fs::path full = dir / rel;
    fs::file_status st = fs::symlink_status(full, ec);
    if (ec) return absl::InternalError(StrCat("cannot stat ", full.string(), ": ", ec.message()));
    std::string name = rel.generic_string();
    if (fs::is_symlink(st)) {
      fs::path target = fs::read_symlink(full, ec);
      hasher.Update(StrCat("l ", name, '\0', target.string(), '\0'));
    } else if (fs::is_directory(st)) {
      hasher.Update(StrCat("d ", name, '\0'));
    } else if (fs::is_regular_file(st)) {
      uint64_t size = fs::file_size(full, ec);
      hasher.Update(StrCat("f ", name, '\0', size, '\0'));
      std::ifstream in(full, std::ios::binary);
      if (!in) return absl::InternalError(StrCat("cannot read ", full.string()));
      while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        hasher.Update(std::string_view(buf.data(), static_cast<size_t>(in.gcount())));
      }
    }
  }
  return hasher.FinishHex();
}

std::optional<fs::path> ModelCache::Lookup(std::string_view key) const {
  std::ifstream in(root_ / "uris" / Sha256Hex(key));
  std::string hex;
  if (!in || !std::getline(in, hex) || !IsHex64(hex)) return std::nullopt;
  fs::path entry = root_ / "sha256" / hex;
  std::error_code ec;
  if (!fs::is_directory(entry, ec)) return std::nullopt;
  return entry;
}

absl::StatusOr<fs::path> ModelCache::NewTempDir() const {
  fs::path dir = root_ / "tmp" / UniqueSuffix();
  OSPREY_RETURN_IF_ERROR(MakeDirs(dir));
  return dir;
}

absl::StatusOr<fs::path> ModelCache::Commit(std::string_view key, const fs::path& content) const {
  OSPREY_ASSIGN_OR_RETURN(std::string hex, HashTree(content));
  OSPREY_RETURN_IF_ERROR(MakeDirs(root_ / "sha256"));
  OSPREY_RETURN_IF_ERROR(MakeDirs(root_ / "uris"));
  fs::path entry = root_ / "sha256" / hex;
  MakeFilesReadOnly(content);
  std::error_code ec;
  if (std::rename(content.c_str(), entry.c_str()) != 0) {
    int err = errno;
    // Same content already cached (another URI, another process): keep that one.
    if ((err == EEXIST || err == ENOTEMPTY) && fs::is_directory(entry, ec)) {
      fs::remove_all(content, ec);
    } else {
      return absl::InternalError(StrCat("cannot move ", content.string(), " to ", entry.string(),
                                        ": ", std::strerror(err)));
    }
  }
  fs::path index = root_ / "uris" / Sha256Hex(key);
  fs::path tmp = root_ / "uris" / StrCat(".", Sha256Hex(key), ".", UniqueSuffix());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << hex << "\n";
    out.close();
    if (!out) return absl::InternalError(StrCat("cannot write ", tmp.string()));
  }
  fs::rename(tmp, index, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return absl::InternalError(StrCat("cannot write ", index.string(), ": ", ec.message()));
  }
  return entry;
}

bool ModelCache::Holds(const fs::path& path) const {
  std::error_code ec;
  fs::path entries = fs::weakly_canonical(root_ / "sha256", ec);
  if (ec) return false;
  fs::path p = fs::weakly_canonical(path, ec);
  if (ec) return false;
  auto [e, q] = std::mismatch(entries.begin(), entries.end(), p.begin(), p.end());
  return e == entries.end() && q != p.end();
}

struct KeyLock::Slot {
  std::mutex mu;
  int users = 0;  // guarded by the map's mutex
};

namespace {
std::mutex& SlotsMutex() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, std::unique_ptr<KeyLock::Slot>, std::less<>>& Slots() {
  static auto* slots = new std::map<std::string, std::unique_ptr<KeyLock::Slot>, std::less<>>();
  return *slots;
}
}  // namespace

absl::StatusOr<std::unique_ptr<KeyLock>> KeyLock::Acquire(const fs::path& cache_root,
                                                          std::string_view key) {
  Slot* slot;
  {
    std::lock_guard<std::mutex> lock(SlotsMutex());
    auto& entry = Slots()[std::string(key)];
    if (entry == nullptr) entry = std::make_unique<Slot>();
    slot = entry.get();
    ++slot->users;
  }
  slot->mu.lock();
  auto release_slot = [&] {
    slot->mu.unlock();
    std::lock_guard<std::mutex> lock(SlotsMutex());
    if (--slot->users == 0) Slots().erase(Slots().find(key));
  };
  absl::Status made = MakeDirs(cache_root / "locks");
  if (!made.ok()) {
    release_slot();
    return made;
  }
  fs::path path = cache_root / "locks" / Sha256Hex(key);
  int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    release_slot();
    return absl::InternalError(StrCat("cannot open ", path.string(), ": ", std::strerror(err)));
  }
  int rc;
  while ((rc = ::flock(fd, LOCK_EX)) != 0 && errno == EINTR) {
  }
  if (rc != 0) {
    int err = errno;
    ::close(fd);
    release_slot();
    return absl::InternalError(StrCat("cannot lock ", path.string(), ": ", std::strerror(err)));
  }
  return std::unique_ptr<KeyLock>(new KeyLock(std::string(key), slot, fd));
}

KeyLock::~KeyLock() {
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
  slot_->mu.unlock();
  std::lock_guard<std::mutex> lock(SlotsMutex());
  if (--slot_->users == 0) Slots().erase(Slots().find(key_));
}

}  // namespace osprey::storage
