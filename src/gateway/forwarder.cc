#include "gateway/forwarder.h"

#include <utility>

#include "common/strings.h"
#include "link/link_client.h"

namespace osprey::gateway {

Forwarder::Forwarder(Options options, Answered answered)
    : options_(options), answered_(std::move(answered)) {}

void Forwarder::Forward(std::unique_ptr<Outbound> call) {
  void* io = call->io;
  RunOn(io, [this, call = std::move(call)]() mutable { Attempt(std::move(call), 0); });
}

void Forwarder::Attempt(std::unique_ptr<Outbound> call, int attempt) {
  const ReplicaAddress& replica = *call->replica;
  const bool link = !replica.link_socket.empty();
  UpstreamRequest request;
  request.io_context = call->io;
  request.host = replica.host;
  request.port = replica.port;
  request.unix_socket = link ? replica.link_socket : replica.http_socket;
  request.links = options_.links_per_replica;
  request.head = call->head;
  request.body = call->body;
  request.timeout = call->timeout;
  auto done = [this, call = std::move(call), attempt](UpstreamResult result) mutable {
    if (result.status.code() == absl::StatusCode::kUnavailable && attempt < call->retries &&
        call->pool->Reassign(*call, RevisionPool::Clock::now())) {
      call->retried_at.push_back(RevisionPool::Clock::now());
      Attempt(std::move(call), attempt + 1);
      return;
    }
    answered_(std::move(call), std::move(result));
  };
  if (link) {
    link::SendOnLink(std::move(request), std::move(done));
  } else {
    SendHttp(std::move(request), std::move(done));
  }
}

absl::StatusOr<const std::string*> Forwarder::GrpcTarget(const RevisionPool::Request& call) {
  if (call.replica == nullptr || call.replica->grpc_target.empty())
    return absl::UnimplementedError(
        StrCat("revision ", call.pool->revision(), " serves no gRPC (a custom container)"));
  return &call.replica->grpc_target;
}

}  // namespace osprey::gateway
