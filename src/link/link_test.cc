// The replica link end to end: the gateway's side (link_client.h) against
// the HTTP server's link sessions, over a real Unix socket.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>  // before Asio: its awaitable.hpp needs std::exchange
#include <vector>

#include "common/strings.h"
#include "link/frame.h"
#include "link/link_client.h"
#include "net/http_server.h"

namespace osprey::link {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// /echo: the body back, with what the replica saw in headers.
// /slow?ms=N: answered after N ms from another thread.
// /ihl: echoes the Inference-Header-Content-Length it got.
// /hang: never answered (the callback is dropped), as by a replica that died.
class TestHandler : public HttpHandler {
 public:
  void Handle(const HttpRequest& request, HttpDone done) override {
    started.fetch_add(1);
    std::string_view target = request.target;
    {
      std::lock_guard<std::mutex> lock(mu);
      loop_of[std::string(target)] = request.io_context;
    }
    HttpResponse r;
    if (target.substr(0, 9) == "/slow?ms=") {
      const int ms = std::atoi(std::string(target.substr(9)).c_str());
      std::lock_guard<std::mutex> lock(mu);
      threads.emplace_back([this, ms, done = std::move(done)]() mutable {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        HttpResponse r;
        r.body = "slow";
        done(std::move(r));
        slow_answered.fetch_add(1);
      });
      return;
    }
    if (target == "/hang") return;
    if (target.substr(0, 5) == "/wait") {  // held until Release()
      std::lock_guard<std::mutex> lock(mu);
      held.push_back(std::move(done));
      max_held = std::max(max_held, held.size());
      return;
    }
    if (target == "/ihl") {
      r.body = request.inference_header_length ? std::to_string(*request.inference_header_length)
                                               : "none";
      r.inference_header_length = 2;
      r.content_type = "application/octet-stream";
      done(std::move(r));
      return;
    }
    r.status = target == "/echo" ? 200 : 404;
    r.body = *request.body;
    r.content_type = "text/plain";
    r.header_lines = StrCat("X-Method: ", request.method, "\r\nX-Target: ", request.target,
                            "\r\nX-Test: ", FindHeader(request.headers, "x-test"), "\r\n");
    done(std::move(r));
  }
  // Answers every held /wait call ("held").
  void Release() {
    std::vector<HttpDone> out;
    {
      std::lock_guard<std::mutex> lock(mu);
      out.swap(held);
    }
    for (auto& done : out) {
      HttpResponse r;
      r.body = "held";
      done(std::move(r));
    }
  }
  size_t Held() {
    std::lock_guard<std::mutex> lock(mu);
    return held.size();
  }
  // Before the server goes: the slow answers are posted to its loops.
  void JoinAll() {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& t : threads) t.join();
    threads.clear();
  }
  std::atomic<int> started{0};
  std::atomic<int> slow_answered{0};
  std::mutex mu;
  std::vector<std::thread> threads;
  std::vector<HttpDone> held;
  size_t max_held = 0;
  std::map<std::string, void*> loop_of;  // target -> the replica loop that ran it
  void* LoopOf(const std::string& target) {
    std::lock_guard<std::mutex> lock(mu);
    return loop_of.at(target);
  }
};

// One loop for every test (links are kept per loop thread, for the life of
// the process, as the gateway's loops are).
asio::io_context& Io() {
  static auto* io = new asio::io_context;
  return *io;
}

// A plain client socket on the link, for writing frames by hand; reads time
// out after 10 s, so a regression fails instead of hanging. -1 on failure.
int ConnectRaw(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

class LinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Short: a Unix socket path holds ~107 bytes, whatever TMPDIR is.
    static int n = 0;
    dir_ = std::filesystem::path("/tmp") /
           ("osprey-lt-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "link.sock").string();
    HttpServer::Options options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.threads = 2;
    options.link_socket = path_;
    auto server = HttpServer::Start(options, &handler_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  void TearDown() override {
    handler_.Release();
    handler_.JoinAll();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  struct Result {
    bool done = false;
    UpstreamResult r;
  };

  // Starts a call on io (from its thread) and returns where its result lands.
  std::shared_ptr<Result> Call(std::string method_target, std::string body = "",
                               std::chrono::milliseconds timeout = 10s,
                               std::string extra_headers = "", std::string path = "") {
    auto result = std::make_shared<Result>();
    auto head = std::make_shared<std::string>(StrCat(method_target, " HTTP/1.1\r\nHost: x\r\n",
                                                     extra_headers, "Content-Length: ", body.size(),
                                                     "\r\n\r\n"));
    auto shared_body = std::make_shared<const std::string>(std::move(body));
    auto socket = std::make_shared<std::string>(path.empty() ? path_ : path);
    asio::post(io_, [this, result, head, shared_body, socket, timeout] {
      UpstreamRequest request;
      request.io_context = &io_;
      request.port = 1;
      request.unix_socket = *socket;
      request.links = links_;
      request.head = *head;
      request.body = shared_body;
      request.timeout = timeout;
      SendOnLink(std::move(request), [result, head, socket](UpstreamResult r) {
        result->r = std::move(r);
        result->done = true;
      });
    });
    return result;
  }

  // Runs io until pred holds or 10 s pass.
  bool RunUntil(const std::function<bool()>& pred) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io_.run_for(2ms);
      io_.restart();
    }
    return true;
  }

  asio::io_context& io_ = Io();
  int links_ = 1;  // UpstreamRequest::links of the calls made
  TestHandler handler_;
  std::filesystem::path dir_;
  std::string path_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(LinkTest, ManyCallsShareTheLinkAndEachGetsItsOwnAnswer) {
  std::vector<std::shared_ptr<Result>> results;
  for (int i = 0; i < 300; ++i)
    results.push_back(Call("POST /echo", StrCat("body-", i), 10s, StrCat("x-test: v", i, "\r\n")));
  ASSERT_TRUE(RunUntil([&] {
    for (auto& r : results)
      if (!r->done) return false;
    return true;
  }));
  for (int i = 0; i < 300; ++i) {
    const UpstreamResult& r = results[i]->r;
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.http_status, 200);
    EXPECT_EQ(r.body, StrCat("body-", i));
    std::map<std::string, std::string> headers;
    ForEachHeaderLine(r.header_lines,
                      [&](std::string_view n, std::string_view v) { headers[std::string(n)] = v; });
    EXPECT_EQ(headers["Content-Type"], "text/plain");
    EXPECT_EQ(headers["X-Method"], "POST");
    EXPECT_EQ(headers["X-Target"], "/echo");
    EXPECT_EQ(headers["X-Test"], StrCat("v", i));
  }
}

TEST_F(LinkTest, StatusHeadAndInferenceHeaderLengthCross) {
  auto missing = Call("GET /nowhere", "x");
  auto head = Call("HEAD /echo", "");
  auto ihl = Call("POST /ihl", "{}", 10s, "Inference-Header-Content-Length: 2\r\n");
  auto bad = Call("POST /ihl", "{}", 10s, "Inference-Header-Content-Length: two\r\n");
  ASSERT_TRUE(RunUntil([&] { return missing->done && head->done && ihl->done && bad->done; }));
  EXPECT_EQ(missing->r.http_status, 404);
  EXPECT_NE(head->r.header_lines.find("X-Method: GET\r\n"), std::string::npos)
      << head->r.header_lines;
  EXPECT_EQ(ihl->r.body, "2");
  EXPECT_NE(ihl->r.header_lines.find("Inference-Header-Content-Length: 2\r\n"), std::string::npos);
  EXPECT_NE(ihl->r.header_lines.find("Content-Type: application/octet-stream\r\n"),
            std::string::npos);
  EXPECT_EQ(bad->r.http_status, 400);
  EXPECT_NE(bad->r.body.find("Inference-Header-Content-Length 'two'"), std::string::npos)
      << bad->r.body;
}

TEST_F(LinkTest, AnswersComeInTheOrderTheyFinish) {
  auto held = Call("GET /wait");
  auto fast = Call("POST /echo", "quick");
  ASSERT_TRUE(RunUntil([&] { return fast->done; }));
  EXPECT_FALSE(held->done);  // the fast call did not wait behind the held one
  handler_.Release();
  ASSERT_TRUE(RunUntil([&] { return held->done; }));
  EXPECT_EQ(held->r.body, "held");
  EXPECT_EQ(fast->r.body, "quick");
}

TEST_F(LinkTest, ATimedOutCallFailsAndItsLateAnswerIsDropped) {
  auto late = Call("GET /wait", "", 300ms);
  ASSERT_TRUE(RunUntil([&] { return handler_.Held() == 1; }));
  ASSERT_TRUE(RunUntil([&] { return late->done; }));
  EXPECT_EQ(late->r.status.code(), absl::StatusCode::kDeadlineExceeded) << late->r.status;
  // The replica answers it now, before it sees the next call: the link stays
  // up and the next call gets its own answer, not the stale one.
  handler_.Release();
  auto next = Call("POST /echo", "after");
  ASSERT_TRUE(RunUntil([&] { return next->done; }));
  ASSERT_TRUE(next->r.status.ok()) << next->r.status;
  EXPECT_EQ(next->r.body, "after");
}

TEST_F(LinkTest, LargeBodiesTravelWhole) {
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  auto r = Call("POST /echo", big);
  ASSERT_TRUE(RunUntil([&] { return r->done; }));
  ASSERT_TRUE(r->r.status.ok()) << r->r.status;
  EXPECT_EQ(r->r.body.size(), big.size());
  EXPECT_TRUE(r->r.body == big);
}

TEST_F(LinkTest, ARequestOverTheLimitGets413AndTheLinkGoesOn) {
  server_.reset();
  HttpServer::Options options;
  options.address = "127.0.0.1";
  options.port = 0;
  options.threads = 1;
  options.max_request_bytes = 1000;
  options.link_socket = (dir_ / "small.sock").string();
  auto server = HttpServer::Start(options, &handler_);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(*server);
  auto before = Call("POST /echo", "one", 10s, "", options.link_socket);
  auto big = Call("POST /echo", std::string(200000, 'x'), 10s, "", options.link_socket);
  auto after = Call("POST /echo", "two", 10s, "", options.link_socket);
  ASSERT_TRUE(RunUntil([&] { return before->done && big->done && after->done; }));
  EXPECT_EQ(big->r.http_status, 413);
  EXPECT_NE(big->r.body.find("exceeds the limit of 1000 bytes"), std::string::npos) << big->r.body;
  EXPECT_EQ(before->r.body, "one");
  EXPECT_EQ(after->r.body, "two");
  auto later = Call("POST /echo", "three", 10s, "", options.link_socket);
  ASSERT_TRUE(RunUntil([&] { return later->done; }));
  EXPECT_EQ(later->r.body, "three");
}

TEST_F(LinkTest, NoReplicaIsUnavailable) {
  auto r = Call("POST /echo", "x", 10s, "", (dir_ / "nobody.sock").string());
  ASSERT_TRUE(RunUntil([&] { return r->done; }));
  EXPECT_EQ(r->r.status.code(), absl::StatusCode::kUnavailable) << r->r.status;
}

TEST_F(LinkTest, DrainAnswersWhatIsInFlightThenClosesTheLink) {
  auto slow = Call("GET /slow?ms=200");
  ASSERT_TRUE(RunUntil([&] { return handler_.started.load() == 1; }));
  std::atomic<int> drained{-1};
  std::thread drainer([&] { drained = server_->Drain(5s) ? 1 : 0; });
  ASSERT_TRUE(RunUntil([&] { return slow->done && drained.load() >= 0; }));
  drainer.join();
  ASSERT_TRUE(slow->r.status.ok()) << slow->r.status;
  EXPECT_EQ(slow->r.body, "slow");
  EXPECT_EQ(drained.load(), 1);
  // Gone now: a new call finds no replica.
  auto after = Call("POST /echo", "x");
  ASSERT_TRUE(RunUntil([&] { return after->done; }));
  EXPECT_EQ(after->r.status.code(), absl::StatusCode::kUnavailable) << after->r.status;
}

TEST_F(LinkTest, AReplicaThatDiesFailsItsCallsInFlight) {
  auto slow = Call("GET /hang");
  ASSERT_TRUE(RunUntil([&] { return handler_.started.load() == 1; }));
  server_.reset();  // stops the loops: the link closes under the call
  ASSERT_TRUE(RunUntil([&] { return slow->done; }));
  EXPECT_EQ(slow->r.status.code(), absl::StatusCode::kInternal) << slow->r.status;
  EXPECT_NE(std::string(slow->r.status.message()).find("broke the connection"), std::string::npos);
}

// A malformed frame closes that link only; the server goes on.
TEST_F(LinkTest, AMalformedFrameClosesThatLinkOnly) {
  const int fd = ConnectRaw(path_);
  ASSERT_GE(fd, 0);
  char frame[16];
  link::PutU32(frame, 12);       // size: 12 bytes after the field
  link::PutU32(frame + 4, 7);    // id
  link::PutU32(frame + 8, 0);    // code
  link::PutU32(frame + 12, 99);  // a head longer than the frame
  ASSERT_EQ(::write(fd, frame, sizeof(frame)), 16);
  char buf[64];
  EXPECT_EQ(::read(fd, buf, sizeof(buf)), 0);  // closed, nothing answered
  ::close(fd);
  auto r = Call("POST /echo", "still here");
  ASSERT_TRUE(RunUntil([&] { return r->done; }));
  EXPECT_EQ(r->r.body, "still here");
}

// One link per replica and loop by default: the calls share one replica
// loop. Allowed two, a busy link gets a sibling, served by the replica's
// other loop.
TEST_F(LinkTest, ABusyLinkGetsASiblingOnAnotherReplicaLoop) {
  auto held = Call("GET /wait?a");
  auto next = Call("POST /echo?b", "x");
  ASSERT_TRUE(RunUntil([&] { return next->done; }));
  ASSERT_TRUE(next->r.status.ok()) << next->r.status;
  handler_.Release();
  ASSERT_TRUE(RunUntil([&] { return held->done; }));
  EXPECT_EQ(handler_.LoopOf("/wait?a"), handler_.LoopOf("/echo?b"));
  links_ = 2;
  held = Call("GET /wait?c");
  next = Call("POST /echo?d", "x");
  ASSERT_TRUE(RunUntil([&] { return next->done; }));
  ASSERT_TRUE(next->r.status.ok()) << next->r.status;
  EXPECT_FALSE(held->done);  // not behind the held call either
  handler_.Release();
  ASSERT_TRUE(RunUntil([&] { return held->done; }));
  EXPECT_EQ(handler_.LoopOf("/wait?c"), handler_.LoopOf("/wait?a"));  // the first link
  EXPECT_NE(handler_.LoopOf("/wait?c"), handler_.LoopOf("/echo?d"));
  EXPECT_EQ(held->r.body, "held");
}

// Past 4096 requests in flight the replica stops reading the link, and
// reads on once answers go out: nothing is lost either way.
TEST_F(LinkTest, ReadingPausesAtTheInFlightLimitAndResumes) {
  std::vector<std::shared_ptr<Result>> results;
  for (int i = 0; i < 5000; ++i) results.push_back(Call("GET /wait"));
  ASSERT_TRUE(RunUntil([&] { return handler_.Held() == 4096; }));
  auto all_done = [&] {
    for (auto& r : results)
      if (!r->done) return false;
    return true;
  };
  ASSERT_TRUE(RunUntil([&] {
    handler_.Release();
    return all_done();
  }));
  for (auto& r : results) ASSERT_EQ(r->r.body, "held");
  EXPECT_EQ(handler_.max_held, 4096u);
}

// Drain waits for a request whose frame is only partly in, and answers it.
TEST_F(LinkTest, DrainWaitsForARequestStillArriving) {
  const int fd = ConnectRaw(path_);
  ASSERT_GE(fd, 0);
  std::string frame;
  link::AppendFrame(&frame, 9, 0, "POST /echo HTTP/1.1\r\nx-test: t\r\n\r\n", "payload");
  ASSERT_EQ(::write(fd, frame.data(), 20), 20);
  // Once the server has taken the connection (a first whole request answered
  // on another link shows the loops run), drain; the half frame holds it.
  auto probe = Call("POST /echo", "probe");
  ASSERT_TRUE(RunUntil([&] { return probe->done; }));
  std::atomic<int> drained{-1};
  std::thread drainer([&] { drained = server_->Drain(10s) ? 1 : 0; });
  ASSERT_EQ(::write(fd, frame.data() + 20, frame.size() - 20),
            static_cast<ssize_t>(frame.size() - 20));
  std::string answer;
  char buf[4096];
  link::Frame got;
  while (link::ParseFrame(answer, link::kMaxFrame, &got) <= 0) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    ASSERT_GT(n, 0) << "the link closed before the answer";
    answer.append(buf, n);
  }
  EXPECT_EQ(got.id, 9u);
  EXPECT_EQ(got.code, 200u);
  EXPECT_EQ(got.body, "payload");
  EXPECT_EQ(::read(fd, buf, sizeof(buf)), 0);  // then closed
  ::close(fd);
  // The test's own link closes too (it is idle), so the drain completes.
  ASSERT_TRUE(RunUntil([&] { return drained.load() >= 0; }));
  drainer.join();
  EXPECT_EQ(drained.load(), 1);
}

TEST(LinkFrameTest, FramesRoundTripAndBadHeadersAreRefused) {
  std::string wire;
  link::AppendFrame(&wire, 42, 200, "A: b\r\n", "body");
  link::AppendFrame(&wire, 43, 0, "", "");
  link::Frame f;
  int64_t used = link::ParseFrame(wire, link::kMaxFrame, &f);
  ASSERT_EQ(used, 16 + 6 + 4);
  EXPECT_EQ(f.id, 42u);
  EXPECT_EQ(f.code, 200u);
  EXPECT_EQ(f.head, "A: b\r\n");
  EXPECT_EQ(f.body, "body");
  used = link::ParseFrame(std::string_view(wire).substr(26), link::kMaxFrame, &f);
  ASSERT_EQ(used, 16);
  EXPECT_EQ(f.id, 43u);
  EXPECT_TRUE(f.head.empty() && f.body.empty());
  // Incomplete: more is needed, and how much once the header is in.
  uint64_t need = 0;
  EXPECT_EQ(link::ParseFrame(std::string_view(wire).substr(0, 15), link::kMaxFrame, &f, &need), 0);
  EXPECT_EQ(link::ParseFrame(std::string_view(wire).substr(0, 20), link::kMaxFrame, &f, &need), 0);
  EXPECT_EQ(need, 26u);
  // Malformed: size below 12, head past the end, over the limit.
  char h[16];
  link::PutU32(h, 11);
  link::PutU32(h + 12, 0);
  EXPECT_EQ(link::ParseFrame(std::string_view(h, 16), link::kMaxFrame, &f), -1);
  link::PutU32(h, 12);
  link::PutU32(h + 12, 1);
  EXPECT_EQ(link::ParseFrame(std::string_view(h, 16), link::kMaxFrame, &f), -1);
  EXPECT_EQ(link::ParseFrame(wire, 20, &f), -1);
}

}  // namespace
}  // namespace osprey::link
