#include "gateway/gateway.h"

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "common/logging.h"
#include "common/strings.h"
#include "gateway/forwarder.h"
#include "gateway/graph_executor.h"
#include "gateway/observers/access_log.h"
#include "gateway/observers/metrics.h"
#include "gateway/observers/payload_log.h"
#include "gateway/revision_pool.h"
#include "gateway/tracing.h"
#include "net/http_upstream.h"
#include "net/status.h"
#include "trace/trace.h"

namespace osprey::gateway {
namespace {

using Clock = std::chrono::steady_clock;
using Kind = Exchange::Kind;

bool IEquals(std::string_view a, std::string_view b) { return internal::HeaderNameEquals(a, b); }

// Hop-by-hop headers and those the HTTP server writes itself.
bool HopByHop(std::string_view name) {
  for (std::string_view h : {"connection", "keep-alive", "transfer-encoding", "content-length",
                             "host", "expect", "upgrade", "te", "trailer", "proxy-connection"})
    if (IEquals(name, h)) return true;
  return false;
}

bool SkippedInResponse(std::string_view name) {
  return HopByHop(name) || IEquals(name, "date") || IEquals(name, "server") ||
         IEquals(name, "x-request-id");
}

std::string MakeRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    uint64_t v = rng();
    for (int i = 0; i < 16; ++i, v >>= 4) id[half * 16 + 15 - i] = kHex[v & 15];
  }
  return id;
}

double Uniform100() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0, 100)(rng);
}

// The route table with the pool of each of its revisions, by the same
// index: a request finds its revision's pool without a lookup. Pools live as
// long as the gateway (they are never removed), so raw pointers are safe.
struct Snapshot {
  std::shared_ptr<const RouteTable> table = std::make_shared<RouteTable>();
  std::vector<RevisionPool*> pools;
};

// A request admitted to a revision's pool. HTTP ones (a client's, its
// mirror copy, an internal call) go through the forwarder; gRPC ones are
// sent by the gRPC ingress.
struct Pending : Outbound {
  Kind kind = Kind::kHttp;
  std::shared_ptr<const Snapshot> snapshot;  // keeps `route` alive
  const Route* route = nullptr;
  Clock::time_point start;
  std::string host;
  std::string target;
};

struct HttpCall : Pending {
  std::string method;
  const HeaderOps* destination_headers = nullptr;  // its destination's (in its snapshot)
  std::string cors_origin;  // an origin its route's CORS policy allows: its answer says so
  std::string request_id;
  bool generated_id = false;
  HttpDone http_done;  // kHttp
  CallDone call_done;  // kInternal
  CallTrace trace;     // gateway/tracing.h; not sampled when tracing is off
};

CallResult Failed(absl::Status why) {
  CallResult r;
  r.status = std::move(why);
  return r;
}

// ---- HTTP encoding of the gateway's answers (the HTTP ingress's edge) ----

// A refusal or failure as HTTP: net/status.h's table, with the proxy's two
// readings: a replica that failed the exchange (not a timeout) is 502, and
// UNAVAILABLE gets Retry-After.
HttpResponse HttpError(const absl::Status& why, bool replica_failed) {
  if (replica_failed && why.code() != absl::StatusCode::kDeadlineExceeded)
    return JsonErrorResponse(502, StatusMessage(why));
  HttpResponse r = ErrorResponse(why);
  if (why.code() == absl::StatusCode::kUnavailable) r.header_lines += "Retry-After: 1\r\n";
  return r;
}

// A replica's answer passed on, without the headers the gateway's own
// server writes.
HttpResponse Proxied(UpstreamResult& result) {
  HttpResponse out;
  out.status = result.http_status;
  out.body = std::move(result.body);
  out.content_type = "";
  out.header_lines.reserve(result.header_lines.size() + 128);
  ForEachHeaderLine(result.header_lines, [&](std::string_view n, std::string_view v) {
    if (!SkippedInResponse(n)) StrAppend(&out.header_lines, n, ": ", v, "\r\n");
  });
  return out;
}

// A VirtualService's response header changes (RoutePolicy), on an answer.
void ChangeResponseHeaders(const HeaderOps& p, HttpResponse& r) {
  if (p.response_set.empty() && p.response_add.empty() && p.response_remove.empty()) return;
  std::string kept;
  ForEachHeaderLine(r.header_lines, [&](std::string_view n, std::string_view v) {
    for (const auto& name : p.response_remove)
      if (IEquals(n, name)) return;
    for (const auto& [name, value] : p.response_set)
      if (IEquals(n, name)) return;
    StrAppend(&kept, n, ": ", v, "\r\n");
  });
  for (const auto& [name, value] : p.response_set) StrAppend(&kept, name, ": ", value, "\r\n");
  for (const auto& [name, value] : p.response_add) StrAppend(&kept, name, ": ", value, "\r\n");
  r.header_lines = std::move(kept);
}

// The CORS headers of an answer to `origin`, which `cors` allows, in place
// of the replica's own.
void AddCorsHeaders(const RoutePolicy::Cors& cors, std::string_view origin, HttpResponse& r) {
  std::string kept;
  ForEachHeaderLine(r.header_lines, [&](std::string_view n, std::string_view v) {
    if (IEquals(n, "access-control-allow-origin") ||
        IEquals(n, "access-control-allow-credentials") ||
        IEquals(n, "access-control-expose-headers"))
      return;
    StrAppend(&kept, n, ": ", v, "\r\n");
  });
  r.header_lines = std::move(kept);
  StrAppend(&r.header_lines, "Access-Control-Allow-Origin: ", origin, "\r\n");
  if (cors.allow_credentials) r.header_lines += "Access-Control-Allow-Credentials: true\r\n";
  if (!cors.expose_headers.empty())
    StrAppend(&r.header_lines, "Access-Control-Expose-Headers: ", cors.expose_headers, "\r\n");
}

// The replica's request head, written straight from the caller's headers
// (hop-by-hop ones left out) without copying them one by one; an
// x-request-id is made up when they have none. With tracing on, the trace
// headers are the gateway's (gateway/tracing.h).
void BuildHead(HttpCall& call, const HeaderSource& headers, const Route& route,
               const HeaderOps* destination = nullptr) {
  std::string& head = call.head;
  head.reserve(512);
  StrAppend(&head, call.method, " ", call.target, " HTTP/1.1\r\nHost: ",
            call.host.empty() ? std::string_view("127.0.0.1") : std::string_view(call.host),
            "\r\n");
  std::string_view request_id;
  const trace::Tracer* tracer = trace::Active();
  IncomingTrace incoming;
  // The route's header changes, then the destination's.
  const HeaderOps* ops[2] = {route.policy != nullptr ? &route.policy->headers : nullptr,
                             destination};
  auto changed = [&](std::string_view n) {
    for (const HeaderOps* o : ops) {
      if (o == nullptr) continue;
      for (const auto& r : o->request_remove)
        if (IEquals(n, r)) return true;
      for (const auto& [name, value] : o->request_set)
        if (IEquals(n, name)) return true;
    }
    return false;
  };
  if (headers.visit != nullptr)
    headers.visit(headers.context, [&](std::string_view n, std::string_view v) {
      if (HopByHop(n) || changed(n)) return;
      if (tracer != nullptr && incoming.Take(n, v)) return;
      if (request_id.empty() && IEquals(n, "x-request-id")) request_id = v;
      StrAppend(&head, n, ": ", v, "\r\n");
    });
  // The route's, then the destination's: a header the destination sets or
  // removes replaces (or drops) what the route set or added.
  auto overridden = [&](int i, std::string_view name) {
    if (i != 0 || destination == nullptr) return false;
    for (const auto& [n, v] : destination->request_set)
      if (IEquals(n, name)) return true;
    for (const auto& n : destination->request_remove)
      if (IEquals(n, name)) return true;
    return false;
  };
  for (int i = 0; i < 2; ++i) {
    const HeaderOps* o = ops[i];
    if (o == nullptr) continue;
    for (const auto& [name, value] : o->request_set)
      if (!overridden(i, name)) StrAppend(&head, name, ": ", value, "\r\n");
    for (const auto& [name, value] : o->request_add)
      if (!overridden(i, name)) StrAppend(&head, name, ": ", value, "\r\n");
  }
  if (request_id.empty()) {
    call.request_id = MakeRequestId();
    call.generated_id = true;
    StrAppend(&head, "x-request-id: ", call.request_id, "\r\n");
  } else {
    call.request_id = std::string(request_id);
  }
  if (tracer != nullptr)
    call.trace = StartCallTrace(tracer->sampler(), incoming, route.trace_sampling, &head);
  StrAppend(&head, "Content-Length: ", call.body ? call.body->size() : 0, "\r\n\r\n");
}

}  // namespace

// A gRPC call: its pending request, then (shared with the ingress) the
// ticket it finishes with.
struct Gateway::GrpcTicket : Pending {
  GrpcStart start_call;
  absl::AnyInvocable<void(absl::Status)> refuse;
  std::string rpc_method;
  CallTrace trace;  // not sampled when tracing is off
  std::vector<std::pair<std::string, std::string>> trace_metadata;
};

struct Gateway::Impl {
  explicit Impl(Options o)
      : options(std::move(o)),
        forwarder({options.links_per_replica},
                  [this](std::unique_ptr<Outbound> call, UpstreamResult result) {
                    Answered(std::unique_ptr<HttpCall>(static_cast<HttpCall*>(call.release())),
                             std::move(result));
                  }) {
    if (!options.access_log.empty()) {
      auto log = AccessLogObserver::Open(options.access_log);
      if (log.ok()) {
        access_log = std::move(*log);
        observers.push_back(access_log.get());
      } else {
        OSPREY_LOG(kError) << log.status().message();
      }
    }
    observers.push_back(&metrics);
    observers.push_back(&payload_log);
    if (trace::Active() != nullptr) observers.push_back(&tracing);
    for (const auto& o : options.observers) observers.push_back(o.get());
  }

  Options options;
  Forwarder forwarder;
  std::unique_ptr<GraphExecutor> graphs;  // InferenceGraph routes
  MetricsObserver metrics;
  PayloadLogObserver payload_log{PayloadLogObserver::Options{}};
  TraceObserver tracing;  // registered when tracing is on (trace::Active())
  std::unique_ptr<AccessLogObserver> access_log;
  std::vector<ExchangeObserver*> observers;

  mutable std::mutex table_mu;
  std::shared_ptr<const Snapshot> snapshot = std::make_shared<Snapshot>();
  mutable std::mutex pools_mu;
  std::map<std::string, std::unique_ptr<RevisionPool>> pools;  // by key; never removed

  std::mutex reaper_mu;
  std::condition_variable reaper_cv;
  bool stopping = false;
  std::thread reaper;

  std::shared_ptr<const Snapshot> Current() const {
    std::lock_guard<std::mutex> lock(table_mu);
    return snapshot;
  }

  RevisionPool* PoolFor(const RevisionTarget& t) {
    std::lock_guard<std::mutex> lock(pools_mu);
    auto& p = pools[t.key];
    if (!p) {
      RevisionPool::Options o;
      o.queue_limit = options.queue_limit;
      o.queue_deadline = options.queue_deadline;
      p = std::make_unique<RevisionPool>(t.key, t.revision, static_cast<uint32_t>(pools.size() - 1),
                                         o, Clock::now());
    }
    return p.get();
  }

  std::vector<RevisionPool*> AllPools() const {
    std::lock_guard<std::mutex> lock(pools_mu);
    std::vector<RevisionPool*> all;
    all.reserve(pools.size());
    for (const auto& [key, p] : pools) all.push_back(p.get());
    return all;
  }

  // The route of a request and the revision its split picks, or why there
  // is none: NOT_FOUND (`what` describes the request) or UNAVAILABLE.
  template <typename HeaderLookup>
  absl::Status Resolve(const Snapshot& s, std::string_view host, std::string_view path,
                       HeaderLookup header, absl::FunctionRef<std::string()> what,
                       const Route** route, RevisionPool** pool, std::string_view component = {}) {
    *route = MatchRoute(*s.table, host, path, header, component);
    if (*route == nullptr)
      return absl::NotFoundError(StrCat("no InferenceService serves ", what(),
                                        " (is it applied and ready? `osprey get isvc`)"));
    return Pick(s, **route, pool);
  }

  absl::Status Pick(const Snapshot& s, const Route& route, RevisionPool** pool,
                    const RevisionTarget** target = nullptr,
                    const WeightedRevision** picked = nullptr) {
    const WeightedRevision* pick =
        PickWeighted(route.split, SplitDraw(route.draws->fetch_add(1, std::memory_order_relaxed)));
    if (pick == nullptr)
      return absl::UnavailableError(
          route.component == "virtualservice"
              ? StrCat("VirtualService ", route.namespace_, "/", route.name,
                       ": no destination serves this request (see its events)")
              : StrCat("InferenceService ", route.namespace_, "/", route.name,
                       " has no ready revision"));
    *pool = s.pools[pick->revision];
    if (target != nullptr) *target = &s.table->revisions[pick->revision];
    if (picked != nullptr) *picked = pick;
    return absl::OkStatus();
  }

  // The one admit path: a replica with room, or the queue, or a refusal.
  // Never blocks.
  void Admit(RevisionPool& pool, std::unique_ptr<Pending> pending) {
    const bool may_wait = pending->kind != Kind::kMirror;  // a mirror copy never waits
    RevisionPool::RequestPtr request = std::move(pending);
    auto a = pool.Admit(request, may_wait, Clock::now());
    switch (a.result) {
      case RevisionPool::Admitted::kAssigned:
        Start(std::move(request));
        return;
      case RevisionPool::Admitted::kQueued:
        if (a.demand && options.on_demand) options.on_demand(pool.key());
        return;
      case RevisionPool::Admitted::kFull:
        Refuse(std::move(request), a.refusal);
        return;
      case RevisionPool::Admitted::kNoRoom:
        return;  // a mirror copy: dropped
    }
  }

  // A request with its replica: to the forwarder, or to the gRPC ingress.
  void Start(RevisionPool::RequestPtr request) {
    if (static_cast<Pending&>(*request).kind != Kind::kGrpc) {
      forwarder.Forward(std::unique_ptr<Outbound>(static_cast<Outbound*>(request.release())));
      return;
    }
    std::shared_ptr<GrpcTicket> ticket(static_cast<GrpcTicket*>(request.release()));
    auto target = Forwarder::GrpcTarget(*ticket);
    if (!target.ok()) {
      ticket->refuse(target.status());
      Finish(*ticket, GrpcCodeFromStatus(target.status().code()), 0, 0);
      return;
    }
    auto start = std::move(ticket->start_call);
    const int timeout_ms = static_cast<int>(ticket->timeout.count());
    start(std::move(ticket), **target, timeout_ms);
  }

  Exchange Describe(const Pending& p) const {
    Exchange e;
    e.kind = p.kind;
    e.host = p.host;
    e.target = p.target;
    e.route = p.route;
    e.revision_key = p.pool->key();
    e.revision = p.pool->revision();
    e.revision_id = p.pool->id();
    e.replica_port = p.replica ? p.replica->port : 0;
    if (p.replica) e.replica_host = p.replica->host;
    e.start = p.start;
    e.end = Clock::now();
    e.queue_wait = p.queue_wait;
    e.cold_start = p.cold_start;
    e.cold_start_since = p.cold_start_since;
    e.retried_at = p.retried_at;
    e.request_bytes = p.body ? p.body->size() : 0;
    if (p.kind == Kind::kGrpc) {
      e.method = "gRPC";
      const auto& g = static_cast<const GrpcTicket&>(p);
      e.rpc_method = g.rpc_method;
      if (g.trace.context.valid()) e.trace = &g.trace;
    } else {
      const auto& h = static_cast<const HttpCall&>(p);
      e.method = h.method;
      e.request_id = h.request_id;
      if (h.trace.context.valid()) e.trace = &h.trace;
      if (p.route != nullptr && p.route->logger != nullptr) {  // the payload logger's
        e.request_head = h.head;
        if (p.body) e.request_body = *p.body;
      }
    }
    return e;
  }

  void Complete(const Exchange& e) {
    for (ExchangeObserver* o : observers) o->OnComplete(e);
  }

  // An answer's payload, for the payload logger.
  static void SetResponse(Exchange& e, const HttpResponse& r) {
    e.response_headers = r.header_lines;
    e.response_content_type = r.content_type;
    e.response_body = r.body;
  }

  // The gateway's own headers on an answer to a client.
  // A replica's own x-osprey-revision (a transformer passing on its
  // predictor's) is replaced, not repeated.
  static void AddOwnHeaders(const HttpCall& call, HttpResponse& r) {
    if (r.header_lines.find("evision") != std::string::npos) {
      std::string kept;
      for (size_t at = 0; at < r.header_lines.size();) {
        size_t end = r.header_lines.find("\r\n", at);
        end = end == std::string::npos ? r.header_lines.size() : end + 2;
        std::string_view line(r.header_lines.data() + at, end - at);
        constexpr std::string_view kName = "x-osprey-revision:";
        const bool ours = line.size() >= kName.size() &&
                          std::equal(kName.begin(), kName.end(), line.begin(), [](char a, char b) {
                            return a == std::tolower(static_cast<unsigned char>(b));
                          });
        if (!ours) kept.append(line);
        at = end;
      }
      r.header_lines = std::move(kept);
    }
    StrAppend(&r.header_lines, "x-osprey-revision: ", call.pool->revision(), "\r\n");
    if (call.generated_id) StrAppend(&r.header_lines, "x-request-id: ", call.request_id, "\r\n");
  }

  // A request that got no replica (queue full, waited too long, revision
  // gone): answered with `why`, encoded for its way in.
  void Refuse(RevisionPool::RequestPtr request, const absl::Status& why) {
    auto& p = static_cast<Pending&>(*request);
    Exchange e = Describe(p);
    e.code = why.code();
    if (p.kind == Kind::kGrpc) {
      Complete(e);
      static_cast<GrpcTicket&>(p).refuse(why);
      return;
    }
    auto& call = static_cast<HttpCall&>(p);
    if (p.kind == Kind::kInternal) {
      e.http_status = HttpStatusFromCode(why.code());
      Complete(e);
      // The reaper refuses on its own thread; the caller hears on its loop.
      RunOn(call.io, [done = std::move(call.call_done), why]() mutable { done(Failed(why)); });
      return;
    }
    HttpResponse r = HttpError(why, /*replica_failed=*/false);
    // The gateway's own answers carry CORS headers too (a browser may read them).
    if (!call.cors_origin.empty()) AddCorsHeaders(*p.route->policy->cors, call.cors_origin, r);
    e.http_status = r.status;
    if (p.route->logger != nullptr) SetResponse(e, r);
    Complete(e);
    if (p.kind == Kind::kMirror) return;
    AddOwnHeaders(call, r);
    call.http_done(std::move(r));
  }

  // The forwarder's result for an HTTP call, on its loop.
  void Answered(std::unique_ptr<HttpCall> call, UpstreamResult result) {
    RevisionPool& pool = *call->pool;
    const std::shared_ptr<const ReplicaAddress> replica = call->replica;
    absl::Status why;
    if (result.status.code() == absl::StatusCode::kDeadlineExceeded) {
      why = absl::DeadlineExceededError(StrCat(
          "revision ", pool.revision(), " did not answer within ", call->timeout.count(), " ms"));
    } else if (!result.status.ok()) {
      why = absl::Status(result.status.code(),
                         StrCat("revision ", pool.revision(), ": ", result.status.message()));
    }
    Exchange e = Describe(*call);
    e.code = why.code();
    e.response_bytes = result.body.size();
    switch (call->kind) {
      case Kind::kInternal: {
        e.http_status = why.ok() ? result.http_status : HttpStatusFromCode(why.code());
        if (call->route->logger != nullptr && why.ok()) {
          e.response_headers = result.header_lines;
          e.response_body = result.body;
        }
        Complete(e);
        CallResult r = Failed(why);
        if (why.ok()) {
          r.http_status = result.http_status;
          r.header_lines = std::move(result.header_lines);
          r.body = std::move(result.body);
        }
        call->call_done(std::move(r));
        break;
      }
      case Kind::kMirror:
      case Kind::kHttp:
      default: {
        HttpResponse out = why.ok() ? Proxied(result) : HttpError(why, /*replica_failed=*/true);
        if (call->route->policy != nullptr)
          ChangeResponseHeaders(call->route->policy->headers, out);
        // The destination's after the route's: its own win (as Istio has Envoy do).
        if (call->destination_headers != nullptr)
          ChangeResponseHeaders(*call->destination_headers, out);
        if (call->route->policy != nullptr) {
          if (!call->cors_origin.empty())
            AddCorsHeaders(*call->route->policy->cors, call->cors_origin, out);
        }
        e.http_status = out.status;
        if (call->route->logger != nullptr) SetResponse(e, out);
        Complete(e);
        if (call->kind == Kind::kMirror) break;  // counted; its answer goes nowhere
        AddOwnHeaders(*call, out);
        call->http_done(std::move(out));
        break;
      }
    }
    Release(pool, *replica);
  }

  void Finish(GrpcTicket& ticket, int code, size_t request_bytes, size_t response_bytes) {
    Exchange e = Describe(ticket);
    e.code = static_cast<absl::StatusCode>(code);
    e.request_bytes = request_bytes;
    e.response_bytes = response_bytes;
    Complete(e);
    Release(*ticket.pool, *ticket.replica);
  }

  void Release(RevisionPool& pool, const ReplicaAddress& replica) {
    for (auto& next : pool.Release(replica, Clock::now())) Start(std::move(next));
  }

  // Refuses queued requests past their deadline, or of revisions gone.
  void Reap() {
    std::unique_lock<std::mutex> lock(reaper_mu);
    while (!stopping) {
      reaper_cv.wait_for(lock, std::chrono::milliseconds(20));
      lock.unlock();
      const Clock::time_point now = Clock::now();
      std::vector<RevisionPool::RequestPtr> ready;
      for (RevisionPool* pool : AllPools())
        for (auto& expired : pool->Expire(now, &ready))
          Refuse(std::move(expired.request), expired.why);
      for (auto& r : ready) Start(std::move(r));
      lock.lock();
    }
  }

  // Fills what every kind of call has.
  void Prepare(Pending& p, Kind kind, std::shared_ptr<const Snapshot> s, const Route* route,
               Clock::time_point start) {
    p.kind = kind;
    p.snapshot = std::move(s);
    p.route = route;
    p.start = start;
    p.timeout = std::chrono::milliseconds(route->timeout_ms > 0 ? route->timeout_ms
                                                                : options.default_timeout_ms);
  }
};

Gateway::Gateway(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->graphs = std::make_unique<GraphExecutor>(
      this, GraphExecutor::Options{impl_->options.graph_propagate_headers});
  impl_->reaper = std::thread([this] { impl_->Reap(); });
}

Gateway::~Gateway() { StopReaper(); }

void Gateway::StopReaper() {
  {
    std::lock_guard<std::mutex> lock(impl_->reaper_mu);
    impl_->stopping = true;
  }
  impl_->reaper_cv.notify_all();
  if (impl_->reaper.joinable()) impl_->reaper.join();
}

void Gateway::Update(std::shared_ptr<const RouteTable> table) {
  impl_->graphs->Update(table);
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->table = table;
  for (const auto& t : table->revisions) snapshot->pools.push_back(impl_->PoolFor(t));
  {
    std::lock_guard<std::mutex> lock(impl_->table_mu);
    impl_->snapshot = snapshot;
  }
  const Clock::time_point now = Clock::now();
  std::vector<RevisionPool::RequestPtr> ready;
  for (size_t index = 0; index < table->revisions.size(); ++index) {
    const auto& t = table->revisions[index];
    std::vector<std::shared_ptr<const ReplicaAddress>> replicas;
    replicas.reserve(t.ports.size());
    for (size_t i = 0; i < t.ports.size(); ++i) {
      auto a = std::make_shared<ReplicaAddress>();
      a->port = t.ports[i];
      if (i < t.hosts.size()) a->host = t.hosts[i];
      if (i < t.grpc_targets.size()) a->grpc_target = t.grpc_targets[i];
      if (i < t.http_sockets.size()) a->http_socket = t.http_sockets[i];
      if (i < t.link_sockets.size()) a->link_socket = t.link_sockets[i];
      replicas.push_back(std::move(a));
    }
    for (auto& r : snapshot->pools[index]->SetReplicas(std::move(replicas), t.container_concurrency,
                                                       now, t.policy))
      ready.push_back(std::move(r));
  }
  const std::set<RevisionPool*> present(snapshot->pools.begin(), snapshot->pools.end());
  for (RevisionPool* pool : impl_->AllPools())
    if (!present.count(pool)) pool->Unroute();  // its queued requests are refused by the reaper
  for (auto& r : ready) impl_->Start(std::move(r));
}

void Gateway::Handle(const HttpRequest& request, HttpDone done) {
  const int listener_port = request.listener_port != 0 ? request.listener_port : kMainPort;
  if (listener_port == kMainPort && impl_->graphs->any() && impl_->graphs->Handle(request, done))
    return;
  std::shared_ptr<const Snapshot> snapshot = impl_->Current();
  std::string_view host = FindHeader(request.headers, "Host");
  const size_t question = request.target.find('?');
  std::string_view path = request.target.substr(0, question);
  std::string_view query =
      question == std::string_view::npos ? std::string_view() : request.target.substr(question + 1);
  const Route* route = MatchRoute(
      *snapshot->table, host, path,
      [&](std::string_view name) { return FindHeader(request.headers, name); }, {}, request.method,
      query, listener_port);
  const RoutePolicy* policy = route != nullptr ? route->policy.get() : nullptr;
  // CORS first (before redirects and faults, as Envoy's filters run): a
  // preflight is answered here.
  std::string_view cors_origin;
  if (policy != nullptr && policy->cors.has_value()) {
    const RoutePolicy::Cors& cors = *policy->cors;
    std::string_view origin = FindHeader(request.headers, "Origin");
    const bool allowed =
        !origin.empty() && std::any_of(cors.origins.begin(), cors.origins.end(),
                                       [&](const StringMatch& m) { return m.Matches(origin); });
    if (allowed) cors_origin = origin;
    const bool preflight = request.method == "OPTIONS" && !origin.empty() &&
                           !FindHeader(request.headers, "Access-Control-Request-Method").empty();
    if (preflight && (allowed || !cors.forward_unmatched_preflights)) {
      HttpResponse r;
      r.status = 200;
      r.content_type = "";
      if (allowed) {
        AddCorsHeaders(cors, origin, r);
        // "*" allows what the preflight asks for: it is echoed (a literal
        // "*" means nothing to a browser sending credentials).
        auto allow = [&](const std::string& allowed_list, const char* asked, const char* header) {
          std::string_view v = allowed_list;
          if (v == "*") v = FindHeader(request.headers, asked);
          if (!v.empty()) StrAppend(&r.header_lines, header, ": ", v, "\r\n");
        };
        allow(cors.allow_methods, "Access-Control-Request-Method", "Access-Control-Allow-Methods");
        allow(cors.allow_headers, "Access-Control-Request-Headers", "Access-Control-Allow-Headers");
        if (cors.max_age_s >= 0)
          StrAppend(&r.header_lines, "Access-Control-Max-Age: ", cors.max_age_s, "\r\n");
      }
      done(std::move(r));
      return;
    }
  }
  // A VirtualService's redirect and injected abort answer here.
  if (policy != nullptr && policy->redirect.has_value()) {
    HttpResponse r;
    r.status = policy->redirect->code;
    r.content_type = "";
    const RoutePolicy::Redirect& to = *policy->redirect;
    std::string_view to_host = to.authority.empty() ? host : std::string_view(to.authority);
    const std::string_view scheme_was = request.tls ? "https" : "http";
    const std::string_view scheme = to.scheme.empty() ? scheme_was : std::string_view(to.scheme);
    // A redirect port replaces the host's; another scheme drops the request
    // Host's port (it was the old scheme's); a given authority keeps its own
    // unless a port is given. The scheme's default port is left out.
    std::string port;
    if (to.port != 0 || (scheme != scheme_was && to.authority.empty())) {
      if (const size_t colon = to_host.rfind(':');
          colon != std::string_view::npos && to_host.find(']', colon) == std::string_view::npos)
        to_host = to_host.substr(0, colon);
      if (to.port != 0 && to.port != (scheme == "https" ? 443 : 80)) port = StrCat(":", to.port);
    }
    // A new path keeps the query, as Envoy's path redirect does.
    std::string location = to.uri.empty() ? std::string(request.target) : to.uri;
    if (!to.uri.empty() && !query.empty()) StrAppend(&location, "?", query);
    StrAppend(&r.header_lines, "Location: ", scheme, "://", to_host, port, location, "\r\n");
    if (!cors_origin.empty()) AddCorsHeaders(*policy->cors, cors_origin, r);
    done(std::move(r));
    return;
  }
  auto drawn = [](const std::shared_ptr<std::atomic<uint64_t>>& draws, double percent) {
    return SplitDraw(draws->fetch_add(1, std::memory_order_relaxed)) < percent;
  };
  if (policy != nullptr && policy->abort_status > 0 &&
      drawn(route->abort_draws, policy->abort_percent)) {
    HttpResponse r = JsonErrorResponse(policy->abort_status, "fault filter abort");
    ChangeResponseHeaders(policy->headers, r);
    if (!cors_origin.empty()) AddCorsHeaders(*policy->cors, cors_origin, r);
    done(std::move(r));
    return;
  }
  RevisionPool* pool = nullptr;
  const RevisionTarget* target = nullptr;
  const WeightedRevision* picked = nullptr;
  absl::Status admitted =
      route == nullptr
          ? absl::NotFoundError(StrCat("no InferenceService serves host '", host, "' or path '",
                                       path, "' (is it applied and ready? `osprey get isvc`)"))
          : impl_->Pick(*snapshot, *route, &pool, &target, &picked);
  if (admitted.ok() && request.io_context == nullptr)
    admitted = absl::InternalError("the gateway needs the HTTP server's event loop");
  if (!admitted.ok()) {
    HttpResponse r = HttpError(admitted, /*replica_failed=*/false);
    if (!cors_origin.empty()) AddCorsHeaders(*policy->cors, cors_origin, r);
    done(std::move(r));
    return;
  }
  const Clock::time_point start =
      request.arrival.time_since_epoch().count() ? request.arrival : Clock::now();
  auto call = std::make_unique<HttpCall>();
  call->io = request.io_context;
  call->method = std::string(request.method);
  call->cors_origin = std::string(cors_origin);
  call->target = RouteTarget(*route, request.target);
  call->host =
      policy != nullptr && !policy->authority.empty() ? policy->authority : std::string(host);
  call->body = request.body;
  call->destination_headers = picked->headers.get();
  BuildHead(*call, request.headers, *route, call->destination_headers);
  if (const PoolPolicy* pp = target->policy.get(); pp != nullptr) {
    // A DestinationRule's: the request's hash value, and no connection reuse.
    if (pp->balance == PoolPolicy::Balance::kHash) {
      std::optional<std::string_view> value;
      if (!pp->hash_header.empty()) {
        value = FindHeader(request.headers, pp->hash_header);
        if (value->empty()) value.reset();
      } else {
        value = internal::QueryParam(query, pp->hash_query);
      }
      if (value) {
        call->hashed = true;
        call->hash = std::hash<std::string_view>()(*value);
      }
    }
    if (pp->close_connections) {
      call->head.insert(call->head.size() - 2, "Connection: close\r\n");
      call->keep_alive = false;
    }
  }
  call->retries = route->retries;
  if (policy != nullptr) {
    call->retry_5xx = policy->retry_5xx;
    call->retry_gateway_error = policy->retry_gateway_error;
    call->retry_reset = policy->retry_reset;
    call->retry_statuses = policy->retry_statuses;
    call->per_try_timeout = std::chrono::milliseconds(policy->per_try_timeout_ms);
  }
  call->http_done = std::move(done);
  if (route->mirror.has_value() && Uniform100() < route->mirror->percent) {
    auto copy = std::make_unique<HttpCall>();
    copy->io = call->io;
    copy->head = call->head;
    copy->method = call->method;
    copy->target = call->target;
    copy->body = call->body;
    impl_->Prepare(*copy, Kind::kMirror, snapshot, route, start);
    impl_->Admit(*snapshot->pools[route->mirror->revision], std::move(copy));
  }
  impl_->Prepare(*call, Kind::kHttp, std::move(snapshot), route, start);
  // An injected delay holds the request on its loop's timer, then admits it.
  if (policy != nullptr && policy->delay_ms > 0 &&
      drawn(route->delay_draws, policy->delay_percent)) {
    void* io = call->io;
    RunAfter(io, std::chrono::milliseconds(policy->delay_ms),
             [impl = impl_.get(), pool, call = std::move(call)]() mutable {
               impl->Admit(*pool, std::move(call));
             });
    return;
  }
  impl_->Admit(*pool, std::move(call));
}

void Gateway::AdmitGrpc(std::string_view host, std::string_view model, GrpcStart start,
                        absl::AnyInvocable<void(absl::Status)> refuse, std::string_view component,
                        std::string_view rpc_method, const IncomingTrace* incoming) {
  std::shared_ptr<const Snapshot> snapshot = impl_->Current();
  // The model name stands in for the path: /v2/models/{model}.
  std::string path = model.empty() ? "" : StrCat("/v2/models/", model);
  const Route* route = nullptr;
  RevisionPool* pool = nullptr;
  absl::Status admitted = impl_->Resolve(
      *snapshot, host, path, [](std::string_view) { return std::string_view(); },
      [&] {
        return StrCat(":authority '", host, "'",
                      model.empty() ? std::string() : StrCat(" or model '", model, "'"));
      },
      &route, &pool, component);
  if (!admitted.ok()) {
    refuse(std::move(admitted));
    return;
  }
  auto call = std::make_unique<GrpcTicket>();
  call->host = std::string(host);
  call->target = std::move(path);
  call->start_call = std::move(start);
  call->refuse = std::move(refuse);
  call->rpc_method = std::string(rpc_method);
  if (const trace::Tracer* tracer = trace::Active()) {
    // The trace headers as the HTTP path writes them, sent as metadata.
    std::string head;
    call->trace = StartCallTrace(tracer->sampler(), incoming ? *incoming : IncomingTrace{},
                                 route->trace_sampling, &head);
    for (std::string_view rest = head; !rest.empty();) {
      const size_t end = rest.find("\r\n");
      const std::string_view line = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
      if (const size_t colon = line.find(": "); colon != std::string_view::npos)
        call->trace_metadata.emplace_back(line.substr(0, colon), line.substr(colon + 2));
    }
  }
  impl_->Prepare(*call, Kind::kGrpc, std::move(snapshot), route, Clock::now());
  impl_->Admit(*pool, std::move(call));
}

const std::vector<std::pair<std::string, std::string>>& Gateway::TraceMetadata(
    const GrpcTicket& ticket) {
  return ticket.trace_metadata;
}

void Gateway::FinishGrpc(std::shared_ptr<GrpcTicket> ticket, int code, size_t request_bytes,
                         size_t response_bytes) {
  // Outlier detection reads a gRPC status as the HTTP status it maps to.
  ticket->pool->Observe(*ticket->replica, HttpStatusFromCode(static_cast<absl::StatusCode>(code)),
                        Clock::now());
  impl_->Finish(*ticket, code, request_bytes, response_bytes);
}

void Gateway::Call(const CallRequest& request, CallDone done) {
  std::shared_ptr<const Snapshot> snapshot = impl_->Current();
  const Clock::time_point now = Clock::now();
  std::string_view path = request.target.substr(0, request.target.find('?'));
  const Route* route = nullptr;
  RevisionPool* pool = nullptr;
  absl::Status admitted;
  if (request.service.empty()) {
    admitted = impl_->Resolve(
        *snapshot, request.host, path, [](std::string_view) { return std::string_view(); },
        [&] { return StrCat("host '", request.host, "' or path '", path, "'"); }, &route, &pool);
  } else {
    // The service's main route: the one with its split, after its tag routes.
    const std::string_view service = request.service;
    for (const Route& r : snapshot->table->routes)
      if (service.size() == r.namespace_.size() + 1 + r.name.size() &&
          service.starts_with(r.namespace_) && service[r.namespace_.size()] == '/' &&
          service.ends_with(r.name) && r.component.empty() && !r.uri.has_value() &&
          (route == nullptr || !r.model_name.empty()))
        route = &r;
    admitted =
        route == nullptr
            ? absl::NotFoundError(StrCat("no InferenceService ", request.service, " is routed"))
            : impl_->Pick(*snapshot, *route, &pool);
  }
  if (admitted.ok() && request.io_context == nullptr)
    admitted = absl::InvalidArgumentError("an internal call needs its event loop");
  if (admitted.ok() && request.deadline <= now)
    admitted = absl::DeadlineExceededError("the call's deadline has passed");
  if (!admitted.ok()) {
    done(Failed(std::move(admitted)));
    return;
  }
  auto call = std::make_unique<HttpCall>();
  call->io = request.io_context;
  call->method = std::string(request.method);
  call->target = RouteTarget(*route, request.target);
  call->host = std::string(!request.host.empty()  ? request.host
                           : route->hosts.empty() ? std::string_view()
                                                  : std::string_view(route->hosts.front()));
  call->body = request.body;
  BuildHead(*call, request.headers, *route);
  call->retries = route->retries;
  call->call_done = std::move(done);
  impl_->Prepare(*call, Kind::kInternal, std::move(snapshot), route, now);
  call->deadline = request.deadline;
  if (request.deadline != Clock::time_point::max())
    call->timeout = std::min(call->timeout,
                             std::chrono::ceil<std::chrono::milliseconds>(request.deadline - now));
  impl_->Admit(*pool, std::move(call));
}

std::vector<RevisionStats> Gateway::CollectStats() {
  std::vector<RevisionStats> out;
  const Clock::time_point now = Clock::now();
  for (RevisionPool* pool : impl_->AllPools()) out.push_back(pool->Collect(now));
  return out;
}

std::string Gateway::RenderMetrics() const {
  // The routed revisions' series, and those of revisions no longer routed
  // only while requests are still with them: a deleted revision's series go
  // (as a deleted pod's would).
  const auto snapshot = impl_->Current();
  const std::set<const RevisionPool*> routed(snapshot->pools.begin(), snapshot->pools.end());
  std::vector<MetricsObserver::Revision> revisions;
  for (RevisionPool* pool : impl_->AllPools())
    if (routed.contains(pool) || pool->in_flight() > 0 || pool->waiting() > 0)
      revisions.push_back(
          {pool->key(), pool->revision(), pool->id(), pool->in_flight(), pool->waiting()});
  std::string out;
  impl_->metrics.Render(revisions, &out);
  impl_->payload_log.Render(&out);
  return out;
}

}  // namespace osprey::gateway
