#include "net/http_upstream.h"

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/strings.h"

namespace osprey {
namespace internal {

namespace {

// RFC 9110 token characters (header names).
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A header value's bytes: visible characters, spaces, tabs and obs-text; no
// other control character (a bare CR or LF would split the line downstream).
bool IsFieldValue(std::string_view v) {
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

bool AsciiIEquals(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [&](char x, char y) { return lower(x) == lower(y); });
}

}  // namespace

bool ParseSimpleAnswerHead(std::string_view head, AnswerHead* out) {
  // "HTTP/1.1 200 OK\r\n": the reason phrase is optional.
  if (head.size() < 14 || head.substr(0, 9) != "HTTP/1.1 ") return false;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return false;
    status = status * 10 + (head[i] - '0');
  }
  if (status < 200 || status > 599 || status == 204 || status == 304) return false;
  if (head[12] != ' ' && head[12] != '\r') return false;
  size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos) return false;
  std::string_view rest = head.substr(eol + 2);
  bool have_length = false;
  out->keep_alive = true;
  out->header_lines.clear();
  out->header_lines.reserve(rest.size());
  for (;;) {
    eol = rest.find("\r\n");
    if (eol == std::string_view::npos) return false;
    if (eol == 0) break;  // the blank line
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    std::string_view name = line.substr(0, colon);
    // Token names only (this also refuses folded lines), clean values.
    if (!std::all_of(name.begin(), name.end(), IsTokenChar)) return false;
    std::string_view value = line.substr(colon + 1);
    if (!IsFieldValue(value)) return false;
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (AsciiIEquals(name, "content-length")) {
      uint64_t n = 0;
      auto r = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || r.ec != std::errc() || r.ptr != value.data() + value.size())
        return false;
      if (have_length && n != out->content_length) return false;
      // A large body goes to Beast's parser, which reads it straight into
      // the answer in bounded steps (and refuses absurd lengths cleanly).
      if (n > kMaxSimpleBody) return false;
      have_length = true;
      out->content_length = n;
      continue;
    }
    if (AsciiIEquals(name, "transfer-encoding")) return false;
    if (AsciiIEquals(name, "connection")) {
      // A token list; "close" ends the connection after this answer.
      while (!value.empty()) {
        size_t comma = value.find(',');
        std::string_view token = value.substr(0, comma);
        value.remove_prefix(comma == std::string_view::npos ? value.size() : comma + 1);
        while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
          token.remove_prefix(1);
        while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
          token.remove_suffix(1);
        if (AsciiIEquals(token, "close")) out->keep_alive = false;
      }
      continue;
    }
    out->header_lines.append(line.data(), line.size()).append("\r\n");
  }
  out->status = status;
  return have_length;
}

bool ConnectRefused(const boost::system::error_code& ec) {
  // On another host, an address no one holds any more (a deleted pod's) is
  // unreachable: the request never left either.
  return ec == boost::asio::error::connection_refused || ec == boost::asio::error::not_found ||
         ec == boost::system::errc::no_such_file_or_directory ||
         ec == boost::asio::error::host_unreachable ||
         ec == boost::asio::error::network_unreachable;
}

absl::Status RefusedError(uint16_t port) {
  return absl::UnavailableError(StrCat("replica on port ", port, " refused the connection"));
}

}  // namespace internal

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Stream = asio::generic::stream_protocol::socket;

struct Conn {
  explicit Conn(asio::io_context& io) : socket(io) {}
  Stream socket;
  beast::flat_buffer buffer;
};

// This loop thread's idle keep-alive connections: to replicas by port (a
// replica has one, whether it is reached on it or on its Unix socket), to
// other hosts by "host:port". One loop runs on one thread, so the pools need
// no lock.
using IdleList = std::vector<std::unique_ptr<Conn>>;
thread_local std::unordered_map<uint16_t, IdleList> idle_pool;
thread_local std::unordered_map<std::string, IdleList> idle_remote;

IdleList& IdleFor(const UpstreamRequest& request) {
  if (request.host.empty()) return idle_pool[request.port];
  thread_local std::string key;
  key.clear();
  StrAppend(&key, request.host, ":", request.port);
  return idle_remote[key];
}

class Call : public std::enable_shared_from_this<Call> {
 public:
  Call(UpstreamRequest request, absl::AnyInvocable<void(UpstreamResult)> done)
      : req_(std::move(request)),
        io_(*static_cast<asio::io_context*>(req_.io_context)),
        timer_(io_),
        done_(std::move(done)) {}

  void Start() {
    timer_.expires_after(req_.timeout);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->finished_) return;
      self->timed_out_ = true;
      if (self->resolving_) {  // the resolver thread may take long: answer now
        self->resolver_->cancel();
        self->Fail(absl::DeadlineExceededError("timeout"));
        return;
      }
      if (self->conn_) {
        beast::error_code ignored;
        self->conn_->socket.close(ignored);
      }
    });
    Acquire(/*fresh=*/false);
  }

 private:
  auto OnConnect() {
    return [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        self->Fail(self->timed_out_ ? absl::DeadlineExceededError("timeout")
                   : internal::ConnectRefused(ec)
                       ? self->RefusedHere()
                       : absl::InternalError(StrCat("connect: ", ec.message())));
        return;
      }
      if (self->req_.unix_socket.empty()) {
        beast::error_code ignored;
        self->conn_->socket.set_option(tcp::no_delay(true), ignored);
      }
      self->Write();
    };
  }

  absl::Status RefusedHere() const {
    return req_.host.empty() ? internal::RefusedError(req_.port)
                             : absl::UnavailableError(StrCat(Who(), " refused the connection"));
  }

  // Who answers, for messages: "replica on port N" or "host:port".
  std::string Who() const {
    return req_.host.empty() ? StrCat("replica on port ", req_.port)
                             : StrCat(req_.host, ":", req_.port);
  }

  // Any host: a numeric address at once, a name resolved first (on Asio's
  // resolver thread, not this loop), then its addresses in turn.
  void ConnectHost() {
    beast::error_code ec;
    const asio::ip::address address = asio::ip::make_address(std::string(req_.host), ec);
    if (!ec) {
      conn_->socket.async_connect(
          asio::generic::stream_protocol::endpoint(tcp::endpoint(address, req_.port)), OnConnect());
      return;
    }
    resolver_.emplace(io_);
    resolving_ = true;
    resolver_->async_resolve(
        std::string(req_.host), std::to_string(req_.port),
        [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
          self->resolving_ = false;
          if (self->finished_) return;
          if (ec || results.empty()) {
            self->Fail(self->timed_out_
                           ? absl::DeadlineExceededError("timeout")
                           : absl::UnavailableError(StrCat("cannot resolve ", self->req_.host, ": ",
                                                           ec ? ec.message() : "no address")));
            return;
          }
          self->addresses_.assign(results.begin(), results.end());
          self->ConnectNext(0);
        });
  }

  void ConnectNext(size_t i) {
    conn_->socket.async_connect(asio::generic::stream_protocol::endpoint(addresses_[i].endpoint()),
                                [self = shared_from_this(), i](beast::error_code ec) {
                                  if (ec && !self->timed_out_ && i + 1 < self->addresses_.size()) {
                                    beast::error_code ignored;
                                    self->conn_->socket.close(ignored);
                                    self->ConnectNext(i + 1);
                                    return;
                                  }
                                  self->OnConnect()(ec);
                                });
  }

  void Acquire(bool fresh) {
    auto& idle = IdleFor(req_);
    if (!fresh && !idle.empty() && req_.keep_alive) {
      conn_ = std::move(idle.back());
      idle.pop_back();
      reused_ = true;
      conn_->buffer.clear();
      Write();
      return;
    }
    reused_ = false;
    conn_ = std::make_unique<Conn>(io_);
    if (!req_.unix_socket.empty()) {
      conn_->socket.async_connect(
          asio::generic::stream_protocol::endpoint(
              asio::local::stream_protocol::endpoint(std::string(req_.unix_socket))),
          OnConnect());
    } else if (req_.host.empty()) {
      conn_->socket.async_connect(asio::generic::stream_protocol::endpoint(
                                      tcp::endpoint(asio::ip::address_v4::loopback(), req_.port)),
                                  OnConnect());
    } else {
      ConnectHost();
    }
  }

  void Write() {
    std::array<asio::const_buffer, 2> buffers = {
        asio::buffer(req_.head), req_.body ? asio::buffer(*req_.body) : asio::const_buffer()};
    asio::async_write(conn_->socket, buffers,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) {
                          self->RetryOrFail(ec);
                          return;
                        }
                        self->Read();
                      });
  }

  // The answer: a plain Content-Length answer is framed and copied here;
  // anything else (chunked, HTTP/1.0, no body by status) goes on to Beast's
  // parser from the bytes already read.
  void Read() {
    const bool head_request = req_.head.substr(0, 5) == "HEAD ";
    if (head_request) {
      ReadWithParser(/*skip_body=*/true);
      return;
    }
    ReadSome();
  }

  void ReadSome() {
    const size_t want =
        head_size_ == 0 ? 4096 : head_size_ + answer_.content_length - conn_->buffer.size();
    conn_->socket.async_read_some(conn_->buffer.prepare(std::max<size_t>(want, 4096)),
                                  [self = shared_from_this()](beast::error_code ec, size_t n) {
                                    if (ec) {
                                      self->RetryOrFail(ec);
                                      return;
                                    }
                                    self->conn_->buffer.commit(n);
                                    self->answered_ = true;
                                    self->Parse();
                                  });
  }

  void Parse() {
    auto bytes = conn_->buffer.data();
    std::string_view data(static_cast<const char*>(bytes.data()), bytes.size());
    if (head_size_ == 0) {
      const size_t end = data.find("\r\n\r\n");
      if (end == std::string_view::npos) {
        if (data.size() > kMaxHead) {
          Fail(absl::InternalError(StrCat(Who(), " sent a head over ", kMaxHead, " bytes")));
          return;
        }
        ReadSome();
        return;
      }
      if (!internal::ParseSimpleAnswerHead(data.substr(0, end + 4), &answer_)) {
        ReadWithParser(/*skip_body=*/false);
        return;
      }
      head_size_ = end + 4;
    }
    if (data.size() < head_size_ + answer_.content_length) {
      ReadSome();
      return;
    }
    finished_ = true;
    timer_.cancel();
    UpstreamResult r;
    r.http_status = answer_.status;
    r.header_lines = std::move(answer_.header_lines);
    r.body.assign(data.data() + head_size_, answer_.content_length);
    // A replica answers one request at a time on a connection: bytes past
    // this answer would be a broken exchange, so such a connection is dropped.
    conn_->buffer.consume(head_size_ + answer_.content_length);
    if (answer_.keep_alive && req_.keep_alive && conn_->buffer.size() == 0) {
      if (conn_->buffer.capacity() > kKeptBuffer) conn_->buffer.shrink_to_fit();
      IdleFor(req_).push_back(std::move(conn_));
    }
    auto done = std::move(done_);
    done(std::move(r));
  }

  void ReadWithParser(bool skip_body) {
    parser_.emplace();
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    if (skip_body) parser_->skip(true);
    http::async_read(conn_->socket, conn_->buffer, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) {
                         self->RetryOrFail(ec);
                         return;
                       }
                       self->CompleteParsed();
                     });
  }

  // A kept-alive connection the replica had closed fails before any answer
  // byte: the request never reached it, so it goes again on a new one.
  void RetryOrFail(beast::error_code ec) {
    const bool answered = answered_ || (parser_.has_value() && parser_->got_some());
    if (reused_ && !timed_out_ && !answered) {
      conn_.reset();
      parser_.reset();
      Acquire(/*fresh=*/true);
      return;
    }
    Fail(timed_out_ ? absl::DeadlineExceededError("timeout")
                    : absl::InternalError(StrCat(Who(), " broke the connection: ", ec.message())));
  }

  void CompleteParsed() {
    finished_ = true;
    timer_.cancel();
    auto& msg = parser_->get();
    UpstreamResult r;
    r.http_status = static_cast<int>(msg.result_int());
    for (const auto& f : msg) {
      if (f.name() == http::field::content_length || f.name() == http::field::transfer_encoding ||
          f.name() == http::field::connection)
        continue;
      StrAppend(&r.header_lines, std::string_view(f.name_string().data(), f.name_string().size()),
                ": ", std::string_view(f.value().data(), f.value().size()), "\r\n");
    }
    r.body = std::move(msg.body());
    if (msg.keep_alive() && req_.keep_alive) {
      if (conn_->buffer.capacity() > kKeptBuffer) conn_->buffer.shrink_to_fit();
      IdleFor(req_).push_back(std::move(conn_));
    }
    auto done = std::move(done_);
    done(std::move(r));
  }

  void Fail(absl::Status status) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    conn_.reset();
    UpstreamResult r;
    r.status = std::move(status);
    auto done = std::move(done_);
    done(std::move(r));
  }

  UpstreamRequest req_;
  asio::io_context& io_;
  asio::steady_timer timer_;
  absl::AnyInvocable<void(UpstreamResult)> done_;
  std::unique_ptr<Conn> conn_;
  static constexpr size_t kMaxHead = 64 * 1024;
  // An idle pooled connection keeps at most this much read buffer.
  static constexpr size_t kKeptBuffer = 256 * 1024;
  internal::AnswerHead answer_;
  size_t head_size_ = 0;  // once the head is parsed on the fast path
  std::optional<http::response_parser<http::string_body>> parser_;
  std::optional<tcp::resolver> resolver_;  // for a host name
  bool resolving_ = false;
  std::vector<tcp::resolver::results_type::value_type> addresses_;
  bool answered_ = false;  // an answer byte came in
  bool reused_ = false;
  bool finished_ = false;
  bool timed_out_ = false;
};

}  // namespace

void SendHttp(UpstreamRequest request, absl::AnyInvocable<void(UpstreamResult)> done) {
  std::make_shared<Call>(std::move(request), std::move(done))->Start();
}

void RunOn(void* io_context, absl::AnyInvocable<void()> fn) {
  auto* io = static_cast<asio::io_context*>(io_context);
  if (io->get_executor().running_in_this_thread()) {
    fn();
    return;
  }
  asio::post(*io, std::move(fn));
}

void RunAfter(void* io_context, std::chrono::milliseconds delay, absl::AnyInvocable<void()> fn) {
  auto* io = static_cast<asio::io_context*>(io_context);
  auto timer = std::make_shared<asio::steady_timer>(*io, delay);
  // asio copies handlers: the move-only `fn` waits in a shared holder.
  auto held = std::make_shared<absl::AnyInvocable<void()>>(std::move(fn));
  timer->async_wait([timer, held](const boost::system::error_code&) { (*held)(); });
}

absl::StatusOr<HttpUrl> ParseHttpUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(StrCat("URL '", url, "': ", why));
  };
  if (url.size() < kScheme.size() || !internal::AsciiIEquals(url.substr(0, 7), kScheme))
    return invalid("only http:// URLs are supported");
  std::string_view rest = url.substr(kScheme.size());
  rest = rest.substr(0, rest.find('#'));
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  std::string_view target = rest.substr(authority.size());
  if (authority.find('@') != std::string_view::npos) return invalid("user info is not supported");
  HttpUrl out;
  std::string_view host = authority;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {  // [v6]:port
    const size_t close = host.find(']');
    if (close == std::string_view::npos) return invalid("unclosed '['");
    port = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!port.empty() && port.front() != ':') return invalid("junk after ']'");
    if (!port.empty()) port.remove_prefix(1);
  } else if (const size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty()) return invalid("no host");
  if (authority.back() == ':') return invalid("empty port");
  if (!port.empty()) {
    unsigned value = 0;
    auto r = std::from_chars(port.data(), port.data() + port.size(), value);
    if (r.ec != std::errc() || r.ptr != port.data() + port.size() || value == 0 || value > 65535)
      return invalid("bad port");
    out.port = static_cast<uint16_t>(value);
  }
  out.host = std::string(host);
  out.target = target.empty() || target.front() == '?' ? StrCat("/", target) : std::string(target);
  return out;
}

std::string RequestHead(std::string_view method, const HttpUrl& url, std::string_view header_lines,
                        size_t body_size) {
  std::string head;
  const bool v6 = url.host.find(':') != std::string::npos;
  StrAppend(&head, method, " ", url.target, " HTTP/1.1\r\nHost: ", v6 ? "[" : "", url.host,
            v6 ? "]" : "");
  if (url.port != 80) StrAppend(&head, ":", url.port);
  StrAppend(&head, "\r\n", header_lines, "Content-Length: ", body_size, "\r\n\r\n");
  return head;
}

}  // namespace osprey
