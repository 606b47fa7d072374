// The gateway's tracing decisions (tables): which calls are sampled, what
// trace they join and the header lines the replica gets; and the spans of a
// finished call built from its exchange.

#include "gateway/tracing.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "gateway/route_table.h"
#include "link/frame.h"

namespace osprey::gateway {
namespace {

using Kind = trace::SamplerConfig::Kind;
using Clock = std::chrono::steady_clock;

constexpr char kClientSampled[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr char kClientUnsampled[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
constexpr uint64_t kClientHi = 0x4bf92f3577b34da6, kClientLo = 0xa3ce929d0e0e4736,
                   kClientSpan = 0x00f067aa0ba902b7;

std::map<std::string, std::string> Lines(std::string_view head) {
  std::map<std::string, std::string> out;
  link::ForEachHeaderLine(head, [&](std::string_view n, std::string_view v) {
    out.emplace(std::string(n), std::string(v));
  });
  return out;
}

TEST(IncomingTrace, TakesOnlyTraceparent) {
  IncomingTrace in;
  EXPECT_TRUE(in.Take("TraceParent", kClientSampled));
  EXPECT_FALSE(in.Take("tracestate", "vendor=1"));
  EXPECT_FALSE(in.Take("X-B3-TraceId", "abc"));
  EXPECT_FALSE(in.Take("x-request-id", "r1"));
  EXPECT_EQ(in.traceparent, kClientSampled);
  EXPECT_EQ(in.tracestate, "vendor=1");
  EXPECT_EQ(in.b3_trace_id, "abc");
}

// What the gateway decides for a call, and what it sends on.
TEST(StartCallTrace, DecisionTable) {
  enum class Trace { kClient, kNew, kB3 };
  struct Case {
    const char* what;
    Kind sampler;
    double sampler_ratio;
    std::string traceparent, b3;
    std::optional<double> route_ratio;
    bool sampled;
    Trace trace;
    bool continues_client;  // the parent is the client's span
    bool adds_b3;
  };
  const std::string b3 = "0af7651916cd43dd8448eb211c80319c";
  const Case cases[] = {
      {"no header: a root", Kind::kParentAlwaysOn, 1, "", "", std::nullopt, true, Trace::kNew,
       false, true},
      {"a sampled client", Kind::kParentAlwaysOn, 1, kClientSampled, "", std::nullopt, true,
       Trace::kClient, true, true},
      {"an unsampled client", Kind::kParentAlwaysOn, 1, kClientUnsampled, "", std::nullopt, false,
       Trace::kClient, true, true},
      {"the client's flag wins over the route's ratio", Kind::kParentAlwaysOn, 1, kClientSampled,
       "", 0.0, true, Trace::kClient, true, true},
      {"the route's ratio 0 for a root", Kind::kParentAlwaysOn, 1, "", "", 0.0, false, Trace::kNew,
       false, true},
      {"the route's ratio 1 over a sampler that is off", Kind::kParentAlwaysOff, 1, "", "", 1.0,
       true, Trace::kNew, false, true},
      {"always_off", Kind::kAlwaysOff, 1, kClientSampled, "", std::nullopt, false, Trace::kClient,
       true, true},
      {"a bad traceparent starts a trace", Kind::kParentAlwaysOn, 1, "00-xyz", "", std::nullopt,
       true, Trace::kNew, false, true},
      {"x-b3-traceid alone continues its trace id", Kind::kParentAlwaysOn, 1, "", b3, std::nullopt,
       true, Trace::kB3, false, false},
      {"a bad x-b3-traceid is ignored", Kind::kParentAlwaysOn, 1, "", "XYZ", std::nullopt, true,
       Trace::kNew, false, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    IncomingTrace in;
    in.traceparent = c.traceparent;
    in.b3_trace_id = c.b3;
    std::string head;
    CallTrace call = StartCallTrace({c.sampler, c.sampler_ratio}, in, c.route_ratio, &head);
    EXPECT_EQ(call.context.sampled(), c.sampled);
    switch (c.trace) {
      case Trace::kClient:
        EXPECT_EQ(call.context.trace_hi, kClientHi);
        EXPECT_EQ(call.context.trace_lo, kClientLo);
        break;
      case Trace::kB3:
        EXPECT_EQ(call.context.trace_hi, 0x0af7651916cd43ddULL);
        EXPECT_EQ(call.context.trace_lo, 0x8448eb211c80319cULL);
        break;
      case Trace::kNew:
        EXPECT_NE(call.context.trace_lo, kClientLo);
        break;
    }
    EXPECT_EQ(call.parent_span, c.continues_client ? kClientSpan : 0);
    if (c.continues_client && !c.sampled) {
      EXPECT_EQ(call.context.span_id, kClientSpan) << "passed on unchanged";
    } else {
      EXPECT_NE(call.context.span_id, kClientSpan);
    }
    auto lines = Lines(head);
    ASSERT_TRUE(lines.count("traceparent"));
    auto sent = ParseTraceparent(lines["traceparent"]);
    ASSERT_TRUE(sent.has_value()) << lines["traceparent"];
    EXPECT_EQ(sent->trace_hi, call.context.trace_hi);
    EXPECT_EQ(sent->trace_lo, call.context.trace_lo);
    EXPECT_EQ(sent->span_id, call.context.span_id);
    EXPECT_EQ(sent->sampled(), c.sampled);
    EXPECT_EQ(lines.count("x-b3-traceid"), c.adds_b3 ? 1u : 0u);
    if (c.adds_b3) {
      char hex[32];
      Hex16(call.context.trace_hi, hex);
      Hex16(call.context.trace_lo, hex + 16);
      EXPECT_EQ(lines["x-b3-traceid"], std::string(hex, 32));
    }
    EndCallTrace(call, Exchange{});  // forgets its x-b3 entry
  }
}

// A transformer's predictor calls bring back only the x-b3-traceid the
// gateway gave the transformer: while the transformer's call is in flight,
// its span is their parent; once it ended, they start from nothing.
TEST(StartCallTrace, TheB3HopHangsUnderTheCallInFlight) {
  const trace::SamplerConfig sampler{Kind::kParentAlwaysOn};
  std::string head;
  CallTrace outer = StartCallTrace(sampler, IncomingTrace{}, std::nullopt, &head);
  ASSERT_TRUE(outer.context.sampled());
  IncomingTrace hop;
  const std::string b3 = Lines(head)["x-b3-traceid"];
  hop.b3_trace_id = b3;
  for (int i = 0; i < 2; ++i) {  // two predictor calls, one after the other
    std::string hop_head;
    CallTrace inner = StartCallTrace(sampler, hop, std::nullopt, &hop_head);
    EXPECT_TRUE(inner.context.sampled());
    EXPECT_EQ(inner.context.trace_lo, outer.context.trace_lo);
    EXPECT_EQ(inner.parent_span, outer.context.span_id) << "call " << i;
    EXPECT_FALSE(Lines(hop_head).count("x-b3-traceid")) << "it came with one";
    EndCallTrace(inner, Exchange{});
  }
  EndCallTrace(outer, Exchange{});
  std::string late_head;
  CallTrace late = StartCallTrace(sampler, hop, std::nullopt, &late_head);
  EXPECT_EQ(late.parent_span, 0u);
  EXPECT_EQ(late.context.trace_lo, outer.context.trace_lo);
  EndCallTrace(late, Exchange{});
}

// The ratio is applied to the trace id: every hop of a trace decides alike.
TEST(StartCallTrace, ARatioDecidesAlikeOnEveryHop) {
  const trace::SamplerConfig sampler{Kind::kParentAlwaysOn};
  int sampled = 0;
  for (int i = 0; i < 400; ++i) {
    std::string head;
    CallTrace first = StartCallTrace(sampler, IncomingTrace{}, 0.5, &head);
    IncomingTrace hop;
    const std::string b3 = Lines(head)["x-b3-traceid"];
    hop.b3_trace_id = b3;
    std::string hop_head;
    CallTrace second = StartCallTrace(sampler, hop, 0.5, &hop_head);
    EXPECT_EQ(second.context.sampled(), first.context.sampled());
    sampled += first.context.sampled();
    EndCallTrace(second, Exchange{});
    EndCallTrace(first, Exchange{});
  }
  EXPECT_GT(sampled, 120);
  EXPECT_LT(sampled, 280);
}

std::string Attr(const trace::Span& s, std::string_view key) {
  for (const auto& a : s.attributes)
    if (a.key == key) return trace::AttributeText(a.value);
  return "(none)";
}

// The spans of a finished call, by what its exchange says.
TEST(CallSpans, Table) {
  Route route;
  route.namespace_ = "team";
  route.name = "iris";
  route.model_name = "iris";
  const Clock::time_point start = Clock::now();
  const std::vector<Clock::time_point> retries = {start + std::chrono::milliseconds(1)};
  CallTrace sampled;
  sampled.context = {1, 2, 0x55, 0, 1};
  sampled.parent_span = 0x44;
  CallTrace unsampled = sampled;
  unsampled.context.flags = 0;

  Exchange base;
  base.kind = Exchange::Kind::kHttp;
  base.method = "POST";
  base.host = "iris-team.example.com:8080";
  base.target = "/v1/models/iris:predict?x=1";
  base.route = &route;
  base.revision = "iris-predictor-00001";
  base.replica_port = 9001;
  base.start = start;
  base.end = start + std::chrono::milliseconds(5);
  base.http_status = 200;
  base.request_id = "rid-1";
  base.request_bytes = 10;
  base.response_bytes = 20;

  struct Case {
    const char* what;
    const CallTrace* call;
    std::function<void(Exchange&)> change;
    std::string graph;
    size_t spans;
    // expected attributes of the call's span; "(none)": absent
    std::map<std::string, std::string> attributes;
    trace::SpanKind kind;
    trace::Span::Status status;
  };
  const Case cases[] = {
      {"not sampled: nothing",
       &unsampled,
       [](Exchange&) {},
       "",
       0,
       {},
       trace::SpanKind::kServer,
       trace::Span::Status::kUnset},
      {"a client's request",
       &sampled,
       [](Exchange&) {},
       "",
       1,
       {{"http.request.method", "POST"},
        {"url.path", "/v1/models/iris:predict"},
        {"server.address", "iris-team.example.com"},
        {"http.response.status_code", "200"},
        {"k8s.namespace.name", "team"},
        {"osprey.inferenceservice", "iris"},
        {"osprey.component", "predictor"},
        {"osprey.model", "iris"},
        {"osprey.revision", "iris-predictor-00001"},
        {"osprey.replica", "127.0.0.1:9001"},
        {"osprey.request_id", "rid-1"},
        {"http.request.body.size", "10"},
        {"http.response.body.size", "20"},
        {"osprey.retries", "(none)"},
        {"osprey.cold_start", "(none)"},
        {"error.type", "(none)"}},
       trace::SpanKind::kServer,
       trace::Span::Status::kUnset},
      {"held by the activator: a child span",
       &sampled,
       [](Exchange& e) {
         e.queue_wait = std::chrono::milliseconds(3);
         e.cold_start = true;
       },
       "",
       2,
       {{"osprey.cold_start", "true"}},
       trace::SpanKind::kServer,
       trace::Span::Status::kUnset},
      {"retried",
       &sampled,
       [&](Exchange& e) { e.retried_at = retries; },
       "",
       1,
       {{"osprey.retries", "1"}},
       trace::SpanKind::kServer,
       trace::Span::Status::kUnset},
      {"a replica's 503",
       &sampled,
       [](Exchange& e) { e.http_status = 503; },
       "",
       1,
       {{"error.type", "503"}},
       trace::SpanKind::kServer,
       trace::Span::Status::kError},
      {"refused",
       &sampled,
       [](Exchange& e) {
         e.code = absl::StatusCode::kUnavailable;
         e.http_status = 503;
         e.replica_port = 0;
       },
       "",
       1,
       {{"error.type", "UNAVAILABLE"}, {"osprey.replica", "(none)"}},
       trace::SpanKind::kServer,
       trace::Span::Status::kError},
      {"a service's own route to its transformer",
       &sampled,
       [](Exchange& e) { e.revision = "iris-transformer-00002"; },
       "",
       1,
       {{"osprey.component", "transformer"}, {"osprey.revision", "iris-transformer-00002"}},
       trace::SpanKind::kServer,
       trace::Span::Status::kUnset},
      {"an in-process call (a graph step)",
       &sampled,
       [](Exchange& e) { e.kind = Exchange::Kind::kInternal; },
       "",
       1,
       {},
       trace::SpanKind::kClient,
       trace::Span::Status::kUnset},
      {"a graph's request",
       &sampled,
       [](Exchange& e) {
         e.route = nullptr;
         e.revision = "";
         e.replica_port = 0;
       },
       "team/chain",
       1,
       {{"osprey.inferencegraph", "team/chain"}, {"osprey.inferenceservice", "(none)"}},
       trace::SpanKind::kServer,
       trace::Span::Status::kUnset},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Exchange e = base;
    c.change(e);
    auto spans = CallSpans(*c.call, e, c.graph);
    ASSERT_EQ(spans.size(), c.spans);
    if (spans.empty()) continue;
    const trace::Span& s = spans[0];
    EXPECT_EQ(s.name, "POST /v1/models/iris:predict");
    EXPECT_EQ(s.trace_hi, 1u);
    EXPECT_EQ(s.trace_lo, 2u);
    EXPECT_EQ(s.span_id, 0x55u);
    EXPECT_EQ(s.parent_id, 0x44u);
    EXPECT_EQ(s.kind, c.kind);
    EXPECT_EQ(s.status, c.status);
    // Wall times: each is converted on its own, within a few microseconds.
    EXPECT_NEAR(double(s.end_unix_ns - s.start_unix_ns), 5e6, 1e5);
    for (const auto& [k, v] : c.attributes) EXPECT_EQ(Attr(s, k), v) << k;
    EXPECT_EQ(s.events.size(), e.retried_at.size() + (spans.size() > 1 ? 1 : 0));
    if (spans.size() > 1) {
      const trace::Span& q = spans[1];
      EXPECT_EQ(q.name, "activator queue");
      EXPECT_EQ(q.parent_id, s.span_id);
      EXPECT_NE(q.span_id, s.span_id);
      EXPECT_EQ(q.start_unix_ns, s.start_unix_ns) << "the same instant";
      EXPECT_NEAR(double(q.end_unix_ns - q.start_unix_ns), 3e6, 1e5);
      EXPECT_EQ(Attr(q, "osprey.cold_start"), "true");
    }
  }
}

}  // namespace
}  // namespace osprey::gateway
