// Osprey's LightGBM model loader (the text format) on any bytes; a model it
// takes is evaluated, and explained when it can be, on rows of zeros, NaNs
// and values from the input.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "backends/lightgbm/lgbm_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto model =
      osprey::LgbmModel::Parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!model.ok()) return 0;
  const auto& m = **model;
  if (m.num_features() <= 0 || m.num_features() > 4096 || m.num_classes() <= 0 ||
      m.num_classes() > 4096)
    return 0;
  const int64_t f = m.num_features();
  std::vector<double> rows(3 * f, 0.0);
  for (int64_t i = 0; i < f; ++i) {
    rows[f + i] = std::nan("");
    double v = 0;
    std::memcpy(&v, data + (i * 8) % (size >= 8 ? size - 7 : 1), size >= 8 ? 8 : 0);
    rows[2 * f + i] = v;
  }
  std::vector<double> out(3 * m.num_classes());
  m.Predict(rows.data(), 3, out.data(), false);
  m.Predict(rows.data(), 3, out.data(), true);
  if (m.explains()) {
    std::vector<double> contrib(3 * m.num_classes() * (f + 1));
    (void)m.Explain(rows.data(), 3, contrib.data());
  }
  return 0;
}
