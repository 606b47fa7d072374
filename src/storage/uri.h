#pragma once

// Model URIs as KServe's storageUri spells them, parsed into scheme and parts.

#include <string>
#include <string_view>

#include "common/status.h"

namespace osprey::storage {

enum class Scheme { kFile, kPvc, kHttp, kGcs, kS3 };

struct ModelUri {
  Scheme scheme = Scheme::kFile;
  std::string uri;  // as given
  // kFile: the local path. kHttp: the whole URL. kS3/kGcs: the bucket.
  // kPvc: the claim name.
  std::string location;
  // kS3/kGcs: the key or prefix (no leading '/', may be empty: the whole
  // bucket). kPvc: the path inside the claim (may be empty).
  std::string path;
};

// Parses `uri`. Bare paths (absolute or relative) are kFile. InvalidArgument
// names the URI for an unknown scheme, a missing bucket or claim, or a
// file:// URI with a host.
absl::StatusOr<ModelUri> ParseModelUri(std::string_view uri);

// True for the schemes that download (and so need a cache directory).
bool IsRemote(Scheme scheme);

// Decodes %XX escapes; InvalidArgument on a malformed escape.
absl::StatusOr<std::string> PercentDecode(std::string_view s);

// The last path segment of an http(s) URL, query and fragment cut off,
// percent-decoded; "model" when there is none usable (empty, ".", "..",
// holding a '/' once decoded).
std::string UrlFileName(std::string_view url);

// Google Cloud Storage over its public HTTPS endpoints. `base` is
// "https://storage.googleapis.com" (or an emulator's, STORAGE_EMULATOR_HOST).
// Object media: {base}/{bucket}/{object, each segment percent-encoded}.
std::string GcsObjectUrl(std::string_view base, std::string_view bucket, std::string_view object);
// JSON API listing: {base}/storage/v1/b/{bucket}/o?prefix=...[&pageToken=...].
std::string GcsListUrl(std::string_view base, std::string_view bucket, std::string_view prefix,
                       std::string_view page_token);

}  // namespace osprey::storage
