#include "trace/trace.h"

#include <atomic>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <random>

#include "common/strings.h"
#include "trace/exporter.h"

namespace osprey::trace {
namespace {

std::atomic<Tracer*> g_active{nullptr};

bool RatioSample(double ratio, uint64_t trace_lo) {
  if (ratio >= 1.0) return true;
  if (ratio <= 0.0) return false;
  // The low 63 bits of the trace id's random half against ratio * 2^63:
  // the same trace gets the same answer on every hop that applies it.
  const uint64_t bound = static_cast<uint64_t>(ratio * 9223372036854775808.0);
  return (trace_lo & 0x7fffffffffffffffULL) < bound;
}

template <typename Clock>
int64_t Nanos(std::chrono::time_point<Clock> t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Span NewSpan(const TraceContext& trace, uint64_t span_id, uint64_t parent_id, std::string name,
             SpanKind kind, uint64_t start_unix_ns, uint64_t end_unix_ns) {
  Span s;
  s.trace_hi = trace.trace_hi;
  s.trace_lo = trace.trace_lo;
  s.span_id = span_id;
  s.parent_id = parent_id;
  s.name = std::move(name);
  s.kind = kind;
  s.start_unix_ns = start_unix_ns;
  s.end_unix_ns = end_unix_ns;
  return s;
}

std::string AttributeText(const AttributeValue& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>)
          return v;
        else if constexpr (std::is_same_v<T, bool>)
          return v ? "true" : "false";
        else
          return StrCat(v);
      },
      value);
}

uint64_t NewId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t v;
  do v = rng();
  while (v == 0);
  return v;
}

uint64_t UnixNanos(std::chrono::steady_clock::time_point t) {
  // The wall clock's offset from the steady one moves only when the wall
  // clock is stepped: measured at most once a second, so that the instants
  // of one request convert alike (a span never ends before it starts).
  static std::atomic<int64_t> offset{0}, next_measure{INT64_MIN};
  const int64_t steady = Nanos(std::chrono::steady_clock::now());
  if (steady >= next_measure.load(std::memory_order_relaxed)) {
    // The wall clock read between two steady readings, the closest pair of
    // a few: a thread preempted in between would shift every span.
    int64_t best_gap = INT64_MAX, best = 0;
    for (int i = 0; i < 5 && best_gap > 2000; ++i) {
      const int64_t before = Nanos(std::chrono::steady_clock::now());
      const int64_t wall = Nanos(std::chrono::system_clock::now());
      const int64_t after = Nanos(std::chrono::steady_clock::now());
      if (after - before < best_gap) {
        best_gap = after - before;
        best = wall - (before + (after - before) / 2);
      }
    }
    offset.store(best, std::memory_order_relaxed);
    next_measure.store(steady + 1000000000, std::memory_order_relaxed);
  }
  return static_cast<uint64_t>(Nanos(t) + offset.load(std::memory_order_relaxed));
}

absl::StatusOr<double> ParseSamplingRatio(std::string_view text) {
  text = Trim(text);
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !(v >= 0) ||
      !(v <= 1))
    return absl::InvalidArgumentError(
        StrCat("sampling ratio '", text, "' is not a number between 0 and 1"));
  return v;
}

absl::StatusOr<SamplerConfig> ParseSampler(std::string_view name, std::string_view arg) {
  using Kind = SamplerConfig::Kind;
  SamplerConfig c;
  name = Trim(name);
  struct Named {
    std::string_view name;
    Kind kind;
  };
  static constexpr Named kKinds[] = {
      {"always_on", Kind::kAlwaysOn},
      {"always_off", Kind::kAlwaysOff},
      {"traceidratio", Kind::kTraceIdRatio},
      {"parentbased_always_on", Kind::kParentAlwaysOn},
      {"parentbased_always_off", Kind::kParentAlwaysOff},
      {"parentbased_traceidratio", Kind::kParentTraceIdRatio},
  };
  bool found = name.empty();  // unset: the default, parentbased_always_on
  for (const Named& k : kKinds)
    if (k.name == name) {
      c.kind = k.kind;
      found = true;
    }
  if (!found)
    return absl::InvalidArgumentError(
        StrCat("OTEL_TRACES_SAMPLER '", name,
               "' is not one of always_on, always_off, traceidratio, parentbased_always_on, "
               "parentbased_always_off, parentbased_traceidratio"));
  if (c.kind == Kind::kTraceIdRatio || c.kind == Kind::kParentTraceIdRatio) {
    if (!Trim(arg).empty()) {
      auto ratio = ParseSamplingRatio(arg);
      if (!ratio.ok())
        return absl::InvalidArgumentError(
            StrCat("OTEL_TRACES_SAMPLER_ARG: ", ratio.status().message()));
      c.ratio = *ratio;
    }
  }
  return c;
}

bool ShouldSample(const SamplerConfig& config, const std::optional<TraceContext>& parent,
                  uint64_t trace_lo, std::optional<double> ratio_override) {
  using Kind = SamplerConfig::Kind;
  const bool parent_based = config.kind == Kind::kParentAlwaysOn ||
                            config.kind == Kind::kParentAlwaysOff ||
                            config.kind == Kind::kParentTraceIdRatio;
  if (parent_based && parent.has_value()) return parent->sampled();
  if (ratio_override.has_value()) return RatioSample(*ratio_override, trace_lo);
  switch (config.kind) {
    case Kind::kAlwaysOn:
    case Kind::kParentAlwaysOn:
      return true;
    case Kind::kAlwaysOff:
    case Kind::kParentAlwaysOff:
      return false;
    case Kind::kTraceIdRatio:
    case Kind::kParentTraceIdRatio:
      return RatioSample(config.ratio, trace_lo);
  }
  return false;
}

absl::StatusOr<Config> ConfigFromEnv(const char* (*getenv)(const char* name)) {
  auto get = [&](const char* name) -> std::string_view {
    const char* v = getenv(name);
    return v == nullptr ? std::string_view() : Trim(v);
  };
  Config c;
  OSPREY_ASSIGN_OR_RETURN(c.sampler,
                          ParseSampler(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG")));
  for (std::string_view rest = get("OTEL_RESOURCE_ATTRIBUTES"); !rest.empty();) {
    size_t comma = rest.find(',');
    std::string_view item = Trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return absl::InvalidArgumentError(
          StrCat("OTEL_RESOURCE_ATTRIBUTES: '", item, "' is not key=value"));
    c.resource.emplace_back(std::string(Trim(item.substr(0, eq))),
                            std::string(Trim(item.substr(eq + 1))));
  }
  c.service_name = std::string(get("OTEL_SERVICE_NAME"));
  if (get("OTEL_SDK_DISABLED") == "true" || get("OTEL_TRACES_EXPORTER") == "none") return c;
  std::string_view url = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  if (!url.empty()) {
    c.traces_url = std::string(url);
  } else if (std::string_view base = get("OTEL_EXPORTER_OTLP_ENDPOINT"); !base.empty()) {
    while (base.ends_with('/')) base.remove_suffix(1);
    c.traces_url = StrCat(base, "/v1/traces");
  }
  if (!c.traces_url.empty() && !c.traces_url.starts_with("http://") &&
      !c.traces_url.starts_with("https://"))
    return absl::InvalidArgumentError(
        StrCat("OTLP traces endpoint '", c.traces_url, "' is not an http:// or https:// URL"));
  return c;
}

Tracer::Tracer(SamplerConfig sampler, std::unique_ptr<Exporter> exporter)
    : sampler_(sampler), exporter_(std::move(exporter)) {}
Tracer::~Tracer() = default;

void Tracer::Submit(Span span) { exporter_->Submit(std::move(span)); }

Tracer* Active() { return g_active.load(std::memory_order_acquire); }
void SetActive(Tracer* tracer) { g_active.store(tracer, std::memory_order_release); }

std::vector<std::pair<std::string, std::string>> ResourceOf(
    const Config& config, std::string_view default_service_name,
    std::vector<std::pair<std::string, std::string>> resource) {
  std::string name = config.service_name;
  for (const auto& [k, v] : config.resource)
    if (name.empty() && k == "service.name") name = v;
  if (name.empty()) name = std::string(default_service_name);
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(1 + resource.size() + config.resource.size());
  out.emplace_back("service.name", std::move(name));
  for (auto& kv : resource) out.push_back(std::move(kv));
  for (const auto& kv : config.resource)
    if (kv.first != "service.name") out.push_back(kv);
  return out;
}

std::unique_ptr<Tracer> MakeTracer(const Config& config, std::string_view default_service_name,
                                   std::vector<std::pair<std::string, std::string>> resource) {
  if (config.traces_url.empty()) return nullptr;
  Exporter::Options o;
  o.url = config.traces_url;
  o.resource = ResourceOf(config, default_service_name, std::move(resource));
  return std::make_unique<Tracer>(config.sampler, std::make_unique<Exporter>(std::move(o)));
}

std::string RenderMetrics() {
  Tracer* t = Active();
  if (t == nullptr) return {};
  std::string out;
  StrAppend(&out,
            "# HELP osprey_trace_spans_exported_total Spans accepted by the OTLP collector.\n"
            "# TYPE osprey_trace_spans_exported_total counter\n"
            "osprey_trace_spans_exported_total ",
            t->exporter().exported(),
            "\n# HELP osprey_trace_spans_dropped_total Spans dropped: the export queue was full "
            "or their batch could not be sent.\n"
            "# TYPE osprey_trace_spans_dropped_total counter\n"
            "osprey_trace_spans_dropped_total ",
            t->exporter().dropped(),
            "\n# HELP osprey_trace_export_failures_total OTLP export requests that failed.\n"
            "# TYPE osprey_trace_export_failures_total counter\n"
            "osprey_trace_export_failures_total ",
            t->exporter().failed_exports(), "\n");
  return out;
}

}  // namespace osprey::trace
