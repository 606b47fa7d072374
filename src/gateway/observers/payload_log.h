#pragma once

// Payload logging: the exchanges of a component with a `logger`
// (Route::logger) POSTed as CloudEvents 1.0 in binary mode to the logger's
// URL, as a logging sidecar in front of that component would: one event
// for the request as received, one for the answer as sent (mode all), or
// only one of them (mode request / response).
//
// Each event's headers:
//   Ce-Specversion 1.0
//   Ce-Id          the request's Ce-Id header, else its x-request-id (the
//                  gateway makes one up when it has none): request and
//                  response events share it
//   Ce-Type        org.kubeflow.serving.inference.request / .response
//   Ce-Source      the revision that had the request
//   Ce-Time        RFC 3339, UTC: arrival (request) / outcome (response)
//   Ce-Inferenceservicename, Ce-Namespace, Ce-Component (predictor,
//                  transformer or explainer), Ce-Endpoint (the revision)
//   Ce-Metadata    the request's headers named by metadataHeaders, as JSON
//                  {"Canonical-Name": ["value", ...]} ("{}" when none);
//                  names match case-insensitively
//   Ce-Annotations the InferenceService's annotations named by
//                  metadataAnnotations, as a JSON object (only when any)
//   Ce-Httpstatus  (response events) the HTTP status the client got: a
//                  failed request is logged too (the replica's error answer,
//                  or the gateway's own: 502, 503, 504), with its body
//   Content-Type   the body's own (the request's / the answer's)
// and the body, byte for byte. HTTP exchanges only (a client's request or
// an in-process call); mirror copies and gRPC calls are not logged.
//
// Delivery never blocks the exchange: OnComplete builds the events and
// appends them to their sink's queue (a mutex held for a push; one bound on
// all queues together); a few sender threads of the logger's own (woken for
// a sink's first event and for each 64, else after 2 ms) POST them: to an
// http:// sink, its events (up to 64) pipelined on a kept-alive connection,
// one write for all and their answers read in order; to an https:// one
// through libcurl, one at a time. One sender at a time takes a sink's
// events, in order, sinks in turn. A connection failure, a timeout, a 429
// or a 5xx puts the events back at their queue's head and the sink waits
// out a doubling backoff, holding no thread meanwhile: a sink that is down
// delays only its own events. An event the queues have no room for is
// dropped; one that still fails after its attempts (or that the sink
// refuses with another 4xx) is given up. Both are counted, and rendered as
// Prometheus families on the gateway's /metrics. The threads start with
// the first event, so a gateway without loggers runs none.
//
// Thread safety: every method may be called from any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "gateway/exchange.h"

namespace osprey {
class HttpClient;
}

namespace osprey::gateway {

// One CloudEvent in binary mode: where it goes, its headers, its body.
struct PayloadEvent {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int attempts = 0;  // made so far
};

// The events of one exchange (0, 1 or 2, appended to `out`); none when its
// route has no logger or it is not an HTTP exchange (pure). `request_time`
// and `response_time` are the Ce-Time values.
void BuildPayloadEvents(const Exchange& exchange, std::string_view request_time,
                        std::string_view response_time, std::vector<PayloadEvent>* out);

// RFC 3339 in UTC with microseconds: 2026-12-03T16:40:00.123456Z (pure).
std::string Rfc3339(std::chrono::system_clock::time_point t);

// A header name in canonical MIME form: x-request-id -> X-Request-Id (pure).
std::string CanonicalHeaderName(std::string_view name);

// A sink URL the pipelined sender takes: http://host[:port][/path] (pure;
// false for anything else, e.g. https://, sent through libcurl instead).
struct SinkUrl {
  std::string host, port, authority, path;
};
bool ParseSinkUrl(std::string_view url, SinkUrl* out);

// One HTTP/1.1 answer at the start of `in` (pure): 1 with its status and
// length (`consumed`) and whether the connection closes after it, 0 when
// more bytes are needed, 2 for an answer whose body runs to the connection's
// end (no Content-Length, not chunked: its status and head length, `close`
// set), -1 when it is not HTTP.
int ParseResponse(std::string_view in, int* status, size_t* consumed, bool* close);

// A kept-alive connection to one sink with pipelined POSTs: a batch of
// events in one write, their answers read in order. A sink that closes the
// connection after an answer (Connection: close, HTTP/1.0) gets the rest at
// once on new connections, one request each. Blocking (a sender thread's
// own); not thread-safe.
class Pipeline {
 public:
  Pipeline() = default;
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  ~Pipeline();
  // statuses[i]: the HTTP status of events[i], or 0 when none came (no
  // connection, a timeout, the connection closed before it).
  void Post(const SinkUrl& url, const std::vector<PayloadEvent*>& events,
            std::chrono::milliseconds timeout, std::vector<int>* statuses);

 private:
  bool Connect(const SinkUrl& url, std::chrono::milliseconds timeout);
  void Close();
  int fd_ = -1;
  std::string authority_;    // of the connection
  bool close_each_ = false;  // the sink closes after each answer: no pipelining
  std::string in_;           // bytes read, not yet an answer
  std::string out_;
};

class PayloadLogObserver : public ExchangeObserver {
 public:
  struct Options {
    size_t queue_limit = 10000;             // events waiting to be sent
    size_t queue_bytes = 256u << 20;        // and their bodies' bytes
    int senders = 2;                        // sender threads
    int attempts = 4;                       // per event, the first included
    std::chrono::milliseconds backoff{50};  // before the second attempt, then doubling
    std::chrono::milliseconds max_backoff{2000};
    std::chrono::milliseconds timeout{5000};  // per attempt
    // Sender threads at the lowest CPU priority (nice 19): on a saturated
    // CPU the requests win it and events past the queue bound are dropped
    // (about 0.8x the requests/s instead of 0.6x on one core, most events
    // dropped); idle CPU still delivers everything. Off: every event is
    // delivered while the sink keeps up, at the requests' expense.
    bool low_priority = false;
  };
  explicit PayloadLogObserver(Options options);
  // Stops the senders; events still queued are not sent.
  ~PayloadLogObserver() override;

  void OnComplete(const Exchange& exchange) override;

  struct Counts {
    uint64_t sent = 0;     // a 2xx from the sink
    uint64_t failed = 0;   // given up: attempts spent, or refused with a 4xx
    uint64_t dropped = 0;  // no room in the queue
    uint64_t retries = 0;  // attempts after the first
    size_t queued = 0;     // waiting now
  };
  Counts counts() const;

  // osprey_gateway_payload_log_events_total{result="sent|failed|dropped"},
  // osprey_gateway_payload_log_retries_total and
  // osprey_gateway_payload_log_queue_depth.
  void Render(std::string* out) const;

 private:
  using Clock = std::chrono::steady_clock;
  // The events for one URL, in order.
  struct Sink {
    std::deque<PayloadEvent> queue;
    bool busy = false;                     // a sender has a batch of its events
    Clock::time_point not_before{};        // backing off until then
    std::chrono::milliseconds backoff{0};  // the last wait (0: the last attempt went through)
  };
  void Enqueue(std::vector<PayloadEvent> events);
  void RunSender();
  // The next sink with events to send now (not busy, not backing off), the
  // sinks in turn; else nullptr and `wake` lowered to when one backing off
  // may go.
  std::map<std::string, Sink>::iterator NextReadyLocked(Clock::time_point now,
                                                        Clock::time_point* wake);
  // One attempt at a batch of events to one URL: each one's HTTP status (0: none).
  void Attempt(const std::vector<PayloadEvent*>& batch, HttpClient& client, Pipeline& pipeline,
               std::vector<int>* statuses);
  static constexpr size_t kBatch = 64;
  // How long a sender waits for a batch to fill once an event is queued.
  static constexpr std::chrono::milliseconds kLinger{2};

  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Sink> sinks_;  // by URL; a sink goes when idle and empty
  std::string last_;                   // the sink last served
  size_t queued_ = 0;                  // events in the sinks' queues
  size_t queued_bytes_ = 0;            // and their bodies' bytes
  bool stopping_ = false;
  bool started_ = false;
  std::vector<std::thread> senders_;
  std::atomic<uint64_t> sent_{0}, failed_{0}, dropped_{0}, retries_{0};
};

}  // namespace osprey::gateway
