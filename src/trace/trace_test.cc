#include "trace/trace.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>

#include "common/strings.h"
#include "common/trace_context.h"
#include "net/http_server.h"
#include "rapidjson/document.h"
#include "trace/exporter.h"

namespace osprey::trace {
namespace {

using namespace std::chrono_literals;
using Kind = SamplerConfig::Kind;

TEST(Traceparent, ParseTable) {
  struct Case {
    std::string_view header;
    bool valid;
    uint64_t hi, lo, span;
    uint8_t flags;
  };
  const Case cases[] = {
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true, 0x4bf92f3577b34da6,
       0xa3ce929d0e0e4736, 0x00f067aa0ba902b7, 1},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true, 0x4bf92f3577b34da6,
       0xa3ce929d0e0e4736, 0x00f067aa0ba902b7, 0},
      {" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ", true, 0x4bf92f3577b34da6,
       0xa3ce929d0e0e4736, 0x00f067aa0ba902b7, 1},
      // a later version may append fields
      {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true, 0x4bf92f3577b34da6,
       0xa3ce929d0e0e4736, 0x00f067aa0ba902b7, 1},
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false},  // not in 00
      {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
      {"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},  // zero trace id
      {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},  // zero span id
      {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},  // upper case
      {"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", false},   // short
      {"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
      {"", false},
  };
  for (const Case& c : cases) {
    auto parsed = ParseTraceparent(c.header);
    ASSERT_EQ(parsed.has_value(), c.valid) << c.header;
    if (!c.valid) continue;
    EXPECT_EQ(parsed->trace_hi, c.hi) << c.header;
    EXPECT_EQ(parsed->trace_lo, c.lo) << c.header;
    EXPECT_EQ(parsed->span_id, c.span) << c.header;
    EXPECT_EQ(parsed->flags, c.flags) << c.header;
  }
}

TEST(Traceparent, FormatRoundTrips) {
  TraceparentBuffer buf;
  std::string_view s =
      FormatTraceparent(0x4bf92f3577b34da6, 0xa3ce929d0e0e4736, 0xf067aa0ba902b7, true, &buf);
  EXPECT_EQ(s, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  auto back = ParseTraceparent(s);
  ASSERT_TRUE(back.has_value());
  EXPECT_TRUE(back->sampled());
  EXPECT_EQ(FormatTraceparent(1, 2, 3, false, &buf),
            "00-00000000000000010000000000000002-0000000000000003-00");
}

TEST(UnixNanos, WallTimeKeepingTheSteadyDistances) {
  const auto steady = std::chrono::steady_clock::now();
  const auto wall = std::chrono::system_clock::now();
  const uint64_t t = UnixNanos(steady);
  const auto expected =
      std::chrono::duration_cast<std::chrono::nanoseconds>(wall.time_since_epoch()).count();
  EXPECT_NEAR(static_cast<double>(t), static_cast<double>(expected), 5e6);
  for (std::chrono::nanoseconds d : {1ns, 1000ns, 5000000ns, 900000000ns})
    EXPECT_NEAR(static_cast<double>(UnixNanos(steady + d) - t), static_cast<double>(d.count()),
                1000)
        << d.count();
}

TEST(Sampler, ParseTable) {
  struct Case {
    std::string_view name, arg;
    bool ok;
    Kind kind;
    double ratio;
  };
  const Case cases[] = {
      {"", "", true, Kind::kParentAlwaysOn, 1.0},
      {"always_on", "", true, Kind::kAlwaysOn, 1.0},
      {"always_off", "0.5", true, Kind::kAlwaysOff, 1.0},
      {"traceidratio", "0.25", true, Kind::kTraceIdRatio, 0.25},
      {"traceidratio", "", true, Kind::kTraceIdRatio, 1.0},
      {"parentbased_traceidratio", "0", true, Kind::kParentTraceIdRatio, 0.0},
      {"parentbased_always_off", "", true, Kind::kParentAlwaysOff, 1.0},
      {"traceidratio", "1.5", false},
      {"traceidratio", "half", false},
      {"sometimes", "", false},
  };
  for (const Case& c : cases) {
    auto s = ParseSampler(c.name, c.arg);
    ASSERT_EQ(s.ok(), c.ok) << c.name << " " << c.arg;
    if (!c.ok) {
      const std::string message(s.status().message());
      EXPECT_TRUE(message.find(StrCat("'", c.name, "'")) != std::string::npos ||
                  message.find(StrCat("'", c.arg, "'")) != std::string::npos)
          << s.status();
      continue;
    }
    EXPECT_EQ(s->kind, c.kind) << c.name;
    EXPECT_EQ(s->ratio, c.ratio) << c.name;
  }
}

TEST(Sampler, DecisionTable) {
  TraceContext sampled{1, 2, 3, 0, 1}, unsampled{1, 2, 3, 0, 0};
  const uint64_t low = 0x10, high = 0x7ffffffffffffff0;  // trace_lo: below / above a 0.5 ratio
  struct Case {
    SamplerConfig config;
    std::optional<TraceContext> parent;
    uint64_t trace_lo;
    std::optional<double> override_ratio;
    bool want;
  };
  const Case cases[] = {
      {{Kind::kAlwaysOn}, std::nullopt, high, std::nullopt, true},
      {{Kind::kAlwaysOn}, unsampled, high, std::nullopt, true},  // not parent-based
      {{Kind::kAlwaysOff}, sampled, low, std::nullopt, false},
      {{Kind::kParentAlwaysOn}, unsampled, low, std::nullopt, false},
      {{Kind::kParentAlwaysOn}, std::nullopt, high, std::nullopt, true},
      {{Kind::kParentAlwaysOff}, sampled, high, std::nullopt, true},
      {{Kind::kParentAlwaysOff}, std::nullopt, low, std::nullopt, false},
      {{Kind::kTraceIdRatio, 0.5}, std::nullopt, low, std::nullopt, true},
      {{Kind::kTraceIdRatio, 0.5}, std::nullopt, high, std::nullopt, false},
      {{Kind::kTraceIdRatio, 0.0}, std::nullopt, 0, std::nullopt, false},
      {{Kind::kParentTraceIdRatio, 0.5}, sampled, high, std::nullopt, true},
      // the InferenceService's ratio replaces the root sampler...
      {{Kind::kParentAlwaysOff}, std::nullopt, high, 1.0, true},
      {{Kind::kAlwaysOn}, std::nullopt, low, 0.0, false},
      {{Kind::kTraceIdRatio, 0.0}, std::nullopt, low, 0.5, true},
      // ...and a parent-based one still follows a parent
      {{Kind::kParentAlwaysOn}, unsampled, low, 1.0, false},
  };
  int row = 0;
  for (const Case& c : cases) {
    EXPECT_EQ(ShouldSample(c.config, c.parent, c.trace_lo, c.override_ratio), c.want)
        << "row " << row;
    ++row;
  }
}

TEST(Sampler, RatioIsRoughlyKept) {
  SamplerConfig c{Kind::kTraceIdRatio, 0.25};
  int n = 0;
  for (int i = 0; i < 20000; ++i) n += ShouldSample(c, std::nullopt, NewId());
  EXPECT_NEAR(n / 20000.0, 0.25, 0.02);
}

std::map<std::string, std::string>* g_env;
const char* FakeEnv(const char* name) {
  auto it = g_env->find(name);
  return it == g_env->end() ? nullptr : it->second.c_str();
}

TEST(Config, FromEnvTable) {
  struct Case {
    std::map<std::string, std::string> env;
    bool ok;
    std::string url;
    Kind kind;
    std::string error_names;
  };
  const Case cases[] = {
      {{}, true, "", Kind::kParentAlwaysOn},
      {{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"}},
       true,
       "http://127.0.0.1:4318/v1/traces",
       Kind::kParentAlwaysOn},
      {{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:2/custom"}},
       true,
       "http://b:2/custom",
       Kind::kParentAlwaysOn},
      {{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"}, {"OTEL_TRACES_EXPORTER", "none"}},
       true,
       "",
       Kind::kParentAlwaysOn},
      {{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"}, {"OTEL_SDK_DISABLED", "true"}},
       true,
       "",
       Kind::kParentAlwaysOn},
      {{{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"},
        {"OTEL_TRACES_SAMPLER", "traceidratio"},
        {"OTEL_TRACES_SAMPLER_ARG", "0.1"}},
       true,
       "http://a:1/v1/traces",
       Kind::kTraceIdRatio},
      {{{"OTEL_EXPORTER_OTLP_ENDPOINT", "a:1"}}, false, "", Kind::kParentAlwaysOn, "a:1"},
      {{{"OTEL_TRACES_SAMPLER_ARG", "2"}, {"OTEL_TRACES_SAMPLER", "traceidratio"}},
       false,
       "",
       Kind::kParentAlwaysOn,
       "OTEL_TRACES_SAMPLER_ARG"},
      {{{"OTEL_RESOURCE_ATTRIBUTES", "novalue"}}, false, "", Kind::kParentAlwaysOn, "novalue"},
  };
  for (const Case& c : cases) {
    auto env = c.env;
    g_env = &env;
    auto got = ConfigFromEnv(&FakeEnv);
    ASSERT_EQ(got.ok(), c.ok) << got.status();
    if (!c.ok) {
      EXPECT_NE(std::string(got.status().message()).find(c.error_names), std::string::npos)
          << got.status();
      continue;
    }
    EXPECT_EQ(got->traces_url, c.url);
    EXPECT_EQ(got->sampler.kind, c.kind);
  }
  std::map<std::string, std::string> env = {
      {"OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test, team = ml"}};
  g_env = &env;
  auto got = ConfigFromEnv(&FakeEnv);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->resource.size(), 2u);
  EXPECT_EQ(got->resource[1].first, "team");
  EXPECT_EQ(got->resource[1].second, "ml");
}

TEST(Config, ResourceTable) {
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  struct Case {
    std::string service_name;  // OTEL_SERVICE_NAME
    Pairs env_resource;        // OTEL_RESOURCE_ATTRIBUTES
    Pairs own;                 // the process's own attributes
    Pairs want;
  };
  const Case cases[] = {
      {"", {}, {}, {{"service.name", "osprey-gateway"}}},
      {"",
       {},
       {{"k8s.namespace.name", "ns"}},
       {{"service.name", "osprey-gateway"}, {"k8s.namespace.name", "ns"}}},
      // OTEL_SERVICE_NAME wins over OTEL_RESOURCE_ATTRIBUTES' service.name,
      // which wins over the default
      {"iris-predictor",
       {{"service.name", "other"}, {"team", "ml"}},
       {},
       {{"service.name", "iris-predictor"}, {"team", "ml"}}},
      {"",
       {{"team", "ml"}, {"service.name", "other"}},
       {{"a", "1"}},
       {{"service.name", "other"}, {"a", "1"}, {"team", "ml"}}},
  };
  for (const Case& c : cases) {
    Config config;
    config.service_name = c.service_name;
    config.resource = c.env_resource;
    EXPECT_EQ(ResourceOf(config, "osprey-gateway", c.own), c.want) << c.service_name;
  }
  std::map<std::string, std::string> env = {{"OTEL_SERVICE_NAME", " iris-predictor "}};
  g_env = &env;
  auto got = ConfigFromEnv(&FakeEnv);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->service_name, "iris-predictor");
}

Span MakeSpan(uint64_t id) {
  Span s;
  s.trace_hi = 0x0102030405060708;
  s.trace_lo = 0x090a0b0c0d0e0f10;
  s.span_id = id;
  s.parent_id = 0xabc;
  s.name = "POST /v2/models/m/infer";
  s.kind = SpanKind::kServer;
  s.start_unix_ns = 1700000000000000000;
  s.end_unix_ns = 1700000000000500000;
  s.status = Span::Status::kError;
  s.status_message = "boom";
  s.Set("http.request.method", std::string("POST"))
      .Set("http.response.status_code", int64_t{500})
      .Set("osprey.ratio", 0.5)
      .Set("osprey.queued", true);
  s.events.push_back({"queued", 1700000000000100000, {{"osprey.queue.depth", int64_t{3}}}});
  return s;
}

TEST(Otlp, JsonEncoding) {
  Span s = MakeSpan(0x11);
  std::string body = EncodeOtlpJson(std::span(&s, 1), {{"service.name", "osprey-replica"}});
  rapidjson::Document d;
  d.Parse(body.c_str());
  ASSERT_FALSE(d.HasParseError()) << body;
  const auto& rs = d["resourceSpans"][0];
  EXPECT_STREQ(rs["resource"]["attributes"][0]["key"].GetString(), "service.name");
  EXPECT_STREQ(rs["resource"]["attributes"][0]["value"]["stringValue"].GetString(),
               "osprey-replica");
  const auto& span = rs["scopeSpans"][0]["spans"][0];
  EXPECT_STREQ(span["traceId"].GetString(), "0102030405060708090a0b0c0d0e0f10");
  EXPECT_STREQ(span["spanId"].GetString(), "0000000000000011");
  EXPECT_STREQ(span["parentSpanId"].GetString(), "0000000000000abc");
  EXPECT_EQ(span["kind"].GetInt(), 2);
  EXPECT_STREQ(span["startTimeUnixNano"].GetString(), "1700000000000000000");
  EXPECT_STREQ(span["attributes"][1]["value"]["intValue"].GetString(), "500");
  EXPECT_EQ(span["attributes"][2]["value"]["doubleValue"].GetDouble(), 0.5);
  EXPECT_TRUE(span["attributes"][3]["value"]["boolValue"].GetBool());
  EXPECT_STREQ(span["events"][0]["name"].GetString(), "queued");
  EXPECT_EQ(span["status"]["code"].GetInt(), 2);
  EXPECT_STREQ(span["status"]["message"].GetString(), "boom");
}

// A collector that counts the spans POSTed to /v1/traces.
class Collector : public HttpHandler {
 public:
  void Handle(const HttpRequest& request, HttpDone done) override {
    HttpResponse r;
    rapidjson::Document d;
    d.Parse(request.body ? request.body->c_str() : "");
    if (request.target != "/v1/traces" || d.HasParseError() ||
        FindHeader(request.headers, "Content-Type") != "application/json") {
      r.status = 400;
    } else {
      std::lock_guard<std::mutex> lock(mu);
      spans += d["resourceSpans"][0]["scopeSpans"][0]["spans"].Size();
      ++posts;
    }
    r.body = "{}";
    done(std::move(r));
  }
  std::mutex mu;
  size_t spans = 0, posts = 0;
};

TEST(Exporter, SendsBatchesToTheCollector) {
  Collector collector;
  HttpServer::Options o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.threads = 1;
  auto server = HttpServer::Start(o, &collector);
  ASSERT_TRUE(server.ok()) << server.status();
  Exporter::Options eo;
  eo.url = "http://127.0.0.1:" + std::to_string((*server)->port()) + "/v1/traces";
  eo.batch = 100;
  eo.interval = 10s;  // only full batches and Flush send
  Exporter exporter(eo);
  for (uint64_t i = 1; i <= 250; ++i) ASSERT_TRUE(exporter.Submit(MakeSpan(i)));
  exporter.Flush();
  EXPECT_EQ(exporter.exported(), 250u);
  EXPECT_EQ(exporter.dropped(), 0u);
  std::lock_guard<std::mutex> lock(collector.mu);
  EXPECT_EQ(collector.spans, 250u);
  EXPECT_GE(collector.posts, 3u);
}

TEST(Exporter, CountsDropsWhenFullAndFailedPosts) {
  Exporter::Options eo;
  eo.url = "http://127.0.0.1:1/v1/traces";  // nothing listens
  eo.queue_limit = 10;
  eo.batch = 1000;
  eo.interval = 10s;
  Exporter exporter(eo);
  int accepted = 0;
  for (uint64_t i = 1; i <= 25; ++i) accepted += exporter.Submit(MakeSpan(i));
  EXPECT_EQ(accepted, 10);
  EXPECT_EQ(exporter.dropped(), 15u);
  exporter.Flush();
  EXPECT_EQ(exporter.exported(), 0u);
  EXPECT_EQ(exporter.dropped(), 25u);
  EXPECT_EQ(exporter.failed_exports(), 1u);
}

}  // namespace
}  // namespace osprey::trace
