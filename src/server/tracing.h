#pragma once

// The model server's part of request tracing (trace/trace.h). A request's
// trace comes from its `traceparent` (the gateway decided whether it is
// sampled; the server follows that flag), or, when it has none (a client
// calling `osprey serve` directly), from the server's own sampler. A
// sampled request gets, under the span of its caller:
//
//   "{method} {path}"   SERVER span of the request, in the REST frontend (a
//                       gRPC call's: its method, "package.Service/Method")
//     "queue {model}"   from arrival until its execution started: the wait
//                       in the model's queue and for its batch to form
//                       (osprey.batch.size: the requests it ran with)
//     "execute {model}" the backend's execution; a backend's own work (the
//                       Python worker's span) is its child
//                       (TraceContext::execute_span_id)
//
// Cost: with tracing off, StartRequestTrace is one atomic load and returns
// an empty context; every other function returns at once for a request
// that is not sampled. Thread-safe.

#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/header_source.h"
#include "common/status.h"
#include "common/trace_context.h"
#include "tensor/tensor.h"
#include "trace/trace.h"

namespace osprey {

// The request's trace context for InferRequest::trace: sampled (with new
// ids for the request's and the execution's spans), or empty. `traceparent`:
// the request's header ("" when none); `*parent_span`: the caller's span (0:
// none). Pure but for the new ids.
TraceContext DecideRequestTrace(const trace::SamplerConfig& sampler, std::string_view traceparent,
                                uint64_t* parent_span);

// The same with the active tracer's sampler; empty when tracing is off.
TraceContext StartRequestTrace(const HeaderSource& headers, uint64_t* parent_span);

// The frontend's span of a finished request.
struct RequestSpan {
  std::string_view method;  // "POST"
  std::string_view path;    // URL path; a gRPC call's method ("/package.Service/Method")
  std::string_view model;
  int http_status = 0;
  std::chrono::steady_clock::time_point arrival, end;
  int grpc_code = -1;  // a gRPC call's status code (the span is named by its method)
};
trace::Span RequestSpanOf(const TraceContext& trace, uint64_t parent_span, const RequestSpan& r);
// Exports it (nothing when the request is not sampled).
void EndRequestTrace(const TraceContext& trace, uint64_t parent_span, const RequestSpan& r);

// The queue and execution spans of a request that ran, or failed in its
// execution (`status`; its message on the execution span). Pure.
struct ExecutionSpan {
  std::string_view model, version;
  std::chrono::steady_clock::time_point arrival, start, end;
  int batch_size = 1;
  const absl::Status* status = nullptr;  // null: OK
};
std::vector<trace::Span> ExecutionSpans(const TraceContext& trace, const ExecutionSpan& x);
// Exports them (nothing when the request is not sampled).
void TraceExecution(const TraceContext& trace, const ExecutionSpan& x);

// The span exporter's counters (trace::RenderMetrics) for /metrics; nothing
// with tracing off.
void AppendTraceMetrics(std::string* out);

}  // namespace osprey
