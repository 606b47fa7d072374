// The V2 (Open Inference Protocol) REST request decoder on any bytes: JSON
// alone, and JSON plus binary tensor parts (the first byte picks the
// Inference-Header-Content-Length, as a client could send any).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "protocol/v2_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t split = data[0];
  auto body =
      std::make_shared<const std::string>(reinterpret_cast<const char*>(data + 1), size - 1);
  (void)osprey::DecodeV2InferRequest(body, std::nullopt);
  // A JSON part of any length, binary parts after it, and lengths past the end.
  (void)osprey::DecodeV2InferRequest(body, uint64_t{split} * body->size() / 255);
  (void)osprey::DecodeV2InferRequest(body, body->size() + split);
  (void)osprey::DecodeV2RepositoryIndexRequest(*body);
  return 0;
}
