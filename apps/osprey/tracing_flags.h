#pragma once

// Request tracing for a process of the binary (serve, up, gateway): the
// flags, which win over the OTEL_* environment, and the process's tracer
// (trace/trace.h). The flags are written back into the environment
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG)
// so that what the process starts (`osprey up`'s replicas, their Python
// workers) traces alike.

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/flags.h"
#include "common/logging.h"
#include "trace/trace.h"

namespace osprey {

struct TracingFlags {
  std::string endpoint, sampler, sampler_arg;

  // Adds the flags before the last one of `specs` (--help).
  void Add(std::vector<FlagSpec>* specs) {
    specs->insert(
        specs->end() - 1,
        {StringFlag("otlp-endpoint", &endpoint,
                    "export trace spans by OTLP/HTTP (JSON) to URL/v1/traces "
                    "(default $OTEL_EXPORTER_OTLP_ENDPOINT; none: tracing off)",
                    "URL"),
         StringFlag("trace-sampler", &sampler,
                    "always_on, always_off, traceidratio, parentbased_always_on, "
                    "parentbased_always_off or parentbased_traceidratio (default "
                    "$OTEL_TRACES_SAMPLER, else parentbased_always_on)",
                    "NAME"),
         StringFlag("trace-sampler-arg", &sampler_arg,
                    "the traceidratio samplers' ratio, 0..1 (default $OTEL_TRACES_SAMPLER_ARG, "
                    "else 1)",
                    "RATIO")});
  }

  // Starts the tracer (`default_service_name` unless OTEL_SERVICE_NAME says
  // otherwise) and makes it the active one; nullptr with tracing off. False,
  // after printing why, on a bad value.
  bool Start(const char* command, const char* default_service_name,
             std::unique_ptr<trace::Tracer>* tracer) const {
    if (!endpoint.empty()) {
      ::setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.c_str(), 1);
      ::unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    }
    if (!sampler.empty()) ::setenv("OTEL_TRACES_SAMPLER", sampler.c_str(), 1);
    if (!sampler_arg.empty()) ::setenv("OTEL_TRACES_SAMPLER_ARG", sampler_arg.c_str(), 1);
    auto config =
        trace::ConfigFromEnv([](const char* name) -> const char* { return std::getenv(name); });
    if (!config.ok()) {
      std::fprintf(stderr, "osprey %s: %s\n", command,
                   std::string(config.status().message()).c_str());
      return false;
    }
    *tracer = trace::MakeTracer(*config, default_service_name);
    trace::SetActive(tracer->get());
    if (*tracer != nullptr) {
      OSPREY_LOG(kInfo) << "tracing: spans to " << config->traces_url;
    }
    return true;
  }
};

}  // namespace osprey
