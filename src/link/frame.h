#pragma once

// Frames of the replica link: the gateway of `osprey up` and an `osprey
// serve` replica exchange requests and answers over one Unix stream socket
// per gateway loop, many at a time, answers in any order. Writes of one loop
// turn are gathered into one send, and one read takes every frame that came
// in: the syscalls and wake-ups of the hop are paid per batch, not per
// request, and no HTTP parsing happens on the replica side. Clients and
// custom containers still speak HTTP/1.1; this is internal to Osprey.
//
// Every frame: a 16-byte header, little-endian
//   u32 size  bytes after this field (12 + head + body)
//   u32 id    chosen by the gateway, echoed in the answer
//   u32 code  0 in a request; the HTTP status in an answer
//   u32 head  head bytes that follow, then the body (the rest)
// A request's head is the HTTP/1.1 request line and header lines as they
// would go on the wire (a Content-Length there is ignored: the frame says
// the body's size). An answer's head is its header lines ("Name: value\r\n").

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace osprey::link {

constexpr size_t kFrameHeader = 16;

struct Frame {
  uint32_t id = 0;
  uint32_t code = 0;
  std::string_view head;
  std::string_view body;
};

inline void PutU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

inline uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// Appends a frame's header to `out`; the caller appends `head_size` head
// bytes and then `body_size` body bytes. Sizes must fit the frame (checked by
// the caller against its limit; the total stays under 4 GiB).
inline void AppendFrameHeader(std::string* out, uint32_t id, uint32_t code, size_t head_size,
                              size_t body_size) {
  char h[kFrameHeader];
  PutU32(h, static_cast<uint32_t>(12 + head_size + body_size));
  PutU32(h + 4, id);
  PutU32(h + 8, code);
  PutU32(h + 12, static_cast<uint32_t>(head_size));
  out->append(h, sizeof(h));
}

inline void AppendFrame(std::string* out, uint32_t id, uint32_t code, std::string_view head,
                        std::string_view body) {
  AppendFrameHeader(out, id, code, head.size(), body.size());
  out->append(head.data(), head.size());
  out->append(body.data(), body.size());
}

// The largest frame either side accepts (the size field's range).
constexpr uint64_t kMaxFrame = uint64_t{0xffffffff} + 4;

// Reads one frame from the front of `data`. Returns the bytes it takes (> 0),
// 0 when more bytes are needed (`*need`, when given, gets the frame's whole
// size once its header is in), or -1 when the header is malformed (a size
// below 12 or over `max_frame`, a head longer than the frame).
inline int64_t ParseFrame(std::string_view data, uint64_t max_frame, Frame* out,
                          uint64_t* need = nullptr) {
  if (data.size() < kFrameHeader) return 0;
  const uint64_t size = GetU32(data.data());
  const uint32_t head = GetU32(data.data() + 12);
  if (size < 12 || size + 4 > max_frame || head > size - 12) return -1;
  if (data.size() < size + 4) {
    if (need != nullptr) *need = size + 4;
    return 0;
  }
  out->id = GetU32(data.data() + 4);
  out->code = GetU32(data.data() + 8);
  out->head = data.substr(kFrameHeader, head);
  out->body = data.substr(kFrameHeader + head, size - 12 - head);
  return static_cast<int64_t>(size + 4);
}

// Calls fn(name, value) for each "Name: value" line of `lines` (CRLF
// separated; lines without a colon are skipped; the value's leading and
// trailing blanks are trimmed).
template <typename Fn>
void ForEachHeaderLine(std::string_view lines, Fn&& fn) {
  while (!lines.empty()) {
    size_t eol = lines.find("\r\n");
    std::string_view line = lines.substr(0, eol);
    lines.remove_prefix(eol == std::string_view::npos ? lines.size() : eol + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    fn(line.substr(0, colon), value);
  }
}

}  // namespace osprey::link
