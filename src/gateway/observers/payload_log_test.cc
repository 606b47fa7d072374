#include "gateway/observers/payload_log.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/strings.h"
#include "gateway/route_table.h"
#include "net/http_server.h"

namespace osprey::gateway {
namespace {

using Mode = RouteLogger::Mode;

// An exchange of route `r`: a V1 predict answered 200 (or as `status`).
Exchange Http(const Route& r, int status = 200) {
  Exchange e;
  e.kind = Exchange::Kind::kHttp;
  e.route = &r;
  e.request_id = "req-1";
  e.revision = "iris-predictor-00001";
  e.http_status = status;
  e.request_head =
      "POST /v1/models/iris:predict HTTP/1.1\r\nHost: iris.example.com\r\n"
      "Content-Type: application/json\r\nX-B3-Traceid: t1\r\nx-tenant: a\r\nX-Tenant: b\r\n"
      "x-request-id: req-1\r\nContent-Length: 20\r\n\r\n";
  e.request_body = R"({"instances":[[1]]})";
  e.response_headers = "content-type: application/json\r\nx-osprey-revision: r1\r\n";
  e.response_body = R"({"predictions":[1]})";
  return e;
}

Route WithLogger(Mode mode, std::vector<std::string> headers = {},
                 std::vector<std::pair<std::string, std::string>> annotations = {}) {
  Route r;
  r.namespace_ = "default";
  r.name = "iris";
  auto l = std::make_shared<RouteLogger>();
  l->url = "http://sink.local/events";
  l->mode = mode;
  l->component = "predictor";
  l->metadata_headers = std::move(headers);
  l->annotations = std::move(annotations);
  r.logger = std::move(l);
  return r;
}

// An event as text: its URL, one "Name: value" line per header, its body.
std::string Render(const PayloadEvent& ev) {
  std::string out = ev.url + "\n";
  for (const auto& [n, v] : ev.headers) out += n + ": " + v + "\n";
  return out + ev.body + "\n";
}

std::string Events(const Exchange& e) {
  std::vector<PayloadEvent> events;
  BuildPayloadEvents(e, "T0", "T1", &events);
  std::string out;
  for (const auto& ev : events) out += Render(ev) + "--\n";
  return out;
}

constexpr char kCommon[] =
    "Ce-Inferenceservicename: iris\nCe-Namespace: default\nCe-Component: predictor\n"
    "Ce-Endpoint: iris-predictor-00001\n";

TEST(BuildPayloadEvents, ByModeAndOutcome) {
  const Route all =
      WithLogger(Mode::kAll, {"x-b3-traceid", "X-TENANT", "x-absent"}, {{"team", "fraud"}});
  const Route request = WithLogger(Mode::kRequest);
  const Route response = WithLogger(Mode::kResponse);
  Exchange failed = Http(response, 503);
  failed.response_headers = "";
  failed.response_content_type = "application/json";
  failed.response_body = R"({"error":"revision iris-predictor-00001 has no ready replica"})";
  Exchange ce_id = Http(request);
  ce_id.request_head = "POST / HTTP/1.1\r\nCe-Id: given\r\n\r\n";
  ce_id.request_body = "raw bytes \x01\x02";
  Route none;
  Exchange grpc = Http(all);
  grpc.kind = Exchange::Kind::kGrpc;
  Exchange mirror = Http(all);
  mirror.kind = Exchange::Kind::kMirror;
  struct Case {
    const char* name;
    Exchange exchange;
    std::string want;
  } cases[] = {
      {"all: both events, one id, metadata in the order named, all values, annotations", Http(all),
       StrCat("http://sink.local/events\nCe-Specversion: 1.0\nCe-Id: req-1\n"
              "Ce-Type: org.kubeflow.serving.inference.request\nCe-Source: iris-predictor-00001\n"
              "Ce-Time: T0\n",
              kCommon,
              "Ce-Metadata: {\"X-B3-Traceid\":[\"t1\"],\"X-Tenant\":[\"a\",\"b\"]}\n"
              "Ce-Annotations: {\"team\":\"fraud\"}\nContent-Type: application/json\n"
              "{\"instances\":[[1]]}\n--\n"
              "http://sink.local/events\nCe-Specversion: 1.0\nCe-Id: req-1\n"
              "Ce-Type: org.kubeflow.serving.inference.response\n"
              "Ce-Source: iris-predictor-00001\nCe-Time: T1\n",
              kCommon,
              "Ce-Metadata: {\"X-B3-Traceid\":[\"t1\"],\"X-Tenant\":[\"a\",\"b\"]}\n"
              "Ce-Annotations: {\"team\":\"fraud\"}\nCe-Httpstatus: 200\n"
              "Content-Type: application/json\n{\"predictions\":[1]}\n--\n")},
      {"request only; the request's own Ce-Id wins; no Content-Type: none", ce_id,
       StrCat("http://sink.local/events\nCe-Specversion: 1.0\nCe-Id: given\n"
              "Ce-Type: org.kubeflow.serving.inference.request\nCe-Source: iris-predictor-00001\n"
              "Ce-Time: T0\n",
              kCommon, "Ce-Metadata: {}\nraw bytes \x01\x02\n--\n")},
      {"response only, a failure: the gateway's answer and its status", failed,
       StrCat("http://sink.local/events\nCe-Specversion: 1.0\nCe-Id: req-1\n"
              "Ce-Type: org.kubeflow.serving.inference.response\n"
              "Ce-Source: iris-predictor-00001\nCe-Time: T1\n",
              kCommon,
              "Ce-Metadata: {}\nCe-Httpstatus: 503\nContent-Type: application/json\n"
              "{\"error\":\"revision iris-predictor-00001 has no ready replica\"}\n--\n")},
      {"no logger: nothing", Http(none), ""},
      {"gRPC: not logged", grpc, ""},
      {"a mirror copy: not logged", mirror, ""},
  };
  for (const auto& c : cases) EXPECT_EQ(Events(c.exchange), c.want) << c.name;
}

TEST(PayloadLog, SinkUrlsAndAnswerFraming) {
  SinkUrl u;
  ASSERT_TRUE(ParseSinkUrl("http://sink.local:8080/events?x=1", &u));
  EXPECT_EQ(u.host + " " + u.port + " " + u.authority + " " + u.path,
            "sink.local 8080 sink.local:8080 /events?x=1");
  ASSERT_TRUE(ParseSinkUrl("http://message-dumper.default", &u));
  EXPECT_EQ(u.host + " " + u.port + " " + u.path, "message-dumper.default 80 /");
  ASSERT_TRUE(ParseSinkUrl("http://[::1]:9000/", &u));
  EXPECT_EQ(u.host + " " + u.port, "::1 9000");
  EXPECT_FALSE(ParseSinkUrl("https://sink/", &u)) << "libcurl's";
  EXPECT_FALSE(ParseSinkUrl("http://user@sink/", &u));

  struct Case {
    const char* name;
    std::string in;
    int want;  // ParseResponse's result
    int status;
    size_t consumed;
    bool close;
  } cases[] = {
      {"content-length", "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nokHTTP/1.1", 1, 202, 46,
       false},
      {"incomplete body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", 0, 0, 0, false},
      {"incomplete head", "HTTP/1.1 200 OK\r\nContent-Len", 0, 0, 0, false},
      {"chunked with trailers",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
       "2\r\nok\r\n0\r\nX-T: 1\r\n\r\nnext",
       1, 200, 67, false},
      {"no body: 204", "HTTP/1.1 204 No Content\r\n\r\n", 1, 204, 27, false},
      {"connection close", "HTTP/1.1 503 x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 1,
       503, 56, true},
      {"HTTP/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 1, 200, 38, true},
      {"close-delimited body: the head", "HTTP/1.1 200 OK\r\n\r\nbody", 2, 200, 19, true},
      {"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", -1, 0, 0, false},
  };
  for (const auto& c : cases) {
    int status = 0;
    size_t consumed = 0;
    bool close = false;
    EXPECT_EQ(ParseResponse(c.in, &status, &consumed, &close), c.want) << c.name;
    if (c.want != 1 && c.want != 2) continue;
    EXPECT_EQ(status, c.status) << c.name;
    EXPECT_EQ(consumed, c.consumed) << c.name;
    EXPECT_EQ(close, c.close) << c.name;
  }
}

TEST(PayloadLog, Rfc3339AndCanonicalNames) {
  using namespace std::chrono;
  EXPECT_EQ(Rfc3339(system_clock::time_point(seconds(0))), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(Rfc3339(system_clock::time_point(microseconds(1796315200123456))),
            "2026-12-03T16:26:40.123456Z");
  EXPECT_EQ(CanonicalHeaderName("x-request-id"), "X-Request-Id");
  EXPECT_EQ(CanonicalHeaderName("X-B3-TRACEID"), "X-B3-Traceid");
  EXPECT_EQ(CanonicalHeaderName("traceparent"), "Traceparent");
}

// A sink that answers every POST with `status` and keeps what it got.
class Sink : public HttpHandler {
 public:
  void Handle(const HttpRequest& request, HttpDone done) override {
    HttpResponse r;
    {
      std::lock_guard<std::mutex> lock(mu_);
      got.push_back(StrCat(
          FindHeader(request.headers, "ce-type"), " ", FindHeader(request.headers, "ce-id"), " ",
          FindHeader(request.headers, "content-type"), " ", request.body ? *request.body : ""));
      r.status = status;
    }
    cv_.notify_all();
    r.body = "{}";
    done(std::move(r));
  }
  bool WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return got.size() >= n; });
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> got;
  int status = 200;
};

// Waits (with a deadline) until `done` holds of the observer's counts.
template <typename Pred>
bool WaitCounts(const PayloadLogObserver& o, Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done(o.counts())) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // polling, with a deadline
  }
  return false;
}

TEST(PayloadLogObserver, DeliversToARealSink) {
  Sink sink;
  HttpServer::Options so;
  so.address = "127.0.0.1";
  so.port = 0;
  auto server = HttpServer::Start(so, &sink);
  ASSERT_TRUE(server.ok()) << server.status();
  Route r = WithLogger(Mode::kAll);
  auto l = std::make_shared<RouteLogger>(*r.logger);
  l->url = StrCat("http://127.0.0.1:", (*server)->port(), "/");
  r.logger = l;
  PayloadLogObserver o({});
  for (int i = 0; i < 500; ++i) o.OnComplete(Http(r));  // pipelined in batches
  ASSERT_TRUE(sink.WaitFor(1000));
  ASSERT_TRUE(WaitCounts(o, [](const auto& c) { return c.sent == 1000; }));
  std::lock_guard<std::mutex> lock(sink.mu_);
  EXPECT_EQ(std::count(sink.got.begin(), sink.got.end(),
                       "org.kubeflow.serving.inference.request req-1 application/json "
                       "{\"instances\":[[1]]}"),
            500);
  EXPECT_EQ(std::count(sink.got.begin(), sink.got.end(),
                       "org.kubeflow.serving.inference.response req-1 application/json "
                       "{\"predictions\":[1]}"),
            500);
  EXPECT_EQ(o.counts().failed, 0u);
  EXPECT_EQ(o.counts().retries, 0u);
}

// A sink that answers one request per connection, as Python's
// http.server does by default: HTTP/1.0, no Content-Length, then it closes.
class OneShotSink {
 public:
  OneShotSink() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len);
    ::listen(fd_, 64);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~OneShotSink() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  int port = 0;
  std::atomic<int> requests{0};

 private:
  void Run() {
    for (;;) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string in;
      char buf[4096];
      for (;;) {  // one request: its head, then Content-Length bytes
        const size_t head = in.find("\r\n\r\n");
        if (head != std::string::npos) {
          const size_t at = in.find("Content-Length: ");
          const size_t length = at == std::string::npos ? 0 : std::stoul(in.substr(at + 16));
          if (in.size() >= head + 4 + length) break;
        }
        const ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      }
      if (in.find("\r\n\r\n") != std::string::npos) {
        ++requests;
        const std::string answer = "HTTP/1.0 200 OK\r\nServer: one-shot\r\n\r\n";
        (void)::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      }
      ::close(c);
    }
  }
  int fd_ = -1;
  std::thread thread_;
};

// Every event reaches such a sink once: the rest of a pipelined write goes
// again at once on new connections, one each, without using up an attempt.
TEST(PayloadLogObserver, DeliversToASinkThatClosesAfterEachAnswer) {
  OneShotSink sink;
  Route r = WithLogger(Mode::kAll);
  auto l = std::make_shared<RouteLogger>(*r.logger);
  l->url = StrCat("http://127.0.0.1:", sink.port, "/");
  r.logger = l;
  PayloadLogObserver o({});
  for (int i = 0; i < 100; ++i) o.OnComplete(Http(r));
  ASSERT_TRUE(WaitCounts(o, [](const auto& c) { return c.sent == 200; }))
      << o.counts().sent << " sent, " << o.counts().failed << " failed";
  EXPECT_EQ(sink.requests.load(), 200);
  EXPECT_EQ(o.counts().failed, 0u);
  EXPECT_EQ(o.counts().retries, 0u);
}

// Events to two sinks interleaved in the queue: each sink gets all of its
// own, in batches of its own.
TEST(PayloadLogObserver, TwoSinksInterleaved) {
  Sink a, b;
  HttpServer::Options so;
  so.address = "127.0.0.1";
  so.port = 0;
  auto server_a = HttpServer::Start(so, &a);
  auto server_b = HttpServer::Start(so, &b);
  ASSERT_TRUE(server_a.ok() && server_b.ok());
  Route ra = WithLogger(Mode::kRequest), rb = WithLogger(Mode::kRequest);
  auto la = std::make_shared<RouteLogger>(*ra.logger);
  auto lb = std::make_shared<RouteLogger>(*rb.logger);
  la->url = StrCat("http://127.0.0.1:", (*server_a)->port(), "/a");
  lb->url = StrCat("http://127.0.0.1:", (*server_b)->port(), "/b");
  ra.logger = la;
  rb.logger = lb;
  PayloadLogObserver o({});
  for (int i = 0; i < 300; ++i) {
    o.OnComplete(Http(ra));
    o.OnComplete(Http(rb));
  }
  ASSERT_TRUE(WaitCounts(o, [](const auto& c) { return c.sent == 600; })) << o.counts().sent;
  EXPECT_TRUE(a.WaitFor(300));
  EXPECT_TRUE(b.WaitFor(300));
  std::lock_guard<std::mutex> la_lock(a.mu_), lb_lock(b.mu_);
  EXPECT_EQ(a.got.size(), 300u);
  EXPECT_EQ(b.got.size(), 300u);
}

// A sink that refuses with 400: given up at once; with 503: retried.
TEST(PayloadLogObserver, RetriesOnlyWhatMaySucceedLater) {
  Sink sink;
  HttpServer::Options so;
  so.address = "127.0.0.1";
  so.port = 0;
  auto server = HttpServer::Start(so, &sink);
  ASSERT_TRUE(server.ok()) << server.status();
  Route r = WithLogger(Mode::kRequest);
  auto l = std::make_shared<RouteLogger>(*r.logger);
  l->url = StrCat("http://127.0.0.1:", (*server)->port(), "/");
  r.logger = l;
  PayloadLogObserver::Options opts;
  opts.backoff = std::chrono::milliseconds(1);
  opts.attempts = 3;
  {
    sink.status = 400;
    PayloadLogObserver o(opts);
    o.OnComplete(Http(r));
    ASSERT_TRUE(WaitCounts(o, [](const auto& c) { return c.failed == 1; }));
    EXPECT_EQ(o.counts().retries, 0u);
  }
  {
    std::lock_guard<std::mutex> lock(sink.mu_);
    sink.status = 503;
  }
  PayloadLogObserver o(opts);
  o.OnComplete(Http(r));
  ASSERT_TRUE(WaitCounts(o, [](const auto& c) { return c.failed == 1; }));
  EXPECT_EQ(o.counts().retries, 2u);
  EXPECT_EQ(o.counts().sent, 0u);
  std::string text;
  o.Render(&text);
  EXPECT_NE(text.find("osprey_gateway_payload_log_events_total{result=\"failed\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("osprey_gateway_payload_log_retries_total 2\n"), std::string::npos);
}

// A sink that is down: OnComplete returns at once whatever happens; events
// past the queue bound are dropped and counted; each queued one is tried
// `attempts` times, then given up.
TEST(PayloadLogObserver, SinkDownNeverBlocksAndCountsDrops) {
  Route r = WithLogger(Mode::kAll);
  auto l = std::make_shared<RouteLogger>(*r.logger);
  l->url = "http://127.0.0.1:1/";  // nothing listens on port 1
  r.logger = l;
  PayloadLogObserver::Options opts;
  opts.queue_limit = 10;
  opts.senders = 1;
  opts.attempts = 2;
  opts.backoff = std::chrono::milliseconds(200);
  PayloadLogObserver o(opts);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) o.OnComplete(Http(r));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
  // 200 events: at most the queue's 10 and a batch being tried (64) are kept.
  EXPECT_GE(o.counts().dropped, 200u - 10u - 64u);
  ASSERT_TRUE(WaitCounts(o, [](const auto& c) { return c.retries >= 1; }));
  std::string text;
  o.Render(&text);
  EXPECT_NE(text.find("osprey_gateway_payload_log_events_total{result=\"dropped\"} "),
            std::string::npos);
  EXPECT_NE(text.find("osprey_gateway_payload_log_queue_depth "), std::string::npos);
}

// A sink that takes connections and never answers holds no thread while it
// backs off: with one sender, a healthy sink's events are all delivered
// while the dead one's are still being retried.
TEST(PayloadLogObserver, ASinkThatHangsDelaysOnlyItsOwnEvents) {
  // Listening, never accepting: connections are made, nothing answers.
  const int hang = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(hang, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(hang, 64), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(hang, reinterpret_cast<sockaddr*>(&addr), &len);
  Sink ok;
  HttpServer::Options so;
  so.address = "127.0.0.1";
  so.port = 0;
  auto server = HttpServer::Start(so, &ok);
  ASSERT_TRUE(server.ok()) << server.status();
  Route dead = WithLogger(Mode::kRequest), live = WithLogger(Mode::kRequest);
  auto ld = std::make_shared<RouteLogger>(*dead.logger);
  auto ll = std::make_shared<RouteLogger>(*live.logger);
  ld->url = StrCat("http://127.0.0.1:", ntohs(addr.sin_port), "/");
  ll->url = StrCat("http://127.0.0.1:", (*server)->port(), "/");
  dead.logger = ld;
  live.logger = ll;
  PayloadLogObserver::Options opts;
  opts.senders = 1;
  opts.attempts = 4;
  opts.timeout = std::chrono::milliseconds(300);
  opts.backoff = std::chrono::milliseconds(200);
  PayloadLogObserver o(opts);
  o.OnComplete(Http(dead));  // first in line
  for (int i = 0; i < 10; ++i) o.OnComplete(Http(live));
  ASSERT_TRUE(ok.WaitFor(10));
  ASSERT_TRUE(WaitCounts(o, [](const auto& c) { return c.sent == 10; }));
  // The dead sink's event is still being tried (4 attempts: over 2 s).
  EXPECT_EQ(o.counts().failed, 0u);
  ASSERT_TRUE(WaitCounts(o, [](const auto& c) { return c.failed == 1; }));
  EXPECT_EQ(o.counts().retries, 3u);
  ::close(hang);
}

}  // namespace
}  // namespace osprey::gateway
