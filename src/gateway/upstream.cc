#include "gateway/upstream.h"

#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <unordered_map>

namespace osprey::gateway {
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

// This loop thread's idle keep-alive connections, by replica port (a replica
// has one, whether it is reached on it or on its Unix socket). One loop runs
// on one thread, so the pool needs no lock.
thread_local std::unordered_map<uint16_t, std::vector<std::unique_ptr<Conn>>> idle_pool;

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
      if (self->conn_) {
        beast::error_code ignored;
        self->conn_->socket.close(ignored);
      }
    });
    Acquire(/*fresh=*/false);
  }

 private:
  void Acquire(bool fresh) {
    auto& idle = idle_pool[req_.port];
    if (!fresh && !idle.empty()) {
      conn_ = std::move(idle.back());
      idle.pop_back();
      reused_ = true;
      Write();
      return;
    }
    reused_ = false;
    conn_ = std::make_unique<Conn>(io_);
    auto on_connect = [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        const bool refused = ec == asio::error::connection_refused ||
                             ec == asio::error::not_found ||
                             ec == boost::system::errc::no_such_file_or_directory;
        self->Fail(self->timed_out_ ? absl::DeadlineExceededError("timeout")
                   : refused ? absl::UnavailableError(StrCat("replica on port ", self->req_.port,
                                                             " refused the connection"))
                             : absl::InternalError(StrCat("connect: ", ec.message())));
        return;
      }
      if (self->req_.unix_socket.empty()) {
        beast::error_code ignored;
        self->conn_->socket.set_option(tcp::no_delay(true), ignored);
      }
      self->Write();
    };
    if (req_.unix_socket.empty()) {
      conn_->socket.async_connect(asio::generic::stream_protocol::endpoint(
                                      tcp::endpoint(asio::ip::address_v4::loopback(), req_.port)),
                                  std::move(on_connect));
    } else {
      conn_->socket.async_connect(asio::generic::stream_protocol::endpoint(
                                      asio::local::stream_protocol::endpoint(req_.unix_socket)),
                                  std::move(on_connect));
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

  void Read() {
    parser_.emplace();
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    http::async_read(conn_->socket, conn_->buffer, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) {
                         self->RetryOrFail(ec);
                         return;
                       }
                       self->Complete();
                     });
  }

  // A kept-alive connection the replica had closed fails before any answer
  // byte: the request never reached it, so it goes again on a new one.
  void RetryOrFail(beast::error_code ec) {
    const bool answered = parser_.has_value() && parser_->got_some();
    if (reused_ && !timed_out_ && !answered) {
      conn_.reset();
      parser_.reset();
      Acquire(/*fresh=*/true);
      return;
    }
    Fail(timed_out_ ? absl::DeadlineExceededError("timeout")
                    : absl::InternalError(StrCat("replica on port ", req_.port,
                                                 " broke the connection: ", ec.message())));
  }

  void Complete() {
    finished_ = true;
    timer_.cancel();
    auto& msg = parser_->get();
    UpstreamResult r;
    r.http_status = static_cast<int>(msg.result_int());
    r.headers.reserve(8);
    for (const auto& f : msg)
      r.headers.emplace_back(std::string(f.name_string().data(), f.name_string().size()),
                             std::string(f.value().data(), f.value().size()));
    r.body = std::move(msg.body());
    if (msg.keep_alive()) idle_pool[req_.port].push_back(std::move(conn_));
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
  std::optional<http::response_parser<http::string_body>> parser_;
  bool reused_ = false;
  bool finished_ = false;
  bool timed_out_ = false;
};

}  // namespace

void SendUpstream(UpstreamRequest request, absl::AnyInvocable<void(UpstreamResult)> done) {
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

}  // namespace osprey::gateway
