// The Open Inference Protocol over gRPC, through a real channel to the real
// server on a local port, with the fake backend behind it.

#include "server/grpc_server.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstring>

#include "backends/testing/fake_backend.h"
#include "common/strings.h"
#include "inference.grpc.pb.h"

namespace osprey {
namespace {

using testing::FakeBackend;
using testing::FakeRepository;

class GrpcServerTest : public ::testing::Test {
 protected:
  GrpcServerTest() : fake_(FakeBackend::Options{.fail_marker = -1.0}) {
    repo_.Add("m", "5");
    ModelRegistry::Options options;
    options.repository = repo_.root();
    options.backends = {&fake_};
    registry_ = std::make_unique<ModelRegistry>(options, &metrics_);
    core_ = std::make_unique<InferenceCore>(registry_.get());
    GrpcServer::Options grpc_options;
    grpc_options.address = "127.0.0.1";
    grpc_options.port = 0;
    auto started = GrpcServer::Start(grpc_options, core_.get(), ServerInfo{});
    EXPECT_TRUE(started.ok()) << started.status();
    if (!started.ok()) return;
    server_ = *std::move(started);
    stub_ = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
        StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials()));
  }
  ~GrpcServerTest() override {
    if (server_) server_->Shutdown(std::chrono::seconds(5));
  }

  // A context with a deadline, so that a test that fails does not hang.
  static std::unique_ptr<grpc::ClientContext> Context() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return ctx;
  }

  FakeRepository repo_;
  FakeBackend fake_;
  Metrics metrics_;
  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<InferenceCore> core_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

TEST_F(GrpcServerTest, LoadsInfersAndUnloads) {
  ASSERT_NE(stub_, nullptr);
  inference::RepositoryModelLoadRequest load;
  load.set_model_name("m");
  inference::RepositoryModelLoadResponse loaded;
  grpc::Status s = stub_->RepositoryModelLoad(Context().get(), load, &loaded);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(loaded.model_name(), "m");
  EXPECT_TRUE(loaded.isloaded());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(Context().get(), {}, &ready).ok());
  EXPECT_TRUE(ready.ready());

  // Raw contents in, raw contents out.
  inference::ModelInferRequest raw;
  raw.set_model_name("m");
  raw.set_id("g1");
  auto* in = raw.add_inputs();
  in->set_name("INPUT0");
  in->set_datatype("FP32");
  in->add_shape(2);
  in->add_shape(4);
  const float values[8] = {1, 2, 3, 4, 5, 6, 7, 8.5};
  raw.add_raw_input_contents(std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  inference::ModelInferResponse answer;
  s = stub_->ModelInfer(Context().get(), raw, &answer);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(answer.model_name(), "m");
  EXPECT_EQ(answer.model_version(), "5");
  EXPECT_EQ(answer.id(), "g1");
  ASSERT_EQ(answer.outputs_size(), 1);
  EXPECT_EQ(answer.outputs(0).name(), "OUTPUT0");
  EXPECT_EQ(answer.outputs(0).datatype(), "FP32");
  EXPECT_EQ(answer.outputs(0).shape_size(), 2);
  ASSERT_EQ(answer.raw_output_contents_size(), 1);
  EXPECT_EQ(answer.raw_output_contents(0), raw.raw_input_contents(0));

  // Typed contents in, typed contents out.
  inference::ModelInferRequest typed;
  typed.set_model_name("m");
  auto* t = typed.add_inputs();
  t->set_name("INPUT0");
  t->set_datatype("FP32");
  t->add_shape(1);
  t->add_shape(4);
  for (float v : {9.f, 8.f, 7.f, 6.f}) t->mutable_contents()->add_fp32_contents(v);
  answer.Clear();
  s = stub_->ModelInfer(Context().get(), typed, &answer);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(answer.outputs_size(), 1);
  ASSERT_EQ(answer.outputs(0).contents().fp32_contents_size(), 4);
  EXPECT_EQ(answer.outputs(0).contents().fp32_contents(3), 6.f);

  // The fake's failing row, and an unknown model.
  t->mutable_contents()->set_fp32_contents(0, -1.f);
  s = stub_->ModelInfer(Context().get(), typed, &answer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("failure marker"), std::string::npos) << s.error_message();
  typed.set_model_name("nope");
  s = stub_->ModelInfer(Context().get(), typed, &answer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();

  inference::RepositoryModelUnloadRequest unload;
  unload.set_model_name("m");
  inference::RepositoryModelUnloadResponse unloaded;
  s = stub_->RepositoryModelUnload(Context().get(), unload, &unloaded);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(unloaded.isunloaded());
  EXPECT_EQ(fake_.live_models(), 0);
  s = stub_->RepositoryModelUnload(Context().get(), unload, &unloaded);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  load.set_model_name("absent");
  s = stub_->RepositoryModelLoad(Context().get(), load, &loaded);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
}

}  // namespace
}  // namespace osprey
