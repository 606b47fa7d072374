#pragma once

// Storage initializer: a model URI becomes a local directory.
//
// Schemes: file:// and bare paths, http(s)://, s3:// (SigV4), gs:// (public
// objects over HTTPS), pvc://{claim}/{path} (a path under Options.pvc_root, no
// copy). A single downloaded .tar, .tgz, .tar.gz or .zip is unpacked into the
// model directory; entries that would escape it are refused.
//
// s3:// and gs:// name one object or a prefix: when an object's key equals the
// URI's path it alone is fetched (an archive is unpacked), else every object
// under "{path}/" is, at its path relative to the prefix.
//
// Downloads land in a content-addressed cache (Options.cache_dir, layout in
// cache.h): a second Fetch of the same URI, from another replica or after a
// restart, does not download again. The cache does not revalidate: an entry
// stays what it was when fetched, and the credentials that fetched it are not
// asked again. Thread-safe: concurrent Fetches of one URI download once (in one
// process; across processes sharing cache_dir too, by a file lock).

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace osprey::storage {

struct Progress {
  std::string uri;
  std::string phase;  // "downloading", "unpacking", "cached", "done"
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;  // 0: unknown
  int files_done = 0;
  int files_total = 0;  // 0: unknown
};

struct Options {
  std::string cache_dir;  // required for remote schemes
  std::string pvc_root;   // pvc://claim/path -> {pvc_root}/claim/path
  // A transfer that moves no byte for this long is cut and retried.
  std::chrono::seconds stall_timeout{30};
  std::chrono::seconds connect_timeout{10};
  int retries = 3;  // attempts after the first, with backoff
  // Wait before retry k: retry_backoff * 2^(k-1), at most 10 s.
  std::chrono::milliseconds retry_backoff{500};
  // Called from the fetching thread; may be empty.
  std::function<void(const Progress&)> on_progress;
  // Environment lookup (AWS_ENDPOINT_URL, S3_ENDPOINT, S3_USE_HTTPS,
  // S3_VERIFY_SSL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  // AWS_DEFAULT_REGION, ...); empty: the process environment.
  std::function<std::optional<std::string>(std::string_view)> getenv;
};

// The local directory that holds the model of `uri`: the path itself for a
// file:// / bare path / pvc:// directory; for one local file, a cache entry
// holding a link to it (an archive unpacked), as the storage initializer puts
// a single file into the model directory; else the cache entry (downloaded
// and unpacked once). Errors name the URI and the cause (404, signature refused, timeout,
// archive entry escaping, ...).
absl::StatusOr<std::string> Fetch(std::string_view uri, const Options& options);

// `osprey storage pull URI DIR`: Fetch, then copy the model into `dest_dir`
// (created). Files of a cache entry are hard-linked where the filesystem
// allows (they are read-only in the cache, so a write through the link fails
// instead of corrupting the entry); files of a local source (file://, pvc://)
// are copied. A URI naming a single local file lands as dest_dir/<its name>.
absl::Status Pull(std::string_view uri, const std::string& dest_dir, const Options& options);

// Entry point of `osprey storage ...` (args after "storage"):
//   osprey storage pull URI DIR [--cache-dir D] [--pvc-root R] [--retries N]
//                               [--stall-timeout-s S] [--connect-timeout-s S]
// Progress lines go to stderr, DIR to stdout on success. Returns 0, 1 on a
// failed pull ("osprey storage: <error>"), 2 on a usage error.
int StorageMain(const std::vector<std::string_view>& args);

}  // namespace osprey::storage
