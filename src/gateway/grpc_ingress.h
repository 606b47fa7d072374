#pragma once

// The gateway's gRPC (HTTP/2) ingress: every method, forwarded as opaque
// bytes (grpc's generic API) to a replica's gRPC endpoint. A call is routed
// by its :authority host like an HTTP request by Host, falling back to the
// InferenceService named by the model name in its request (ModelInfer,
// ModelMetadata, ModelReady, ...); split, least-outstanding choice,
// containerConcurrency and the activator queue are the HTTP side's
// (Gateway::AdmitGrpc). Unary calls only: the Open Inference Protocol has no
// streaming method. Client metadata and deadlines travel to the replica; its
// status and message come back unchanged. grpc.health.v1 Check calls that no
// InferenceService claims are answered by the gateway itself (SERVING).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "gateway/gateway.h"

namespace osprey::gateway {

class GrpcIngress {
 public:
  struct Options {
    std::string address = "0.0.0.0";
    uint16_t port = 8081;  // 0: any free port
    int max_message_bytes = 64 << 20;
    // Whose route a call's model name finds (Gateway::AdmitGrpc): "" for
    // the services' own; "predictor" for the ingress a transformer's
    // gRPC calls to its predictor come in by.
    std::string component;
  };
  // `gateway` must outlive the ingress.
  static absl::StatusOr<std::unique_ptr<GrpcIngress>> Start(const Options& options,
                                                            Gateway* gateway);
  ~GrpcIngress();
  uint16_t port() const;
  // Stops taking calls; those in progress get until `grace`.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  struct Impl;
  explicit GrpcIngress(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The string in field 1 of a protobuf message (model_name / name in the Open
// Inference Protocol's model requests), or empty (pure).
std::string_view ProtoField1String(std::string_view message);

}  // namespace osprey::gateway
