#include "protocol/v2_grpc.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

namespace osprey {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;

ModelInferRequest::InferInputTensor* AddInput(ModelInferRequest* r, const std::string& name,
                                              const std::string& type, std::vector<int64_t> shape) {
  auto* in = r->add_inputs();
  in->set_name(name);
  in->set_datatype(type);
  for (int64_t d : shape) in->add_shape(d);
  return in;
}

// Every typed datatype decodes into the raw layout and encodes back to the
// same typed contents.
TEST(V2GrpcTest, EveryTypedDatatypeRoundTrips) {
  ModelInferRequest r;
  r.set_model_name("m");
  r.set_id("abc");
  AddInput(&r, "b", "BOOL", {2})->mutable_contents()->mutable_bool_contents()->Add(true);
  r.mutable_inputs(0)->mutable_contents()->add_bool_contents(false);
  auto* i8 = AddInput(&r, "i8", "INT8", {2})->mutable_contents();
  i8->add_int_contents(-128);
  i8->add_int_contents(127);
  auto* i16 = AddInput(&r, "i16", "INT16", {1})->mutable_contents();
  i16->add_int_contents(-300);
  AddInput(&r, "i32", "INT32", {1})->mutable_contents()->add_int_contents(-70000);
  AddInput(&r, "i64", "INT64", {1})->mutable_contents()->add_int64_contents(-(1ll << 40));
  AddInput(&r, "u8", "UINT8", {1})->mutable_contents()->add_uint_contents(255);
  AddInput(&r, "u16", "UINT16", {1})->mutable_contents()->add_uint_contents(65535);
  AddInput(&r, "u32", "UINT32", {1})->mutable_contents()->add_uint_contents(4000000000u);
  AddInput(&r, "u64", "UINT64", {1})->mutable_contents()->add_uint64_contents(1ull << 63);
  AddInput(&r, "f32", "FP32", {2})->mutable_contents()->add_fp32_contents(1.5f);
  r.mutable_inputs(9)->mutable_contents()->add_fp32_contents(-2.0f);
  AddInput(&r, "f64", "FP64", {1})->mutable_contents()->add_fp64_contents(0.1);
  AddInput(&r, "s", "BYTES", {2})->mutable_contents()->add_bytes_contents("hi");
  r.mutable_inputs(11)->mutable_contents()->add_bytes_contents(std::string("\0x", 2));
  (*r.mutable_parameters())["flag"].set_bool_param(true);
  (*r.mutable_parameters())["big"].set_uint64_param(7);

  auto req = DecodeGrpcInferRequest(r);
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->id, "abc");
  EXPECT_EQ(GetBoolParameter(req->parameters, "flag"), true);
  EXPECT_EQ(GetIntParameter(req->parameters, "big"), 7);
  ASSERT_EQ(req->inputs.size(), 12u);
  EXPECT_EQ(req->inputs[1].data(), std::string("\x80\x7f", 2));
  int16_t v16;
  std::memcpy(&v16, req->inputs[2].data().data(), 2);
  EXPECT_EQ(v16, -300);
  for (const Tensor& t : req->inputs) EXPECT_TRUE(t.Validate().ok()) << t.name();

  InferResponse resp;
  resp.model_name = "m";
  resp.outputs = req->inputs;
  ModelInferResponse typed;
  EncodeGrpcInferResponse(resp, /*raw=*/false, &typed);
  ASSERT_EQ(typed.raw_output_contents_size(), 0);
  for (int i = 0; i < typed.outputs_size(); ++i) {
    std::string a, b;
    r.inputs(i).contents().SerializeToString(&a);
    typed.outputs(i).contents().SerializeToString(&b);
    EXPECT_EQ(a, b) << r.inputs(i).name();
    EXPECT_EQ(typed.outputs(i).datatype(), r.inputs(i).datatype());
  }

  ModelInferResponse raw;
  EncodeGrpcInferResponse(resp, /*raw=*/true, &raw);
  ASSERT_EQ(raw.raw_output_contents_size(), 12);
  EXPECT_EQ(raw.raw_output_contents(11), req->inputs[11].data());
  EXPECT_FALSE(raw.outputs(0).has_contents());
}

TEST(V2GrpcTest, RawInputsAreBorrowed) {
  ModelInferRequest r;
  AddInput(&r, "x", "FP32", {2});
  AddInput(&r, "h", "FP16", {1});
  float v[] = {1.0f, 2.0f};
  r.add_raw_input_contents(std::string(reinterpret_cast<char*>(v), 8));
  uint16_t h = FloatToHalf(0.5f);
  r.add_raw_input_contents(std::string(reinterpret_cast<char*>(&h), 2));
  auto req = DecodeGrpcInferRequest(r);
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->inputs[0].data().data(), r.raw_input_contents(0).data());
  // FP16 outputs force raw answers: there is no typed field for them.
  InferResponse resp;
  resp.outputs = {req->inputs[1]};
  ModelInferResponse out;
  EncodeGrpcInferResponse(resp, /*raw=*/false, &out);
  EXPECT_EQ(out.raw_output_contents_size(), 1);
}

TEST(V2GrpcTest, ErrorsNameTheProblem) {
  struct Case {
    std::function<void(ModelInferRequest*)> build;
    const char* message;
  } cases[] = {
      {[](ModelInferRequest*) {}, "'inputs' is empty"},
      {[](ModelInferRequest* r) { AddInput(r, "x", "FLOAT", {1}); }, "unknown datatype 'FLOAT'"},
      {[](ModelInferRequest* r) { AddInput(r, "x", "FP32", {-1}); }, "non-negative"},
      {[](ModelInferRequest* r) {
         AddInput(r, "x", "FP32", {2, 2})->mutable_contents()->add_fp32_contents(1);
       },
       "input 'x': shape [2,2] expects 4 elements, but contents hold 1"},
      {[](ModelInferRequest* r) {
         AddInput(r, "x", "FP32", {1})->mutable_contents()->add_int_contents(1);
       },
       "input 'x' of datatype FP32 expects fp32_contents, got int_contents"},
      {[](ModelInferRequest* r) {
         AddInput(r, "x", "INT8", {1})->mutable_contents()->add_int_contents(1000);
       },
       "out of range for INT8"},
      {[](ModelInferRequest* r) { AddInput(r, "x", "FP16", {1}); },
       "FP16 has no typed contents field"},
      {[](ModelInferRequest* r) {
         AddInput(r, "x", "FP32", {1});
         AddInput(r, "y", "FP32", {1});
         r->add_raw_input_contents(std::string(4, '\0'));
       },
       "raw_input_contents has 1 entries for 2 inputs"},
      {[](ModelInferRequest* r) {
         AddInput(r, "x", "FP32", {1})->mutable_contents()->add_fp32_contents(1);
         r->add_raw_input_contents(std::string(4, '\0'));
       },
       "has typed contents while the request uses raw_input_contents"},
      {[](ModelInferRequest* r) {
         AddInput(r, "x", "FP32", {2});
         r->add_raw_input_contents(std::string(4, '\0'));
       },
       "tensor 'x': shape [2] of FP32 needs 2 elements (8 bytes), got 4 bytes"},
  };
  for (const auto& c : cases) {
    ModelInferRequest r;
    c.build(&r);
    auto req = DecodeGrpcInferRequest(r);
    ASSERT_FALSE(req.ok()) << c.message;
    EXPECT_EQ(req.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(req.status().message().find(c.message), absl::string_view::npos)
        << c.message << " -> " << req.status().message();
  }
}

}  // namespace
}  // namespace osprey
