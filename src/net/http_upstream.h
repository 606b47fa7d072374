#pragma once

// Outbound HTTP/1.1 calls, asynchronous on an event loop of the HTTP server
// (the io_context a request arrived on): no thread hand-off, no blocking.
// One client for every destination: a replica on a loopback port or its
// Unix socket (the gateway's calls), or any host:port (sinks such as
// CloudEvents receivers and trace collectors). Each loop keeps its own idle
// keep-alive connections per destination. Boost stays inside
// http_upstream.cc.
//
// A host name is resolved off the loop (Asio's resolver thread); a numeric
// address needs no resolution.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "common/status.h"
#include "link/frame.h"

namespace boost::system {
class error_code;
}

namespace osprey {

struct UpstreamRequest {
  void* io_context = nullptr;  // a boost::asio::io_context: the loop to run on
  uint16_t port = 0;           // on 127.0.0.1, or on `host`
  // When set, the destination is this host (a name or a numeric IPv4/IPv6
  // address) on `port`, not loopback. This, `unix_socket` and `head` are
  // not copied: they must stay alive until `done` runs (the caller keeps
  // them with its callback).
  std::string_view host;
  // Or, when set, a Unix domain socket (a replica reached there; idle
  // connections are kept by its port, whichever way it was reached).
  std::string_view unix_socket;
  // Replica links only (link/link_client.h): the links this loop may keep
  // to the replica; a busy one (calls in flight) gets a sibling, up to this
  // many. Each link is served by one replica loop, so this lets fewer
  // gateway loops keep more replica loops busy.
  int links = 1;
  // Request line and headers, ending with a blank line (with Host and
  // Content-Length as the destination needs them).
  std::string_view head;
  std::shared_ptr<const std::string> body;
  std::chrono::milliseconds timeout{60000};
  // false: a new connection, closed after the answer (the head should say
  // "Connection: close"); true: an idle kept-alive one when there is one.
  bool keep_alive = true;
};

struct UpstreamResult {
  // kUnavailable: nothing reached the destination (the connection was
  // refused, or its host name did not resolve); kDeadlineExceeded: no answer
  // within the timeout; kInternal: anything else.
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
// replaced by a fresh one, once, before any answer byte (the destination
// never saw the request).
void SendHttp(UpstreamRequest request, absl::AnyInvocable<void(UpstreamResult)> done);

// Runs `fn` on the loop of `io_context`: at once when called from it, else
// posted there.
void RunOn(void* io_context, absl::AnyInvocable<void()> fn);
// Runs `fn` on the loop of `io_context` after `delay` (a timer: nothing
// waits). The loop must outlive the delay.
void RunAfter(void* io_context, std::chrono::milliseconds delay, absl::AnyInvocable<void()> fn);

// An http:// URL taken apart (pure). The port defaults to 80; the target to
// "/". https, user info and fragments are refused (INVALID_ARGUMENT).
struct HttpUrl {
  std::string host;  // a name, an IPv4 address, or an IPv6 address without brackets
  uint16_t port = 80;
  std::string target;  // path and query
};
absl::StatusOr<HttpUrl> ParseHttpUrl(std::string_view url);

// The head of a request to `url`: the request line, Host, `header_lines`
// ("Name: value\r\n" each) and Content-Length (pure).
std::string RequestHead(std::string_view method, const HttpUrl& url, std::string_view header_lines,
                        size_t body_size);

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

// A connect error that means nothing listens there (or no host holds the
// address): the request never left (HTTP calls and replica links).
bool ConnectRefused(const boost::system::error_code& ec);
absl::Status RefusedError(uint16_t port);

}  // namespace internal
}  // namespace osprey
