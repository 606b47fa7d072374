// The outbound HTTP client: the fast path's head parser (pure), URLs, and
// calls to a real HTTP server on any host:port (numeric and resolved).

#include "net/http_upstream.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>  // before Asio: its awaitable.hpp needs std::exchange
#include <vector>

#include "common/strings.h"
#include "net/http_server.h"

namespace osprey {
namespace {

using internal::AnswerHead;
using internal::ParseSimpleAnswerHead;
using namespace std::chrono_literals;

TEST(UpstreamTest, SimpleHeadsAreFramedByTheirLength) {
  struct Case {
    const char* head;
    int status;
    uint64_t length;
    bool keep_alive;
    const char* lines;
  } cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 23\r\n\r\n", 200, 23,
       true, "Content-Type: application/json\r\n"},
      {"HTTP/1.1 503 Service Unavailable\r\ncontent-length:0\r\nRetry-After: 1\r\n\r\n", 503, 0,
       true, "Retry-After: 1\r\n"},
      {"HTTP/1.1 200\r\nContent-Length: 5\r\nConnection: keep-alive, Close\r\n\r\n", 200, 5, false,
       ""},
      {"HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\nContent-Length: 7\r\nX-A:  b c \r\n\r\n",
       404, 7, true, "X-A:  b c \r\n"},
  };
  for (const auto& c : cases) {
    AnswerHead head;
    ASSERT_TRUE(ParseSimpleAnswerHead(c.head, &head)) << c.head;
    EXPECT_EQ(head.status, c.status) << c.head;
    EXPECT_EQ(head.content_length, c.length) << c.head;
    EXPECT_EQ(head.keep_alive, c.keep_alive) << c.head;
    EXPECT_EQ(head.header_lines, c.lines) << c.head;
  }
}

TEST(UpstreamTest, AnythingElseGoesToTheFullParser) {
  const char* heads[] = {
      "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",                        // HTTP/1.0
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",               // chunked
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",                 // no length
      "HTTP/1.1 100 Continue\r\n\r\n",                                       // interim
      "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",                // no body
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",              // no body
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",   // conflict
      "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\n",                       // not a number
      "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n",                       // negative
      "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",                         // empty
      "HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 2\r\n\r\n",  // obs-fold
      "HTTP/1.1 200 OK\r\nBad Name: 1\r\nContent-Length: 2\r\n\r\n",         // space in name
      "HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 2\r\n\r\n",             // no colon
      "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n",                        // status
      "HTTP/1.1 200OK\r\nContent-Length: 2\r\n\r\n",                         // status line
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",                            // unterminated
      "HTTP/1.1 200 OK\r\nX-A: 1\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\nContent-Length: 2\r\n\r\n",   // bare CR
      "HTTP/1.1 200 OK\r\nX-A: a\x7f\r\nContent-Length: 2\r\n\r\n",       // DEL
      "HTTP/1.1 200 OK\r\nX(A): 1\r\nContent-Length: 2\r\n\r\n",          // not a token
      "HTTP/1.1 200 OK\r\nContent-Length: 1048577\r\n\r\n",               // large
      "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",  // huge
      "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",  // overflow
  };
  for (const char* h : heads) {
    AnswerHead head;
    EXPECT_FALSE(ParseSimpleAnswerHead(h, &head)) << h;
  }
  // A NUL inside a value (a string literal would end there).
  const char raw[] = "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\n";
  const std::string with_nul(raw, sizeof(raw) - 1);
  AnswerHead clean;
  std::string without_nul = with_nul;
  const size_t nul = with_nul.find('\0');
  ASSERT_EQ(nul, 23u);
  without_nul[nul] = 'x';  // the same head with the NUL replaced: accepted
  EXPECT_TRUE(ParseSimpleAnswerHead(without_nul, &clean));
  AnswerHead head;
  EXPECT_FALSE(ParseSimpleAnswerHead(with_nul, &head));
  // Up to the limit, the fast path frames it.
  EXPECT_TRUE(ParseSimpleAnswerHead("HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n", &head));
  EXPECT_EQ(head.content_length, 1048576u);
}

TEST(UpstreamTest, HeaderLinesSplitIntoNamesAndValues) {
  std::vector<std::pair<std::string, std::string>> got;
  ForEachHeaderLine("A: 1\r\nB-C:two words\r\nnocolon\r\nD:\t x\r\n",
                    [&](std::string_view n, std::string_view v) { got.emplace_back(n, v); });
  std::vector<std::pair<std::string, std::string>> want = {
      {"A", "1"}, {"B-C", "two words"}, {"D", "x"}};
  EXPECT_EQ(got, want);
}

TEST(HttpUrlTest, HostPortAndTarget) {
  struct Case {
    const char* url;
    const char* host;
    uint16_t port;
    const char* target;
  } cases[] = {
      {"http://collector:4318/v1/traces", "collector", 4318, "/v1/traces"},
      {"HTTP://sink.example.com", "sink.example.com", 80, "/"},
      {"http://10.0.0.7:8080?x=1#frag", "10.0.0.7", 8080, "/?x=1"},
      {"http://[::1]:9000/events?a=b", "::1", 9000, "/events?a=b"},
      {"http://[fe80::1]/", "fe80::1", 80, "/"},
  };
  for (const auto& c : cases) {
    auto url = ParseHttpUrl(c.url);
    ASSERT_TRUE(url.ok()) << c.url << ": " << url.status();
    EXPECT_EQ(url->host, c.host) << c.url;
    EXPECT_EQ(url->port, c.port) << c.url;
    EXPECT_EQ(url->target, c.target) << c.url;
  }
  for (const char* bad : {"https://x/", "ftp://x", "http://", "http://:80/", "http://x:/",
                          "http://x:0/", "http://x:65536/", "http://x:8o/", "http://u@x/",
                          "http://[::1/", "http://[::1]x/", "x:80"})
    EXPECT_EQ(ParseHttpUrl(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
}

TEST(HttpUrlTest, RequestHeadNamesTheHost) {
  EXPECT_EQ(RequestHead("POST", *ParseHttpUrl("http://sink:8080/e"), "ce-id: 1\r\n", 5),
            "POST /e HTTP/1.1\r\nHost: sink:8080\r\nce-id: 1\r\nContent-Length: 5\r\n\r\n");
  EXPECT_EQ(RequestHead("GET", *ParseHttpUrl("http://[::1]/"), "", 0),
            "GET / HTTP/1.1\r\nHost: [::1]\r\nContent-Length: 0\r\n\r\n");
}

// Echoes the method, target, Host and body.
class Echo : public HttpHandler {
 public:
  void Handle(const HttpRequest& request, HttpDone done) override {
    HttpResponse r;
    r.status = request.target == "/missing" ? 404 : 200;
    r.content_type = "text/plain";
    r.body = StrCat(request.method, " ", request.target, " ", FindHeader(request.headers, "Host"),
                    " ", request.body ? *request.body : "");
    r.header_lines = "X-Echo: yes\r\n";
    done(std::move(r));
  }
};

class HttpUpstreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServer::Options options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.threads = 1;
    auto server = HttpServer::Start(options, &echo_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  struct Result {
    bool done = false;
    UpstreamResult r;
  };
  // Calls `url` from the test's loop; the result once `done`.
  std::shared_ptr<Result> Send(const std::string& method, const std::string& url,
                               std::string body, std::chrono::milliseconds timeout = 10s) {
    auto result = std::make_shared<Result>();
    auto parsed = ParseHttpUrl(url);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    auto target = std::make_shared<HttpUrl>(*parsed);
    auto head = std::make_shared<std::string>(RequestHead(method, *target, "", body.size()));
    auto shared_body = std::make_shared<const std::string>(std::move(body));
    boost::asio::post(io_, [=, this] {
      UpstreamRequest request;
      request.io_context = &io_;
      request.host = target->host;
      request.port = target->port;
      request.head = *head;
      request.body = shared_body;
      request.timeout = timeout;
      SendHttp(std::move(request), [result, target, head](UpstreamResult r) {
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

  std::string Url(std::string_view host, std::string_view path) const {
    return StrCat("http://", host, ":", server_->port(), path);
  }

  boost::asio::io_context io_;
  Echo echo_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpUpstreamTest, ANumericHostIsCalledAndKeptAlive) {
  for (int i = 0; i < 3; ++i) {  // the second and third reuse the idle connection
    auto r = Send("POST", Url("127.0.0.1", "/events?n=1"), StrCat("event-", i));
    ASSERT_TRUE(RunUntil([&] { return r->done; }));
    ASSERT_TRUE(r->r.status.ok()) << r->r.status;
    EXPECT_EQ(r->r.http_status, 200);
    EXPECT_EQ(r->r.body, StrCat("POST /events?n=1 127.0.0.1:", server_->port(), " event-", i));
    EXPECT_EQ(r->r.header_lines.find("X-Echo: yes\r\n") != std::string::npos, true);
  }
  auto missing = Send("GET", Url("127.0.0.1", "/missing"), "");
  ASSERT_TRUE(RunUntil([&] { return missing->done; }));
  EXPECT_EQ(missing->r.http_status, 404);
}

TEST_F(HttpUpstreamTest, AHostNameIsResolvedOffTheLoop) {
  // localhost may resolve to ::1 first, where nothing listens: the next
  // address is tried.
  auto r = Send("PUT", Url("localhost", "/x"), "b");
  ASSERT_TRUE(RunUntil([&] { return r->done; }));
  ASSERT_TRUE(r->r.status.ok()) << r->r.status;
  EXPECT_EQ(r->r.body, StrCat("PUT /x localhost:", server_->port(), " b"));
}

TEST_F(HttpUpstreamTest, NothingListeningIsUnavailable) {
  boost::asio::ip::tcp::acceptor probe(
      io_, boost::asio::ip::tcp::endpoint(boost::asio::ip::address_v4::loopback(), 0));
  const uint16_t port = probe.local_endpoint().port();
  probe.close();
  auto r = Send("POST", StrCat("http://127.0.0.1:", port, "/"), "");
  ASSERT_TRUE(RunUntil([&] { return r->done; }));
  EXPECT_EQ(r->r.status.code(), absl::StatusCode::kUnavailable) << r->r.status;
  EXPECT_EQ(r->r.status.message(), StrCat("127.0.0.1:", port, " refused the connection"));
}

}  // namespace
}  // namespace osprey
