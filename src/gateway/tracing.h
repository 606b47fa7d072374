#pragma once

// The gateway's part of request tracing (trace/trace.h): the decision made
// once per call at the gateway, the traceparent it sends on, and the spans
// it exports when the exchange ends (TraceObserver, an exchange observer).
//
// - A client's `traceparent` is continued (same trace id; the gateway's span
//   is a child of the client's span) and replaced by the gateway's own on
//   the way to the replica; `tracestate` passes through untouched.
// - Without one, a trace starts here. A request without traceparent but
//   with `x-b3-traceid` (which the gateway adds to every call it traces, and
//   the KServe SDK forwards, alone, from a transformer to its predictor)
//   continues that trace id: while the gateway's span of the earlier hop is
//   in flight it is the parent.
// - The sampler is the tracer's (OTEL_TRACES_SAMPLER), with the
//   InferenceService's own ratio (Route::trace_sampling) as root sampler;
//   the decision travels in the traceparent's sampled flag, so replicas and
//   workers never decide again. A ratio is applied to the trace id, so every
//   hop of one trace decides alike.
//
// Spans of a sampled call: "{method} {path}" (SERVER for a client's
// request, CLIENT for an in-process call such as an InferenceGraph step),
// with its route's attributes, an event per retried attempt and, when the
// activator held it, a child span "activator queue". An InferenceGraph's
// request is a SERVER span of its own whose steps' calls are children. A
// mirror copy has no span of its own: it carries its original's
// traceparent, so its replica's spans sit beside the original's.
//
// Cost: with tracing off (trace::Active() null) nothing here runs and the
// gateway registers no observer. A call that is not sampled costs a header
// parse, up to three random ids and two header lines: no allocation beyond
// the head's, no lock. A sampled one allocates its spans at the end, and
// its span id is kept in a small locked table while it is in flight (for
// the x-b3-traceid hop).
//
// Thread-safety: every function may be called from any thread.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/trace_context.h"
#include "gateway/exchange.h"
#include "trace/trace.h"

namespace osprey::gateway {

// The trace headers a request brought (collected while its headers are
// copied).
struct IncomingTrace {
  std::string_view traceparent;
  std::string_view tracestate;
  std::string_view b3_trace_id;
  // Records the trace headers. True for `traceparent`, which the gateway
  // replaces (not to be copied on); false for every other header.
  bool Take(std::string_view name, std::string_view value);
};

// A call's trace: the context sent on (span_id: the gateway's span when
// sampled, else the parent's position passed on unchanged) and the span it
// continues (0: none).
struct CallTrace {
  TraceContext context;
  uint64_t parent_span = 0;
  bool remembered = false;  // in the x-b3 table while in flight
};

// Decides whether the call is sampled (`sampler`, `ratio`: the route's own)
// and appends the replica's trace header lines to `head`: "traceparent: ..."
// and, when the request had none, "x-b3-traceid: ...".
CallTrace StartCallTrace(const trace::SamplerConfig& sampler, const IncomingTrace& incoming,
                         std::optional<double> ratio, std::string* head);

// The spans of a finished sampled call (none when it is not sampled), from
// its exchange. `graph`: "{namespace}/{name}" of the InferenceGraph whose
// request this is. Pure but for the child spans' new ids.
std::vector<trace::Span> CallSpans(const CallTrace& call, const Exchange& exchange,
                                   std::string_view graph = {});

// Forgets the call's x-b3 entry and hands its spans to the active tracer.
void EndCallTrace(const CallTrace& call, const Exchange& exchange, std::string_view graph = {});

// Exports the spans of every exchange with a sampled trace (Exchange::trace).
class TraceObserver : public ExchangeObserver {
 public:
  void OnComplete(const Exchange& exchange) override;
};

}  // namespace osprey::gateway
