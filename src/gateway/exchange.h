#pragma once

// A finished exchange as the gateway's observers see it, and the observer
// interface: the access log, the metrics and the payload logger are
// observers (gateway/observers/), and so is the trace exporter
// (gateway/tracing.h).
// The gateway calls every observer once per exchange that reached a
// revision (requests refused before one was chosen, e.g. no route, are not
// exchanges of any revision), after its outcome is known and before the
// client gets the answer.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/status.h"

namespace osprey::gateway {

struct Route;
struct CallTrace;

struct Exchange {
  using Clock = std::chrono::steady_clock;
  enum class Kind {
    kHttp,      // a client's HTTP request
    kMirror,    // the shadow copy of one (its answer went nowhere)
    kGrpc,      // a client's gRPC call
    kInternal,  // a call made in the gateway through Caller (caller.h)
  };
  Kind kind = Kind::kHttp;
  // The request's x-request-id (HTTP and internal calls; empty for gRPC).
  std::string_view request_id;
  // "POST", ...; "gRPC" for a gRPC call.
  std::string_view method;
  std::string_view host;         // Host, or the gRPC call's :authority
  std::string_view target;       // path and query; /v2/models/{model} for gRPC
  const Route* route = nullptr;  // the InferenceService's route
  // The revision: "{namespace}/{revision}", its name, and the gateway's
  // dense number for it (0, 1, 2, ... in the order the gateway learned of
  // them, never reused while the gateway lives): an observer can keep
  // per-revision state in an array by it, without a lookup.
  std::string_view revision_key;
  std::string_view revision;
  uint32_t revision_id = 0;
  uint16_t replica_port = 0;      // the replica that had it last; 0: none
  std::string_view replica_host;  // and its host; "": 127.0.0.1
  Clock::time_point start;        // arrival at the gateway
  Clock::time_point end;          // outcome known
  // Time held in the revision's queue (the activator) before a replica took
  // it, or before it was refused; zero when one took it at once.
  Clock::duration queue_wait{};
  // The request of a cold start: the first held while the revision had no
  // replica (end - start is how long the cold start kept it waiting).
  bool cold_start = false;
  Clock::time_point cold_start_since{};  // when that cold start began
  // A gRPC call's method, "/package.Service/Method" ("" otherwise).
  std::string_view rpc_method;
  // When each further attempt started (a refused connection tried again).
  std::span<const Clock::time_point> retried_at;
  // The call's trace (gateway/tracing.h): HTTP, mirror and internal calls
  // while tracing is on; null otherwise.
  const CallTrace* trace = nullptr;
  // HTTP, mirror and internal calls: OK when a replica answered (whatever
  // its HTTP status), otherwise why none did (refused, queued too long,
  // timed out, broke). gRPC: the call's status code as its client got it
  // (absl's codes are gRPC's numbers), the replica's or the gateway's.
  absl::StatusCode code = absl::StatusCode::kOk;
  // The HTTP status of the answer (the replica's, or the gateway's refusal
  // as encoded for HTTP); 0 for gRPC.
  int http_status = 0;
  size_t request_bytes = 0;   // request body (gRPC: message)
  size_t response_bytes = 0;  // answer body (gRPC: message)
  // The payloads, for the payload logger (observers/payload_log.h): set
  // only for HTTP exchanges whose route has a logger, empty otherwise.
  // The request head as sent to the replica (request line, then header
  // lines "Name: value\r\n", through the blank line).
  std::string_view request_head;
  std::string_view request_body;
  std::string_view response_headers;       // the answer's header lines
  std::string_view response_content_type;  // when not among response_headers
  std::string_view response_body;
};

// Thread-safety and cost: OnComplete is called on whichever thread finished
// the exchange (a gateway event loop, a gRPC thread, the queue reaper), from
// many at once. It must never block that thread: no I/O that can wait, no
// lock held for long (append to a buffer, bump atomics, hand off to a
// thread of its own). The Exchange's strings live only during the call.
class ExchangeObserver {
 public:
  virtual ~ExchangeObserver() = default;
  virtual void OnComplete(const Exchange& exchange) = 0;
};

}  // namespace osprey::gateway
