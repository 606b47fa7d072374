#include "net/http_server.h"

#include <openssl/ssl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <list>
#include <optional>
#include <thread>
#include <type_traits>
#include <unordered_set>

#include "common/json_writer.h"
#include "common/logging.h"
#include "common/strings.h"
#include "link/frame.h"
#include "net/status.h"

namespace osprey {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;
// A connection over TCP or a Unix domain socket: sessions do not care which.
using Stream = asio::generic::stream_protocol::socket;

struct Loop;

struct Shared {
  HttpHandler* handler = nullptr;
  uint64_t max_request_bytes = 0;
  std::atomic<bool> draining{false};
  std::atomic<int64_t> connections{0};
};

// A TLS port's certificates, each in its own context. The first context is
// the one connections start with; its SNI callback switches a connection
// to the context whose hosts best match the name asked for.
struct TlsConfig {
  std::vector<std::vector<std::string>> hosts;
  std::vector<std::unique_ptr<asio::ssl::context>> contexts;
};

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// The certificate for `name`: an exact host first, then the longest
// "*.suffix", then "*"; else the first.
size_t ChooseCertificate(const TlsConfig& config, std::string_view name) {
  size_t best = 0;
  int best_rank = -1;
  for (size_t i = 0; i < config.hosts.size(); ++i)
    for (const std::string& h : config.hosts[i]) {
      int rank = -1;
      if (h == "*") {
        rank = 0;
      } else if (h.starts_with("*.")) {
        const std::string_view suffix = std::string_view(h).substr(1);  // ".example.com"
        if (name.size() > suffix.size() &&
            EqualsNoCase(name.substr(name.size() - suffix.size()), suffix))
          rank = 1 + static_cast<int>(suffix.size());
      } else if (EqualsNoCase(h, name)) {
        rank = 1 << 20;
      }
      if (rank > best_rank) {
        best_rank = rank;
        best = i;
      }
    }
  return best;
}

int OnServerName(SSL* ssl, int*, void* arg) {
  const auto* config = static_cast<const TlsConfig*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;
  const size_t i = ChooseCertificate(*config, name);
  if (i != 0) SSL_set_SSL_CTX(ssl, config->contexts[i]->native_handle());
  return SSL_TLSEXT_ERR_OK;
}

absl::StatusOr<std::shared_ptr<TlsConfig>> LoadTls(
    const std::vector<HttpServer::TlsCertificate>& certificates, bool tls13_only) {
  auto config = std::make_shared<TlsConfig>();
  for (const auto& c : certificates) {
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
    beast::error_code ec;
    ctx->use_certificate_chain_file(c.certificate_file, ec);
    if (ec)
      return absl::InvalidArgumentError(
          StrCat("certificate ", c.certificate_file, " cannot be loaded: ", ec.message()));
    ctx->use_private_key_file(c.private_key_file, asio::ssl::context::pem, ec);
    if (ec)
      return absl::InvalidArgumentError(
          StrCat("private key ", c.private_key_file, " cannot be loaded: ", ec.message()));
    SSL_CTX_set_min_proto_version(ctx->native_handle(),
                                  tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
      return absl::InvalidArgumentError(StrCat("private key ", c.private_key_file,
                                               " does not match certificate ", c.certificate_file));
    config->hosts.push_back(c.hosts);
    config->contexts.push_back(std::move(ctx));
  }
  if (config->contexts.size() > 1) {
    SSL_CTX* first = config->contexts.front()->native_handle();
    SSL_CTX_set_tlsext_servername_callback(first, &OnServerName);
    SSL_CTX_set_tlsext_servername_arg(first, config.get());
  }
  return config;
}

// A connection living on a loop (an HTTP session or a replica link): listed
// on its loop for the drain, counted while it lives.
class Connection {
 public:
  Connection(Loop* loop, Shared* shared);
  virtual ~Connection();
  // Called on the loop thread when the server drains: close now when idle,
  // else once what is in progress is answered.
  virtual void Drain() = 0;

 protected:
  Loop* loop_;
  Shared* shared_;
};

// One event loop: io_context, acceptor, and the sessions living on it.
// Member order matters: destroying `io` destroys pending handlers and with
// them sessions, which erase themselves from `sessions`, so it must outlive io.
struct Loop {
  std::unordered_set<Connection*> sessions;  // touched only on this loop's thread
  asio::io_context io{1};
  // Keeps run() going while the loop has no connection yet; dropped by stop().
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread;
};

Connection::Connection(Loop* loop, Shared* shared) : loop_(loop), shared_(shared) {
  loop_->sessions.insert(this);
  shared_->connections.fetch_add(1);
}

Connection::~Connection() {
  loop_->sessions.erase(this);
  shared_->connections.fetch_sub(1);
}

// Reads an Inference-Header-Content-Length value into req; false (and the
// 400 to send) when it is not a non-negative integer.
bool ReadInferenceHeaderLength(std::string_view v, HttpRequest* req, HttpResponse* error) {
  uint64_t n = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), n);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) {
    *error = JsonErrorResponse(
        400, StrCat("Inference-Header-Content-Length '", v, "' is not a non-negative integer"));
    return false;
  }
  req->inference_header_length = n;
  return true;
}

// Hands the request to the handler. Nothing on the request path throws by
// design; this last guard keeps a bug (or an allocation failure) to one 500
// (passed to `answer`) instead of the whole server.
template <typename Answer>
void RunHandler(Shared* shared, const HttpRequest& req, HttpDone reply, Answer&& answer) {
  try {
    shared->handler->Handle(req, std::move(reply));
  } catch (const std::exception& e) {
    OSPREY_LOG(kError) << "request " << req.method << " " << req.target << " failed: " << e.what();
    answer(JsonErrorResponse(500, StrCat("internal error: ", e.what())));
  }
}

// An HTTP session over `S`: a plain stream, or TLS over one.
template <typename S>
class BasicSession : public Connection, public std::enable_shared_from_this<BasicSession<S>> {
 public:
  static constexpr bool kTls = !std::is_same_v<S, Stream>;

  BasicSession(S socket, Loop* loop, Shared* shared, int listener = 0,
               std::shared_ptr<TlsConfig> tls = nullptr)
      : Connection(loop, shared),
        tls_(std::move(tls)),
        socket_(std::move(socket)),
        listener_(listener) {}

  ~BasicSession() {
    // A streamed answer's producer stops writing; its wake (which names this
    // session's loop) is dropped, never called.
    if (stream_ != nullptr) stream_->End();
  }

  void Start() {
    if constexpr (kTls) {
      socket_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) {
                                  self->Close();
                                  return;
                                }
                                self->Read();
                              });
    } else {
      Read();
    }
  }

  // Called on the loop thread when draining: idle connections close now; one
  // with a request in progress (being received, executed or answered) closes
  // after its answer.
  void Drain() override {
    // A request counts as in progress once any of its bytes reached us,
    // including bytes still in the kernel while this loop was busy elsewhere.
    beast::error_code ec;
    bool receiving = buffer_.size() > 0 || (parser_.has_value() && parser_->got_some()) ||
                     Lowest().available(ec) > 0;
    if (!busy_ && !receiving) Close();
    // A streamed answer ends now (its last chunk, then the connection closes).
    if (stream_ != nullptr) stream_->Close();
  }

 private:
  void Read() {
    if (shared_->draining.load(std::memory_order_relaxed) && buffer_.size() == 0) {
      Close();
      return;
    }
    parser_.emplace();
    parser_->body_limit(shared_->max_request_bytes);
    parser_->header_limit(64 * 1024);
    busy_ = false;
    head_request_ = false;
    // Header first, so a client waiting on "Expect: 100-continue" (curl, for
    // bodies over 1 KiB) gets its go-ahead instead of stalling for a second.
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec || parser_->is_done()) {
      OnRead(ec);
      return;
    }
    auto expect = parser_->get().find(http::field::expect);
    if (expect != parser_->get().end() && beast::iequals(expect->value(), "100-continue")) {
      continue_ = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      asio::async_write(socket_, asio::buffer(*continue_),
                        [self = this->shared_from_this()](beast::error_code ec, size_t) {
                          if (ec) {
                            self->Close();
                            return;
                          }
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(
        socket_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      busy_ = true;
      SendError(413,
                StrCat("request body exceeds the limit of ", shared_->max_request_bytes, " bytes"));
      return;
    }
    if (ec == http::error::header_limit) {
      busy_ = true;
      SendError(431, "request headers too large");
      return;
    }
    if (ec) {
      if (ec != http::error::end_of_stream && ec != asio::error::operation_aborted &&
          ec != asio::error::connection_reset && ec != asio::error::eof &&
          ec != http::error::partial_message) {
        busy_ = true;
        SendError(400, StrCat("malformed HTTP request: ", ec.message()));
        return;
      }
      Close();
      return;
    }
    busy_ = true;
    auto& msg = parser_->get();
    HttpRequest req;
    req.arrival = std::chrono::steady_clock::now();
    req.io_context = &loop_->io;
    req.listener_port = listener_;
    req.tls = kTls;
    std::string_view method(msg.method_string().data(), msg.method_string().size());
    // HEAD is GET without the body: handlers see GET, Send leaves the body
    // out and keeps its Content-Length.
    head_request_ = msg.method() == http::verb::head;
    req.method = head_request_ ? std::string_view("GET") : method;
    req.target = std::string_view(msg.target().data(), msg.target().size());
    req.headers.context = &msg;
    req.headers.visit = [](const void* context, HeaderSource::Visit visit) {
      for (const auto& field : *static_cast<const http::fields*>(context))
        visit(std::string_view(field.name_string().data(), field.name_string().size()),
              std::string_view(field.value().data(), field.value().size()));
    };
    if (auto hl = msg.find("Inference-Header-Content-Length"); hl != msg.end()) {
      HttpResponse error;
      if (!ReadInferenceHeaderLength(std::string_view(hl->value().data(), hl->value().size()), &req,
                                     &error)) {
        SendError(std::move(error));
        return;
      }
    }
    req.body = std::make_shared<const std::string>(std::move(msg.body()));
    keep_alive_ = msg.keep_alive();
    auto request_id = msg.find("x-request-id");
    if (request_id != msg.end())
      request_id_.assign(request_id->value().data(), request_id->value().size());
    else
      request_id_.clear();
    version_ = msg.version();

    // The answer may come from another thread (a model's batcher); it is sent
    // from this session's loop. dispatch runs it at once when already there.
    auto reply = [self = this->shared_from_this()](HttpResponse response) {
      asio::dispatch(self->loop_->io, [self, response = std::move(response)]() mutable {
        self->Send(std::move(response));
      });
    };
    RunHandler(shared_, req, std::move(reply), [this](HttpResponse r) { Send(std::move(r)); });
  }

  void SendError(int status, std::string_view message) {
    SendError(JsonErrorResponse(status, message));
  }

  // An answer after which the connection closes (the request could not be
  // read, so the connection is out of step).
  void SendError(HttpResponse response) {
    keep_alive_ = false;
    version_ = 11;
    request_id_.clear();
    Send(std::move(response));
  }

  // Writes the status line and headers by hand into a reused buffer and sends
  // them with the body in one gather write: no per-response header
  // allocations (Beast's fields allocate a node per header).
  void Send(HttpResponse response) {
    if (response.stream != nullptr) {
      SendStream(std::move(response));
      return;
    }
    const bool keep = keep_alive_ && !shared_->draining.load(std::memory_order_relaxed);
    body_ = std::move(response.body);
    head_.clear();
    const unsigned status = static_cast<unsigned>(response.status);
    beast::string_view reason = http::obsolete_reason(static_cast<http::status>(status));
    char num[24];
    auto append_number = [&](uint64_t v) {
      auto r = std::to_chars(num, num + sizeof(num), v);
      head_.append(num, r.ptr);
    };
    head_.append(version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    append_number(status);
    head_.push_back(' ');
    head_.append(reason.data(), reason.size());
    head_.append("\r\n");
    if (!response.content_type.empty()) {
      head_.append("Content-Type: ");
      head_.append(response.content_type);
      head_.append("\r\n");
    }
    head_.append("Content-Length: ");
    append_number(body_.size());
    head_.append("\r\n");
    if (response.inference_header_length.has_value()) {
      head_.append("Inference-Header-Content-Length: ");
      append_number(*response.inference_header_length);
      head_.append("\r\n");
    }
    head_.append(response.header_lines);
    if (!request_id_.empty()) {
      head_.append("x-request-id: ");
      head_.append(request_id_);
      head_.append("\r\n");
    }
    // HTTP/1.1 keeps the connection unless told; HTTP/1.0 closes unless told.
    if (!keep && version_ != 10) head_.append("Connection: close\r\n");
    if (keep && version_ == 10) head_.append("Connection: keep-alive\r\n");
    head_.append("\r\n");
    std::array<asio::const_buffer, 2> buffers = {
        asio::buffer(head_), head_request_ ? asio::const_buffer() : asio::buffer(body_)};
    asio::async_write(socket_, buffers,
                      [self = this->shared_from_this(), keep](beast::error_code ec, size_t) {
                        if (ec || !keep) {
                          self->Close();
                          return;
                        }
                        self->Read();
                      });
  }

  // A streamed answer: the head, then each piece the producer writes as a
  // chunk, then the last chunk; the connection closes after it. A read
  // notices the client going away (it sends nothing more on this connection).
  void SendStream(HttpResponse response) {
    stream_ = std::move(response.stream);
    head_.clear();
    beast::string_view reason = http::obsolete_reason(static_cast<http::status>(response.status));
    StrAppend(&head_, "HTTP/1.1 ", response.status, " ",
              std::string_view(reason.data(), reason.size()), "\r\n");
    if (!response.content_type.empty())
      StrAppend(&head_, "Content-Type: ", response.content_type, "\r\n");
    head_.append(response.header_lines);
    if (!request_id_.empty()) StrAppend(&head_, "x-request-id: ", request_id_, "\r\n");
    head_.append("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    asio::async_write(socket_, asio::buffer(head_),
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) {
                          self->EndStream();
                          return;
                        }
                        self->WatchPeer();
                        self->Pump();
                      });
  }

  void WatchPeer() {
    peer_probe_.resize(512);
    socket_.async_read_some(asio::buffer(peer_probe_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) {
                                self->EndStream();
                                return;
                              }
                              self->WatchPeer();  // bytes after the request: ignored
                            });
  }

  void Pump() {
    if (stream_ == nullptr || writing_) return;
    bool ended = false;
    std::weak_ptr<BasicSession> weak = this->shared_from_this();
    Loop* loop = loop_;
    std::string data = stream_->Take(&ended, [weak, loop] {
      asio::post(loop->io, [weak] {
        if (auto self = weak.lock()) self->Pump();
      });
    });
    if (data.empty() && !ended) return;  // woken when there is more
    body_.clear();
    if (!data.empty()) {
      char size[20];
      auto r = std::to_chars(size, size + sizeof(size), data.size(), 16);
      body_.append(size, r.ptr);
      body_.append("\r\n");
      body_.append(data);
      body_.append("\r\n");
    }
    if (ended) body_.append("0\r\n\r\n");
    writing_ = true;
    asio::async_write(socket_, asio::buffer(body_),
                      [self = this->shared_from_this(), ended](beast::error_code ec, size_t) {
                        self->writing_ = false;
                        if (ec || ended) {
                          self->EndStream();
                          return;
                        }
                        self->Pump();
                      });
  }

  void EndStream() {
    if (stream_ != nullptr) stream_->End();
    stream_.reset();
    Close();
  }

  // The TCP (or Unix) socket under TLS, or the stream itself.
  Stream& Lowest() {
    if constexpr (kTls)
      return socket_.next_layer();
    else
      return socket_;
  }

  void Close() {
    beast::error_code ignored;
    Lowest().shutdown(asio::socket_base::shutdown_send, ignored);
    Lowest().close(ignored);
  }

  // The port's certificates while this connection lives (its SNI callback
  // points into them); declared first, so they outlive the TLS stream.
  std::shared_ptr<TlsConfig> tls_;
  S socket_;
  const int listener_;  // HttpRequest::listener_port
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string head_;           // status line and headers of the answer being written
  bool head_request_ = false;  // a HEAD: the answer goes without its body
  std::string body_;           // its body
  std::string request_id_;
  std::shared_ptr<std::string> continue_;  // "100 Continue" line while it is written
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool busy_ = false;
  std::shared_ptr<HttpStream> stream_;  // a streamed answer in progress
  bool writing_ = false;                // one of its chunks is being written
  std::string peer_probe_;              // what a streaming client sends (nothing)
};

using Session = BasicSession<Stream>;
using TlsSession = BasicSession<asio::ssl::stream<Stream>>;

// The replica side of the gateway's link (link/frame.h): frames in,
// each one a request for the handler, answers out in the order they finish.
// The answers of one loop turn go out in one write.
class LinkSession : public Connection, public std::enable_shared_from_this<LinkSession> {
 public:
  LinkSession(Stream socket, Loop* loop, Shared* shared)
      : Connection(loop, shared), socket_(std::move(socket)) {}

  void Start() {
    Read();
    // Accepted while the server drains (after the loop's drain pass).
    if (shared_->draining.load(std::memory_order_relaxed)) Drain();
  }

  // The gateway stops sending to a replica before it drains; what it sent
  // already is answered, then the link closes.
  void Drain() override {
    draining_ = true;
    CloseWhenDone();
  }

 private:
  // Reading pauses while this many requests are in flight or this many
  // answer bytes wait to be written (the gateway is not reading).
  static constexpr int kMaxInFlight = 4096;
  static constexpr size_t kMaxPending = 64 << 20;

  bool Full() const {
    return in_flight_ >= kMaxInFlight || out_.size() + wbuf_.size() >= kMaxPending;
  }

  void Read() {
    if (closed_ || reading_) return;
    if (Full()) {
      paused_ = true;
      return;
    }
    reading_ = true;
    const size_t want = skip_ > 0 ? static_cast<size_t>(std::min<uint64_t>(skip_, 1 << 20))
                        : need_ > in_.size() ? need_ - in_.size()
                                             : 0;
    // Bounded steps: a frame header alone does not allocate its whole size.
    socket_.async_read_some(in_.prepare(std::clamp<size_t>(want, 64 * 1024, 4 << 20)),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->reading_ = false;
                              self->OnRead(ec, n);
                            });
  }

  void OnRead(beast::error_code ec, size_t n) {
    if (ec) {
      // The gateway went away (or the server stopped): answers still being
      // computed have nobody to go to.
      Close();
      return;
    }
    in_.commit(n);
    TakeGuarded();
  }

  // A bug (or an allocation failure) costs this link, not the loop.
  void TakeGuarded() {
    try {
      Take();
    } catch (const std::exception& e) {
      OSPREY_LOG(kError) << "replica link: " << e.what() << "; closing the link";
      Close();
    }
  }

  void Take() {
    const uint64_t max_frame =
        std::min(std::min<uint64_t>(shared_->max_request_bytes, link::kMaxFrame) + 64 * 1024 +
                     link::kFrameHeader,
                 link::kMaxFrame);
    for (;;) {
      if (Full()) {  // the rest waits in in_ until answers go out
        paused_ = true;
        return;
      }
      if (skip_ > 0) {  // the rest of a request over the limit
        const size_t drop = static_cast<size_t>(std::min<uint64_t>(skip_, in_.size()));
        in_.consume(drop);
        skip_ -= drop;
        if (skip_ > 0) break;
        Answer(skip_id_, JsonErrorResponse(413, StrCat("request body exceeds the limit of ",
                                                       shared_->max_request_bytes, " bytes")));
        continue;
      }
      auto bytes = in_.data();
      std::string_view data(static_cast<const char*>(bytes.data()), bytes.size());
      if (data.size() >= link::kFrameHeader) {
        // A well-formed frame over the limit costs its own request a 413,
        // not the link.
        const uint64_t size = link::GetU32(data.data());
        const uint64_t head = link::GetU32(data.data() + 12);
        if (size >= 12 && head <= size - 12 && size + 4 > max_frame) {
          skip_ = size + 4;
          skip_id_ = link::GetU32(data.data() + 4);
          ++in_flight_;
          need_ = 0;
          continue;
        }
      }
      link::Frame frame;
      uint64_t need = 0;
      const int64_t used = link::ParseFrame(data, max_frame, &frame, &need);
      if (used < 0) {
        OSPREY_LOG(kError) << "replica link: malformed frame (" << data.size()
                           << " bytes buffered, limit " << max_frame << "); closing the link";
        Close();
        return;
      }
      if (used == 0) {
        need_ = need;
        break;
      }
      need_ = 0;
      Dispatch(frame);
      in_.consume(static_cast<size_t>(used));
      if (closed_) return;
    }
    if (in_.size() == 0 && in_.capacity() > kKeptBuffer) in_.shrink_to_fit();
    Read();
    CloseWhenDone();
  }

  // One request: the head's request line and header lines are read in place
  // (they live until Handle returns); the body is copied once, to be shared.
  void Dispatch(const link::Frame& frame) {
    const uint32_t id = frame.id;
    ++in_flight_;
    std::string_view head = frame.head;
    const size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    std::string_view lines =
        eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp1 == 0) {
      Answer(id, JsonErrorResponse(400, "malformed request line on the replica link"));
      return;
    }
    HttpRequest req;
    req.arrival = std::chrono::steady_clock::now();
    req.io_context = &loop_->io;
    req.method = line.substr(0, sp1);
    if (req.method == "HEAD") req.method = "GET";  // the gateway leaves the body out
    req.target = line.substr(sp1 + 1, sp2 == std::string_view::npos ? sp2 : sp2 - sp1 - 1);
    req.headers.context = &lines;
    req.headers.visit = [](const void* context, HeaderSource::Visit visit) {
      link::ForEachHeaderLine(*static_cast<const std::string_view*>(context), visit);
    };
    if (std::string_view hl = FindHeader(req.headers, "Inference-Header-Content-Length");
        !hl.empty()) {
      HttpResponse error;
      if (!ReadInferenceHeaderLength(hl, &req, &error)) {
        Answer(id, std::move(error));
        return;
      }
    }
    req.body = std::make_shared<const std::string>(frame.body);
    auto reply = [self = shared_from_this(), id](HttpResponse response) {
      asio::dispatch(self->loop_->io, [self, id, response = std::move(response)]() mutable {
        self->Answer(id, std::move(response));
      });
    };
    RunHandler(shared_, req, std::move(reply),
               [this, id](HttpResponse r) { Answer(id, std::move(r)); });
  }

  void Answer(uint32_t id, HttpResponse response) {
    --in_flight_;
    if (closed_) return;
    if (response.body.size() + response.header_lines.size() + response.content_type.size() >
        kMaxAnswer)
      response = JsonErrorResponse(500, StrCat("an answer of ", response.body.size(),
                                               " bytes exceeds the replica link's frame limit"));
    lines_.clear();
    if (!response.content_type.empty())
      StrAppend(&lines_, "Content-Type: ", response.content_type, "\r\n");
    if (response.inference_header_length.has_value())
      StrAppend(&lines_, "Inference-Header-Content-Length: ", *response.inference_header_length,
                "\r\n");
    lines_.append(response.header_lines);
    link::AppendFrame(&out_, id, static_cast<uint32_t>(response.status), lines_, response.body);
    // The other answers of this loop turn join this one in a single write.
    if (!flush_posted_) {
      flush_posted_ = true;
      asio::post(loop_->io, [self = shared_from_this()] {
        self->flush_posted_ = false;
        self->Flush();
      });
    }
  }

  void Flush() {
    if (closed_ || writing_ || out_.empty()) return;
    wbuf_.swap(out_);
    out_.clear();
    writing_ = true;
    asio::async_write(socket_, asio::buffer(wbuf_),
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        self->writing_ = false;
                        self->wbuf_.clear();
                        if (self->wbuf_.capacity() > kKeptBuffer) self->wbuf_.shrink_to_fit();
                        if (ec) {
                          self->Close();
                          return;
                        }
                        self->Flush();
                        if (self->paused_ && !self->Full()) {
                          self->paused_ = false;
                          self->TakeGuarded();  // the frames waiting, then reads on
                        }
                        self->CloseWhenDone();
                      });
  }

  // Idle: nothing in flight, nothing to write, no part of a request here or
  // in the kernel (the gateway counts what it wrote as sent).
  void CloseWhenDone() {
    if (!draining_ || closed_ || in_flight_ > 0 || writing_ || !out_.empty() || flush_posted_ ||
        in_.size() > 0 || skip_ > 0)
      return;
    beast::error_code ec;
    if (socket_.available(ec) > 0) return;
    Close();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_send, ignored);
    socket_.close(ignored);
  }

  static constexpr size_t kKeptBuffer = 1 << 20;
  static constexpr size_t kMaxAnswer = 0xffffffffu - (64 << 10);
  Stream socket_;
  beast::flat_buffer in_;
  uint64_t need_ = 0;  // the size of the frame being received, once known
  uint64_t skip_ = 0;  // bytes left of a request over the limit
  uint32_t skip_id_ = 0;
  std::string lines_;  // the header lines of the answer being framed
  std::string out_;    // answers waiting for the next write
  std::string wbuf_;   // the answers being written
  int in_flight_ = 0;
  bool reading_ = false;
  bool paused_ = false;  // reading stopped at the in-flight or pending limit
  bool writing_ = false;
  bool flush_posted_ = false;
  bool draining_ = false;
  bool closed_ = false;
};

// One listening socket (no SO_REUSEPORT, so a second server cannot silently
// share the port), owned by the first loop; each accepted connection goes to
// the next loop in turn and lives there. Over TCP, or a Unix domain socket.
template <typename Protocol>
struct Acceptor {
  typename Protocol::acceptor socket;
  std::vector<Loop*> loops;
  size_t next = 0;  // touched only on the acceptor's loop
  Shared* shared;
  bool link = false;  // connections are replica links, not HTTP
  // An extra port's (HttpServer::Listen) request port and TLS, which Listen
  // may replace while it accepts; null for the server's own ports.
  struct State {
    std::mutex mu;
    int listener = 0;  // HttpRequest::listener_port of its requests
    std::shared_ptr<TlsConfig> tls;
  };
  std::shared_ptr<State> state;
};

template <typename Protocol>
void Accept(Acceptor<Protocol>* acceptor) {
  Loop* target = acceptor->loops[acceptor->next];
  acceptor->next = (acceptor->next + 1) % acceptor->loops.size();
  acceptor->socket.async_accept(
      target->io, [acceptor, target](beast::error_code ec, typename Protocol::socket socket) {
        if (ec) {
          if (ec == asio::error::operation_aborted || !acceptor->socket.is_open()) return;
          OSPREY_LOG(kWarning) << "accept failed: " << ec.message();
        } else {
          if constexpr (std::is_same_v<Protocol, tcp>) {
            beast::error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
          }
          Shared* shared = acceptor->shared;
          const bool link = acceptor->link;
          int listener = 0;
          std::shared_ptr<TlsConfig> tls;
          if (acceptor->state != nullptr) {
            std::lock_guard<std::mutex> lock(acceptor->state->mu);
            listener = acceptor->state->listener;
            tls = acceptor->state->tls;
          }
          asio::post(target->io, [target, shared, link, listener, tls = std::move(tls),
                                  s = Stream(std::move(socket))]() mutable {
            if (link) {
              std::make_shared<LinkSession>(std::move(s), target, shared)->Start();
            } else if (tls != nullptr) {
              asio::ssl::context& first = *tls->contexts.front();
              std::make_shared<TlsSession>(asio::ssl::stream<Stream>(std::move(s), first), target,
                                           shared, listener, std::move(tls))
                  ->Start();
            } else {
              std::make_shared<Session>(std::move(s), target, shared, listener)->Start();
            }
          });
        }
        if (acceptor->socket.is_open()) Accept(acceptor);
      });
}

}  // namespace

struct HttpServer::Impl {
  Shared shared;
  std::list<Loop> loops;                         // stable addresses
  std::optional<Acceptor<tcp>> acceptor;         // on the first loop
  std::optional<Acceptor<local>> unix_acceptor;  // likewise, when asked for
  std::optional<Acceptor<local>> link_acceptor;  // replica links, when asked for
  uint16_t port = 0;
  asio::ip::address address;
  // Extra listening ports (Listen), by port; closed ones are kept (their
  // last accept may still be completing) until the server goes.
  std::mutex extra_mu;
  std::map<uint16_t, std::unique_ptr<Acceptor<tcp>>> extra;
  std::vector<std::unique_ptr<Acceptor<tcp>>> closed;
  std::vector<Loop*> loop_list;

  void StopLoops() {
    for (Loop& l : loops) l.io.stop();
    for (Loop& l : loops)
      if (l.thread.joinable()) l.thread.join();
  }
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { impl_->StopLoops(); }

uint16_t HttpServer::port() const { return impl_->port; }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const Options& options,
                                                              HttpHandler* handler) {
  auto impl = std::make_unique<Impl>();
  impl->shared.handler = handler;
  impl->shared.max_request_bytes = options.max_request_bytes;
  beast::error_code ec;
  auto address = asio::ip::make_address(options.address, ec);
  if (ec) return absl::InvalidArgumentError(StrCat("invalid address '", options.address, "'"));
  uint16_t port = options.port;
  int threads = std::max(1, options.threads);
  std::vector<Loop*> loops;
  for (int i = 0; i < threads; ++i) loops.push_back(&impl->loops.emplace_back());
  impl->address = address;
  impl->loop_list = loops;
  Acceptor<tcp>& acceptor =
      impl->acceptor.emplace(Acceptor<tcp>{tcp::acceptor(loops[0]->io), loops, 0, &impl->shared});
  tcp::acceptor& a = acceptor.socket;
  tcp::endpoint endpoint(address, port);
  a.open(endpoint.protocol(), ec);
  // SO_REUSEADDR only lets us rebind past TIME_WAIT; a live listener still
  // makes bind fail with "address in use".
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return absl::UnavailableError(
        StrCat("cannot listen on ", options.address, ":", port, ": ", ec.message()));
  impl->port = a.local_endpoint().port();
  Accept(&acceptor);
  auto listen_unix = [&](std::optional<Acceptor<local>>& slot, const std::string& path,
                         bool link) -> absl::Status {
    ::unlink(path.c_str());  // left by a previous run
    Acceptor<local>& u =
        slot.emplace(Acceptor<local>{local::acceptor(loops[0]->io), loops, 0, &impl->shared, link});
    local::endpoint where(path);
    u.socket.open(where.protocol(), ec);
    if (!ec) u.socket.bind(where, ec);
    if (!ec) u.socket.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return absl::UnavailableError(StrCat("cannot listen on ", path, ": ", ec.message()));
    Accept(&u);
    return absl::OkStatus();
  };
  if (!options.unix_socket.empty())
    if (auto st = listen_unix(impl->unix_acceptor, options.unix_socket, false); !st.ok()) return st;
  if (!options.link_socket.empty())
    if (auto st = listen_unix(impl->link_acceptor, options.link_socket, true); !st.ok()) return st;
  // A handler that throws (a bug: nothing on these paths throws by design)
  // loses its own exchange, not the loop and every connection on it.
  for (Loop& loop : impl->loops)
    loop.thread = std::thread([&loop] {
      for (;;) {
        try {
          loop.io.run();
          return;
        } catch (const std::exception& e) {
          OSPREY_LOG(kError) << "HTTP event loop: a handler threw: " << e.what()
                             << "; the loop goes on";
        }
      }
    });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

absl::Status HttpServer::Listen(uint16_t port) { return Listen(port, ListenOptions()); }

absl::Status HttpServer::Listen(uint16_t port, const ListenOptions& options) {
  if (port == 0) return absl::InvalidArgumentError("Listen needs a port; see ListenOnFreePort");
  return ListenOn(port, options).status();
}

absl::StatusOr<uint16_t> HttpServer::ListenOnFreePort(const ListenOptions& options) {
  return ListenOn(0, options);
}

absl::StatusOr<uint16_t> HttpServer::ListenOn(uint16_t port, const ListenOptions& options) {
  std::shared_ptr<TlsConfig> tls;
  if (!options.tls.empty()) {
    auto loaded = LoadTls(options.tls, options.tls13_only);
    if (!loaded.ok()) return loaded.status();
    tls = *std::move(loaded);
  }
  int request_port = options.request_port != 0 ? options.request_port : port;
  std::lock_guard<std::mutex> lock(impl_->extra_mu);
  if (auto it = impl_->extra.find(port); port != 0 && it != impl_->extra.end()) {
    std::lock_guard<std::mutex> state_lock(it->second->state->mu);
    it->second->state->listener = request_port;
    it->second->state->tls = std::move(tls);
    return port;
  }
  if (impl_->shared.draining.load()) return absl::UnavailableError("the server is draining");
  auto state = std::make_shared<Acceptor<tcp>::State>();
  state->listener = request_port;
  state->tls = std::move(tls);
  auto acceptor = std::make_unique<Acceptor<tcp>>(
      Acceptor<tcp>{tcp::acceptor(impl_->loops.front().io), impl_->loop_list, 0, &impl_->shared,
                    false, std::move(state)});
  beast::error_code ec;
  tcp::endpoint endpoint(impl_->address, port);
  tcp::acceptor& a = acceptor->socket;
  a.open(endpoint.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return absl::UnavailableError(
        StrCat("cannot listen on ", impl_->address.to_string(), ":", port, ": ", ec.message()));
  if (port == 0) {  // the system's pick
    port = a.local_endpoint().port();
    if (options.request_port == 0) acceptor->state->listener = port;
  }
  Acceptor<tcp>* raw = acceptor.get();
  impl_->extra.emplace(port, std::move(acceptor));
  // Accepting starts on the acceptor's own loop, as the others do.
  asio::post(impl_->loops.front().io, [raw] { Accept(raw); });
  return port;
}

void HttpServer::StopListening(uint16_t port) {
  std::lock_guard<std::mutex> lock(impl_->extra_mu);
  auto it = impl_->extra.find(port);
  if (it == impl_->extra.end()) return;
  Acceptor<tcp>* raw = it->second.get();
  asio::post(impl_->loops.front().io, [raw] {
    beast::error_code ignored;
    raw->socket.close(ignored);
  });
  // Connections it accepted live on as the others do; the acceptor object
  // outlives its last (aborted) accept.
  impl_->closed.push_back(std::move(it->second));
  impl_->extra.erase(it);
}

std::set<uint16_t> HttpServer::listening() const {
  std::lock_guard<std::mutex> lock(impl_->extra_mu);
  std::set<uint16_t> out;
  for (const auto& [port, a] : impl_->extra) out.insert(port);
  return out;
}

bool HttpServer::Drain(std::chrono::milliseconds grace) {
  impl_->shared.draining.store(true);
  {
    std::lock_guard<std::mutex> lock(impl_->extra_mu);
    for (auto& [port, a] : impl_->extra) {
      Acceptor<tcp>* raw = a.get();
      asio::post(impl_->loops.front().io, [raw] {
        beast::error_code ignored;
        raw->socket.close(ignored);
      });
    }
  }
  Acceptor<tcp>* acceptor = &*impl_->acceptor;
  Acceptor<local>* unix_acceptor = impl_->unix_acceptor ? &*impl_->unix_acceptor : nullptr;
  Acceptor<local>* link_acceptor = impl_->link_acceptor ? &*impl_->link_acceptor : nullptr;
  asio::post(impl_->loops.front().io, [acceptor, unix_acceptor, link_acceptor] {
    beast::error_code ignored;
    acceptor->socket.close(ignored);
    if (unix_acceptor != nullptr) unix_acceptor->socket.close(ignored);
    if (link_acceptor != nullptr) link_acceptor->socket.close(ignored);
  });
  for (Loop& loop : impl_->loops) {
    asio::post(loop.io, [&loop] {
      // Copy: Drain may destroy sessions, which erase themselves from the set.
      std::vector<Connection*> sessions(loop.sessions.begin(), loop.sessions.end());
      for (Connection* s : sessions)
        if (loop.sessions.count(s)) s->Drain();
    });
  }
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (impl_->shared.connections.load() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      OSPREY_LOG(kWarning) << impl_->shared.connections.load()
                           << " connection(s) still open at the end of the grace period";
      impl_->StopLoops();
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl_->StopLoops();
  return true;
}

}  // namespace osprey
