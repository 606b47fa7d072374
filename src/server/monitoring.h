#pragma once

// The model server's side of drift and outlier detection: one model's
// detector (monitor/detector.h) fed from the request path. InferenceCore
// calls Observe once per validated request, before it executes: the rows of
// the request's numeric inputs go to the detector's bounded buffer (never
// waiting; a full buffer drops and counts), and with score_header the
// largest outlier score of those rows is put on the response
// (InferResponse::outlier_score; the REST frontend sends it as
// x-osprey-outlier-score). Cost on the request path: the conversion of the
// inputs to doubles, one copy into the buffer, and O(F^2) per row for the
// score.
//
// Thread safety: Observe may run on any number of threads at once.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "monitor/detector.h"
#include "tensor/tensor.h"

namespace osprey {

inline constexpr char kOutlierScoreHeader[] = "x-osprey-outlier-score";

// Values per row of the model's inputs as RequestRows reads them: the sum
// over its inputs of the product of each one's dims after the batch; nullopt
// when that is not fixed (a variable dim, a BYTES or rank-1 input).
std::optional<size_t> ModelRowWidth(const ModelMetadata& md);

// The request's rows of features, row-major: the numeric inputs, each [n],
// [n, k] or [n, k1, k2, ...] (flattened per row), side by side in input
// order; every input must have the same n. A single input of rank 1 is one
// row. InvalidArgument for a BYTES input or inputs of different n.
absl::Status RequestRows(const InferRequest& request, std::vector<double>* rows, size_t* n,
                         size_t* features);

class RequestMonitor {
 public:
  RequestMonitor(std::string model, std::unique_ptr<monitor::Detector> detector, bool score_header)
      : model_(std::move(model)), detector_(std::move(detector)), score_header_(score_header) {}

  // The model this monitor watches (the served name).
  const std::string& model() const { return model_; }
  const monitor::Detector& detector() const { return *detector_; }

  // Request path; see the top of this file. Requests whose inputs are not
  // numeric rows are not monitored.
  void Observe(const InferRequest& request, InferResponse* response) const;

 private:
  std::string model_;
  std::unique_ptr<monitor::Detector> detector_;
  bool score_header_;
};

}  // namespace osprey
