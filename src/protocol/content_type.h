#pragma once

// The content types of KServe's and MLServer's V2 codecs
// (parameters.content_type), decoded into what the model takes. Pure
// functions over the protocol-neutral types; REST and gRPC requests both pass
// through them before validation.
//
// - On the request, "pd": the inputs are the columns of one table (a pandas
//   DataFrame), each of shape [N] or [N, 1], of any datatype, BYTES included.
//   For a model of one input they become that input, [N, F]: columns placed
//   by the model's feature names (metadata.feature_names; a feature no input
//   gives is missing), else in the order sent. A numeric input takes numbers
//   (BYTES cells parsed, "" missing); a BYTES input takes every cell as text.
//   Models of several inputs, and those that decode their own requests, get
//   the inputs as sent.
// - On an input, "base64": each BYTES element is Base64 text, decoded to its
//   bytes; "str": each BYTES element must be UTF-8 text.
// - "np", and any other value: the tensor as sent.

#include "tensor/tensor.h"

namespace osprey {

// True when the request names a content type DecodeContentTypes rewrites: a
// scan of its parameters, cheap enough for every request.
bool HasContentTypes(const InferRequest& request);

// Rewrites the request's inputs as their content types say. InvalidArgument
// names the input (and row or element) at fault.
absl::Status DecodeContentTypes(const ModelMetadata& md, InferRequest* request);

}  // namespace osprey
