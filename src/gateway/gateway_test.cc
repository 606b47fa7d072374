// The gateway end to end on one event loop of the test's own: its ways in
// (Caller::Call, the HTTP ingress's Handle, AdmitGrpc) against a real
// replica (the HTTP server, over its link, its Unix socket and its port),
// with an observer that records every exchange.

#include "gateway/gateway.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>  // before Asio: its awaitable.hpp needs std::exchange
#include <vector>

#include "common/strings.h"
#include "net/http_server.h"
#include "net/http_upstream.h"

namespace osprey::gateway {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// The replica: /echo answers the body with what it saw; /wait holds the
// call until Release().
class Replica : public HttpHandler {
 public:
  void Handle(const HttpRequest& request, HttpDone done) override {
    if (request.target == "/wait") {
      std::lock_guard<std::mutex> lock(mu);
      held.push_back(std::move(done));
      return;
    }
    HttpResponse r;
    r.status = request.target.starts_with("/echo") ? 200 : 404;
    r.body = request.body ? *request.body : "";
    r.content_type = "text/plain";
    r.header_lines = StrCat("X-Target: ", request.target,
                            "\r\nX-Request-Id-Seen: ", FindHeader(request.headers, "x-request-id"),
                            "\r\nX-Test: ", FindHeader(request.headers, "x-test"), "\r\n");
    // As a transformer passing on its predictor's answer headers.
    if (request.target == "/echo/revision") r.header_lines += "X-Osprey-Revision: upstream-1\r\n";
    done(std::move(r));
  }
  void Release() {
    std::vector<HttpDone> out;
    {
      std::lock_guard<std::mutex> lock(mu);
      out.swap(held);
    }
    for (auto& done : out) done(HttpResponse{});
  }
  size_t Held() {
    std::lock_guard<std::mutex> lock(mu);
    return held.size();
  }
  std::mutex mu;
  std::vector<HttpDone> held;
};

class Recorder : public ExchangeObserver {
 public:
  struct Seen {
    Exchange::Kind kind;
    std::string revision;
    uint16_t port;
    std::string host;
    absl::StatusCode code;
    int http_status;
    std::string request_id;
  };
  void OnComplete(const Exchange& e) override {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back({e.kind, std::string(e.revision), e.replica_port, std::string(e.replica_host),
                    e.code, e.http_status, std::string(e.request_id)});
  }
  std::vector<Seen> All() {
    std::lock_guard<std::mutex> lock(mu);
    return seen;
  }
  std::mutex mu;
  std::vector<Seen> seen;
};

// Headers for a call, read in place.
struct Headers {
  std::vector<std::pair<std::string, std::string>> list;
  HeaderSource Source() const {
    HeaderSource s;
    s.context = this;
    s.visit = [](const void* c, HeaderSource::Visit f) {
      for (const auto& [n, v] : static_cast<const Headers*>(c)->list) f(n, v);
    };
    return s;
  }
};

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    dir_ = std::filesystem::path("/tmp") /
           ("osprey-gw-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    std::filesystem::create_directories(dir_);
    HttpServer::Options options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.threads = 2;
    options.unix_socket = (dir_ / "http.sock").string();
    options.link_socket = (dir_ / "link.sock").string();
    auto server = HttpServer::Start(options, &replica_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    // A port nothing listens on: bound, then closed.
    asio::ip::tcp::acceptor probe(io_,
                                  asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    dead_port_ = probe.local_endpoint().port();
    probe.close();
  }
  void TearDown() override {
    replica_.Release();
    gateway_.reset();
    // Calls still posted to the loop (none expected) are dropped with it.
    io_.run_for(10ms);
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartGateway(Gateway::Options options = {}) {
    options.observers.push_back(recorder_);
    options.on_demand = [this](const std::string& key) {
      std::lock_guard<std::mutex> lock(mu_);
      demanded_.push_back(key);
    };
    gateway_ = std::make_unique<Gateway>(std::move(options));
  }

  // One InferenceService "default/iris" (host iris.example.com, model
  // iris) on revision "iris-1", with the replicas given.
  struct Replicas {
    std::vector<uint16_t> ports;
    std::vector<std::string> http_sockets;
    std::vector<std::string> link_sockets;
    std::vector<std::string> grpc_targets;
    std::vector<std::string> hosts;
  };
  void Route(const Replicas& r, int container_concurrency = 0) {
    auto table = std::make_shared<RouteTable>();
    RevisionTarget t;
    t.key = "default/iris-1";
    t.revision = "iris-1";
    t.ports = r.ports;
    t.http_sockets = r.http_sockets;
    t.link_sockets = r.link_sockets;
    t.grpc_targets = r.grpc_targets;
    t.hosts = r.hosts;
    t.container_concurrency = container_concurrency;
    table->revisions.push_back(t);
    gateway::Route route;
    route.namespace_ = "default";
    route.name = "iris";
    route.model_name = "iris";
    route.hosts = {"iris.example.com"};
    route.split = {{0, 100}};
    table->routes.push_back(route);
    gateway_->Update(table);
  }
  Replicas Link() const { return {{server_->port()}, {""}, {(dir_ / "link.sock").string()}, {""}}; }

  struct Result {
    bool done = false;
    CallResult r;
  };
  // Calls from the loop (as a gateway loop would) and returns where the
  // result lands.
  std::shared_ptr<Result> Call(std::string service, std::string target, std::string body,
                               Headers headers = {},
                               std::chrono::steady_clock::time_point deadline =
                                   std::chrono::steady_clock::time_point::max()) {
    auto result = std::make_shared<Result>();
    asio::post(io_, [=, this, headers = std::move(headers)] {
      CallRequest request;
      request.service = service;
      request.target = target;
      request.body = std::make_shared<const std::string>(body);
      request.headers = headers.Source();
      request.deadline = deadline;
      request.io_context = &io_;
      gateway_->Call(request, [result](CallResult r) {
        result->r = std::move(r);
        result->done = true;
      });
    });
    return result;
  }

  bool RunUntil(const std::function<bool()>& pred) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io_.run_for(2ms);
      io_.restart();
    }
    return true;
  }

  static std::map<std::string, std::string> HeaderMap(std::string_view lines) {
    std::map<std::string, std::string> m;
    ForEachHeaderLine(
        lines, [&](std::string_view n, std::string_view v) { m[std::string(n)] = std::string(v); });
    return m;
  }

  asio::io_context io_;
  Replica replica_;
  std::shared_ptr<Recorder> recorder_ = std::make_shared<Recorder>();
  std::mutex mu_;
  std::vector<std::string> demanded_;
  std::filesystem::path dir_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<Gateway> gateway_;
  uint16_t dead_port_ = 0;
};

TEST_F(GatewayTest, ACallReachesTheServiceOverEachKindOfReplicaTarget) {
  StartGateway();
  const std::string http_socket = (dir_ / "http.sock").string();
  const Replicas kinds[] = {Link(),
                            {{server_->port()}, {http_socket}, {""}, {""}},  // HTTP, Unix socket
                            {{server_->port()}, {""}, {""}, {""}}};          // HTTP, TCP port
  for (const Replicas& kind : kinds) {
    Route(kind);
    auto r = Call("default/iris", "/echo/v1/models/iris:predict", "hello",
                  {{{"x-test", "t1"}, {"X-Request-Id", "rid-7"}}});
    ASSERT_TRUE(RunUntil([&] { return r->done; }));
    ASSERT_TRUE(r->r.status.ok()) << r->r.status;
    EXPECT_EQ(r->r.http_status, 200);
    EXPECT_EQ(r->r.body, "hello");
    auto h = HeaderMap(r->r.header_lines);
    EXPECT_EQ(h["X-Target"], "/echo/v1/models/iris:predict");
    EXPECT_EQ(h["X-Test"], "t1");
    EXPECT_EQ(h["X-Request-Id-Seen"], "rid-7");
  }
  auto seen = recorder_->All();
  ASSERT_EQ(seen.size(), 3u);
  for (const auto& s : seen) {
    EXPECT_EQ(s.kind, Exchange::Kind::kInternal);
    EXPECT_EQ(s.revision, "iris-1");
    EXPECT_EQ(s.port, server_->port());
    EXPECT_EQ(s.http_status, 200);
    EXPECT_EQ(s.request_id, "rid-7");
  }
}

TEST_F(GatewayTest, ACallWithoutARequestIdGetsOneAndTheReplicasStatusComesBack) {
  StartGateway();
  Route(Link());
  auto r = Call("default/iris", "/missing", "");
  ASSERT_TRUE(RunUntil([&] { return r->done; }));
  ASSERT_TRUE(r->r.status.ok()) << r->r.status;
  EXPECT_EQ(r->r.http_status, 404);  // the replica's answer: not the gateway's failure
  EXPECT_EQ(HeaderMap(r->r.header_lines)["X-Request-Id-Seen"].size(), 32u);
}

TEST_F(GatewayTest, CallRefusalsAreStatuses) {
  StartGateway();
  auto unknown = Call("default/fruit", "/echo", "");
  ASSERT_TRUE(RunUntil([&] { return unknown->done; }));
  EXPECT_EQ(unknown->r.status.code(), absl::StatusCode::kNotFound) << unknown->r.status;

  auto table = std::make_shared<RouteTable>();
  gateway::Route route;
  route.namespace_ = "default";
  route.name = "iris";
  table->routes.push_back(route);  // no revision takes traffic
  gateway_->Update(table);
  auto none = Call("default/iris", "/echo", "");
  ASSERT_TRUE(RunUntil([&] { return none->done; }));
  EXPECT_EQ(none->r.status,
            absl::UnavailableError("InferenceService default/iris has no ready revision"));
  EXPECT_TRUE(recorder_->All().empty());  // no revision: no exchange of one
}

TEST_F(GatewayTest, ARefusedConnectionIsRetriedOnAnotherReplica) {
  StartGateway();
  // The first replica (picked first: ties go in route order) refuses.
  Route({{dead_port_, server_->port()}, {"", ""}, {"", ""}, {"", ""}});
  auto r = Call("default/iris", "/echo", "again");
  ASSERT_TRUE(RunUntil([&] { return r->done; }));
  ASSERT_TRUE(r->r.status.ok()) << r->r.status;
  EXPECT_EQ(r->r.body, "again");
  auto seen = recorder_->All();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].port, server_->port());

  Route({{dead_port_}, {""}, {""}, {""}});  // nowhere else to go
  auto failed = Call("default/iris", "/echo", "");
  ASSERT_TRUE(RunUntil([&] { return failed->done; }));
  EXPECT_EQ(failed->r.status.code(), absl::StatusCode::kUnavailable) << failed->r.status;
  EXPECT_TRUE(StatusMessage(failed->r.status).starts_with("revision iris-1: ")) << failed->r.status;
}

// Replicas on other hosts (pods) all listen on one port: each is its host
// and port. Two servers on 127.0.0.2 and 127.0.0.3, same port, one call at a
// time each: a call released on one host frees that host only.
TEST_F(GatewayTest, ReplicasOnOtherHostsAreTheirHostAndPort) {
  Replica second;
  HttpServer::Options options;
  options.address = "127.0.0.2";
  options.port = 0;
  options.threads = 1;
  auto a = HttpServer::Start(options, &replica_);
  ASSERT_TRUE(a.ok()) << a.status();
  options.address = "127.0.0.3";
  options.port = (*a)->port();
  auto b = HttpServer::Start(options, &second);
  ASSERT_TRUE(b.ok()) << b.status();
  const uint16_t port = (*a)->port();
  StartGateway();
  Route({.ports = {port, port},
         .grpc_targets = {StrCat("127.0.0.2:", port + 1), StrCat("127.0.0.3:", port + 1)},
         .hosts = {"127.0.0.2", "127.0.0.3"}},
        /*container_concurrency=*/1);
  auto first = Call("default/iris", "/wait", "");
  auto other = Call("default/iris", "/wait", "");
  ASSERT_TRUE(RunUntil([&] { return replica_.Held() == 1 && second.Held() == 1; }));
  auto third = Call("default/iris", "/echo", "third");  // both busy: it waits
  io_.run_for(20ms);
  io_.restart();
  EXPECT_FALSE(third->done);
  second.Release();  // 127.0.0.3 has room again, 127.0.0.2 not
  ASSERT_TRUE(RunUntil([&] { return other->done && third->done; }));
  EXPECT_TRUE(third->r.status.ok()) << third->r.status;
  EXPECT_EQ(third->r.body, "third");
  EXPECT_FALSE(first->done);
  replica_.Release();
  ASSERT_TRUE(RunUntil([&] { return first->done; }));
  auto seen = recorder_->All();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].host, "127.0.0.3");  // `other`, then `third` on the same host
  EXPECT_EQ(seen[1].host, "127.0.0.3");
  EXPECT_EQ(seen[2].host, "127.0.0.2");
  for (const auto& s : seen) EXPECT_EQ(s.port, port);

  // gRPC gets the replica's own host:port target.
  std::string target;
  gateway_->AdmitGrpc(
      "iris.example.com", "",
      [&](std::shared_ptr<Gateway::GrpcTicket> ticket, const std::string& t, int) {
        target = t;
        gateway_->FinishGrpc(std::move(ticket), 0);
      },
      [](absl::Status) {});
  EXPECT_EQ(target, StrCat("127.0.0.2:", port + 1));

  // A host that refuses: the call is retried on the other host.
  Route({.ports = {dead_port_, port}, .hosts = {"127.0.0.2", "127.0.0.3"}});
  auto retried = Call("default/iris", "/echo", "again");
  ASSERT_TRUE(RunUntil([&] { return retried->done; }));
  ASSERT_TRUE(retried->r.status.ok()) << retried->r.status;
  EXPECT_EQ(recorder_->All().back().host, "127.0.0.3");
  second.Release();
  gateway_.reset();
  (*a)->Drain(std::chrono::milliseconds(100));
  (*b)->Drain(std::chrono::milliseconds(100));
}

TEST_F(GatewayTest, ACallWaitsForAReplicaThenGoes) {
  StartGateway();
  Route({});  // at zero
  auto r = Call("default/iris", "/echo", "late");
  ASSERT_TRUE(RunUntil([&] {
    std::lock_guard<std::mutex> lock(mu_);
    return !demanded_.empty();
  }));
  EXPECT_EQ(demanded_[0], "default/iris-1");
  EXPECT_FALSE(r->done);
  Route(Link());  // a replica is ready: the queued call is posted to its loop
  ASSERT_TRUE(RunUntil([&] { return r->done; }));
  ASSERT_TRUE(r->r.status.ok()) << r->r.status;
  EXPECT_EQ(r->r.body, "late");
}

TEST_F(GatewayTest, AQueuedCallEndsAtItsOwnDeadline) {
  StartGateway();
  Route(Link(), /*container_concurrency=*/1);
  auto busy = Call("default/iris", "/wait", "");
  ASSERT_TRUE(RunUntil([&] { return replica_.Held() == 1; }));
  auto r = Call("default/iris", "/echo", "", {}, std::chrono::steady_clock::now() + 50ms);
  ASSERT_TRUE(RunUntil([&] { return r->done; }));
  EXPECT_EQ(r->r.status.code(), absl::StatusCode::kDeadlineExceeded) << r->r.status;
  replica_.Release();
  ASSERT_TRUE(RunUntil([&] { return busy->done; }));
  EXPECT_TRUE(busy->r.status.ok());
}

// The HTTP ingress: a client's request, with the gateway's own headers on
// the answer, and refusals encoded as HTTP.
TEST_F(GatewayTest, HandleProxiesAndEncodesRefusalsForHttp) {
  Gateway::Options options;
  options.queue_limit = 0;  // nothing waits: a busy revision refuses at once
  StartGateway(std::move(options));
  Route(Link(), /*container_concurrency=*/1);
  struct Answer {
    bool done = false;
    HttpResponse r;
  };
  auto handle = [&](std::string host, std::string target) {
    auto answer = std::make_shared<Answer>();
    asio::post(io_, [=, this] {
      Headers headers{{{"Host", host}}};
      HttpRequest request;
      request.method = "POST";
      request.target = target;
      request.headers = headers.Source();
      request.body = std::make_shared<const std::string>("b");
      request.io_context = &io_;
      gateway_->Handle(request, [answer](HttpResponse r) {
        answer->r = std::move(r);
        answer->done = true;
      });
    });
    return answer;
  };
  auto ok = handle("iris.example.com", "/echo");
  ASSERT_TRUE(RunUntil([&] { return ok->done; }));
  EXPECT_EQ(ok->r.status, 200);
  auto h = HeaderMap(ok->r.header_lines);
  EXPECT_EQ(h["x-osprey-revision"], "iris-1");
  EXPECT_EQ(h["x-request-id"].size(), 32u);
  auto passed_on = handle("iris.example.com", "/echo/revision");
  ASSERT_TRUE(RunUntil([&] { return passed_on->done; }));
  const std::string& lines = passed_on->r.header_lines;
  EXPECT_EQ(lines.find("upstream-1"), std::string::npos) << lines;
  EXPECT_EQ(lines.find("revision: iris-1"), lines.rfind("revision: iris-1")) << "once: " << lines;
  EXPECT_NE(lines.find("x-osprey-revision: iris-1"), std::string::npos) << lines;

  auto missing = handle("fruit.example.com", "/echo");
  ASSERT_TRUE(RunUntil([&] { return missing->done; }));
  EXPECT_EQ(missing->r.status, 404);
  EXPECT_NE(missing->r.body.find("no InferenceService serves host 'fruit.example.com'"),
            std::string::npos);

  auto held = handle("iris.example.com", "/wait");
  ASSERT_TRUE(RunUntil([&] { return replica_.Held() == 1; }));
  auto full = handle("iris.example.com", "/echo");
  ASSERT_TRUE(RunUntil([&] { return full->done; }));
  EXPECT_EQ(full->r.status, 503);
  EXPECT_EQ(HeaderMap(full->r.header_lines)["Retry-After"], "1");
  EXPECT_EQ(full->r.body,
            R"({"error":"revision iris-1 is at capacity: 0 requests are already waiting"})");
  replica_.Release();
  ASSERT_TRUE(RunUntil([&] { return held->done; }));

  const std::string metrics = gateway_->RenderMetrics();
  for (
      const char* line : {
          R"(osprey_gateway_requests_total{namespace="default",inferenceservice="iris",component="",revision="iris-1",code_class="2xx"} 3)",
          R"(osprey_gateway_requests_total{namespace="default",inferenceservice="iris",component="",revision="iris-1",code_class="5xx"} 1)",
          R"(osprey_gateway_request_duration_seconds_count{namespace="default",inferenceservice="iris",component="",revision="iris-1"} 4)",
          R"(osprey_gateway_concurrency{namespace="default",inferenceservice="iris",component="",revision="iris-1"} 0)",
      })
    EXPECT_NE(metrics.find(line), std::string::npos) << line << "\n" << metrics;
  // The revision no longer routed (deleted), its series go.
  gateway_->Update(std::make_shared<RouteTable>());
  EXPECT_EQ(gateway_->RenderMetrics().find(R"(revision="iris-1")"), std::string::npos);
}

TEST_F(GatewayTest, GrpcAdmissionGivesTheTargetOrAStatus) {
  StartGateway();
  Route({{server_->port()}, {""}, {""}, {""}});  // a custom container: no gRPC
  struct Outcome {
    std::atomic<bool> done{false};
    absl::Status refused;
    std::string target;
  };
  auto admit = [&](std::string host, std::string model) {
    auto o = std::make_shared<Outcome>();
    gateway_->AdmitGrpc(
        host, model,
        [this, o](std::shared_ptr<Gateway::GrpcTicket> ticket, const std::string& target, int) {
          o->target = target;
          gateway_->FinishGrpc(std::move(ticket), 0);
          o->done = true;
        },
        [o](absl::Status s) {
          o->refused = std::move(s);
          o->done = true;
        });
    return o;
  };
  auto none = admit("fruit.example.com", "");
  ASSERT_TRUE(none->done);
  EXPECT_EQ(none->refused.code(), absl::StatusCode::kNotFound);
  auto custom = admit("", "iris");  // by the model name
  ASSERT_TRUE(custom->done);
  EXPECT_EQ(custom->refused.code(), absl::StatusCode::kUnimplemented) << custom->refused;

  Route({{server_->port()}, {""}, {""}, {"unix:/tmp/x.sock"}});
  auto served = admit("iris.example.com", "");
  ASSERT_TRUE(served->done);
  EXPECT_TRUE(served->refused.ok());
  EXPECT_EQ(served->target, "unix:/tmp/x.sock");
  auto seen = recorder_->All();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].kind, Exchange::Kind::kGrpc);
  EXPECT_EQ(seen[0].code, absl::StatusCode::kUnimplemented);
  EXPECT_EQ(seen[1].code, absl::StatusCode::kOk);
  EXPECT_NE(
      gateway_->RenderMetrics().find(
          R"(osprey_gateway_requests_total{namespace="default",inferenceservice="iris",component="",revision="iris-1",code_class="5xx"} 1)"),
      std::string::npos);
}

}  // namespace
}  // namespace osprey::gateway
