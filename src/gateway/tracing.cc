#include "gateway/tracing.h"

#include <mutex>
#include <unordered_map>

#include "common/strings.h"
#include "gateway/route_table.h"

namespace osprey::gateway {
namespace {

using Clock = std::chrono::steady_clock;

// Trace id -> the gateway span of a sampled call in flight, for a later hop
// of the same trace that brings only x-b3-traceid. The first call of a
// trace keeps its entry (a transformer's predictor calls all hang under the
// transformer's span). Bounded: cleared whole when full (a lost entry only
// loses that hop's parent link).
class InFlight {
 public:
  bool PutIfAbsent(uint64_t hi, uint64_t lo, uint64_t span) {
    std::lock_guard<std::mutex> lock(mu_);
    if (spans_.size() >= kLimit) spans_.clear();
    return spans_.try_emplace(Key{hi, lo}, span).second;
  }
  uint64_t Get(uint64_t hi, uint64_t lo) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = spans_.find(Key{hi, lo});
    return it == spans_.end() ? 0 : it->second;
  }
  void Erase(uint64_t hi, uint64_t lo, uint64_t span) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = spans_.find(Key{hi, lo});
    if (it != spans_.end() && it->second == span) spans_.erase(it);
  }

 private:
  static constexpr size_t kLimit = 65536;
  struct Key {
    uint64_t hi, lo;
    bool operator==(const Key&) const = default;
  };
  struct Hash {
    size_t operator()(const Key& k) const { return k.lo ^ (k.hi * 0x9e3779b97f4a7c15ULL); }
  };
  std::mutex mu_;
  std::unordered_map<Key, uint64_t, Hash> spans_;
};

InFlight& Table() {
  static InFlight* table = new InFlight;  // never destroyed: used until exit
  return *table;
}

// A B3 trace id: 32 (or 16, the low half) lower-case hex digits.
bool ParseB3(std::string_view s, uint64_t* hi, uint64_t* lo) {
  if (s.size() != 32 && s.size() != 16) return false;
  TraceparentBuffer buf;
  std::string_view tp = FormatTraceparent(0, 0, 1, false, &buf);
  std::copy(s.begin(), s.end(), buf.data + 3 + (32 - s.size()));
  auto parsed = ParseTraceparent(tp);
  if (!parsed) return false;
  *hi = parsed->trace_hi;
  *lo = parsed->trace_lo;
  return true;
}

}  // namespace

bool IncomingTrace::Take(std::string_view name, std::string_view value) {
  if (internal::HeaderNameEquals(name, "traceparent")) {
    traceparent = value;
    return true;
  }
  if (internal::HeaderNameEquals(name, "tracestate"))
    tracestate = value;
  else if (internal::HeaderNameEquals(name, "x-b3-traceid"))
    b3_trace_id = value;
  return false;
}

CallTrace StartCallTrace(const trace::SamplerConfig& sampler, const IncomingTrace& incoming,
                         std::optional<double> ratio, std::string* head) {
  CallTrace call;
  TraceContext& c = call.context;
  std::optional<TraceContext> parent;
  if (!incoming.traceparent.empty()) parent = ParseTraceparent(incoming.traceparent);
  if (parent) {
    c.trace_hi = parent->trace_hi;
    c.trace_lo = parent->trace_lo;
    call.parent_span = parent->span_id;
  } else if (!incoming.b3_trace_id.empty() &&
             ParseB3(incoming.b3_trace_id, &c.trace_hi, &c.trace_lo)) {
    // A later hop of a trace (a transformer calling its predictor): the
    // gateway span of the earlier hop is the parent while it is in flight.
    call.parent_span = Table().Get(c.trace_hi, c.trace_lo);
    if (call.parent_span != 0)
      parent = TraceContext{c.trace_hi, c.trace_lo, call.parent_span, 0, 1};
  } else {
    c.trace_hi = trace::NewId();
    c.trace_lo = trace::NewId();
  }
  const bool sampled = trace::ShouldSample(sampler, parent, c.trace_lo, ratio);
  c.flags = sampled ? 1 : 0;
  // Not sampled: the parent's position goes on unchanged (no span here).
  c.span_id = sampled || call.parent_span == 0 ? trace::NewId() : call.parent_span;
  TraceparentBuffer buf;
  StrAppend(head,
            "traceparent: ", FormatTraceparent(c.trace_hi, c.trace_lo, c.span_id, sampled, &buf),
            "\r\n");
  if (incoming.b3_trace_id.empty()) {
    char hex[32];
    Hex16(c.trace_hi, hex);
    Hex16(c.trace_lo, hex + 16);
    StrAppend(head, "x-b3-traceid: ", std::string_view(hex, 32), "\r\n");
  }
  if (sampled) call.remembered = Table().PutIfAbsent(c.trace_hi, c.trace_lo, c.span_id);
  return call;
}

std::vector<trace::Span> CallSpans(const CallTrace& call, const Exchange& e,
                                   std::string_view graph) {
  std::vector<trace::Span> spans;
  const TraceContext& c = call.context;
  if (!c.sampled()) return spans;
  const std::string_view path = e.target.substr(0, e.target.find('?'));
  const uint64_t start_ns = trace::UnixNanos(e.start);
  spans.reserve(2);
  // A gRPC call's span is named by its method ("package.Service/Method").
  const bool rpc = e.kind == Exchange::Kind::kGrpc;
  std::string_view method = e.rpc_method;
  if (method.starts_with('/')) method.remove_prefix(1);
  trace::Span& s = spans.emplace_back(trace::NewSpan(
      c, c.span_id, call.parent_span,
      rpc ? std::string(method.empty() ? "gRPC" : method) : StrCat(e.method, " ", path),
      e.kind == Exchange::Kind::kInternal ? trace::SpanKind::kClient : trace::SpanKind::kServer,
      start_ns, trace::UnixNanos(e.end)));
  s.attributes.reserve(16);
  if (rpc) {
    const size_t slash = method.find('/');
    s.Set("rpc.system", std::string("grpc"))
        .Set("rpc.service", std::string(method.substr(0, slash)))
        .Set("rpc.method",
             std::string(slash == std::string_view::npos ? "" : method.substr(slash + 1)))
        .Set("rpc.grpc.status_code", static_cast<int64_t>(e.code))
        .Set("server.address", std::string(internal::HostWithoutPort(e.host)));
  } else {
    s.Set("http.request.method", std::string(e.method))
        .Set("url.path", std::string(path))
        .Set("server.address", std::string(internal::HostWithoutPort(e.host)));
  }
  if (e.http_status != 0) s.Set("http.response.status_code", int64_t{e.http_status});
  if (!e.request_id.empty()) s.Set("osprey.request_id", std::string(e.request_id));
  if (e.route != nullptr) {
    // The component that answers: a service's own route goes to its
    // transformer when it has one, as its revision's name says.
    std::string_view component = e.route->component;
    if (component.empty() && !e.revision.empty()) component = RevisionService(e.revision).second;
    s.Set("k8s.namespace.name", e.route->namespace_)
        .Set("osprey.inferenceservice", e.route->name)
        .Set("osprey.component", std::string(component.empty() ? "predictor" : component));
    if (!e.route->model_name.empty()) s.Set("osprey.model", e.route->model_name);
  }
  if (!graph.empty()) s.Set("osprey.inferencegraph", std::string(graph));
  if (!e.revision.empty()) s.Set("osprey.revision", std::string(e.revision));
  if (e.replica_port != 0)
    s.Set("osprey.replica",
          StrCat(e.replica_host.empty() ? std::string_view("127.0.0.1") : e.replica_host, ":",
                 e.replica_port));
  if (!rpc)
    s.Set("http.request.body.size", static_cast<int64_t>(e.request_bytes))
        .Set("http.response.body.size", static_cast<int64_t>(e.response_bytes));
  if (e.cold_start) s.Set("osprey.cold_start", true);
  if (!e.retried_at.empty()) {
    s.Set("osprey.retries", static_cast<int64_t>(e.retried_at.size()));
    for (Clock::time_point t : e.retried_at)
      s.events.push_back(
          {"retry", trace::UnixNanos(t), {{"error.type", std::string("connection refused")}}});
  }
  if (e.code != absl::StatusCode::kOk) {
    s.status = trace::Span::Status::kError;
    s.status_message = std::string(absl::StatusCodeToString(e.code));
    s.Set("error.type", s.status_message);
  } else if (e.http_status >= 500) {
    s.status = trace::Span::Status::kError;
    s.Set("error.type", std::to_string(e.http_status));
  }
  if (e.queue_wait > Clock::duration::zero()) {
    // The activator held the request for a replica: a child span of that wait.
    const uint64_t assigned_ns = trace::UnixNanos(e.start + e.queue_wait);
    s.events.push_back({"replica assigned", assigned_ns, {}});
    trace::Span& q =
        spans.emplace_back(trace::NewSpan(c, trace::NewId(), c.span_id, "activator queue",
                                          trace::SpanKind::kInternal, start_ns, assigned_ns));
    q.Set("osprey.revision", std::string(e.revision)).Set("osprey.cold_start", e.cold_start);
  }
  return spans;
}

void EndCallTrace(const CallTrace& call, const Exchange& e, std::string_view graph) {
  const TraceContext& c = call.context;
  if (!c.sampled()) return;
  if (call.remembered) Table().Erase(c.trace_hi, c.trace_lo, c.span_id);
  trace::Tracer* tracer = trace::Active();
  if (tracer == nullptr) return;
  for (trace::Span& s : CallSpans(call, e, graph)) tracer->Submit(std::move(s));
}

void TraceObserver::OnComplete(const Exchange& e) {
  if (e.trace != nullptr) EndCallTrace(*e.trace, e);
}

}  // namespace osprey::gateway
