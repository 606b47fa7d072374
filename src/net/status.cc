#include "net/status.h"

#include "common/json_writer.h"
#include "common/strings.h"

namespace osprey {

int HttpStatusFromCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 413;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

int GrpcCodeFromStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kUnauthenticated:
      return static_cast<int>(code);  // absl's codes are gRPC's numbers
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      // A client error, as over HTTP (400): what the client sent is wrong.
      return static_cast<int>(absl::StatusCode::kInvalidArgument);
    default:
      return static_cast<int>(absl::StatusCode::kInternal);
  }
}

HttpResponse JsonErrorResponse(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = JsonError(message);
  return r;
}

HttpResponse ErrorResponse(const absl::Status& status) {
  return JsonErrorResponse(HttpStatusFromCode(status.code()), StatusMessage(status));
}

}  // namespace osprey
