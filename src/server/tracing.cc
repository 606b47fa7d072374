#include "server/tracing.h"

#include "common/strings.h"
#include "net/http_types.h"

namespace osprey {
TraceContext DecideRequestTrace(const trace::SamplerConfig& sampler, std::string_view traceparent,
                                uint64_t* parent_span) {
  *parent_span = 0;
  std::optional<TraceContext> parent;
  if (!traceparent.empty()) parent = ParseTraceparent(traceparent);
  TraceContext c;
  if (parent) {
    c.trace_hi = parent->trace_hi;
    c.trace_lo = parent->trace_lo;
  } else {
    c.trace_hi = trace::NewId();
    c.trace_lo = trace::NewId();
  }
  if (!trace::ShouldSample(sampler, parent, c.trace_lo)) return {};
  if (parent) *parent_span = parent->span_id;
  c.flags = 1;
  c.span_id = trace::NewId();
  c.execute_span_id = trace::NewId();
  return c;
}

TraceContext StartRequestTrace(const HeaderSource& headers, uint64_t* parent_span) {
  *parent_span = 0;
  const trace::Tracer* tracer = trace::Active();
  if (tracer == nullptr) return {};
  return DecideRequestTrace(tracer->sampler(), FindHeader(headers, "traceparent"), parent_span);
}

trace::Span RequestSpanOf(const TraceContext& c, uint64_t parent_span, const RequestSpan& r) {
  if (r.grpc_code >= 0) {
    std::string_view method = r.path;
    if (method.starts_with('/')) method.remove_prefix(1);
    const size_t slash = method.find('/');
    trace::Span s =
        trace::NewSpan(c, c.span_id, parent_span, std::string(method), trace::SpanKind::kServer,
                       trace::UnixNanos(r.arrival), trace::UnixNanos(r.end));
    s.Set("rpc.system", std::string("grpc"))
        .Set("rpc.service", std::string(method.substr(0, slash)))
        .Set("rpc.method",
             std::string(slash == std::string_view::npos ? "" : method.substr(slash + 1)))
        .Set("rpc.grpc.status_code", int64_t{r.grpc_code});
    if (!r.model.empty()) s.Set("osprey.model", std::string(r.model));
    if (r.grpc_code != 0) {
      s.status = trace::Span::Status::kError;
      s.Set("error.type", std::to_string(r.grpc_code));
    }
    return s;
  }
  trace::Span s = trace::NewSpan(c, c.span_id, parent_span, StrCat(r.method, " ", r.path),
                                 trace::SpanKind::kServer, trace::UnixNanos(r.arrival),
                                 trace::UnixNanos(r.end));
  s.Set("http.request.method", std::string(r.method))
      .Set("url.path", std::string(r.path))
      .Set("http.response.status_code", int64_t{r.http_status});
  if (!r.model.empty()) s.Set("osprey.model", std::string(r.model));
  if (r.http_status >= 500) {
    s.status = trace::Span::Status::kError;
    s.Set("error.type", std::to_string(r.http_status));
  }
  return s;
}

void EndRequestTrace(const TraceContext& c, uint64_t parent_span, const RequestSpan& r) {
  if (!c.sampled()) return;
  if (trace::Tracer* tracer = trace::Active()) tracer->Submit(RequestSpanOf(c, parent_span, r));
}

std::vector<trace::Span> ExecutionSpans(const TraceContext& c, const ExecutionSpan& x) {
  std::vector<trace::Span> spans;
  spans.reserve(2);
  // A request that came without an arrival time waited for nothing we know.
  const uint64_t start = trace::UnixNanos(x.start);
  const uint64_t arrival =
      x.arrival.time_since_epoch().count() != 0 ? trace::UnixNanos(x.arrival) : start;
  trace::Span& q =
      spans.emplace_back(trace::NewSpan(c, trace::NewId(), c.span_id, StrCat("queue ", x.model),
                                        trace::SpanKind::kInternal, arrival, start));
  q.Set("osprey.model", std::string(x.model)).Set("osprey.batch.size", int64_t{x.batch_size});
  trace::Span& e = spans.emplace_back(trace::NewSpan(
      c, c.execute_span_id != 0 ? c.execute_span_id : trace::NewId(), c.span_id,
      StrCat("execute ", x.model), trace::SpanKind::kInternal, start, trace::UnixNanos(x.end)));
  e.Set("osprey.model", std::string(x.model))
      .Set("osprey.model.version", std::string(x.version))
      .Set("osprey.batch.size", int64_t{x.batch_size});
  if (x.status != nullptr && !x.status->ok()) {
    e.status = trace::Span::Status::kError;
    e.status_message = std::string(x.status->message());
    e.Set("error.type", std::string(absl::StatusCodeToString(x.status->code())));
  }
  return spans;
}

void TraceExecution(const TraceContext& c, const ExecutionSpan& x) {
  if (!c.sampled()) return;
  trace::Tracer* tracer = trace::Active();
  if (tracer == nullptr) return;
  for (trace::Span& s : ExecutionSpans(c, x)) tracer->Submit(std::move(s));
}

void AppendTraceMetrics(std::string* out) {
  if (trace::Active() != nullptr) out->append(trace::RenderMetrics());
}

}  // namespace osprey
