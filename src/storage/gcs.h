#pragma once

// gs://bucket/object-or-prefix for public objects, over Google Cloud Storage's
// HTTPS endpoints without credentials: objects from
// https://storage.googleapis.com/{bucket}/{object}, listings from the JSON API
// https://storage.googleapis.com/storage/v1/b/{bucket}/o?prefix=...
// STORAGE_EMULATOR_HOST (host:port or URL), as Google's client libraries read
// it, points both at an emulator instead.

#include <memory>
#include <string>

#include "storage/object_store.h"

namespace osprey::storage {

// "https://storage.googleapis.com", or the emulator's URL.
std::string GcsBaseUrl(const EnvLookup& getenv);

// `http` must outlive the store.
std::unique_ptr<ObjectStore> NewGcsBucket(std::string base_url, std::string bucket,
                                          HttpClient* http);

}  // namespace osprey::storage
