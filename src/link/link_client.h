#pragma once

// The gateway's half of the replica link (frame.h): calls to an `osprey
// serve` replica over its link socket, many at a time on one connection per
// gateway loop (more when busy, up to UpstreamRequest::links), answers in
// any order. The frames of the calls made in a loop turn are written
// together once it ends (a call that timed out before then is never sent);
// one read takes in every answer that arrived.
//
// A call that provably never reached the replica (its frame not wholly
// written when the link broke) goes once more on another link to it; after
// a refused connection only on a sibling already up, else it fails as
// UNAVAILABLE, the one outcome that is safe to retry elsewhere. A link whose
// port another replica took is retired once idle.
//
// Each loop keeps its own links (thread-local, for the life of the loop's
// thread): no lock. Boost stays inside link_client.cc.

#include "absl/functional/any_invocable.h"
#include "net/http_upstream.h"

namespace osprey::link {

// Must be called on the thread running request.io_context; `done` runs
// there too, exactly once. request.unix_socket is the replica's link socket
// and request.port names the replica (links are kept by port);
// request.host is ignored.
void SendOnLink(UpstreamRequest request, absl::AnyInvocable<void(UpstreamResult)> done);

}  // namespace osprey::link
