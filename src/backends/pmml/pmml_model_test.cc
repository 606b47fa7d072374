#include "backends/pmml/pmml_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace osprey {
namespace {

using pmml::Value;

Value N(double v) { return Value::Number(v); }
Value S(const char* s) { return Value::String(s); }
Value M() { return Value::Missing(); }

std::unique_ptr<PmmlModel> Load(const std::string& xml) {
  auto m = PmmlModel::Parse(xml);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : nullptr;
}

std::vector<Value> Eval(const PmmlModel& m, std::vector<Value> row) {
  std::vector<Value> out;
  absl::Status s = m.Evaluate(row, &out);
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

std::string Text(const Value& v) {
  if (v.missing()) return "<missing>";
  if (v.kind == Value::Kind::kNumber) return std::to_string(v.number);
  return v.text;
}

const char* kDictionary = R"(
  <DataDictionary>
    <DataField name="temperature" optype="continuous" dataType="double"/>
    <DataField name="outlook" optype="categorical" dataType="string">
      <Value value="sunny"/><Value value="overcast"/><Value value="rain"/>
    </DataField>
    <DataField name="play" optype="categorical" dataType="string">
      <Value value="A"/><Value value="B"/>
    </DataField>
  </DataDictionary>)";

// root (A) -> n1: temperature < 50 (B) | n2: temperature >= 50 (A, default n21)
//   n2 -> n21: outlook in {sunny, overcast} (A) | n22: outlook = rain (B)
std::string Tree(const std::string& attributes) {
  return std::string("<PMML version=\"4.4\">") + kDictionary +
         "<TreeModel functionName=\"classification\" " + attributes + R"(>
    <MiningSchema>
      <MiningField name="temperature"/><MiningField name="outlook"/>
      <MiningField name="play" usageType="target"/>
    </MiningSchema>
    <Output>
      <OutputField name="Predicted_play" feature="predictedValue"/>
      <OutputField name="Probability_A" feature="probability" value="A"/>
      <OutputField name="node" feature="entityId"/>
    </Output>
    <Node id="root" score="A" defaultChild="n2"><True/>
      <ScoreDistribution value="A" recordCount="6"/><ScoreDistribution value="B" recordCount="4"/>
      <Node id="n1" score="B"><SimplePredicate field="temperature" operator="lessThan" value="50"/>
        <ScoreDistribution value="A" recordCount="0"/><ScoreDistribution value="B" recordCount="3"/>
      </Node>
      <Node id="n2" score="A" defaultChild="n21">
        <SimplePredicate field="temperature" operator="greaterOrEqual" value="50"/>
        <ScoreDistribution value="A" recordCount="6"/><ScoreDistribution value="B" recordCount="1"/>
        <Node id="n21" score="A">
          <SimpleSetPredicate field="outlook" booleanOperator="isIn">
            <Array n="2" type="string">sunny "overcast"</Array></SimpleSetPredicate>
          <ScoreDistribution value="A" recordCount="5" probability="1.0"/>
        </Node>
        <Node id="n22" score="B"><SimplePredicate field="outlook" operator="equal" value="rain"/></Node>
      </Node>
    </Node>
  </TreeModel></PMML>)";
}

TEST(PmmlTreeTest, WalksAndMissingValueStrategies) {
  struct Case {
    const char* attributes;
    std::vector<Value> row;
    std::string want, node;
  } cases[] = {
      {"", {N(30), S("sunny")}, "B", "n1"},
      {"", {N(70), S("overcast")}, "A", "n21"},
      {"", {N(70), S("rain")}, "B", "n22"},
      // none: unknown counts as false; no true child -> null prediction
      {"", {M(), S("sunny")}, "<missing>", "<missing>"},
      {"noTrueChildStrategy=\"returnLastPrediction\"", {M(), S("sunny")}, "A", "root"},
      {"missingValueStrategy=\"lastPrediction\"", {M(), S("sunny")}, "A", "root"},
      {"missingValueStrategy=\"nullPrediction\"", {N(70), M()}, "<missing>", "<missing>"},
      {"missingValueStrategy=\"defaultChild\"", {M(), S("rain")}, "B", "n22"},
      {"missingValueStrategy=\"defaultChild\"", {N(70), M()}, "A", "n21"},
      {"missingValueStrategy=\"lastPrediction\"", {N(70), M()}, "A", "n2"},
  };
  for (const Case& c : cases) {
    auto m = Load(Tree(c.attributes));
    ASSERT_NE(m, nullptr);
    auto out = Eval(*m, c.row);
    ASSERT_EQ(out.size(), 4u);  // play, Predicted_play, Probability_A, node
    EXPECT_EQ(Text(out[0]), c.want) << c.attributes << " " << Text(c.row[0]);
    EXPECT_EQ(Text(out[3]), c.node) << c.attributes;
  }
  auto m = Load(Tree(""));
  auto out = Eval(*m, {N(70), S("sunny")});
  EXPECT_EQ(out[2].number, 1.0);  // explicit probability
  out = Eval(*m, {N(10), S("sunny")});
  EXPECT_EQ(out[2].number, 0.0);  // 0 of 3 records
  EXPECT_EQ(m->inputs().size(), 2u);
  EXPECT_FALSE(m->inputs()[1].numeric);
}

TEST(PmmlTreeTest, InvalidValuesFollowTheirTreatment) {
  auto m = Load(Tree(""));
  std::vector<Value> out;
  absl::Status s = m->Evaluate(std::vector<Value>{N(70), S("snow")}, &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("field 'outlook': invalid value 'snow'"), std::string_view::npos) << s;
  std::string as_missing = Tree("missingValueStrategy=\"lastPrediction\"");
  as_missing.replace(as_missing.find("<MiningField name=\"outlook\"/>"), 29,
                     "<MiningField name=\"outlook\" invalidValueTreatment=\"asMissing\"/>");
  m = Load(as_missing);
  EXPECT_EQ(Text(Eval(*m, {N(70), S("snow")})[3]), "n2");
}

const char* kIrisDictionary = R"(
  <DataDictionary>
    <DataField name="x1" optype="continuous" dataType="double"/>
    <DataField name="x2" optype="continuous" dataType="double"/>
    <DataField name="color" optype="categorical" dataType="string">
      <Value value="red"/><Value value="blue"/></DataField>
    <DataField name="y" optype="categorical" dataType="string">
      <Value value="yes"/><Value value="no"/></DataField>
    <DataField name="z" optype="continuous" dataType="double"/>
  </DataDictionary>)";

TEST(PmmlRegressionTest, ClassificationNormalizations) {
  auto model = [](const char* method) {
    return std::string("<PMML>") + kIrisDictionary +
           "<RegressionModel functionName=\"classification\" normalizationMethod=\"" + method +
           R"(">
      <MiningSchema><MiningField name="x1"/><MiningField name="color"/>
        <MiningField name="y" usageType="target"/></MiningSchema>
      <Output><OutputField name="p_yes" feature="probability" value="yes"/></Output>
      <RegressionTable intercept="0.5" targetCategory="yes">
        <NumericPredictor name="x1" coefficient="2" exponent="1"/>
        <CategoricalPredictor name="color" value="red" coefficient="-1"/>
      </RegressionTable>
      <RegressionTable intercept="0" targetCategory="no"/>
    </RegressionModel></PMML>)";
  };
  const double y = 0.5 + 2 * 0.25 - 1;  // x1 = 0.25, red: 0
  struct Case {
    const char* method;
    double p_yes;
  } cases[] = {
      {"logit", 1 / (1 + std::exp(-y))},
      {"softmax", std::exp(y) / (std::exp(y) + 1)},
      {"probit", 0.5 * std::erfc(-y / std::sqrt(2.0))},
      {"cloglog", 1 - std::exp(-std::exp(y))},
  };
  for (const Case& c : cases) {
    auto m = Load(model(c.method));
    auto out = Eval(*m, {N(0.25), S("red")});
    EXPECT_DOUBLE_EQ(out[1].number, c.p_yes) << c.method;
    EXPECT_EQ(out[0].text, c.p_yes >= 0.5 ? "yes" : "no") << c.method;
  }
  auto m = Load(model("logit"));
  auto out = Eval(*m, {M(), S("red")});
  EXPECT_TRUE(out[0].missing());  // a missing numeric predictor: no prediction
}

TEST(PmmlMiningTest, SumOfTreesChainedIntoLogit) {
  // Gradient boosting as exporters write it: a sum of regression trees whose
  // output feeds a logistic RegressionModel.
  std::string xml = std::string("<PMML>") + kIrisDictionary + R"(
    <MiningModel functionName="classification">
      <MiningSchema><MiningField name="x1"/><MiningField name="x2"/>
        <MiningField name="y" usageType="target"/></MiningSchema>
      <Output><OutputField name="p_yes" feature="probability" value="yes"/></Output>
      <Segmentation multipleModelMethod="modelChain">
        <Segment id="1"><True/>
          <MiningModel functionName="regression">
            <MiningSchema><MiningField name="x1"/><MiningField name="x2"/></MiningSchema>
            <Output><OutputField name="score" feature="predictedValue"/></Output>
            <Segmentation multipleModelMethod="sum">
              <Segment><True/><TreeModel functionName="regression">
                <MiningSchema><MiningField name="x1"/></MiningSchema>
                <Node score="0"><True/>
                  <Node score="-1.5"><SimplePredicate field="x1" operator="lessOrEqual" value="1"/></Node>
                  <Node score="2.25"><SimplePredicate field="x1" operator="greaterThan" value="1"/></Node>
                </Node></TreeModel></Segment>
              <Segment><True/><TreeModel functionName="regression">
                <MiningSchema><MiningField name="x2"/></MiningSchema>
                <Node score="0"><True/>
                  <Node score="0.5"><SimplePredicate field="x2" operator="lessThan" value="0"/></Node>
                  <Node score="-0.25"><True/></Node>
                </Node></TreeModel></Segment>
            </Segmentation>
          </MiningModel></Segment>
        <Segment id="2"><True/>
          <RegressionModel functionName="classification" normalizationMethod="logit">
            <MiningSchema><MiningField name="score"/><MiningField name="y" usageType="target"/></MiningSchema>
            <RegressionTable intercept="0.1" targetCategory="yes">
              <NumericPredictor name="score" coefficient="1"/></RegressionTable>
            <RegressionTable intercept="0" targetCategory="no"/>
          </RegressionModel></Segment>
      </Segmentation>
    </MiningModel></PMML>)";
  auto m = Load(xml);
  ASSERT_NE(m, nullptr);
  auto out = Eval(*m, {N(3), N(-1)});  // 2.25 + 0.5
  EXPECT_DOUBLE_EQ(out[1].number, 1 / (1 + std::exp(-(0.1 + 2.75))));
  EXPECT_EQ(out[0].text, "yes");
  out = Eval(*m, {N(0), N(1)});  // -1.5 - 0.25
  EXPECT_EQ(out[0].text, "no");
}

TEST(PmmlMiningTest, VotesAndAverages) {
  auto model = [](const char* method) {
    std::string leaf = R"(<Segment weight="%W"><True/><TreeModel functionName="classification">
        <MiningSchema><MiningField name="x1"/><MiningField name="y" usageType="target"/></MiningSchema>
        <Node score="%S"><True/><ScoreDistribution value="yes" recordCount="%Y"/>
          <ScoreDistribution value="no" recordCount="%N"/></Node></TreeModel></Segment>)";
    auto seg = [&](const char* w, const char* s, const char* yes, const char* no) {
      std::string x = leaf;
      for (auto [k, v] : {std::pair{"%W", w}, {"%S", s}, {"%Y", yes}, {"%N", no}})
        x.replace(x.find(k), 2, v);
      return x;
    };
    return std::string("<PMML>") + kIrisDictionary +
           "<MiningModel functionName=\"classification\"><MiningSchema><MiningField name=\"x1\"/>"
           "<MiningField name=\"y\" usageType=\"target\"/></MiningSchema>"
           "<Output><OutputField name=\"p_yes\" feature=\"probability\" value=\"yes\"/></Output>"
           "<Segmentation multipleModelMethod=\"" +
           method + "\">" + seg("1", "yes", "6", "4") + seg("1", "yes", "55", "45") +
           seg("3", "no", "1", "9") + "</Segmentation></MiningModel></PMML>";
  };
  struct Case {
    const char* method;
    std::string want;
    double p_yes;
  } cases[] = {
      {"majorityVote", "yes", 2.0 / 3},
      {"weightedMajorityVote", "no", 2.0 / 5},
      {"average", "no", (0.6 + 0.55 + 0.1) / 3},
      {"weightedAverage", "no", (0.6 + 0.55 + 0.3) / 5},
  };
  for (const Case& c : cases) {
    auto m = Load(model(c.method));
    auto out = Eval(*m, {N(0)});
    EXPECT_EQ(out[0].text, c.want) << c.method;
    EXPECT_DOUBLE_EQ(out[1].number, c.p_yes) << c.method;
  }
}

TEST(PmmlGeneralRegressionTest, MultinomialLogisticAndLogLink) {
  std::string multinomial = std::string("<PMML>") + kIrisDictionary + R"(
    <GeneralRegressionModel modelType="multinomialLogistic" functionName="classification">
      <MiningSchema><MiningField name="x1"/><MiningField name="color"/>
        <MiningField name="y" usageType="target"/></MiningSchema>
      <Output><OutputField name="p_yes" feature="probability" value="yes"/></Output>
      <ParameterList><Parameter name="p0"/><Parameter name="p1"/><Parameter name="p2"/></ParameterList>
      <FactorList><Predictor name="color"/></FactorList>
      <CovariateList><Predictor name="x1"/></CovariateList>
      <PPMatrix><PPCell value="1" predictorName="x1" parameterName="p1"/>
        <PPCell value="blue" predictorName="color" parameterName="p2"/></PPMatrix>
      <ParamMatrix><PCell targetCategory="yes" parameterName="p0" beta="-0.5"/>
        <PCell targetCategory="yes" parameterName="p1" beta="1.5"/>
        <PCell targetCategory="yes" parameterName="p2" beta="0.75"/></ParamMatrix>
    </GeneralRegressionModel></PMML>)";
  auto m = Load(multinomial);
  auto out = Eval(*m, {N(2), S("blue")});
  const double eta = -0.5 + 1.5 * 2 + 0.75;
  EXPECT_DOUBLE_EQ(out[1].number, std::exp(eta) / (std::exp(eta) + 1));
  EXPECT_EQ(out[0].text, "yes");

  std::string glm = std::string("<PMML>") + kIrisDictionary + R"(
    <GeneralRegressionModel modelType="generalizedLinear" functionName="regression" linkFunction="log">
      <MiningSchema><MiningField name="x1"/><MiningField name="z" usageType="target"/></MiningSchema>
      <ParameterList><Parameter name="p0"/><Parameter name="p1"/></ParameterList>
      <CovariateList><Predictor name="x1"/></CovariateList>
      <PPMatrix><PPCell value="2" predictorName="x1" parameterName="p1"/></PPMatrix>
      <ParamMatrix><PCell parameterName="p0" beta="0.1"/><PCell parameterName="p1" beta="0.2"/></ParamMatrix>
    </GeneralRegressionModel></PMML>)";
  m = Load(glm);
  out = Eval(*m, {N(3)});
  EXPECT_DOUBLE_EQ(out[0].number, std::exp(0.1 + 0.2 * 9));  // x1 squared (exponent 2)
}

TEST(PmmlTransformTest, DerivedFieldsFeedTheModel) {
  std::string xml = std::string("<PMML>") + kIrisDictionary + R"(
    <TransformationDictionary>
      <DerivedField name="scaled" optype="continuous" dataType="double">
        <NormContinuous field="x1"><LinearNorm orig="0" norm="0"/><LinearNorm orig="10" norm="1"/></NormContinuous>
      </DerivedField>
      <DerivedField name="ratio" optype="continuous" dataType="double">
        <Apply function="/"><FieldRef field="x2"/><Constant>4</Constant></Apply>
      </DerivedField>
    </TransformationDictionary>
    <RegressionModel functionName="regression">
      <MiningSchema><MiningField name="x1"/><MiningField name="x2" missingValueReplacement="8"/>
        <MiningField name="z" usageType="target"/></MiningSchema>
      <RegressionTable intercept="1">
        <NumericPredictor name="scaled" coefficient="10"/>
        <NumericPredictor name="ratio" coefficient="1"/>
      </RegressionTable>
    </RegressionModel></PMML>)";
  auto m = Load(xml);
  EXPECT_DOUBLE_EQ(Eval(*m, {N(5), N(2)})[0].number, 1 + 10 * 0.5 + 0.5);
  EXPECT_DOUBLE_EQ(Eval(*m, {N(20), M()})[0].number,
                   1 + 10 * 2.0 + 2.0);  // extrapolated; x2 replaced
}

TEST(PmmlModelTest, RefusesWhatItDoesNotSupport) {
  struct Case {
    std::string xml;
    const char* fragment;
  } cases[] = {
      {"<PMML><DataDictionary/><NeuralNetwork functionName=\"regression\"/></PMML>",
       "NeuralNetwork is not supported"},
      {"not xml at all", "XML does not parse"},
      {Tree("missingValueStrategy=\"aggregateNodes\""), "missingValueStrategy 'aggregateNodes'"},
      {std::string("<PMML>") + kIrisDictionary +
           "<RegressionModel functionName=\"regression\"><MiningSchema><MiningField name=\"q\"/>"
           "</MiningSchema></RegressionModel></PMML>",
       "unknown field 'q'"},
      {std::string("<PMML>") + kIrisDictionary +
           "<RegressionModel functionName=\"regression\"><MiningSchema><MiningField name=\"x1\"/>"
           "</MiningSchema><LocalTransformations><DerivedField name=\"d\"><Apply function=\"sinh\">"
           "<FieldRef "
           "field=\"x1\"/></Apply></DerivedField></LocalTransformations></RegressionModel></PMML>",
       "Apply function 'sinh'"},
  };
  for (const Case& c : cases) {
    auto m = PmmlModel::Parse(c.xml);
    ASSERT_FALSE(m.ok()) << c.fragment;
    EXPECT_NE(m.status().message().find(c.fragment), std::string_view::npos) << m.status();
  }
}

}  // namespace
}  // namespace osprey
