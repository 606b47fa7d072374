#pragma once

// Tiny blocking HTTP/1.1 client for readiness probes of local replicas, and
// free-port selection. Plain sockets, no dependency: a probe only needs the
// status line.
//
// Threading: free functions, no shared state; every socket is O_CLOEXEC so a
// concurrently spawned replica never inherits one.

#include <chrono>
#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace osprey::controlplane {

// GET `path` on 127.0.0.1:`port` with "Connection: close" and returns the
// status code of the response's status line. kUnavailable when the connection
// is refused, breaks, or no status line arrives within `timeout` (the whole
// exchange, connect included); the body is never read.
absl::StatusOr<int> HttpProbe(uint16_t port, std::string_view path,
                              std::chrono::milliseconds timeout);

// OK when 127.0.0.1:`port` accepts a TCP connection within `timeout`.
absl::Status TcpProbe(uint16_t port, std::chrono::milliseconds timeout);

// A port that was free on 127.0.0.1 a moment ago (bind to port 0, read it,
// close). Racy by nature: the caller copes with "address in use" later.
absl::StatusOr<uint16_t> PickFreePort();

}  // namespace osprey::controlplane
