#include "server/validate.h"

#include <gtest/gtest.h>

namespace osprey {
namespace {

ModelMetadata TwoInputs() {
  ModelMetadata md;
  md.name = "m";
  md.inputs = {{"a", DataType::kFp32, {-1, 3}}, {"b", DataType::kInt64, {-1}}};
  md.outputs = {{"y", DataType::kFp32, {-1}}};
  return md;
}

InferRequest Request(std::vector<Tensor> inputs) {
  InferRequest r;
  r.inputs = std::move(inputs);
  return r;
}

TEST(ValidateTest, Table) {
  struct Case {
    const char* what;
    InferRequest request;
    const char* error;  // nullptr: valid
  } cases[] = {
      {"valid", Request({Tensor("a", DataType::kFp32, {2, 3}), Tensor("b", DataType::kInt64, {2})}),
       nullptr},
      {"order free",
       Request({Tensor("b", DataType::kInt64, {2}), Tensor("a", DataType::kFp32, {2, 3})}),
       nullptr},
      {"count", Request({Tensor("a", DataType::kFp32, {2, 3})}), "expects 2 input(s), got 1"},
      {"unknown name",
       Request({Tensor("a", DataType::kFp32, {2, 3}), Tensor("c", DataType::kInt64, {2})}),
       "unknown input 'c'"},
      {"shape", Request({Tensor("a", DataType::kFp32, {2, 4}), Tensor("b", DataType::kInt64, {2})}),
       "input 'a': model 'm' expects shape [-1,3], got [2,4]"},
      {"datatype",
       Request({Tensor("a", DataType::kFp64, {2, 3}), Tensor("b", DataType::kInt64, {2})}),
       "expects datatype FP32, got FP64"},
  };
  for (auto& c : cases) {
    absl::Status s = ValidateRequest(TwoInputs(), c.request);
    if (c.error == nullptr) {
      EXPECT_TRUE(s.ok()) << c.what << ": " << s;
    } else {
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.what;
      EXPECT_NE(s.message().find(c.error), std::string::npos) << c.what << ": " << s.message();
    }
  }
}

TEST(ValidateTest, SingleInputAnyNameAndConversion) {
  ModelMetadata md;
  md.name = "x";
  md.inputs = {{"input-0", DataType::kFp32, {-1, 4}}};
  md.outputs = {{"output-0", DataType::kFp32, {-1}}};
  md.converts_input_datatypes = true;
  EXPECT_TRUE(ValidateRequest(md, Request({Tensor("input_0", DataType::kInt32, {1, 4})})).ok());
  EXPECT_FALSE(ValidateRequest(md, Request({Tensor("input_0", DataType::kBytes, {1, 4})})).ok());
  InferRequest r = Request({Tensor("input-0", DataType::kFp32, {1, 4})});
  r.outputs.push_back({"nope", {}});
  absl::Status s = ValidateRequest(md, r);
  EXPECT_NE(s.message().find("unknown output 'nope' requested; model 'x' has outputs: output-0"),
            std::string::npos);
}

}  // namespace
}  // namespace osprey
