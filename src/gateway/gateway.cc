#include "gateway/gateway.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "gateway/upstream.h"
#include "common/json_writer.h"
#include "net/status.h"

namespace osprey::gateway {
namespace {

using Clock = std::chrono::steady_clock;

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

// Latency histogram bounds (seconds), Prometheus-style cumulative buckets.
constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                             0.05,   0.1,   0.25,   0.5,   1,    5};

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

}  // namespace

struct Gateway::Impl {
  struct RevState;

  struct Job {
    void* io = nullptr;  // the loop the request arrived on; its upstream call runs there
    std::string head;    // request line and headers for the replica
    std::string method;
    std::string target;
    std::string host;
    std::string request_id;
    bool generated_id = false;
    std::shared_ptr<const std::string> body;
    std::shared_ptr<RevState> rev;
    uint16_t port = 0;
    std::string socket;  // the replica's Unix socket, when it has one
    bool link = false;   // that socket is the replica's link, not HTTP
    int timeout_ms = 0;
    int retries = 0;
    bool mirror = false;
    HttpDone done;
    // A gRPC call instead: started when a replica is assigned, or refused.
    Gateway::GrpcStart grpc_start;
    absl::AnyInvocable<void(absl::Status)> grpc_refuse;
    Clock::time_point start;
    Clock::time_point deadline;
  };

  struct Replica {
    uint16_t port = 0;
    int outstanding = 0;
    std::string grpc_target;
    std::string http_socket;
    std::string link_socket;
  };

  // The job goes to replica r: by its link when it has one, else HTTP.
  static void Assign(Job& job, const Replica& r) {
    job.port = r.port;
    job.link = !r.link_socket.empty();
    job.socket = job.link ? r.link_socket : r.http_socket;
  }

  struct RevState {
    std::string key;
    std::string revision;
    std::mutex mu;
    std::vector<Replica> replicas;
    int container_concurrency = 0;
    std::deque<std::unique_ptr<Job>> waiting;
    int in_flight = 0;
    bool routed = true;
    // For the autoscaler: the time integral of (in flight + waiting).
    double integral = 0;
    Clock::time_point last_change = Clock::now();
    Clock::time_point last_collect = Clock::now();
    uint64_t requests_since = 0;
    // Metrics.
    std::array<std::atomic<uint64_t>, 6> by_class{};  // [0]: no answer, [1..5]: 1xx..5xx
    std::array<std::atomic<uint64_t>, kBuckets.size() + 1> histogram{};
    std::atomic<uint64_t> latency_sum_us{0};

    // Called with mu held, before the concurrency changes.
    void Integrate(Clock::time_point now) {
      integral += (in_flight + static_cast<double>(waiting.size())) *
                  std::chrono::duration<double>(now - last_change).count();
      last_change = now;
    }
    // The ready replica with the fewest outstanding requests and room under
    // containerConcurrency; nullptr when none. `avoid` is a port just refused.
    Replica* Pick(uint16_t avoid = 0) {
      Replica* best = nullptr;
      for (auto& r : replicas) {
        if (r.port == avoid) continue;
        if (container_concurrency > 0 && r.outstanding >= container_concurrency) continue;
        if (best == nullptr || r.outstanding < best->outstanding) best = &r;
      }
      return best;
    }
  };

  Options options;
  // The route table with the state of each of its revisions, by the same
  // index: a request finds its revision's state without a lookup.
  struct Snapshot {
    std::shared_ptr<const RouteTable> table = std::make_shared<RouteTable>();
    std::vector<std::shared_ptr<RevState>> states;
  };
  mutable std::mutex table_mu;
  std::shared_ptr<const Snapshot> snapshot = std::make_shared<Snapshot>();
  mutable std::mutex states_mu;
  std::map<std::string, std::shared_ptr<RevState>> states;

  std::mutex reaper_mu;
  std::condition_variable reaper_cv;
  bool stopping = false;
  std::thread reaper;

  std::mutex log_mu;
  FILE* access_log = nullptr;

  ~Impl() {
    if (access_log != nullptr) std::fclose(access_log);
  }

  std::shared_ptr<RevState> StateFor(const RevisionTarget& t) {
    std::lock_guard<std::mutex> lock(states_mu);
    auto& s = states[t.key];
    if (!s) {
      s = std::make_shared<RevState>();
      s->key = t.key;
      s->revision = t.revision;
    }
    return s;
  }

  // Sends the job to its replica from the loop it arrived on.
  void Submit(std::unique_ptr<Job> job) {
    if (job->grpc_start) {
      StartGrpc(std::move(job));
      return;
    }
    void* io = job->io;
    RunOn(io, [this, job = std::move(job)]() mutable { Forward(std::move(job), 0); });
  }

  // Hands the job to a replica with room, or queues it (the activator), or
  // refuses it. Never blocks.
  void Admit(std::unique_ptr<Job> job) {
    RevState& s = *job->rev;
    std::optional<HttpResponse> refused;
    bool demand = false;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      Clock::time_point now = Clock::now();
      if (Replica* r = s.Pick(); r != nullptr) {
        s.Integrate(now);
        ++r->outstanding;
        ++s.in_flight;
        ++s.requests_since;
        Assign(*job, *r);
      } else if (job->mirror) {
        return;  // a mirror copy never waits
      } else if (static_cast<int>(s.waiting.size()) >= options.queue_limit) {
        refused = JsonErrorResponse(503, StrCat("revision ", s.revision, " is at capacity: ", s.waiting.size(),
                                    " requests are already waiting"));
      } else {
        s.Integrate(now);
        job->deadline = now + options.queue_deadline;
        demand = s.replicas.empty();
        s.waiting.push_back(std::move(job));
      }
    }
    if (refused.has_value()) {
      refused->header_lines += "Retry-After: 1\r\n";
      Finish(*job, std::move(*refused), 0);
      return;
    }
    if (job) {
      Submit(std::move(job));
    } else if (demand && options.on_demand) {
      options.on_demand(s.key);
    }
  }

  // Gives queued jobs the replicas that have room. Called with s.mu held;
  // returns the jobs to submit.
  std::vector<std::unique_ptr<Job>> Drain(RevState& s, Clock::time_point now) {
    std::vector<std::unique_ptr<Job>> ready;
    while (!s.waiting.empty()) {
      Replica* r = s.Pick();
      if (r == nullptr) break;
      s.Integrate(now);
      auto job = std::move(s.waiting.front());
      s.waiting.pop_front();
      ++r->outstanding;
      ++s.in_flight;
      ++s.requests_since;
      Assign(*job, *r);
      ready.push_back(std::move(job));
    }
    return ready;
  }

  void Release(RevState& s, uint16_t port) {
    std::vector<std::unique_ptr<Job>> next;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      Clock::time_point now = Clock::now();
      s.Integrate(now);
      --s.in_flight;
      for (auto& r : s.replicas)
        if (r.port == port) --r.outstanding;
      next = Drain(s, now);
    }
    for (auto& j : next) Submit(std::move(j));
  }

  // On the job's loop: the upstream call, retried on another replica when
  // the connection is refused (nothing reached the replica), never otherwise.
  void Forward(std::unique_ptr<Job> job, int attempt) {
    UpstreamRequest request;
    request.io_context = job->io;
    request.port = job->port;
    request.unix_socket = job->socket;
    request.link = job->link;
    request.links = options.links_per_replica;
    request.head = job->head;
    request.body = job->body;
    request.timeout = std::chrono::milliseconds(job->timeout_ms);
    SendUpstream(
        std::move(request), [this, job = std::move(job), attempt](UpstreamResult result) mutable {
          RevState& s = *job->rev;
          if (result.status.code() == absl::StatusCode::kUnavailable && attempt < job->retries) {
            std::unique_lock<std::mutex> lock(s.mu);
            if (Replica* other = s.Pick(job->port); other != nullptr) {
              for (auto& r : s.replicas)
                if (r.port == job->port) --r.outstanding;
              ++other->outstanding;
              Assign(*job, *other);
              lock.unlock();
              Forward(std::move(job), attempt + 1);
              return;
            }
          }
          const uint16_t port = job->port;
          std::shared_ptr<RevState> rev = job->rev;
          {
            HttpResponse out;
            if (result.status.ok()) {
              out.status = result.http_status;
              out.body = std::move(result.body);
              out.content_type = "";
              out.header_lines.reserve(result.header_lines.size() + 128);
              ForEachHeaderLine(result.header_lines, [&](std::string_view n, std::string_view v) {
                if (!SkippedInResponse(n)) StrAppend(&out.header_lines, n, ": ", v, "\r\n");
              });
            } else if (result.status.code() == absl::StatusCode::kDeadlineExceeded) {
              out = JsonErrorResponse(504, StrCat("revision ", s.revision, " did not answer within ",
                                      job->timeout_ms, " ms"));
            } else {
              out = JsonErrorResponse(502, StrCat("revision ", s.revision, ": ", result.status.message()));
            }
            Finish(*job, std::move(out), port);
          }
          Release(*rev, port);
        });
  }

  // The message of a JsonError body.
  static std::string ErrorMessage(const std::string& body) {
    size_t start = body.find(":\"");
    if (start == std::string::npos || body.size() < start + 4) return body;
    return body.substr(start + 2, body.size() - start - 4);
  }

  void StartGrpc(std::unique_ptr<Job> job);
  void FinishGrpc(std::shared_ptr<GrpcTicket> ticket, bool ok);

  // Answers the client, counts, logs.
  void Finish(Job& job, HttpResponse response, uint16_t port) {
    RevState& s = *job.rev;
    const double seconds = std::chrono::duration<double>(Clock::now() - job.start).count();
    const int cls = response.status >= 100 && response.status < 600 ? response.status / 100 : 0;
    s.by_class[cls].fetch_add(1, std::memory_order_relaxed);
    size_t bucket = 0;
    while (bucket < kBuckets.size() && seconds > kBuckets[bucket]) ++bucket;
    s.histogram[bucket].fetch_add(1, std::memory_order_relaxed);
    s.latency_sum_us.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
    if (job.mirror) return;  // counted; the answer of a shadow copy goes nowhere
    if (job.grpc_refuse) {
      const absl::StatusCode code = response.status == 404   ? absl::StatusCode::kNotFound
                                    : response.status == 504 ? absl::StatusCode::kDeadlineExceeded
                                                             : absl::StatusCode::kUnavailable;
      job.grpc_refuse(absl::Status(code, ErrorMessage(response.body)));
      return;
    }
    StrAppend(&response.header_lines, "x-osprey-revision: ", s.revision, "\r\n");
    if (job.generated_id)
      StrAppend(&response.header_lines, "x-request-id: ", job.request_id, "\r\n");
    if (access_log != nullptr) {
      // One line: id method host target revision status latency; built by
      // hand (printf's float formatting shows in the gateway's profile).
      thread_local std::string line;
      line.clear();
      const int64_t us = static_cast<int64_t>(seconds * 1e6);
      StrAppend(&line, job.request_id, " ", job.method, " ", job.host, " ", job.target, " ", s.key,
                " ", response.status, " ", us / 1000, ".", static_cast<char>('0' + us % 1000 / 100),
                static_cast<char>('0' + us % 100 / 10), static_cast<char>('0' + us % 10),
                "ms port=", port, "\n");
      std::lock_guard<std::mutex> lock(log_mu);
      std::fwrite(line.data(), 1, line.size(), access_log);
    }
    job.done(std::move(response));
  }

  // Fails queued requests past their deadline; flushes the access log.
  void Reap() {
    std::unique_lock<std::mutex> lock(reaper_mu);
    while (!stopping) {
      reaper_cv.wait_for(lock, std::chrono::milliseconds(20));
      lock.unlock();
      std::vector<std::unique_ptr<Job>> expired;
      std::vector<std::shared_ptr<RevState>> all;
      {
        std::lock_guard<std::mutex> sl(states_mu);
        for (auto& [k, s] : states) all.push_back(s);
      }
      const Clock::time_point now = Clock::now();
      for (auto& s : all) {
        std::lock_guard<std::mutex> sl(s->mu);
        while (!s->waiting.empty() && (s->waiting.front()->deadline <= now || !s->routed)) {
          s->Integrate(now);
          expired.push_back(std::move(s->waiting.front()));
          s->waiting.pop_front();
        }
      }
      for (auto& job : expired) {
        HttpResponse r = JsonErrorResponse(
            503,
            job->rev->routed
                ? StrCat("no replica of revision ", job->rev->revision,
                         " could take the request within ",
                         std::chrono::duration_cast<std::chrono::seconds>(options.queue_deadline)
                             .count(),
                         " s")
                : StrCat("revision ", job->rev->revision, " no longer takes traffic"));
        r.header_lines += "Retry-After: 1\r\n";
        Finish(*job, std::move(r), 0);
      }
      if (access_log != nullptr) {
        std::lock_guard<std::mutex> ll(log_mu);
        std::fflush(access_log);
      }
      lock.lock();
    }
  }
};

struct Gateway::GrpcTicket {
  std::shared_ptr<Impl::RevState> rev;
  uint16_t port = 0;
  Clock::time_point start;
};

void Gateway::Impl::StartGrpc(std::unique_ptr<Job> job) {
  std::string target;
  {
    std::lock_guard<std::mutex> lock(job->rev->mu);
    for (const auto& r : job->rev->replicas)
      if (r.port == job->port) target = r.grpc_target;
  }
  auto ticket = std::make_shared<GrpcTicket>();
  ticket->rev = job->rev;
  ticket->port = job->port;
  ticket->start = job->start;
  if (target.empty()) {
    job->grpc_refuse(absl::UnimplementedError(
        StrCat("revision ", job->rev->revision, " serves no gRPC (a custom container)")));
    FinishGrpc(std::move(ticket), false);
    return;
  }
  job->grpc_start(std::move(ticket), target, job->timeout_ms);
}

void Gateway::Impl::FinishGrpc(std::shared_ptr<GrpcTicket> ticket, bool ok) {
  RevState& s = *ticket->rev;
  const double seconds = std::chrono::duration<double>(Clock::now() - ticket->start).count();
  s.by_class[ok ? 2 : 5].fetch_add(1, std::memory_order_relaxed);
  size_t bucket = 0;
  while (bucket < kBuckets.size() && seconds > kBuckets[bucket]) ++bucket;
  s.histogram[bucket].fetch_add(1, std::memory_order_relaxed);
  s.latency_sum_us.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
  Release(s, ticket->port);
}

Gateway::Gateway(Options options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  if (!impl_->options.access_log.empty()) {
    impl_->access_log = std::fopen(impl_->options.access_log.c_str(), "ae");
    if (impl_->access_log == nullptr) {
      OSPREY_LOG(kError) << "cannot open access log " << impl_->options.access_log;
    } else {
      // The reaper flushes every 20 ms; a buffer that holds those lines saves
      // a write(2) per 4 KB (about 40 requests) on the request path.
      std::setvbuf(impl_->access_log, nullptr, _IOFBF, size_t{1} << 20);
    }
  }
  impl_->reaper = std::thread([this] { impl_->Reap(); });
}

Gateway::~Gateway() {
  {
    std::lock_guard<std::mutex> lock(impl_->reaper_mu);
    impl_->stopping = true;
  }
  impl_->reaper_cv.notify_all();
  impl_->reaper.join();
}

void Gateway::Update(std::shared_ptr<const RouteTable> table) {
  auto snapshot = std::make_shared<Impl::Snapshot>();
  snapshot->table = table;
  for (const auto& t : table->revisions) snapshot->states.push_back(impl_->StateFor(t));
  {
    std::lock_guard<std::mutex> lock(impl_->table_mu);
    impl_->snapshot = snapshot;
  }
  std::vector<std::unique_ptr<Impl::Job>> ready;
  std::map<std::string, bool> present;
  for (size_t index = 0; index < table->revisions.size(); ++index) {
    const auto& t = table->revisions[index];
    present[t.key] = true;
    auto& s = snapshot->states[index];
    std::lock_guard<std::mutex> lock(s->mu);
    s->routed = true;
    s->container_concurrency = t.container_concurrency;
    std::vector<Impl::Replica> next;
    for (size_t i = 0; i < t.ports.size(); ++i) {
      Impl::Replica r{t.ports[i], 0, i < t.grpc_targets.size() ? t.grpc_targets[i] : "",
                      i < t.http_sockets.size() ? t.http_sockets[i] : "",
                      i < t.link_sockets.size() ? t.link_sockets[i] : ""};
      for (const auto& old : s->replicas)
        if (old.port == r.port) r.outstanding = old.outstanding;
      next.push_back(std::move(r));
    }
    s->replicas = std::move(next);
    for (auto& j : impl_->Drain(*s, Clock::now())) ready.push_back(std::move(j));
  }
  {
    std::lock_guard<std::mutex> lock(impl_->states_mu);
    for (auto& [key, s] : impl_->states)
      if (!present.count(key)) {
        std::lock_guard<std::mutex> sl(s->mu);
        s->routed = false;  // its queued requests are refused by the reaper
        s->replicas.clear();
      }
  }
  for (auto& j : ready) impl_->Submit(std::move(j));
}

void Gateway::Handle(const HttpRequest& request, HttpDone done) {
  std::shared_ptr<const Impl::Snapshot> snapshot;
  {
    std::lock_guard<std::mutex> lock(impl_->table_mu);
    snapshot = impl_->snapshot;
  }
  const RouteTable* table = snapshot->table.get();
  std::string_view host = FindHeader(request.headers, "Host");
  std::string_view path = request.target.substr(0, request.target.find('?'));
  const Route* route = MatchRoute(
      *table, host, path, [&](std::string_view name) { return FindHeader(request.headers, name); });
  if (route == nullptr) {
    done(JsonErrorResponse(404, StrCat("no InferenceService serves host '", host, "' or path '", path,
                           "' (is it applied and ready? `osprey get isvc`)")));
    return;
  }
  const WeightedRevision* pick =
      PickWeighted(route->split, SplitDraw(route->draws->fetch_add(1, std::memory_order_relaxed)));
  if (pick == nullptr) {
    HttpResponse r = JsonErrorResponse(503, StrCat("InferenceService ", route->namespace_, "/", route->name,
                                       " has no ready revision"));
    r.header_lines += "Retry-After: 1\r\n";
    done(std::move(r));
    return;
  }
  if (request.io_context == nullptr) {
    done(JsonErrorResponse(500, "the gateway needs the HTTP server's event loop"));
    return;
  }
  auto job = std::make_unique<Impl::Job>();
  job->io = request.io_context;
  job->start = request.arrival.time_since_epoch().count() ? request.arrival : Clock::now();
  job->method = std::string(request.method);
  job->target = std::string(request.target);
  job->host = std::string(host);
  // The replica's request head is written straight from the client's
  // headers (hop-by-hop ones left out), without copying them one by one.
  job->body = request.body;
  job->head.reserve(512);
  StrAppend(&job->head, job->method, " ", job->target,
            " HTTP/1.1\r\nHost: ", host.empty() ? std::string_view("127.0.0.1") : host, "\r\n");
  std::string_view request_id;
  if (request.headers.visit != nullptr)
    request.headers.visit(request.headers.context, [&](std::string_view n, std::string_view v) {
      if (HopByHop(n)) return;
      if (request_id.empty() && IEquals(n, "x-request-id")) request_id = v;
      StrAppend(&job->head, n, ": ", v, "\r\n");
    });
  if (request_id.empty()) {
    job->request_id = MakeRequestId();
    job->generated_id = true;
    StrAppend(&job->head, "x-request-id: ", job->request_id, "\r\n");
  } else {
    job->request_id = std::string(request_id);
  }
  StrAppend(&job->head, "Content-Length: ", job->body ? job->body->size() : 0, "\r\n\r\n");
  job->timeout_ms = route->timeout_ms > 0 ? route->timeout_ms : impl_->options.default_timeout_ms;
  job->retries = route->retries;
  job->rev = snapshot->states[pick->revision];
  job->done = std::move(done);
  if (route->mirror.has_value() && Uniform100() < route->mirror->percent) {
    auto copy = std::make_unique<Impl::Job>();
    copy->io = job->io;
    copy->head = job->head;
    copy->method = job->method;
    copy->target = job->target;
    copy->body = job->body;
    copy->timeout_ms = job->timeout_ms;
    copy->mirror = true;
    copy->start = job->start;
    copy->rev = snapshot->states[route->mirror->revision];
    impl_->Admit(std::move(copy));
  }
  impl_->Admit(std::move(job));
}

void Gateway::AdmitGrpc(std::string_view host, std::string_view model, GrpcStart start,
                        absl::AnyInvocable<void(absl::Status)> refuse) {
  std::shared_ptr<const Impl::Snapshot> snapshot;
  {
    std::lock_guard<std::mutex> lock(impl_->table_mu);
    snapshot = impl_->snapshot;
  }
  const RouteTable* table = snapshot->table.get();
  // The model name stands in for the path: /v2/models/{model}.
  const std::string path = model.empty() ? "" : StrCat("/v2/models/", model);
  const Route* route =
      MatchRoute(*table, host, path, [](std::string_view) { return std::string_view(); });
  if (route == nullptr) {
    refuse(absl::NotFoundError(
        StrCat("no InferenceService serves :authority '", host, "'",
               model.empty() ? std::string() : StrCat(" or model '", model, "'"),
               " (is it applied and ready? `osprey get isvc`)")));
    return;
  }
  const WeightedRevision* pick =
      PickWeighted(route->split, SplitDraw(route->draws->fetch_add(1, std::memory_order_relaxed)));
  if (pick == nullptr) {
    refuse(absl::UnavailableError(StrCat("InferenceService ", route->namespace_, "/", route->name,
                                         " has no ready revision")));
    return;
  }
  auto job = std::make_unique<Impl::Job>();
  job->start = Clock::now();
  job->method = "gRPC";
  job->host = std::string(host);
  job->target = path;
  job->timeout_ms = route->timeout_ms > 0 ? route->timeout_ms : impl_->options.default_timeout_ms;
  job->rev = snapshot->states[pick->revision];
  job->grpc_start = std::move(start);
  job->grpc_refuse = std::move(refuse);
  impl_->Admit(std::move(job));
}

void Gateway::FinishGrpc(std::shared_ptr<GrpcTicket> ticket, bool ok) {
  impl_->FinishGrpc(std::move(ticket), ok);
}

std::vector<RevisionStats> Gateway::CollectStats() {
  std::vector<std::shared_ptr<Impl::RevState>> all;
  {
    std::lock_guard<std::mutex> lock(impl_->states_mu);
    for (auto& [k, s] : impl_->states) all.push_back(s);
  }
  std::vector<RevisionStats> out;
  const Clock::time_point now = Clock::now();
  for (auto& s : all) {
    std::lock_guard<std::mutex> lock(s->mu);
    s->Integrate(now);
    const double dt = std::chrono::duration<double>(now - s->last_collect).count();
    RevisionStats st;
    st.key = s->key;
    st.concurrency = dt > 0 ? s->integral / dt : 0;
    st.rps = dt > 0 ? s->requests_since / dt : 0;
    st.waiting = static_cast<int>(s->waiting.size());
    st.in_flight = s->in_flight;
    s->integral = 0;
    s->requests_since = 0;
    s->last_collect = now;
    out.push_back(std::move(st));
  }
  return out;
}

std::string Gateway::RenderMetrics() const {
  std::vector<std::shared_ptr<Impl::RevState>> all;
  {
    std::lock_guard<std::mutex> lock(impl_->states_mu);
    for (auto& [k, s] : impl_->states) all.push_back(s);
  }
  std::string out;
  auto labels = [](const Impl::RevState& s) {
    size_t slash = s.key.find('/');
    return StrCat("namespace=\"", s.key.substr(0, slash), "\",revision=\"", s.revision, "\"");
  };
  out +=
      "# HELP osprey_gateway_requests_total Requests answered by the gateway, by revision and "
      "status class.\n# TYPE osprey_gateway_requests_total counter\n";
  static const char* kClass[] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (const auto& s : all)
    for (int c = 0; c < 6; ++c)
      if (uint64_t v = s->by_class[c].load(); v > 0)
        StrAppend(&out, "osprey_gateway_requests_total{", labels(*s), ",code_class=\"", kClass[c],
                  "\"} ", v, "\n");
  out +=
      "# HELP osprey_gateway_request_duration_seconds Time from arrival to answer at the "
      "gateway.\n# TYPE osprey_gateway_request_duration_seconds histogram\n";
  for (const auto& s : all) {
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kBuckets.size(); ++b) {
      cumulative += s->histogram[b].load();
      std::string le = b < kBuckets.size() ? StrCat(kBuckets[b]) : "+Inf";
      StrAppend(&out, "osprey_gateway_request_duration_seconds_bucket{", labels(*s), ",le=\"", le,
                "\"} ", cumulative, "\n");
    }
    StrAppend(&out, "osprey_gateway_request_duration_seconds_sum{", labels(*s), "} ",
              s->latency_sum_us.load() / 1e6, "\n");
    StrAppend(&out, "osprey_gateway_request_duration_seconds_count{", labels(*s), "} ", cumulative,
              "\n");
  }
  out +=
      "# HELP osprey_gateway_concurrency Requests in flight to a revision's replicas.\n"
      "# TYPE osprey_gateway_concurrency gauge\n";
  std::string queue =
      "# HELP osprey_gateway_queue_depth Requests held waiting for a replica "
      "(activator).\n# TYPE osprey_gateway_queue_depth gauge\n";
  for (const auto& s : all) {
    std::lock_guard<std::mutex> lock(s->mu);
    StrAppend(&out, "osprey_gateway_concurrency{", labels(*s), "} ", s->in_flight, "\n");
    StrAppend(&queue, "osprey_gateway_queue_depth{", labels(*s), "} ", s->waiting.size(), "\n");
  }
  return out + queue;
}

}  // namespace osprey::gateway
