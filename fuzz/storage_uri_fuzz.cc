// Storage URIs (s3://, gs://, pvc://, hf://, https://, paths) and the
// pieces SigV4 signs, on any bytes; a relative path it normalises never
// climbs out.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "storage/sigv4.h"
#include "storage/unpack.h"
#include "storage/uri.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)osprey::storage::ParseModelUri(text);
  (void)osprey::storage::PercentDecode(text);
  (void)osprey::storage::UrlFileName(text);
  (void)osprey::storage::UriEncode(text, true);
  if (auto rel = osprey::storage::SafeRelativePath(text); rel.ok()) {
    const std::string p = rel->string();
    if (p.empty() || p[0] == '/' || p == ".." || p.starts_with("../")) std::abort();
  }
  return 0;
}
