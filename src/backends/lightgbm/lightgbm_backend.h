#pragma once

// LightGBM backend, evaluated natively (backends/lightgbm/lgbm_model.h): no
// LightGBM library, no Python.
//
// Model directory: one LightGBM text model (first line "tree"), named *.txt or
// *.bst (KServe's lgbserver loads model.bst), or any file named model.*.
// Answers as lgbserver does (Booster.predict): one input "input-0" of shape
// [-1, num_features], any numeric datatype (read as double, as LightGBM
// does; NaN is a missing value); one output "output-0", FP64, [N] or
// [N, num_class] for multiclass: probabilities for binary/multiclass, the
// objective's transformed score otherwise. A request parameter
// "raw_score": true returns the untransformed scores.

#include "backends/backend.h"

namespace osprey {

const Backend& LightgbmBackend();

}  // namespace osprey
