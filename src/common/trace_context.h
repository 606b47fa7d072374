#pragma once

// A W3C Trace Context position (the `traceparent` header: version, 16-byte
// trace id, 8-byte parent span id, flags) as plain integers, so that every
// layer can carry it without knowing the tracing library (src/trace/): the
// gateway puts it in the replica's request, the model server in an
// InferRequest (tensor.h), the Python backend in its worker's request.
//
// Parse and Format are pure, allocation-free (Format writes into a fixed
// buffer) and thread-safe. A zero trace id means "no trace".

#include <cstdint>
#include <optional>
#include <string_view>

namespace osprey {

struct TraceContext {
  uint64_t trace_hi = 0;  // trace id, bytes 0..7 (big-endian)
  uint64_t trace_lo = 0;  // trace id, bytes 8..15
  uint64_t span_id = 0;   // the span the next hop's spans are children of
  // Set by the model server for a sampled request: the id reserved for the
  // span that executes it, so a backend's own work (a Python worker) hangs
  // under execution. 0: none.
  uint64_t execute_span_id = 0;
  uint8_t flags = 0;  // bit 0: sampled

  bool valid() const { return (trace_hi | trace_lo) != 0 && span_id != 0; }
  bool sampled() const { return valid() && (flags & 1) != 0; }
};

// "00-<32 hex>-<16 hex>-<2 hex>", lower-case hex as the spec requires. A
// zero trace id or span id, version ff, a bad length or a non-hex digit is
// invalid: nullopt (the receiver then starts a trace of its own). A higher
// version may carry more fields after the flags ("-..."), which are ignored.
std::optional<TraceContext> ParseTraceparent(std::string_view header);

// Writes the traceparent of `span_id` in `trace` into `out` (55 characters,
// version 00) and returns a view of it.
struct TraceparentBuffer {
  char data[55];
};
std::string_view FormatTraceparent(uint64_t trace_hi, uint64_t trace_lo, uint64_t span_id,
                                   bool sampled, TraceparentBuffer* out);

// Lower-case hex of `v` into out[0..15].
void Hex16(uint64_t v, char* out);

}  // namespace osprey
