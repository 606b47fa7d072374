// The V1 REST predict decoder on any bytes, for models that declare a
// numeric input, a BYTES input, feature names, or nothing (raw requests).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/v1_json.h"

namespace {

osprey::ModelMetadata Numeric() {
  osprey::ModelMetadata md;
  md.name = "m";
  osprey::TensorSpec input;
  input.name = "input-0";
  input.shape = {-1, 4};
  md.inputs.push_back(input);
  md.feature_names = {"a", "b", "c", "d"};
  return md;
}

osprey::ModelMetadata Strings() {
  osprey::ModelMetadata md;
  md.name = "m";
  osprey::TensorSpec input;
  input.name = "input-0";
  input.datatype = osprey::DataType::kBytes;
  input.shape = {-1, 2};
  md.inputs.push_back(input);
  return md;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const osprey::ModelMetadata numeric = Numeric(), strings = Strings();
  static const osprey::ModelMetadata raw = [] {
    osprey::ModelMetadata md;
    md.name = "m";
    md.raw_requests = true;
    return md;
  }();
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (const auto* md : {&numeric, &strings, &raw}) (void)osprey::DecodeV1PredictRequest(body, *md);
  return 0;
}
