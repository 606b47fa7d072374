#pragma once

// Open Inference Protocol gRPC codec: ModelInferRequest / ModelInferResponse
// to and from the protocol-neutral types. Pure functions, no gRPC runtime.
// Errors are InvalidArgument naming the tensor, datatype and counts at fault.

#include "inference.pb.h"
#include "tensor/tensor.h"

namespace osprey {

// Decodes a request. Tensors sent in raw_input_contents borrow their bytes
// from `message`, which must outlive the returned request (the gRPC frontend
// executes while the message is alive). Typed contents are copied into the
// raw layout. Rules: raw_input_contents, when present, carries every input
// (one entry per input, no typed contents); FP16/BF16 travel only raw.
absl::StatusOr<InferRequest> DecodeGrpcInferRequest(const inference::ModelInferRequest& message);

// Fills `out`. raw=true: tensor bytes in raw_output_contents (fastest, the
// choice for clients that sent raw inputs); raw=false: typed contents, except
// that FP16/BF16, which have no typed field, make the whole answer raw.
void EncodeGrpcInferResponse(const InferResponse& response, bool raw,
                             inference::ModelInferResponse* out);

// The same parameter conversions in both directions, for reuse by the frontend.
absl::Status DecodeGrpcParameters(
    const google::protobuf::Map<std::string, inference::InferParameter>& in, Parameters* out);
void EncodeGrpcParameters(const Parameters& in,
                          google::protobuf::Map<std::string, inference::InferParameter>* out);

}  // namespace osprey
