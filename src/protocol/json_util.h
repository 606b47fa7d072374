#pragma once

// RapidJSON helpers shared by the JSON codecs. Internal to src/protocol: other
// layers never see JSON values.

#include <string_view>

#include "rapidjson/document.h"
#include "tensor/tensor.h"

namespace osprey {

// A Document for one request on the request path. Its allocations come first
// from a per-thread buffer, so small requests parse without touching malloc
// (the default pool allocates a 64 KiB chunk per document). At most one may be
// alive per thread at a time, and nothing may point into it after it dies.
class RequestDocument {
 public:
  RequestDocument() : allocator_(Buffer(), kBufferSize), doc_(&allocator_) {}
  RequestDocument(const RequestDocument&) = delete;
  RequestDocument& operator=(const RequestDocument&) = delete;
  rapidjson::Document* get() { return &doc_; }
  rapidjson::Document& operator*() { return doc_; }
  rapidjson::Document* operator->() { return &doc_; }

 private:
  static constexpr size_t kBufferSize = 32 * 1024;
  static char* Buffer() {
    alignas(16) thread_local char buffer[kBufferSize];
    return buffer;
  }
  rapidjson::MemoryPoolAllocator<> allocator_;
  rapidjson::Document doc_;
};

// Deepest array nesting the codecs walk (tensor data has one level per
// dimension); deeper input is refused rather than recursed into.
inline constexpr int kMaxJsonNesting = 64;

// Parses `json` (not necessarily NUL-terminated). The parser is iterative, so
// deeply nested input cannot exhaust the stack. NaN and Infinity literals are
// accepted (Python's json writes them for missing values); numbers keep full
// precision. InvalidArgument names the offset and the parser's complaint.
absl::Status ParseJson(std::string_view json, rapidjson::Document* doc);

// Decodes a parameters object (string -> string | number | bool). `what` names
// the object in error messages.
absl::Status DecodeParameters(const rapidjson::Value& value, std::string_view what,
                              Parameters* out);

class JsonWriter;
// Parameters as a JSON object (booleans, integers, doubles, strings).
void EncodeJsonParameters(const Parameters& params, JsonWriter& w);

}  // namespace osprey
