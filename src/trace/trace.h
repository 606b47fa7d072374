#pragma once

// Osprey's tracing core: the span model (OpenTelemetry's, with its semantic
// convention attribute names chosen by the callers), ids, the sampler, and
// the process's Tracer (sampler + exporter, exporter.h), if tracing is on.
//
// Cost: nothing here is touched on a request that is not sampled; the
// callers check `Active()` (one atomic load) and a TraceContext's sampled
// bit before they build a Span. Building and submitting one allocates (its
// name and attributes) and takes the exporter's queue lock briefly.
//
// Thread-safety: free functions are pure or use thread-local state; Active()
// may be read from any thread; SetActive is for main() before serving.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/status.h"
#include "common/trace_context.h"

namespace osprey::trace {

enum class SpanKind : uint8_t { kInternal = 1, kServer = 2, kClient = 3 };

using AttributeValue = std::variant<std::string, int64_t, double, bool>;
struct Attribute {
  std::string key;
  AttributeValue value;
};

struct SpanEvent {
  std::string name;
  uint64_t time_unix_ns = 0;
  std::vector<Attribute> attributes;
};

struct Span {
  uint64_t trace_hi = 0, trace_lo = 0;
  uint64_t span_id = 0;
  uint64_t parent_id = 0;  // 0: a root span
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  uint64_t start_unix_ns = 0, end_unix_ns = 0;
  enum class Status : uint8_t { kUnset = 0, kOk = 1, kError = 2 } status = Status::kUnset;
  std::string status_message;
  std::vector<Attribute> attributes;
  std::vector<SpanEvent> events;

  Span& Set(std::string key, AttributeValue value) {
    attributes.push_back({std::move(key), std::move(value)});
    return *this;
  }
};

// A span of `trace`'s trace id with these ids, name, kind and wall times.
Span NewSpan(const TraceContext& trace, uint64_t span_id, uint64_t parent_id, std::string name,
             SpanKind kind, uint64_t start_unix_ns, uint64_t end_unix_ns);

// An attribute value as text ("POST", "200", "0.5", "true"): for logs and tests.
std::string AttributeText(const AttributeValue& value);

// A random non-zero 64-bit id (thread-local generator, no lock).
uint64_t NewId();

// Unix-epoch nanoseconds of a steady_clock instant (spans are exported in
// wall time; the request path measures with the steady clock). The clocks'
// offset is measured at most once a second: the instants of one request
// keep their distances.
uint64_t UnixNanos(std::chrono::steady_clock::time_point t);

// ---- Sampling (pure) ----

// OTEL_TRACES_SAMPLER's values. A parent-based sampler follows a parent's
// sampled flag when the request brings one, and applies its root sampler
// otherwise.
struct SamplerConfig {
  enum class Kind {
    kAlwaysOn,
    kAlwaysOff,
    kTraceIdRatio,
    kParentAlwaysOn,
    kParentAlwaysOff,
    kParentTraceIdRatio
  };
  Kind kind = Kind::kParentAlwaysOn;
  double ratio = 1.0;  // the TraceIdRatio kinds
};

// `name` as OTEL_TRACES_SAMPLER, `arg` as OTEL_TRACES_SAMPLER_ARG (the ratio
// of the traceidratio kinds, 0..1; empty: 1). InvalidArgument naming the
// value otherwise.
absl::StatusOr<SamplerConfig> ParseSampler(std::string_view name, std::string_view arg);

// An InferenceService's own sampling ratio (annotation
// serving.osprey.dev/trace-sampling: "0".."1"), or InvalidArgument.
absl::StatusOr<double> ParseSamplingRatio(std::string_view text);

// Whether a request is sampled. `parent`: the traceparent it came with, if
// any; `trace_lo`: the low half of its trace id (the parent's, or the new
// one); `ratio_override`: the InferenceService's own ratio, which replaces
// the root sampler (a parent-based sampler still follows a parent).
bool ShouldSample(const SamplerConfig& config, const std::optional<TraceContext>& parent,
                  uint64_t trace_lo, std::optional<double> ratio_override = std::nullopt);

// ---- Configuration from the environment (pure: `getenv` is passed in) ----

struct Config {
  std::string traces_url;  // the OTLP/HTTP traces URL; empty: tracing off
  SamplerConfig sampler;
  std::string service_name;                                   // OTEL_SERVICE_NAME; may be empty
  std::vector<std::pair<std::string, std::string>> resource;  // OTEL_RESOURCE_ATTRIBUTES
};

// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the URL as is) or
// OTEL_EXPORTER_OTLP_ENDPOINT (+ "/v1/traces"); OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG; OTEL_SERVICE_NAME; OTEL_RESOURCE_ATTRIBUTES
// ("k=v,k=v"); OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn
// tracing off. InvalidArgument naming the variable and its value.
absl::StatusOr<Config> ConfigFromEnv(const char* (*getenv)(const char* name));

class Exporter;

// The process's tracing: its sampler and exporter. One per process, made in
// main() (MakeTracer) and installed with SetActive before serving; it lives
// until exit.
class Tracer {
 public:
  Tracer(SamplerConfig sampler, std::unique_ptr<Exporter> exporter);
  ~Tracer();
  const SamplerConfig& sampler() const { return sampler_; }
  // Hands a finished span to the exporter (never blocks; dropped and
  // counted when its queue is full).
  void Submit(Span span);
  Exporter& exporter() { return *exporter_; }

 private:
  SamplerConfig sampler_;
  std::unique_ptr<Exporter> exporter_;
};

// nullptr: tracing is off.
Tracer* Active();
void SetActive(Tracer* tracer);

// The resource attributes of a process: service.name first (the config's
// OTEL_SERVICE_NAME, else a service.name in its OTEL_RESOURCE_ATTRIBUTES,
// else `default_service_name`, as the OpenTelemetry SDKs rank them), then
// `resource`, then the config's other attributes. Pure.
std::vector<std::pair<std::string, std::string>> ResourceOf(
    const Config& config, std::string_view default_service_name,
    std::vector<std::pair<std::string, std::string>> resource = {});

// The tracer of `config` for a process (ResourceOf), exporting from a
// thread of its own; nullptr when the config has no URL.
std::unique_ptr<Tracer> MakeTracer(const Config& config, std::string_view default_service_name,
                                   std::vector<std::pair<std::string, std::string>> resource = {});

// Prometheus text of the active tracer's export counters (spans exported,
// dropped, failed exports); empty when tracing is off.
std::string RenderMetrics();

}  // namespace osprey::trace
