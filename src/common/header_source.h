#pragma once

// A transport's request headers, read in place when something asks:
// visit(context, f) calls f(name, value) for each header. Valid until the
// request is answered. The HTTP server fills one per request; the decoded
// InferRequest carries it on for a model that reads headers.

#include <string_view>

#include "absl/functional/function_ref.h"

namespace osprey {

struct HeaderSource {
  using Visit = absl::FunctionRef<void(std::string_view name, std::string_view value)>;
  void (*visit)(const void* context, Visit f) = nullptr;
  const void* context = nullptr;
};

}  // namespace osprey
