#pragma once

// V2 / Open Inference Protocol REST codec: JSON bodies plus the binary tensor
// extension, to and from the protocol-neutral types. Pure functions: no I/O, no
// model registry. Every error is InvalidArgument with a message that names the
// field, tensor, shape or size at fault.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/tensor.h"

namespace osprey {

// Decodes an infer request body. `header_length` is the value of the
// Inference-Header-Content-Length header when present: the JSON part is the
// first header_length bytes and binary tensor parts follow in input order.
// Tensors with binary parts borrow their bytes from `body`, which the request
// keeps alive through InferRequest::backing.
absl::StatusOr<InferRequest> DecodeV2InferRequest(std::shared_ptr<const std::string> body,
                                                  std::optional<uint64_t> header_length);

// True when output `name` should travel as a binary part: its requested-output
// parameter `binary_data`, else the request parameter `binary_data_output`.
bool WantsBinaryOutput(const InferRequest& request, std::string_view name);

struct EncodedBody {
  std::string body;
  // Set when binary parts follow the JSON: the JSON part's length, for the
  // Inference-Header-Content-Length header.
  std::optional<size_t> json_length;
};

EncodedBody EncodeV2InferResponse(const InferResponse& response, const InferRequest& request);

std::string EncodeV2ModelMetadata(const ModelMetadata& metadata);
// Triton's read-only model configuration extension (GET .../config), which
// tools such as perf_analyzer read: no batching dimension is declared
// (max_batch_size 0), so dims are the full shapes with -1 for variable ones.
std::string EncodeTritonModelConfig(const ModelMetadata& metadata);

std::string EncodeV2ServerMetadata(std::string_view name, std::string_view version,
                                   const std::vector<std::string>& extensions);

struct RepositoryEntry {
  std::string name;
  std::string version;
  std::string state;  // READY, UNAVAILABLE, LOADING, UNLOADING
  std::string reason;
};
std::string EncodeV2RepositoryIndex(const std::vector<RepositoryEntry>& entries);
// Parses the optional index body {"ready": bool}; empty body means false.
absl::StatusOr<bool> DecodeV2RepositoryIndexRequest(std::string_view body);

}  // namespace osprey
