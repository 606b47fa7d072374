#pragma once

// The content-addressed model cache under Options.cache_dir:
//
//   sha256/<hex>/...     a model tree, named by the SHA-256 of its content
//                        (relative paths, file bytes, symlink targets); files
//                        read-only, since Pull hard-links them into model dirs
//   uris/<sha256(key)>   the <hex> that `key` (a URI and where it was fetched
//                        from) resolved to; written to a temp file and renamed
//   tmp/<unique>/        downloads in progress, renamed into sha256/ when done
//   locks/<sha256(key)>  flock()ed while one process fetches `key`
//
// Entries are immutable once renamed into sha256/; two URIs with the same
// content share one. Safe for several processes sharing one cache_dir.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace osprey::storage {

class ModelCache {
 public:
  explicit ModelCache(std::filesystem::path root) : root_(std::move(root)) {}

  // The entry that `key` resolved to, if recorded and still present.
  std::optional<std::filesystem::path> Lookup(std::string_view key) const;

  // A fresh, empty directory under tmp/ for one download.
  absl::StatusOr<std::filesystem::path> NewTempDir() const;

  // Hashes the tree at `content` (under a NewTempDir()), moves it to
  // sha256/<hex> (or drops it when that entry exists already), records
  // key -> <hex>, and returns the entry's path.
  absl::StatusOr<std::filesystem::path> Commit(std::string_view key,
                                               const std::filesystem::path& content) const;

  // True when `path` lies inside an entry of this cache.
  bool Holds(const std::filesystem::path& path) const;

  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;
};

// The SHA-256 (hex) over the tree at `dir`: for each entry in sorted order
// its relative path and kind, and a file's size and bytes or a symlink's
// target. Equal trees hash equally wherever they are.
absl::StatusOr<std::string> HashTree(const std::filesystem::path& dir);

// Holds an exclusive lock on `key`: a mutex against threads of this process,
// and flock() on locks/<sha256(key)> in `cache_root` against other processes.
class KeyLock {
 public:
  static absl::StatusOr<std::unique_ptr<KeyLock>> Acquire(const std::filesystem::path& cache_root,
                                                          std::string_view key);
  ~KeyLock();
  KeyLock(const KeyLock&) = delete;
  KeyLock& operator=(const KeyLock&) = delete;

  struct Slot;  // one per key held or awaited in this process

 private:
  KeyLock(std::string key, Slot* slot, int fd) : key_(std::move(key)), slot_(slot), fd_(fd) {}
  std::string key_;
  Slot* slot_;
  int fd_;
};

}  // namespace osprey::storage
