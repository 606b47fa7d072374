#include "gateway/graph_executor.h"

#include <map>
#include <random>

#include "common/logging.h"
#include "common/strings.h"
#include "gateway/tracing.h"
#include "net/http_upstream.h"
#include "net/status.h"
#include "trace/trace.h"

namespace osprey::gateway {
namespace {

using Clock = std::chrono::steady_clock;
// How early a call's timer may fire before the deadline it was set for.
constexpr std::chrono::milliseconds kTimerSlack(5);

// Go's textproto.CanonicalMIMEHeaderKey for the usual token names:
// "x-trace-id" -> "X-Trace-Id".
std::string Canonical(std::string_view name) {
  std::string out(name);
  bool upper = true;
  for (char& c : out) {
    if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    if (!upper && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    upper = c == '-';
  }
  return out;
}

std::string MakeRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (char& c : id) c = kHex[rng() & 15];
  return id;
}

}  // namespace

struct GraphExecutor::State {
  std::shared_ptr<const RouteTable> table = std::make_shared<RouteTable>();
  struct Entry {
    const GraphRoute* route;
    std::shared_ptr<const Graph> graph;
  };
  std::vector<Entry> graphs;
};

// One graph request: its planner and where its answer goes. Shared by the
// calls in flight; the answer is sent once.
struct GraphExecutor::Run : std::enable_shared_from_this<Run> {
  std::shared_ptr<const State> state;  // keeps the graph and the table alive
  const Graph* graph = nullptr;
  Caller* caller = nullptr;
  void* io = nullptr;
  Clock::time_point deadline;
  std::chrono::seconds timeout{0};
  std::vector<std::pair<std::string, std::string>> headers;  // sent with every step
  std::string header_lines;                                  // the same, as lines
  std::unique_ptr<GraphRun> plan;
  HttpDone done;
  bool answered = false;
  // Tracing (gateway/tracing.h): the graph's span, set when sampled; its
  // steps' calls are its children.
  CallTrace trace;
  Clock::time_point start;
  std::string method, host, target;
  size_t request_bytes = 0;
  std::string request_id;

  void Finish(HttpResponse out) {
    if (trace.context.sampled()) {
      Exchange e;
      e.method = method;
      e.host = host;
      e.target = target;
      e.request_id = request_id;
      e.start = start;
      e.end = Clock::now();
      e.http_status = out.status;
      e.request_bytes = request_bytes;
      e.response_bytes = out.body.size();
      EndCallTrace(trace, e, StrCat(graph->namespace_, "/", graph->name));
    }
    done(std::move(out));
  }

  static void VisitHeaders(const void* context, HeaderSource::Visit f) {
    for (const auto& [n, v] : static_cast<const Run*>(context)->headers) f(n, v);
  }

  void Issue(std::vector<StepCall> calls) {
    for (StepCall& c : calls) {
      if (answered) return;
      Send(std::move(c));
    }
    Conclude();
  }

  void Send(StepCall c) {
    const Clock::time_point now = Clock::now();
    Clock::time_point step_deadline = deadline;
    const bool client_timeout =
        graph->step_timeout.count() > 0 && now + graph->step_timeout < deadline;
    if (client_timeout) step_deadline = now + graph->step_timeout;
    auto url = ParseHttpUrl(c.step->url);
    if (!url.ok()) {
      Answer(c.id,
             {false, 0, nullptr, StrCat("Post \"", c.step->url, "\": ", url.status().message())});
      return;
    }
    const std::string_view path = std::string_view(url->target).substr(0, url->target.find('?'));
    auto self = shared_from_this();
    if (MatchRoute(*state->table, url->host, path,
                   [](std::string_view) { return std::string_view(); }) != nullptr) {
      CallRequest r;
      r.host = url->host;
      r.target = url->target;
      r.headers = {&Run::VisitHeaders, this};
      r.body = c.body;
      r.deadline = step_deadline;
      r.io_context = io;
      const uint32_t id = c.id;
      caller->Call(r, [self, id, client_timeout, step_deadline](CallResult result) {
        self->Called(id, std::move(result), client_timeout, step_deadline);
      });
      return;
    }
    // Another host: a plain HTTP call, as the router's client makes it.
    auto head = std::make_shared<std::string>(
        RequestHead("POST", *url, header_lines, c.body ? c.body->size() : 0));
    UpstreamRequest u;
    u.io_context = io;
    u.port = url->port;
    auto host = std::make_shared<std::string>(url->host);
    u.host = *host;
    u.head = *head;
    u.body = c.body ? c.body : std::make_shared<const std::string>();
    u.timeout = std::max(std::chrono::milliseconds(1),
                         std::chrono::ceil<std::chrono::milliseconds>(step_deadline - now));
    const uint32_t id = c.id;
    std::string target_url = c.step->url;
    SendHttp(std::move(u), [self, id, head, host, target_url](UpstreamResult result) {
      if (self->PastDeadline(result.status)) return;
      if (!result.status.ok()) {
        self->Answer(id, {false, 0, nullptr,
                          StrCat("Post \"", target_url, "\": ", result.status.message())});
        return;
      }
      self->Answer(id, {true, result.http_status,
                        std::make_shared<const std::string>(std::move(result.body)), ""});
    });
  }

  // A Caller's result: a replica's answer, or the gateway's refusal as a
  // client would get it (KServe's router hears the mesh's 503 or 404); past
  // the step's client timeout (not the route's own, which answers as the
  // gateway does), no answer.
  void Called(uint32_t id, CallResult r, bool client_timeout, Clock::time_point step_deadline) {
    if (PastDeadline(r.status)) return;
    if (r.status.ok()) {
      Answer(id, {true, r.http_status, std::make_shared<const std::string>(std::move(r.body)), ""});
      return;
    }
    if (r.status.code() == absl::StatusCode::kDeadlineExceeded && client_timeout &&
        Clock::now() + kTimerSlack >= step_deadline) {
      Answer(id, {false, 0, nullptr,
                  StrCat("step did not answer within routerTimeouts.serviceClient (",
                         graph->step_timeout.count(), " s): ", r.status.message())});
      return;
    }
    HttpResponse refusal = ErrorResponse(r.status);
    Answer(id, {true, refusal.status, std::make_shared<const std::string>(std::move(refusal.body)),
                ""});
  }

  void Answer(uint32_t id, StepAnswer a) {
    if (answered) return;
    Issue(plan->OnAnswer(id, std::move(a)));
  }

  // A call cut short by the graph's own deadline (its timer may fire a
  // little before the deadline itself): the graph has timed out.
  bool PastDeadline(const absl::Status& status) {
    if (answered || status.code() != absl::StatusCode::kDeadlineExceeded ||
        Clock::now() + kTimerSlack < deadline)
      return answered;
    TimedOut();
    return true;
  }

  void TimedOut() {
    answered = true;
    HttpResponse out;
    out.status = 504;
    out.body = RouterErrorBody(StrCat("InferenceGraph ", graph->namespace_, "/", graph->name,
                                      " did not answer within ", timeout.count(), " s"));
    Finish(std::move(out));
  }

  // Sends the answer once the plan has one, or the graph's time is up.
  void Conclude() {
    if (answered) return;
    if (plan->done()) {
      answered = true;
      const GraphAnswer& a = plan->answer();
      HttpResponse out;
      out.status = a.http_status;
      out.body = a.body ? *a.body : std::string();
      out.content_type = a.json ? "application/json" : "text/plain; charset=utf-8";
      Finish(std::move(out));
      return;
    }
    if (Clock::now() >= deadline) TimedOut();
  }
};

GraphExecutor::GraphExecutor(Caller* caller, Options options)
    : caller_(caller), options_(std::move(options)), state_(std::make_shared<State>()) {
  for (const std::string& p : options_.propagate_headers) {
    if (p.empty()) continue;
    try {
      patterns_.emplace_back(p, std::regex::ECMAScript | std::regex::optimize);
    } catch (const std::regex_error& e) {
      OSPREY_LOG(kError) << "header propagation pattern \"" << p << "\" left out: " << e.what();
    }
  }
}

GraphExecutor::~GraphExecutor() = default;

std::shared_ptr<const GraphExecutor::State> GraphExecutor::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

void GraphExecutor::Update(std::shared_ptr<const RouteTable> table) {
  auto next = std::make_shared<State>();
  next->table = table;
  std::shared_ptr<const State> previous = Current();
  // A graph whose JSON did not change keeps its compiled form (and its
  // Splitters' draw sequences).
  std::map<std::string_view, std::shared_ptr<const Graph>> known;
  for (const auto& e : previous->graphs) known[e.route->spec_json] = e.graph;
  for (const GraphRoute& g : table->graphs) {
    std::shared_ptr<const Graph> graph;
    if (auto it = known.find(g.spec_json); it != known.end()) {
      graph = it->second;
    } else {
      auto compiled = CompileGraph(g.spec_json);
      if (!compiled.ok()) {
        OSPREY_LOG(kError) << "InferenceGraph " << g.namespace_ << "/" << g.name
                           << " not routed: " << compiled.status().message();
        continue;
      }
      graph = *std::move(compiled);
    }
    next->graphs.push_back({&g, std::move(graph)});
  }
  any_.store(!next->graphs.empty(), std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  state_ = std::move(next);
}

bool GraphExecutor::Handle(const HttpRequest& request, HttpDone& done) {
  std::shared_ptr<const State> state = Current();
  const std::string_view host = internal::HostWithoutPort(FindHeader(request.headers, "Host"));
  const State::Entry* entry = nullptr;
  for (const auto& e : state->graphs) {
    for (const auto& h : e.route->hosts)
      if (internal::HostEquals(h, host)) entry = &e;
    if (entry != nullptr) break;
  }
  if (entry == nullptr) return false;
  if (request.io_context == nullptr) {
    done(ErrorResponse(absl::InternalError("the gateway needs the HTTP server's event loop")));
    return true;
  }
  auto run = std::make_shared<Run>();
  run->state = state;
  run->graph = entry->graph.get();
  run->caller = caller_;
  run->io = request.io_context;
  run->timeout =
      entry->graph->timeout.count() > 0 ? entry->graph->timeout : options_.default_timeout;
  const Clock::time_point start =
      request.arrival.time_since_epoch().count() ? request.arrival : Clock::now();
  run->deadline = start + run->timeout;
  bool content_type = false;
  std::string_view request_id;
  const trace::Tracer* tracer = trace::Active();
  IncomingTrace incoming;
  if (request.headers.visit != nullptr)
    request.headers.visit(request.headers.context, [&](std::string_view n, std::string_view v) {
      // The trace headers are the graph's own (below).
      if (tracer != nullptr && (incoming.Take(n, v) || internal::HeaderNameEquals(n, "tracestate")))
        return;
      if (internal::HeaderNameEquals(n, "x-request-id")) {
        if (request_id.empty()) request_id = v;
        return;
      }
      if (patterns_.empty()) return;
      std::string name = Canonical(n);
      for (const std::regex& p : patterns_)
        if (std::regex_search(name, p)) {
          content_type = content_type || name == "Content-Type";
          run->headers.emplace_back(std::move(name), std::string(v));
          break;
        }
    });
  if (!content_type) run->headers.emplace_back("Content-Type", "application/json");
  run->request_id = request_id.empty() ? MakeRequestId() : std::string(request_id);
  run->headers.emplace_back("x-request-id", run->request_id);
  if (tracer != nullptr) {
    // The graph's span: every step's call (and a plain HTTP step) gets its
    // traceparent, and the client's tracestate.
    std::string lines;
    run->trace = StartCallTrace(tracer->sampler(), incoming, entry->route->trace_sampling, &lines);
    if (!incoming.tracestate.empty())
      StrAppend(&lines, "tracestate: ", incoming.tracestate, "\r\n");
    ForEachHeaderLine(lines, [&](std::string_view n, std::string_view v) {
      run->headers.emplace_back(std::string(n), std::string(v));
    });
    if (run->trace.context.sampled()) {
      run->start = start;
      run->method = std::string(request.method);
      run->host = std::string(host);
      run->target = std::string(request.target);
      run->request_bytes = request.body ? request.body->size() : 0;
    }
  }
  for (const auto& [n, v] : run->headers) StrAppend(&run->header_lines, n, ": ", v, "\r\n");
  run->plan = std::make_unique<GraphRun>(*entry->graph);
  run->done = std::move(done);
  run->Issue(run->plan->Start(request.body ? request.body : std::make_shared<const std::string>()));
  return true;
}

}  // namespace osprey::gateway
