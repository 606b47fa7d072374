#pragma once

// The HTTP exchange as the HTTP server hands it to a handler, independent of
// any HTTP library. The model server's REST routes, the control-plane API and
// the gateway are all handlers of this one server.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "common/header_source.h"

namespace osprey {

struct HttpRequest {
  std::string_view method;
  std::string_view target;  // path and query, as sent
  HeaderSource headers;     // set by the HTTP server
  std::optional<uint64_t> inference_header_length;
  std::shared_ptr<const std::string> body;
  std::chrono::steady_clock::time_point arrival;
  // The event loop (a boost::asio::io_context) the request arrived on, for a
  // handler that does its own asynchronous I/O there (the gateway).
  void* io_context = nullptr;
  // The extra port it came in on (HttpServer::Listen); 0: the server's own.
  int listener_port = 0;
  bool tls = false;  // it came over TLS (HTTPS)
};

// A response body sent in pieces for as long as the request lasts (HTTP/1.1
// chunked transfer coding): a Kubernetes watch, logs followed. The producer
// writes from any thread; the server sends what was written, in order, and
// ends the answer after Close. Thread-safe.
class HttpStream {
 public:
  // Queues `data`. False once the stream has ended (Close, the client went
  // away, the server is draining, or kMaxPendingBytes wait unsent: a client
  // that does not read is dropped): stop producing.
  static constexpr size_t kMaxPendingBytes = 16 << 20;
  bool Write(std::string_view data);
  void Close();
  bool open() const;
  size_t pending_bytes() const;  // written, not yet taken by the server

  // The server's side: what was written since the last Take; `ended` once
  // the stream is closed and nothing is left. When Take returns nothing and
  // the stream is open, `wake` is called once (on the writer's thread) when
  // there is something to take.
  std::string Take(bool* ended, std::function<void()> wake);
  // The server's side ended (the client went away, the session is gone):
  // Write returns false from now on; a pending wake is dropped, not called.
  void End();

 private:
  mutable std::mutex mu_;
  std::string pending_;
  bool closed_ = false;
  std::function<void()> wake_;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string_view content_type = "application/json";
  std::optional<size_t> inference_header_length;
  // Further headers, as lines "Name: value\r\n", written as given (no
  // Content-Length or Connection here; the gateway passes a replica's headers
  // on this way, without splitting them).
  std::string header_lines;
  // Set: the body is this stream's (chunked; `body` is not sent) and the
  // connection closes after it.
  std::shared_ptr<HttpStream> stream;
};

using HttpDone = absl::AnyInvocable<void(HttpResponse)>;

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Thread-safe. Calls `done` exactly once, on any thread, before or after
  // returning. The request's strings need to live only until Handle returns;
  // its body is shared and may be kept.
  virtual void Handle(const HttpRequest& request, HttpDone done) = 0;
};

// The value of header `name` (case-insensitive), or empty.
std::string_view FindHeader(const HeaderSource& headers, std::string_view name);

}  // namespace osprey
