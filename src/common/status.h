#pragma once

// Status helpers shared by every layer. Errors travel as absl::Status; each
// frontend maps a StatusCode to its own wire code in exactly one place.
//
// Code conventions for request errors:
//   kInvalidArgument    malformed input (400 / INVALID_ARGUMENT)
//   kNotFound           unknown model, version, tensor or route (404 / NOT_FOUND)
//   kUnavailable        model or server not ready (503 / UNAVAILABLE)
//   kUnimplemented      endpoint or feature not offered (501 / UNIMPLEMENTED)
//   kResourceExhausted  payload over the configured limit (413 / RESOURCE_EXHAUSTED)
//   kInternal           the backend failed while executing (500 / INTERNAL)

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/strings.h"

#define OSPREY_CONCAT_INNER(a, b) a##b
#define OSPREY_CONCAT(a, b) OSPREY_CONCAT_INNER(a, b)

#define OSPREY_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::absl::Status osprey_status_ = (expr);          \
    if (!osprey_status_.ok()) return osprey_status_; \
  } while (0)

#define OSPREY_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return std::move(tmp).status();     \
  lhs = std::move(tmp).value()

#define OSPREY_ASSIGN_OR_RETURN(lhs, expr) \
  OSPREY_ASSIGN_OR_RETURN_IMPL(OSPREY_CONCAT(osprey_statusor_, __LINE__), lhs, expr)
