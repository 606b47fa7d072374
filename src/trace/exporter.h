#pragma once

// OTLP/HTTP span export with the JSON encoding (POST {url} with
// Content-Type: application/json, an ExportTraceServiceRequest), off the
// request path: Submit appends to a bounded queue under a short lock and
// never waits; a thread of its own sends batches (at most `batch` spans,
// at least every `interval`) with the blocking HTTP client. A full queue
// drops the span and counts it; a failed POST drops its batch and counts it
// (no retry: tracing must not pile up behind a slow collector).
//
// Thread-safety: every method may be called from any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "trace/trace.h"

namespace osprey::trace {

using Resource = std::vector<std::pair<std::string, std::string>>;

// The OTLP JSON body of `spans` under one resource and the "osprey"
// instrumentation scope (ids in hex, times as decimal strings, as the OTLP
// JSON mapping requires). Pure.
std::string EncodeOtlpJson(std::span<const Span> spans, const Resource& resource);

class Exporter {
 public:
  struct Options {
    std::string url;  // http://host:port/v1/traces
    Resource resource;
    size_t queue_limit = 8192;  // spans
    size_t batch = 512;
    std::chrono::milliseconds interval{200};
    std::chrono::milliseconds timeout{5000};  // per POST
  };
  explicit Exporter(Options options);
  // Sends what is queued (one attempt each), then stops the thread.
  ~Exporter();

  // False (and counted as dropped) when the queue is full.
  bool Submit(Span span);
  // Sends everything queued so far before returning (tests, shutdown).
  void Flush();

  uint64_t exported() const { return exported_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t failed_exports() const { return failed_.load(std::memory_order_relaxed); }
  const Options& options() const { return options_; }

 private:
  void Run();

  const Options options_;
  std::mutex mu_;
  std::condition_variable cv_;       // wakes the thread
  std::condition_variable flushed_;  // wakes Flush
  std::vector<Span> queue_;
  uint64_t submitted_ = 0;  // under mu_: spans ever queued
  uint64_t handled_ = 0;    // under mu_: spans sent or dropped by the thread
  bool flush_ = false;
  bool stopping_ = false;
  std::atomic<uint64_t> exported_{0}, dropped_{0}, failed_{0};
  std::thread thread_;
};

}  // namespace osprey::trace
