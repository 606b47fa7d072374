#pragma once

// XGBoost backend over the real libxgboost C API (Debian's libxgboost 1.7, the
// same version as the python3-xgboost that trains the test fixtures).
//
// Model directory: one model file named *.json, *.ubj or *.bst (XGBoost's
// JSON, UBJSON and legacy binary formats), as KServe's xgbserver finds it.
// Answers as xgbserver does: one input "input-0" of shape [-1, num_features]
// (any numeric datatype, converted to FP32; NaN is a missing value), one output
// "output-0", FP32, shape [N] for labels (multi:softmax), probabilities
// (binary:*) and scores (reg:*), [N, num_class] for multi:softprob.
// Thread-safe: predictions run concurrently on one booster, each call with one
// XGBoost thread (nthread=1) so a 2-core machine is not oversubscribed.

#include "backends/backend.h"

namespace osprey {

const Backend& XgboostBackend();

}  // namespace osprey
