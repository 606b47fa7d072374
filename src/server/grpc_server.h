#pragma once

// Open Inference Protocol over gRPC (inference.GRPCInferenceService), on the
// same inference core as REST, plus grpc.health.v1 and server reflection.
//
// Uses gRPC's callback API: calls run on gRPC's own thread pool, no thread per
// call; each ModelInfer decodes, executes and encodes while its request
// message is alive, so raw input bytes are used in place, never copied.
// Status codes: one mapping from absl::StatusCode, in grpc_server.cc.
// gRPC headers stay inside grpc_server.cc.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "server/inference_core.h"
#include "server/server_info.h"

namespace osprey {

class GrpcServer {
 public:
  struct Options {
    std::string address = "0.0.0.0";
    uint16_t port = 8081;  // 0: any free port (see port())
    // When set, listen on this Unix domain socket path instead of address:port
    // (a replica behind the gateway of `osprey up`).
    std::string unix_socket;
    // Largest message accepted; larger ones fail with RESOURCE_EXHAUSTED.
    int max_message_bytes = 64 << 20;
  };

  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(const Options& options,
                                                           InferenceCore* core, ServerInfo info);
  ~GrpcServer();

  uint16_t port() const;
  // Health (grpc.health.v1) for the overall server: SERVING or NOT_SERVING.
  void SetServing(bool serving);
  // Stops accepting calls, lets in-flight ones finish until `grace`, then
  // cancels what is left.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  struct Impl;
  explicit GrpcServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace osprey
