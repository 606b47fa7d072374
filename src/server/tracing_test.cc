// The model server's tracing decisions and spans (tables).

#include "server/tracing.h"

#include <gtest/gtest.h>

#include <map>

namespace osprey {
namespace {

using Kind = trace::SamplerConfig::Kind;
using Clock = std::chrono::steady_clock;

constexpr char kSampled[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr char kUnsampled[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

TEST(DecideRequestTrace, Table) {
  struct Case {
    const char* what;
    Kind sampler;
    const char* traceparent;
    bool sampled;
    bool joins;  // the caller's trace, under its span
  };
  const Case cases[] = {
      {"the gateway sampled it", Kind::kParentAlwaysOn, kSampled, true, true},
      {"the gateway did not", Kind::kParentAlwaysOn, kUnsampled, false, false},
      {"the flag wins over a sampler that is off", Kind::kParentAlwaysOff, kSampled, true, true},
      {"a direct client without one: the server's sampler", Kind::kParentAlwaysOn, "", true, false},
      {"...which may be off", Kind::kParentAlwaysOff, "", false, false},
      {"a bad traceparent: a trace of its own", Kind::kParentAlwaysOn, "00-bad", true, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    uint64_t parent = 99;
    TraceContext t = DecideRequestTrace({c.sampler}, c.traceparent, &parent);
    EXPECT_EQ(t.sampled(), c.sampled);
    if (!c.sampled) {
      EXPECT_FALSE(t.valid());
      EXPECT_EQ(parent, 0u);
      continue;
    }
    EXPECT_NE(t.span_id, 0u);
    EXPECT_NE(t.execute_span_id, 0u);
    EXPECT_NE(t.execute_span_id, t.span_id);
    EXPECT_EQ(parent, c.joins ? 0x00f067aa0ba902b7u : 0u);
    EXPECT_EQ(t.trace_lo == 0xa3ce929d0e0e4736u, c.joins);
  }
}

TEST(StartRequestTrace, NothingWithTracingOff) {
  ASSERT_EQ(trace::Active(), nullptr);
  uint64_t parent = 99;
  HeaderSource none;
  EXPECT_FALSE(StartRequestTrace(none, &parent).valid());
  EXPECT_EQ(parent, 0u);
  std::string metrics;
  AppendTraceMetrics(&metrics);
  EXPECT_EQ(metrics, "");
}

std::map<std::string, std::string> Attributes(const trace::Span& s) {
  std::map<std::string, std::string> out;
  for (const auto& a : s.attributes) out[a.key] = trace::AttributeText(a.value);
  return out;
}

TEST(RequestSpanOf, Table) {
  const TraceContext t{1, 2, 0x10, 0x11, 1};
  const Clock::time_point arrival = Clock::now();
  struct Case {
    int status;
    trace::Span::Status want;
    const char* error_type;  // nullptr: none
  };
  const Case cases[] = {
      {200, trace::Span::Status::kUnset, nullptr},
      {400, trace::Span::Status::kUnset, nullptr},  // the client's error, not the server's
      {500, trace::Span::Status::kError, "500"},
      {503, trace::Span::Status::kError, "503"},
  };
  for (const Case& c : cases) {
    trace::Span s = RequestSpanOf(t, 0x77,
                                  {"POST", "/v2/models/iris/infer", "iris", c.status, arrival,
                                   arrival + std::chrono::milliseconds(2)});
    EXPECT_EQ(s.name, "POST /v2/models/iris/infer");
    EXPECT_EQ(s.kind, trace::SpanKind::kServer);
    EXPECT_EQ(s.span_id, 0x10u);
    EXPECT_EQ(s.parent_id, 0x77u);
    EXPECT_EQ(s.status, c.want) << c.status;
    EXPECT_NEAR(double(s.end_unix_ns - s.start_unix_ns), 2e6, 1e5);
    auto a = Attributes(s);
    EXPECT_EQ(a["http.request.method"], "POST");
    EXPECT_EQ(a["url.path"], "/v2/models/iris/infer");
    EXPECT_EQ(a["http.response.status_code"], std::to_string(c.status));
    EXPECT_EQ(a["osprey.model"], "iris");
    EXPECT_EQ(a.count("error.type"), c.error_type ? 1u : 0u);
    if (c.error_type) {
      EXPECT_EQ(a["error.type"], c.error_type);
    }
  }
}

TEST(RequestSpanOf, AGrpcCallIsNamedByItsMethod) {
  const TraceContext t{1, 2, 0x10, 0x11, 1};
  const Clock::time_point arrival = Clock::now();
  for (int code : {0, 3}) {
    RequestSpan r{"", "/inference.GRPCInferenceService/ModelInfer", "iris", 0, arrival, arrival};
    r.grpc_code = code;
    trace::Span s = RequestSpanOf(t, 0x77, r);
    EXPECT_EQ(s.name, "inference.GRPCInferenceService/ModelInfer");
    EXPECT_EQ(s.kind, trace::SpanKind::kServer);
    auto a = Attributes(s);
    EXPECT_EQ(a["rpc.system"], "grpc");
    EXPECT_EQ(a["rpc.service"], "inference.GRPCInferenceService");
    EXPECT_EQ(a["rpc.method"], "ModelInfer");
    EXPECT_EQ(a["rpc.grpc.status_code"], std::to_string(code));
    EXPECT_EQ(a.count("http.request.method"), 0u);
    EXPECT_EQ(s.status, code == 0 ? trace::Span::Status::kUnset : trace::Span::Status::kError);
  }
}

TEST(ExecutionSpans, Table) {
  const Clock::time_point arrival = Clock::now();
  const Clock::time_point start = arrival + std::chrono::milliseconds(3);
  const Clock::time_point end = start + std::chrono::milliseconds(1);
  const absl::Status failed = absl::InternalError("the worker died");
  struct Case {
    const char* what;
    TraceContext trace;
    Clock::time_point arrival;
    int batch;
    const absl::Status* status;
    double queue_ms;
  };
  const Case cases[] = {
      {"one request", {1, 2, 0x10, 0x11, 1}, arrival, 1, nullptr, 3},
      {"in a batch of 4", {1, 2, 0x10, 0x11, 1}, arrival, 4, nullptr, 3},
      {"failed", {1, 2, 0x10, 0x11, 1}, arrival, 1, &failed, 3},
      {"no execution id reserved", {1, 2, 0x10, 0, 1}, arrival, 1, nullptr, 3},
      {"no arrival time: no wait", {1, 2, 0x10, 0x11, 1}, Clock::time_point(), 1, nullptr, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto spans = ExecutionSpans(c.trace, {"iris", "1", c.arrival, start, end, c.batch, c.status});
    ASSERT_EQ(spans.size(), 2u);
    const trace::Span& q = spans[0];
    const trace::Span& x = spans[1];
    EXPECT_EQ(q.name, "queue iris");
    EXPECT_EQ(x.name, "execute iris");
    EXPECT_EQ(q.parent_id, 0x10u);
    EXPECT_EQ(x.parent_id, 0x10u);
    if (c.trace.execute_span_id != 0) {
      EXPECT_EQ(x.span_id, 0x11u) << "the Python worker's span hangs under it";
    }
    EXPECT_NE(x.span_id, 0u);
    EXPECT_NE(q.span_id, x.span_id);
    EXPECT_NEAR(double(q.end_unix_ns - q.start_unix_ns), c.queue_ms * 1e6, 1e5);
    EXPECT_NEAR(double(x.end_unix_ns - x.start_unix_ns), 1e6, 1e5);
    EXPECT_EQ(Attributes(q)["osprey.batch.size"], std::to_string(c.batch));
    EXPECT_EQ(Attributes(x)["osprey.batch.size"], std::to_string(c.batch));
    EXPECT_EQ(Attributes(x)["osprey.model.version"], "1");
    EXPECT_EQ(x.status, c.status ? trace::Span::Status::kError : trace::Span::Status::kUnset);
    if (c.status) {
      EXPECT_EQ(x.status_message, "the worker died");
    }
  }
}

}  // namespace
}  // namespace osprey
