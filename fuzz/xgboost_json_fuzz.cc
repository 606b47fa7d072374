// Osprey's own XGBoost evaluator's loader (XGBoost's JSON model format) on
// any bytes; a model it compiles is evaluated on rows of zeros, NaNs and
// values from the input, by the vector kernel and by the portable walk.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "backends/xgboost/forest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  for (bool simd : {true, false}) {
    auto forest = osprey::Forest::Compile(json, simd);
    if (!forest.ok()) return 0;
    const auto& f = **forest;
    const int64_t width = f.num_features();
    if (width <= 0 || width > 4096 || f.output_width() <= 0 || f.output_width() > 4096) return 0;
    std::vector<float> rows(3 * width, 0.0f);
    for (int64_t i = 0; i < width; ++i) {
      rows[width + i] = std::nanf("");
      float v = 0;
      if (size >= 4) std::memcpy(&v, data + (i * 4) % (size - 3), 4);
      rows[2 * width + i] = v;
    }
    std::vector<float> out(3 * f.output_width());
    f.Predict(rows.data(), 3, out.data());
  }
  return 0;
}
