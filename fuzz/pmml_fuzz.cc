// Osprey's PMML evaluator on any document: a model it takes is evaluated on
// a row of missing values, of zeros, and of the category names it declares.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "backends/pmml/pmml_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto model =
      osprey::PmmlModel::Parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!model.ok()) return 0;
  const auto& m = **model;
  const size_t n = m.inputs().size();
  std::vector<osprey::pmml::Value> out;
  std::vector<osprey::pmml::Value> missing(n, osprey::pmml::Value::Missing());
  (void)m.Evaluate(missing, &out);
  std::vector<osprey::pmml::Value> zeros(n, osprey::pmml::Value::Number(0));
  (void)m.Evaluate(zeros, &out);
  std::vector<osprey::pmml::Value> words(n, osprey::pmml::Value::String("sunny"));
  (void)m.Evaluate(words, &out);
  return 0;
}
