// The gateway's fast path for replica answers (a head it frames on its own)
// and its URL parser, on any bytes: what the fast path takes has a final
// status and a length within its bound.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/http_upstream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  osprey::internal::AnswerHead head;
  if (osprey::internal::ParseSimpleAnswerHead(text, &head)) {
    if (head.status < 200 || head.status > 999 || head.status == 204 || head.status == 304)
      std::abort();
    if (head.content_length > osprey::internal::kMaxSimpleBody) std::abort();
  }
  (void)osprey::ParseHttpUrl(text);
  return 0;
}
