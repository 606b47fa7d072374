#include "gateway/grpc_ingress.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <map>
#include <mutex>

#include "common/logging.h"
#include "gateway/tracing.h"
#include "net/status.h"

namespace osprey::gateway {
namespace {

bool ReadVarint(std::string_view& in, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    auto b = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *out = v;
      return true;
    }
  }
  return false;
}

// One channel per replica endpoint, shared by every call to it.
class Channels {
 public:
  std::shared_ptr<grpc::Channel> Get(const std::string& target, int max_message_bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& c = channels_[target];
    if (!c) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(-1);
      args.SetMaxSendMessageSize(max_message_bytes);
      c = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    }
    return c;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

// One proxied call: read the request, route it, call the replica, answer.
class ProxyReactor : public grpc::ServerGenericBidiReactor {
 public:
  ProxyReactor(grpc::GenericCallbackServerContext* ctx, Gateway* gateway, Channels* channels,
               int max_message_bytes, const std::string* component)
      : ctx_(ctx),
        gateway_(gateway),
        channels_(channels),
        max_bytes_(max_message_bytes),
        component_(component) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the call sent no request message"));
      return;
    }
    std::string model;
    if (ctx_->method().rfind("/inference.GRPCInferenceService/Model", 0) == 0) {
      grpc::Slice slice;
      if (request_.TrySingleSlice(&slice).ok()) {
        model = std::string(ProtoField1String(
            std::string_view(reinterpret_cast<const char*>(slice.begin()), slice.size())));
      } else {
        model = std::string(ProtoField1String(Flatten(request_)));
      }
    }
    // The client's trace metadata (gateway/tracing.h): read in place.
    for (const auto& [key, value] : ctx_->client_metadata())
      incoming_.Take(std::string_view(key.data(), key.size()),
                     std::string_view(value.data(), value.size()));
    gateway_->AdmitGrpc(
        ctx_->host(), model,
        [this](std::shared_ptr<Gateway::GrpcTicket> ticket, const std::string& target,
               int timeout_ms) { Forward(std::move(ticket), target, timeout_ms); },
        [this](absl::Status status) {
          if (status.code() == absl::StatusCode::kNotFound && ctx_->method() == kHealthCheck) {
            AnswerHealth();
            return;
          }
          Finish(grpc::Status(static_cast<grpc::StatusCode>(GrpcCodeFromStatus(status.code())),
                              std::string(status.message())));
        },
        *component_, ctx_->method(), &incoming_);
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    if (started_) client_ctx_.TryCancel();
  }

  void OnDone() override { delete this; }

 private:
  static constexpr std::string_view kHealthCheck = "/grpc.health.v1.Health/Check";

  // grpc.health.v1 for the gateway itself, when no InferenceService claims
  // the call (by :authority): the whole server ("") and the inference service
  // are SERVING while the gateway runs; other names are NOT_FOUND, as the
  // health protocol says.
  void AnswerHealth() {
    std::string request = Flatten(request_);
    std::string_view service = ProtoField1String(request);
    if (!service.empty() && service != "inference.GRPCInferenceService") {
      Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                          StrCat("unknown service '", service,
                                 "' (the gateway serves '' and inference.GRPCInferenceService; "
                                 "a model's own health: set :authority to its host)")));
      return;
    }
    static constexpr char kServing[] = {0x08, 0x01};  // HealthCheckResponse{status: SERVING}
    grpc::Slice slice(kServing, sizeof(kServing));
    response_ = grpc::ByteBuffer(&slice, 1);
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
  }

  static std::string Flatten(const grpc::ByteBuffer& buffer) {
    std::vector<grpc::Slice> slices;
    (void)buffer.Dump(&slices);
    std::string flat;
    for (const auto& s : slices) flat.append(reinterpret_cast<const char*>(s.begin()), s.size());
    return flat;
  }

  void Forward(std::shared_ptr<Gateway::GrpcTicket> ticket, const std::string& target,
               int timeout_ms) {
    auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms);
    client_ctx_.set_deadline(std::min(deadline, ctx_->deadline()));
    // The gateway's traceparent replaces the client's (tracing on).
    const auto& traced = Gateway::TraceMetadata(*ticket);
    for (const auto& [key, value] : ctx_->client_metadata()) {
      std::string_view k(key.data(), key.size());
      if (k.substr(0, 5) == "grpc-" || k.substr(0, 1) == ":" || k == "user-agent" ||
          k == "content-type" || k == "te" || (!traced.empty() && k == "traceparent"))
        continue;
      client_ctx_.AddMetadata(std::string(k), std::string(value.data(), value.size()));
    }
    for (const auto& [key, value] : traced) client_ctx_.AddMetadata(key, value);
    stub_ = std::make_unique<grpc::GenericStub>(channels_->Get(target, max_bytes_));
    {
      std::lock_guard<std::mutex> lock(mu_);
      started_ = true;
      if (cancelled_) client_ctx_.TryCancel();
    }
    stub_->UnaryCall(&client_ctx_, ctx_->method(), grpc::StubOptions(), &request_, &response_,
                     [this, ticket = std::move(ticket)](grpc::Status status) mutable {
                       gateway_->FinishGrpc(std::move(ticket), status.error_code(),
                                            request_.Length(), response_.Length());
                       for (const auto& [k, v] : client_ctx_.GetServerTrailingMetadata())
                         ctx_->AddTrailingMetadata(std::string(k.data(), k.size()),
                                                   std::string(v.data(), v.size()));
                       if (status.ok()) {
                         StartWriteAndFinish(&response_, grpc::WriteOptions(), status);
                       } else {
                         Finish(status);
                       }
                     });
  }

  grpc::GenericCallbackServerContext* ctx_;
  IncomingTrace incoming_;  // views of ctx_'s metadata
  Gateway* gateway_;
  Channels* channels_;
  int max_bytes_;
  const std::string* component_;  // the service's, outlives the call
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  grpc::ClientContext client_ctx_;
  std::unique_ptr<grpc::GenericStub> stub_;
  std::mutex mu_;
  bool started_ = false;
  bool cancelled_ = false;
};

class ProxyService : public grpc::CallbackGenericService {
 public:
  ProxyService(Gateway* gateway, int max_message_bytes, std::string component)
      : gateway_(gateway), max_bytes_(max_message_bytes), component_(std::move(component)) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new ProxyReactor(ctx, gateway_, &channels_, max_bytes_, &component_);
  }

 private:
  Gateway* gateway_;
  int max_bytes_;
  std::string component_;
  Channels channels_;
};

}  // namespace

std::string_view ProtoField1String(std::string_view in) {
  while (!in.empty()) {
    uint64_t tag = 0;
    if (!ReadVarint(in, &tag)) return {};
    const uint64_t field = tag >> 3;
    const int wire = static_cast<int>(tag & 7);
    uint64_t n = 0;
    switch (wire) {
      case 0:
        if (!ReadVarint(in, &n)) return {};
        break;
      case 1:
        if (in.size() < 8) return {};
        in.remove_prefix(8);
        break;
      case 2:
        if (!ReadVarint(in, &n) || n > in.size()) return {};
        if (field == 1) return in.substr(0, n);
        in.remove_prefix(n);
        break;
      case 5:
        if (in.size() < 4) return {};
        in.remove_prefix(4);
        break;
      default:
        return {};
    }
  }
  return {};
}

struct GrpcIngress::Impl {
  std::unique_ptr<ProxyService> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

GrpcIngress::GrpcIngress(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcIngress::~GrpcIngress() { Shutdown(std::chrono::milliseconds(0)); }

absl::StatusOr<std::unique_ptr<GrpcIngress>> GrpcIngress::Start(const Options& options,
                                                                Gateway* gateway) {
  auto impl = std::make_unique<Impl>();
  impl->service =
      std::make_unique<ProxyService>(gateway, options.max_message_bytes, options.component);
  grpc::ServerBuilder builder;
  std::string address = StrCat(options.address, ":", options.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &impl->port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(-1);
  builder.RegisterCallbackGenericService(impl->service.get());
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0)
    return absl::UnavailableError(StrCat("cannot listen for gRPC on ", address));
  return std::unique_ptr<GrpcIngress>(new GrpcIngress(std::move(impl)));
}

uint16_t GrpcIngress::port() const { return static_cast<uint16_t>(impl_->port); }

void GrpcIngress::Shutdown(std::chrono::milliseconds grace) {
  if (impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + grace);
  }
}

}  // namespace osprey::gateway
