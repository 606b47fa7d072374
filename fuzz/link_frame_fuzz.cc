// The replica link's frame reader on any bytes: frames read one after
// another stay inside the input, and a frame written back reads the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "link/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const uint64_t max_frame = size > 0 && (data[0] & 1) ? 64 : osprey::link::kMaxFrame;
  while (!in.empty()) {
    osprey::link::Frame f;
    uint64_t need = 0;
    const int64_t took = osprey::link::ParseFrame(in, max_frame, &f, &need);
    if (took <= 0) break;
    if (static_cast<uint64_t>(took) > in.size()) std::abort();
    std::string again;
    osprey::link::AppendFrame(&again, f.id, f.code, f.head, f.body);
    if (std::string_view(again) != in.substr(0, static_cast<size_t>(took))) std::abort();
    osprey::link::ForEachHeaderLine(f.head, [](std::string_view, std::string_view) {});
    in.remove_prefix(static_cast<size_t>(took));
  }
  return 0;
}
