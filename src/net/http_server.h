#pragma once

// HTTP/1.1 server (Boost.Beast over Asio) in front of an HttpHandler; over
// TLS (OpenSSL) on the extra ports that ask for it.
//
// Design: `threads` event loops, each with its own io_context. One listening
// socket (on the first loop) hands connections to the loops in turn, and a
// connection lives on one loop for its whole life (no locks on the I/O path).
// No SO_REUSEPORT: a second server on a port in use fails to start instead of
// silently sharing it. Keep-alive and pipelining: requests on a connection are read and
// answered in order; bytes of the next request already buffered are parsed
// straight away. Handlers run on the loop thread (inference is short; a slow
// model would move to the scheduler's threads). Bodies over max_request_bytes
// get 413 and the connection closes.
//
// Beast stays inside http_server.cc: this header is cheap to include.

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "net/http_types.h"

namespace osprey {

class HttpServer {
 public:
  struct Options {
    std::string address = "0.0.0.0";
    uint16_t port = 8080;  // 0: any free port (see port())
    int threads = 2;
    uint64_t max_request_bytes = 64ull << 20;
    // When set, also accept connections on this Unix domain socket path (the
    // gateway of `osprey up` reaches its replicas there: cheaper than TCP).
    std::string unix_socket;
    // When set, also accept replica links (link/frame.h) on this Unix
    // domain socket: the gateway's multiplexed, batched calls.
    std::string link_socket;
  };

  // Binds and starts serving; the handler must outlive the server.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const Options& options,
                                                           HttpHandler* handler);
  ~HttpServer();

  uint16_t port() const;

  // A certificate of a TLS port: PEM files, read when Listen is called, and
  // the host names (SNI) it is for: exact, "*.suffix", or "*" (any).
  struct TlsCertificate {
    std::vector<std::string> hosts;
    std::string certificate_file;  // the chain, leaf first
    std::string private_key_file;
    bool operator==(const TlsCertificate&) const = default;
  };
  struct ListenOptions {
    // The port its requests carry as HttpRequest::listener_port (0: `port`).
    uint16_t request_port = 0;
    // Not empty: the port speaks TLS (1.2 and 1.3), each connection with the
    // certificate whose hosts match the name the client asks for (SNI),
    // the first one when none does (or the client names none).
    std::vector<TlsCertificate> tls;
    bool tls13_only = false;  // refuse TLS 1.2
    bool operator==(const ListenOptions&) const = default;
  };

  // Also accepts connections on `port` (same address, same loops); their
  // requests carry it as HttpRequest::listener_port. Thread-safe; binding
  // is synchronous, nothing else blocks. Listening on a port already open
  // replaces its options for the connections that come next (a certificate
  // that cannot be loaded fails the call and changes nothing).
  // StopListening closes that port; connections it accepted go on until
  // they end.
  absl::Status Listen(uint16_t port, const ListenOptions& options);
  absl::Status Listen(uint16_t port);  // plain HTTP
  // The same on a port the system picks; returns it.
  absl::StatusOr<uint16_t> ListenOnFreePort(const ListenOptions& options);
  void StopListening(uint16_t port);
  std::set<uint16_t> listening() const;

  // Graceful shutdown: stop accepting, close idle connections, let requests in
  // progress finish (their connections close after the answer). Returns true
  // when every connection ended within `grace`, false if some were cut.
  bool Drain(std::chrono::milliseconds grace);

 private:
  absl::StatusOr<uint16_t> ListenOn(uint16_t port, const ListenOptions& options);
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace osprey
