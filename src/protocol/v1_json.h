#pragma once

// V1 (TensorFlow-Serving style) REST codec: {"instances": rows} or
// {"inputs": rows} -> one input tensor; the model's first output ->
// {"predictions": [...]}. Pure functions over the protocol-neutral types.

#include <string>
#include <string_view>
#include <vector>

#include "tensor/tensor.h"

namespace osprey {

// Builds a request for a single-input model from V1 instances, shaped as
// KServe's servers accept them (pandas' shapes): each instance a list of
// numbers (possibly nested, one value per feature), a list of records
// [{feature: value}, ...], a column dictionary {feature: [values]} or
// {feature: {index: value}} (pandas' to_dict()), or one record {feature:
// value}. Record fields go to the model's feature names
// (metadata.feature_names), else to columns in the order the names first
// appear; features a record leaves out are missing values (NaN). A BYTES
// model input gets every value as text (null and left-out features as "",
// i.e. missing). The tensor takes the model input's name and, for numeric
// inputs, FP32 (or FP64 when the model declares FP64); shape [N, F].
absl::StatusOr<InferRequest> DecodeV1PredictRequest(std::string_view body,
                                                    const ModelMetadata& metadata);

// {"predictions": [...]} from the response's first output: one entry per row,
// a scalar for an output of shape [N], a (nested) list for [N, ...]. With
// `records`, one object per row holding every output by name instead.
std::string EncodeV1PredictResponse(const InferResponse& response, bool records = false);

// The V1 answer to :explain from a model's "contributions" tensor ([n, F + 1]
// or [n, G, F + 1], the bias last; see Model::Explain in backends/backend.h):
//   {"explanations": [{"contributions": [c_0, ..., c_F-1], "bias": b}, ...]}
// one object per row; for several output groups (classes) "contributions" is
// a list per group and "bias" a list of G. "feature_names" follows when the
// model has them. InvalidArgument for a tensor of another shape or datatype.
absl::StatusOr<std::string> EncodeV1ExplainResponse(const Tensor& contributions,
                                                    const std::vector<std::string>& feature_names);

}  // namespace osprey
