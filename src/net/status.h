#pragma once

// The one mapping from absl::Status to the wire, for every frontend: the model
// server's REST and gRPC, the gateway's two ingresses and the control-plane
// API. Codes follow the canonical google.rpc mapping (FAILED_PRECONDITION is a
// client error, 400), with one Osprey reading: RESOURCE_EXHAUSTED is a body
// or tensor over a limit, 413.

#include <string_view>

#include "common/status.h"
#include "net/http_types.h"

namespace osprey {

int HttpStatusFromCode(absl::StatusCode code);

// The gRPC status code (grpc::StatusCode's value) a Status is sent with.
// Codes outside the table (kUnknown, kDataLoss, ...) become INTERNAL.
int GrpcCodeFromStatus(absl::StatusCode code);

// {"error": message} with `status`.
HttpResponse JsonErrorResponse(int status, std::string_view message);
// The same for a Status, with its mapped HTTP code.
HttpResponse ErrorResponse(const absl::Status& status);

}  // namespace osprey
