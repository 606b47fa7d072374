#include "net/status.h"

#include <gtest/gtest.h>

namespace osprey {
namespace {

// One table for every frontend: the model server's REST and the control-plane
// API used to disagree on FAILED_PRECONDITION (400 vs 409).
TEST(StatusTest, CodesMapToHttpAndGrpc) {
  using C = absl::StatusCode;
  struct Case {
    C code;
    int http;
    C grpc;
  } cases[] = {
      {C::kOk, 200, C::kOk},
      {C::kInvalidArgument, 400, C::kInvalidArgument},
      {C::kFailedPrecondition, 400, C::kInvalidArgument},
      {C::kOutOfRange, 400, C::kInvalidArgument},
      {C::kUnauthenticated, 401, C::kUnauthenticated},
      {C::kPermissionDenied, 403, C::kPermissionDenied},
      {C::kNotFound, 404, C::kNotFound},
      {C::kAlreadyExists, 409, C::kAlreadyExists},
      {C::kAborted, 409, C::kAborted},
      {C::kResourceExhausted, 413, C::kResourceExhausted},
      {C::kCancelled, 499, C::kCancelled},
      {C::kUnimplemented, 501, C::kUnimplemented},
      {C::kUnavailable, 503, C::kUnavailable},
      {C::kDeadlineExceeded, 504, C::kDeadlineExceeded},
      {C::kInternal, 500, C::kInternal},
      {C::kUnknown, 500, C::kInternal},
      {C::kDataLoss, 500, C::kInternal},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(HttpStatusFromCode(c.code), c.http) << absl::StatusCodeToString(c.code);
    EXPECT_EQ(GrpcCodeFromStatus(c.code), static_cast<int>(c.grpc))
        << absl::StatusCodeToString(c.code);
  }
}

TEST(StatusTest, ErrorResponseCarriesCodeAndMessage) {
  HttpResponse r = ErrorResponse(absl::NotFoundError("model \"iris\" is not \"loaded\""));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, R"({"error":"model \"iris\" is not \"loaded\""})");
  EXPECT_EQ(JsonErrorResponse(503, "busy").body, R"({"error":"busy"})");
}

}  // namespace
}  // namespace osprey
