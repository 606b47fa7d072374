#include "server/monitoring.h"

#include "common/strings.h"

namespace osprey {

absl::Status RequestRows(const InferRequest& request, std::vector<double>* rows, size_t* n,
                         size_t* features) {
  rows->clear();
  *n = 0;
  *features = 0;
  if (request.inputs.empty()) return absl::InvalidArgumentError("the request has no inputs");
  const bool single_vector = request.inputs.size() == 1 && request.inputs[0].shape().size() == 1;
  if (request.inputs.size() == 1) {  // the common case: straight into `rows`
    const Tensor& t = request.inputs[0];
    if (t.datatype() == DataType::kBytes)
      return absl::InvalidArgumentError(StrCat("input '", t.name(), "' is not numeric"));
    if (t.shape().empty())
      return absl::InvalidArgumentError(StrCat("input '", t.name(), "' is a scalar"));
    OSPREY_RETURN_IF_ERROR(ConvertToFloat64(t, rows));
    *n = single_vector ? 1 : static_cast<size_t>(t.shape()[0]);
    if (*n == 0 || rows->size() % *n != 0)
      return absl::InvalidArgumentError(StrCat("input '", t.name(), "' has no rows"));
    *features = rows->size() / *n;
    return absl::OkStatus();
  }
  std::vector<std::vector<double>> columns(request.inputs.size());
  std::vector<size_t> widths(request.inputs.size());
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const Tensor& t = request.inputs[i];
    if (t.datatype() == DataType::kBytes)
      return absl::InvalidArgumentError(StrCat("input '", t.name(), "' is not numeric"));
    if (t.shape().empty())
      return absl::InvalidArgumentError(StrCat("input '", t.name(), "' is a scalar"));
    const size_t rows_of = single_vector ? 1 : static_cast<size_t>(t.shape()[0]);
    OSPREY_RETURN_IF_ERROR(ConvertToFloat64(t, &columns[i]));
    if (rows_of == 0 || columns[i].size() % rows_of != 0)
      return absl::InvalidArgumentError(StrCat("input '", t.name(), "' has no rows"));
    if (i > 0 && rows_of != *n)
      return absl::InvalidArgumentError(
          StrCat("input '", t.name(), "' has ", rows_of, " rows, the first input ", *n));
    *n = rows_of;
    widths[i] = columns[i].size() / rows_of;
    *features += widths[i];
  }
  if (columns.size() == 1) {
    *rows = std::move(columns[0]);
    return absl::OkStatus();
  }
  rows->reserve(*n * *features);
  for (size_t r = 0; r < *n; ++r)
    for (size_t i = 0; i < columns.size(); ++i)
      rows->insert(rows->end(), columns[i].begin() + static_cast<std::ptrdiff_t>(r * widths[i]),
                   columns[i].begin() + static_cast<std::ptrdiff_t>((r + 1) * widths[i]));
  return absl::OkStatus();
}

std::optional<size_t> ModelRowWidth(const ModelMetadata& md) {
  if (md.inputs.empty()) return std::nullopt;
  size_t width = 0;
  for (const TensorSpec& s : md.inputs) {
    if (s.datatype == DataType::kBytes || s.shape.size() < 2) return std::nullopt;
    size_t w = 1;
    for (size_t d = 1; d < s.shape.size(); ++d) {
      if (s.shape[d] < 0) return std::nullopt;
      w *= static_cast<size_t>(s.shape[d]);
    }
    width += w;
  }
  return width;
}

void RequestMonitor::Observe(const InferRequest& request, InferResponse* response) const {
  // Reused by every request this thread serves: no allocation once warm.
  thread_local std::vector<double> rows;
  size_t n = 0, features = 0;
  if (!RequestRows(request, &rows, &n, &features).ok()) return;
  std::optional<double> score = detector_->Observe(rows.data(), n, features);
  if (score_header_ && score.has_value()) response->outlier_score = *score;
}

}  // namespace osprey
