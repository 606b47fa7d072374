#pragma once

// The extension point for bucket-like schemes (s3://, gs://): list the objects
// under a prefix, download one. The fetch driver (storage.cc) decides from the
// listing whether a URI names one object or a "directory" of them.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/http.h"

namespace osprey::storage {

using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
};

// One bucket. Not thread-safe (it drives one HttpClient).
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // Every object whose key starts with `prefix` (plain string prefix), in the
  // store's order. PermissionDenied when listing is refused to these
  // credentials (some buckets allow reading objects but not listing them);
  // Unauthenticated when the credentials themselves are refused (bad
  // signature, unknown key).
  virtual absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) = 0;
  // Downloads object `key` into `file`. NotFound, PermissionDenied, ... name
  // the object and carry the store's error code.
  virtual absl::Status Get(std::string_view key, const std::filesystem::path& file,
                           const ByteProgress& progress) = 0;
  // "s3://bucket/key", for messages.
  virtual std::string Name(std::string_view key) const = 0;
  // Where the bucket is served from, e.g. "http://127.0.0.1:9000"; part of the
  // cache key, so that one URI against two servers does not share an entry.
  virtual std::string Origin() const = 0;
};

}  // namespace osprey::storage
