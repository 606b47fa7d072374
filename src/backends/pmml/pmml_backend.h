#pragma once

// PMML backend: a native evaluator (backends/pmml/pmml_model.h), no JVM.
//
// Model directory: one *.pmml file (KServe's pmmlserver loads model.pmml).
// Answers as KServe's pmmlserver: one input "input-0" of shape [-1, F], the
// model's input fields in order (FP64 when all are numeric, else BYTES with
// each value as text; numeric tensors are accepted either way; NaN or "" is a
// missing value); one output per result column, [-1], FP64 for numbers and
// BYTES for categories; V1 answers are records like
// {"Species": "setosa", "Probability_setosa": 1.0, ...}.

#include "backends/backend.h"

namespace osprey {

const Backend& PmmlBackend();

}  // namespace osprey
