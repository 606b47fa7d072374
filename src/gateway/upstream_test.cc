#include "gateway/upstream.h"

#include <gtest/gtest.h>

namespace osprey::gateway {
namespace {

using internal::AnswerHead;
using internal::ParseSimpleAnswerHead;

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

}  // namespace
}  // namespace osprey::gateway
