#pragma once

// A native PMML evaluator for the models real exporters write (sklearn2pmml,
// nyoka, R's pmml, KNIME): no JVM.
//
// Supported (PMML 4.x): DataDictionary (optype, dataType, valid Values),
// MiningSchema (usageType, missingValueReplacement, invalidValueTreatment,
// outliers with lowValue/highValue), TransformationDictionary and
// LocalTransformations (DerivedField over Constant, FieldRef, NormContinuous,
// NormDiscrete, Apply with the arithmetic, comparison, boolean and `if`
// functions), Targets (rescaleFactor, rescaleConstant, castInteger), and the
// models
//   TreeModel: SimplePredicate, SimpleSetPredicate, CompoundPredicate (and,
//     or, xor, surrogate), True, False; missingValueStrategy none,
//     lastPrediction, nullPrediction, defaultChild; noTrueChildStrategy
//     returnNullPrediction, returnLastPrediction; ScoreDistribution.
//   MiningModel/Segmentation: modelChain, sum, average, weightedAverage,
//     median, max, majorityVote, weightedMajorityVote, selectFirst.
//   RegressionModel: regression and classification; NumericPredictor,
//     CategoricalPredictor, PredictorTerm; normalizationMethod none,
//     simplemax, softmax, logit, probit, cloglog, loglog, cauchit, exp.
//   GeneralRegressionModel: regression, generalLinear, generalizedLinear
//     (links identity, log, logit, probit, cloglog, loglog, cauchit, inverse,
//     power), multinomialLogistic; ParameterList, FactorList, CovariateList,
//     PPMatrix, ParamMatrix, offset.
//   Output: OutputField predictedValue, predictedDisplayValue, probability,
//     entityId, transformedValue (an expression).
// Anything else is refused at load with a message naming the element.
//
// Results are records as KServe's pmmlserver returns them (its JPMML evaluator):
// the target field's predicted value, then the top model's output fields.
//
// Immutable after Parse: Evaluate is safe from any number of threads.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace osprey {
namespace pmml {

struct Value {
  enum class Kind : uint8_t { kMissing, kNumber, kString };
  Kind kind = Kind::kMissing;
  double number = 0;
  std::string text;

  static Value Missing() { return {}; }
  static Value Number(double v) { return {Kind::kNumber, v, {}}; }
  static Value String(std::string s) { return {Kind::kString, 0, std::move(s)}; }
  bool missing() const { return kind == Kind::kMissing; }
};

struct Column {
  std::string name;
  bool numeric = true;  // else a string (categorical) value
};

class Document;

}  // namespace pmml

class PmmlModel {
 public:
  ~PmmlModel();
  // InvalidArgument for malformed XML or references to unknown fields,
  // Unimplemented naming the first unsupported element or attribute value.
  static absl::StatusOr<std::unique_ptr<PmmlModel>> Parse(std::string_view xml);

  // The model's input fields (active MiningFields of the top model), in order.
  const std::vector<pmml::Column>& inputs() const;
  // Result columns: the target, then the output fields.
  const std::vector<pmml::Column>& outputs() const;
  const std::string& model_kind() const;  // e.g. "TreeModel"

  // One row: values in inputs() order -> values in outputs() order.
  // InvalidArgument naming the field for an invalid value (returnInvalid).
  absl::Status Evaluate(std::span<const pmml::Value> row, std::vector<pmml::Value>* out) const;

 private:
  PmmlModel() = default;
  std::unique_ptr<pmml::Document> doc_;
};

}  // namespace osprey
