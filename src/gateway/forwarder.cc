#include "gateway/forwarder.h"

#include <algorithm>
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
  request.keep_alive = call->keep_alive;
  const auto start = RevisionPool::Clock::now();
  if (attempt == 0) call->attempts_deadline = start + call->timeout;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(call->attempts_deadline - start);
  request.timeout =
      std::max(std::chrono::milliseconds(1), call->per_try_timeout.count() > 0
                                                 ? std::min(call->per_try_timeout, left)
                                                 : std::min(call->timeout, left));
  const bool per_try_bound = call->per_try_timeout.count() > 0 && call->per_try_timeout < left;
  auto done = [this, call = std::move(call), attempt,
               per_try_bound](UpstreamResult result) mutable {
    const auto now = RevisionPool::Clock::now();
    call->pool->Observe(*call->replica, result.status.ok() ? result.http_status : 0, now);
    const bool refused = result.status.code() == absl::StatusCode::kUnavailable;
    if (refused && attempt < call->retries && call->pool->Reassign(*call, now)) {
      call->retried_at.push_back(now);
      Attempt(std::move(call), attempt + 1);
      return;
    }
    const int status = result.status.ok() ? result.http_status : 0;
    const bool timed_out = result.status.code() == absl::StatusCode::kDeadlineExceeded;
    // Only a per-try timeout is retried: the route's own ends the call.
    const bool per_try_timeout = timed_out && per_try_bound;
    const bool reset = !result.status.ok() && !timed_out && !refused;
    const bool again = (call->retry_5xx && (status >= 500 || reset || per_try_timeout)) ||
                       (call->retry_gateway_error && (status == 502 || status == 503 ||
                                                      status == 504 || reset || per_try_timeout)) ||
                       (call->retry_reset && reset) ||
                       std::find(call->retry_statuses.begin(), call->retry_statuses.end(),
                                 status) != call->retry_statuses.end();
    if (again && attempt < call->retries && now < call->attempts_deadline) {
      call->pool->Reassign(*call, now);  // another replica with room, else the same one
      call->retried_at.push_back(now);
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
