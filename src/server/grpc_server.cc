#include "server/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <unistd.h>

#include "common/logging.h"
#include "inference.grpc.pb.h"
#include "net/status.h"
#include "protocol/v2_grpc.h"
#include "server/tracing.h"

namespace osprey {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(GrpcCodeFromStatus(s.code())),
                      std::string(s.message()));
}

// Model name of a repository request: Triton's field 2 when set, else KServe's field 1.
template <typename Request>
const std::string& RepositoryModelName(const Request& r) {
  return r.triton_model_name().empty() ? r.model_name() : r.triton_model_name();
}

constexpr char kModelInferMethod[] = "/inference.GRPCInferenceService/ModelInfer";

// ModelInfer as a generic (byte-level) call. A typed unary method is handed to
// its handler only once the whole request message is in, and
// Server::Shutdown cancels calls not handed over yet, so a large request still
// arriving at SIGTERM would be lost. A generic call starts at its headers and
// counts as in flight from then on, so shutdown waits for it like for REST.
//
// The reactor owns the request message (decoded tensors borrow its raw
// contents) until the inference completes, on this thread or on the model's
// batcher; the answer is written from there.
class InferReactor final : public grpc::ServerGenericBidiReactor {
 public:
  InferReactor(InferenceCore* core, const grpc::GenericCallbackServerContext* ctx)
      : core_(core), ctx_(ctx) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "ModelInfer needs a request"));
      return;
    }
    // Nothing on the request path throws by design; this last guard keeps a
    // bug (or an allocation failure) to one INTERNAL instead of the server.
    try {
      auto arrival = InferenceCore::Clock::now();
      grpc::ProtoBufferReader reader(&request_);
      if (!req_.ParseFromZeroCopyStream(&reader)) {
        Finish(ToGrpc(absl::InvalidArgumentError("ModelInferRequest does not parse")));
        return;
      }
      auto decoded = DecodeGrpcInferRequest(req_);
      if (!decoded.ok()) {
        core_->CountDecodeFailure(req_.model_name());
        Finish(ToGrpc(decoded.status()));
        return;
      }
      decoded_ = *std::move(decoded);
      // A sampled call's trace (server/tracing.h), from its traceparent metadata.
      arrival_ = arrival;
      decoded_.trace = StartRequestTrace(HeaderSource{&VisitMetadata, ctx_}, &parent_span_);
      core_->Infer(decoded_, &response_, arrival, [this](absl::Status s) { OnInferDone(s); });
    } catch (const std::exception& e) {
      OSPREY_LOG(kError) << "ModelInfer failed: " << e.what();
      Finish(ToGrpc(absl::InternalError(StrCat("internal error: ", e.what()))));
    }
  }

  void OnDone() override { delete this; }

 private:
  void OnInferDone(absl::Status status) {
    try {
      if (status.ok()) {
        inference::ModelInferResponse encoded;
        EncodeGrpcInferResponse(response_, req_.raw_input_contents_size() > 0, &encoded);
        bool own = false;
        grpc::Status s = grpc::SerializationTraits<inference::ModelInferResponse>::Serialize(
            encoded, &reply_, &own);
        if (!s.ok()) status = absl::InternalError(s.error_message());
      }
    } catch (const std::exception& e) {
      OSPREY_LOG(kError) << "ModelInfer failed: " << e.what();
      status = absl::InternalError(StrCat("internal error: ", e.what()));
    }
    const grpc::Status answer = status.ok() ? grpc::Status::OK : ToGrpc(status);
    RequestSpan span;
    span.path = kModelInferMethod;
    span.model = req_.model_name();
    span.grpc_code = static_cast<int>(answer.error_code());
    span.arrival = arrival_;
    span.end = InferenceCore::Clock::now();
    EndRequestTrace(decoded_.trace, parent_span_, span);
    if (!status.ok()) {
      Finish(answer);
      return;
    }
    StartWriteAndFinish(&reply_, grpc::WriteOptions(), grpc::Status::OK);
  }

  static void VisitMetadata(const void* context, HeaderSource::Visit f) {
    for (const auto& [key, value] :
         static_cast<const grpc::GenericCallbackServerContext*>(context)->client_metadata())
      f(std::string_view(key.data(), key.size()), std::string_view(value.data(), value.size()));
  }

  InferenceCore* core_;
  const grpc::GenericCallbackServerContext* ctx_;
  InferenceCore::Clock::time_point arrival_{};
  uint64_t parent_span_ = 0;  // the caller's span (server/tracing.h)
  grpc::ByteBuffer request_;
  grpc::ByteBuffer reply_;
  inference::ModelInferRequest req_;
  InferRequest decoded_;
  InferResponse response_;
};

class GenericService final : public grpc::CallbackGenericService {
 public:
  explicit GenericService(InferenceCore* core) : core_(core) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    if (ctx->method() == kModelInferMethod) return new InferReactor(core_, ctx);
    return grpc::CallbackGenericService::CreateReactor(ctx);  // UNIMPLEMENTED
  }

 private:
  InferenceCore* core_;
};

using ServiceBase = inference::GRPCInferenceService::WithGenericMethod_ModelInfer<
    inference::GRPCInferenceService::CallbackService>;

class Service final : public ServiceBase {
 public:
  Service(InferenceCore* core, ServerInfo info) : core_(core), info_(std::move(info)) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* ctx,
                                       const inference::ServerLiveRequest*,
                                       inference::ServerLiveResponse* resp) override {
    resp->set_live(true);
    return Done(ctx, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* ctx,
                                        const inference::ServerReadyRequest*,
                                        inference::ServerReadyResponse* resp) override {
    resp->set_ready(core_->registry()->AllReady());
    return Done(ctx, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* ctx,
                                       const inference::ModelReadyRequest* req,
                                       inference::ModelReadyResponse* resp) override {
    auto served = core_->registry()->Get(req->name(), req->version());
    if (!served.ok() && served.status().code() == absl::StatusCode::kNotFound)
      return Done(ctx, served.status());
    resp->set_ready(served.ok());
    return Done(ctx, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* ctx,
                                           const inference::ServerMetadataRequest*,
                                           inference::ServerMetadataResponse* resp) override {
    resp->set_name(info_.name);
    resp->set_version(info_.version);
    for (const auto& e : info_.extensions) resp->add_extensions(e);
    return Done(ctx, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* ctx,
                                          const inference::ModelMetadataRequest* req,
                                          inference::ModelMetadataResponse* resp) override {
    auto served = core_->registry()->Get(req->name(), req->version());
    if (!served.ok()) return Done(ctx, served.status());
    const osprey::ModelMetadata& md = (*served)->model->metadata();
    resp->set_name(md.name);
    for (const auto& v : (*served)->versions) resp->add_versions(v);
    resp->set_platform(md.platform);
    auto fill = [](const TensorSpec& spec, inference::ModelMetadataResponse::TensorMetadata* t) {
      t->set_name(spec.name);
      t->set_datatype(std::string(DataTypeName(spec.datatype)));
      for (int64_t d : spec.shape) t->add_shape(d);
    };
    for (const auto& s : md.inputs) fill(s, resp->add_inputs());
    for (const auto& s : md.outputs) fill(s, resp->add_outputs());
    return Done(ctx, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* ctx,
                                            const inference::RepositoryIndexRequest* req,
                                            inference::RepositoryIndexResponse* resp) override {
    for (const ModelStatus& m : core_->registry()->Index()) {
      if (req->ready() && m.state != ModelState::kReady) continue;
      auto* e = resp->add_models();
      e->set_name(m.name);
      e->set_version(m.version);
      e->set_state(std::string(ModelStateName(m.state)));
      e->set_reason(m.reason);
    }
    return Done(ctx, absl::OkStatus());
  }

  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* ctx, const inference::RepositoryModelLoadRequest* req,
      inference::RepositoryModelLoadResponse* resp) override {
    // On the registry's loader thread: gRPC's callback threads must not block.
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    std::string name = RepositoryModelName(*req);
    core_->registry()->LoadFromRepositoryAsync(name, [reactor, resp, name](absl::Status s) {
      if (s.ok()) {
        resp->set_model_name(name);
        resp->set_isloaded(true);
      }
      reactor->Finish(ToGrpc(s));
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* ctx, const inference::RepositoryModelUnloadRequest* req,
      inference::RepositoryModelUnloadResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    std::string name = RepositoryModelName(*req);
    core_->registry()->UnloadAsync(name, [reactor, resp, name](absl::Status s) {
      if (s.ok()) {
        resp->set_model_name(name);
        resp->set_isunloaded(true);
      }
      reactor->Finish(ToGrpc(s));
    });
    return reactor;
  }

 private:
  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx,
                                        const absl::Status& status) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(ToGrpc(status));
    return reactor;
  }

  InferenceCore* core_;
  ServerInfo info_;
};

}  // namespace

struct GrpcServer::Impl {
  std::unique_ptr<Service> service;
  std::unique_ptr<GenericService> generic;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GrpcServer::~GrpcServer() {
  if (impl_->server) impl_->server->Shutdown(std::chrono::system_clock::now());
}

uint16_t GrpcServer::port() const { return static_cast<uint16_t>(impl_->port); }

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const Options& options,
                                                              InferenceCore* core,
                                                              ServerInfo info) {
  auto impl = std::make_unique<Impl>();
  impl->service = std::make_unique<Service>(core, std::move(info));
  impl->generic = std::make_unique<GenericService>(core);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const bool on_socket = !options.unix_socket.empty();
  std::string address =
      on_socket ? StrCat("unix:", options.unix_socket) : StrCat(options.address, ":", options.port);
  if (on_socket) ::unlink(options.unix_socket.c_str());  // left by a previous run
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &impl->port);
  // gRPC sets SO_REUSEPORT by default, which would let a second server share
  // a port in use; fail instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(-1);
  builder.RegisterService(impl->service.get());
  builder.RegisterCallbackGenericService(impl->generic.get());
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || (!on_socket && impl->port == 0))
    return absl::UnavailableError(StrCat("cannot listen for gRPC on ", address));
  return std::unique_ptr<GrpcServer>(new GrpcServer(std::move(impl)));
}

void GrpcServer::SetServing(bool serving) {
  // The whole server ("") and the inference service by name, for probes that ask either.
  if (auto* health = impl_->server->GetHealthCheckService()) {
    health->SetServingStatus(serving);
    health->SetServingStatus("inference.GRPCInferenceService", serving);
  }
}

void GrpcServer::Shutdown(std::chrono::milliseconds grace) {
  impl_->server->Shutdown(std::chrono::system_clock::now() + grace);
  impl_->server->Wait();
}

}  // namespace osprey
