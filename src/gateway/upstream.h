#pragma once

// Asynchronous HTTP/1.1 calls to replicas, run on the HTTP server's own event
// loop (the io_context the request arrived on): no thread hand-off, no
// blocking. Each loop keeps its own idle keep-alive connections per replica
// port. Boost stays inside upstream.cc.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "common/status.h"
#include "link/frame.h"

namespace osprey::gateway {

struct UpstreamRequest {
  void* io_context = nullptr;  // a boost::asio::io_context: the loop to run on
  uint16_t port = 0;           // the replica, on 127.0.0.1
  // Or, when set, its Unix domain socket. This and `head` are not copied:
  // they must stay alive until `done` runs (the caller keeps them with its
  // callback).
  std::string_view unix_socket;
  // The socket is the replica's link (link/frame.h), not HTTP: the
  // call shares that loop's one connection to the replica with the other
  // calls in flight.
  bool link = false;
  // Links this loop may keep to the replica: a busy one (calls in flight)
  // gets a sibling, up to this many. Each link is served by one replica
  // loop, so this lets fewer gateway loops keep more replica loops busy.
  int links = 1;
  // Request line and headers, ending with a blank line.
  std::string_view head;
  std::shared_ptr<const std::string> body;
  std::chrono::milliseconds timeout{60000};
};

struct UpstreamResult {
  // kUnavailable: the connection was refused (nothing reached the replica);
  // kDeadlineExceeded: no answer within the timeout; kInternal: anything else.
  absl::Status status;
  int http_status = 0;
  // The answer's header lines, each "Name: value\r\n" as received, without
  // the framing ones the call itself used (Content-Length,
  // Transfer-Encoding, Connection).
  std::string header_lines;
  std::string body;
};

// Calls fn(name, value) for each line of UpstreamResult::header_lines.
using link::ForEachHeaderLine;

// Must be called on the thread running request.io_context; `done` runs there
// too, exactly once. A kept-alive connection that turns out closed is
// replaced by a fresh one, once, before any answer byte (the replica never
// saw the request).
void SendUpstream(UpstreamRequest request, absl::AnyInvocable<void(UpstreamResult)> done);

namespace internal {

// What the fast path of a call reads from an answer's head (status line and
// header lines through the blank line).
struct AnswerHead {
  int status = 0;
  uint64_t content_length = 0;
  bool keep_alive = true;
  std::string header_lines;  // as UpstreamResult::header_lines
};

// Parses a head the fast path can frame on its own: HTTP/1.1, a final status
// with a body (not 1xx, 204 or 304), one Content-Length up to kMaxSimpleBody,
// no Transfer-Encoding, token header names and values without control
// characters. False leaves the answer to the full HTTP parser (chunked
// bodies, HTTP/1.0, large bodies, folded or malformed lines, conflicting
// lengths), which refuses what is malformed.
constexpr uint64_t kMaxSimpleBody = 1 << 20;
bool ParseSimpleAnswerHead(std::string_view head, AnswerHead* out);

}  // namespace internal

// Runs `fn` on the loop of `io_context`: at once when called from it, else
// posted there.
void RunOn(void* io_context, absl::AnyInvocable<void()> fn);

}  // namespace osprey::gateway
