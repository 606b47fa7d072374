#pragma once

// The access log: one line per HTTP exchange (a client's request or an
// internal call), appended to a file:
//
//   {x-request-id} {method} {host} {target} {namespace/revision} {status} {ms}ms port={port}
//
// with the latency in milliseconds to the microsecond and port 0 when no
// replica had the request; ` host={address}` follows the port when the
// replica is on another host (a pod). Mirror copies and gRPC calls get no line.
//
// Never blocks the caller beyond a short append: lines go into a 1 MiB stdio
// buffer under a mutex, and a thread of the log's own flushes it every
// `flush_every` (and when the log closes), so a busy gateway pays one
// write(2) per buffer, not per request.

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/status.h"
#include "gateway/exchange.h"

namespace osprey::gateway {

class AccessLogObserver : public ExchangeObserver {
 public:
  // Appends to `path` (created if missing).
  static absl::StatusOr<std::unique_ptr<AccessLogObserver>> Open(
      const std::string& path,
      std::chrono::milliseconds flush_every = std::chrono::milliseconds(20));
  ~AccessLogObserver() override;

  void OnComplete(const Exchange& exchange) override;
  // Writes out what is buffered (also done by the log's own thread).
  void Flush();

 private:
  AccessLogObserver(FILE* file, std::chrono::milliseconds flush_every);
  void RunFlusher();

  FILE* const file_;
  const std::chrono::milliseconds flush_every_;
  std::mutex mu_;  // the file's buffer
  std::mutex flusher_mu_;
  std::condition_variable flusher_cv_;
  bool stopping_ = false;
  std::thread flusher_;
};

}  // namespace osprey::gateway
