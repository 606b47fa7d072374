#include "common/trace_context.h"

namespace osprey {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is invalid in a traceparent
}

bool ParseHex(std::string_view s, uint64_t* v) {
  uint64_t r = 0;
  for (char c : s) {
    int d = HexDigit(c);
    if (d < 0) return false;
    r = (r << 4) | static_cast<uint64_t>(d);
  }
  *v = r;
  return true;
}

}  // namespace

void Hex16(uint64_t v, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, v >>= 4) out[i] = kHex[v & 15];
}

std::optional<TraceContext> ParseTraceparent(std::string_view h) {
  // Leading and trailing optional whitespace is allowed in header values.
  while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
  if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return std::nullopt;
  uint64_t version = 0, flags = 0;
  if (!ParseHex(h.substr(0, 2), &version) || version == 0xff) return std::nullopt;
  // Version 00 is exactly 55 characters; later versions may append "-...".
  if (version == 0 ? h.size() != 55 : (h.size() > 55 && h[55] != '-')) return std::nullopt;
  TraceContext c;
  if (!ParseHex(h.substr(3, 16), &c.trace_hi) || !ParseHex(h.substr(19, 16), &c.trace_lo) ||
      !ParseHex(h.substr(36, 16), &c.span_id) || !ParseHex(h.substr(53, 2), &flags))
    return std::nullopt;
  if ((c.trace_hi | c.trace_lo) == 0 || c.span_id == 0) return std::nullopt;
  c.flags = static_cast<uint8_t>(flags);
  return c;
}

std::string_view FormatTraceparent(uint64_t trace_hi, uint64_t trace_lo, uint64_t span_id,
                                   bool sampled, TraceparentBuffer* out) {
  char* d = out->data;
  d[0] = '0';
  d[1] = '0';
  d[2] = '-';
  Hex16(trace_hi, d + 3);
  Hex16(trace_lo, d + 19);
  d[35] = '-';
  Hex16(span_id, d + 36);
  d[52] = '-';
  d[53] = '0';
  d[54] = sampled ? '1' : '0';
  return std::string_view(d, 55);
}

}  // namespace osprey
