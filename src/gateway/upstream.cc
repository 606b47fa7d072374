#include "gateway/upstream.h"

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <optional>
#include <unordered_map>

#include "gateway/route_table.h"

namespace osprey::gateway {
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
    if (HeaderNameEquals(name, "content-length")) {
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
    if (HeaderNameEquals(name, "transfer-encoding")) return false;
    if (HeaderNameEquals(name, "connection")) {
      // A token list; "close" ends the connection after this answer.
      while (!value.empty()) {
        size_t comma = value.find(',');
        std::string_view token = value.substr(0, comma);
        value.remove_prefix(comma == std::string_view::npos ? value.size() : comma + 1);
        while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
          token.remove_prefix(1);
        while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
          token.remove_suffix(1);
        if (HeaderNameEquals(token, "close")) out->keep_alive = false;
      }
      continue;
    }
    out->header_lines.append(line.data(), line.size()).append("\r\n");
  }
  out->status = status;
  return have_length;
}

}  // namespace internal

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Stream = asio::generic::stream_protocol::socket;

// A connect error that means nothing listens there: the request never left.
bool Refused(const beast::error_code& ec) {
  return ec == asio::error::connection_refused || ec == asio::error::not_found ||
         ec == boost::system::errc::no_such_file_or_directory;
}

absl::Status RefusedError(uint16_t port) {
  return absl::UnavailableError(StrCat("replica on port ", port, " refused the connection"));
}

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
      conn_->buffer.clear();
      Write();
      return;
    }
    reused_ = false;
    conn_ = std::make_unique<Conn>(io_);
    auto on_connect = [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        self->Fail(self->timed_out_ ? absl::DeadlineExceededError("timeout")
                   : Refused(ec)    ? RefusedError(self->req_.port)
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
      conn_->socket.async_connect(
          asio::generic::stream_protocol::endpoint(
              asio::local::stream_protocol::endpoint(std::string(req_.unix_socket))),
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
          Fail(absl::InternalError(
              StrCat("replica on port ", req_.port, " sent a head over ", kMaxHead, " bytes")));
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
    if (answer_.keep_alive && conn_->buffer.size() == 0) {
      if (conn_->buffer.capacity() > kKeptBuffer) conn_->buffer.shrink_to_fit();
      idle_pool[req_.port].push_back(std::move(conn_));
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
                    : absl::InternalError(StrCat("replica on port ", req_.port,
                                                 " broke the connection: ", ec.message())));
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
    if (msg.keep_alive()) {
      if (conn_->buffer.capacity() > kKeptBuffer) conn_->buffer.shrink_to_fit();
      idle_pool[req_.port].push_back(std::move(conn_));
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
  bool answered_ = false;  // an answer byte came in
  bool reused_ = false;
  bool finished_ = false;
  bool timed_out_ = false;
};

// One loop's link to one replica (link/frame.h): its calls in flight
// by id; the frames of the calls made in a loop turn written together once it
// ends (a call that timed out before then is never sent); one read taking in
// every answer that arrived. Answers come in any order; one that comes after
// its call timed out is dropped.
class Link : public std::enable_shared_from_this<Link> {
 public:
  using Clock = std::chrono::steady_clock;

  Link(asio::io_context& io, std::string path, uint16_t port, int siblings)
      : io_(io),
        socket_(io),
        timer_(io),
        path_(std::move(path)),
        port_(port),
        siblings_(siblings) {}

  const std::string& path() const { return path_; }
  bool broken() const { return broken_; }
  size_t in_flight() const { return pending_.size(); }
  // Closes the link once no call is in flight (another replica took its port).
  void Retire();

  void Start() {
    connecting_ = true;
    socket_.async_connect(
        asio::generic::stream_protocol::endpoint(asio::local::stream_protocol::endpoint(path_)),
        [self = shared_from_this()](beast::error_code ec) {
          self->connecting_ = false;
          if (ec) {
            self->Break(Refused(ec) ? RefusedError(self->port_)
                                    : absl::UnavailableError(StrCat("connect: ", ec.message())));
            return;
          }
          self->Flush();
          self->Read();
        });
  }

  // `deadline` carries a retried call's first deadline; by default the call
  // has its request's timeout from now.
  void Call(UpstreamRequest request, absl::AnyInvocable<void(UpstreamResult)> done, bool retried,
            std::optional<Clock::time_point> deadline = std::nullopt) {
    const size_t bytes = request.head.size() + (request.body ? request.body->size() : 0);
    if (bytes > kMaxRequestFrame) {
      UpstreamResult r;
      r.status = absl::InternalError(
          StrCat("a request of ", bytes, " bytes exceeds the replica link's frame limit"));
      done(std::move(r));
      return;
    }
    const uint32_t id = next_id_++;
    const Clock::time_point at = deadline.value_or(Clock::now() + request.timeout);
    pending_[id] = Pending{std::move(request), std::move(done), at, false, retried};
    unsent_.push_back(id);
    ArmTimer(at);
    // The other calls of this loop turn join this one in a single write.
    if (!flush_posted_ && !connecting_) {
      flush_posted_ = true;
      asio::post(io_, [self = shared_from_this()] {
        self->flush_posted_ = false;
        self->Flush();
      });
    }
  }

 private:
  struct Pending {
    UpstreamRequest request;  // its head and body, until the frame is written
    absl::AnyInvocable<void(UpstreamResult)> done;
    Clock::time_point deadline;
    bool sent = false;     // handed to the kernel: the replica may have it
    bool retried = false;  // already on its second link
  };

  // Writes the frames of the calls still waiting (timed-out ones are gone
  // from pending_ and are skipped).
  void Flush() {
    if (broken_ || connecting_ || !writing_.empty() || unsent_.empty()) return;
    wbuf_.clear();
    for (uint32_t id : unsent_) {
      auto it = pending_.find(id);
      if (it == pending_.end()) continue;
      const UpstreamRequest& request = it->second.request;
      const size_t body = request.body ? request.body->size() : 0;
      link::AppendFrameHeader(&wbuf_, id, 0, request.head.size(), body);
      wbuf_.append(request.head);
      if (body > 0) wbuf_.append(*request.body);
      it->second.sent = true;
      writing_.push_back({id, wbuf_.size()});
    }
    unsent_.clear();
    if (writing_.empty()) return;
    asio::async_write(
        socket_, asio::buffer(wbuf_), [self = shared_from_this()](beast::error_code ec, size_t n) {
          if (self->broken_) {  // broke while this write was out: it knows what left
            self->SettleWrite(n);
            return;
          }
          if (ec) {
            // The replica can take only whole frames: those not wholly
            // written never reached it and may go again.
            for (const auto& [id, end] : self->writing_)
              if (end > n)
                if (auto it = self->pending_.find(id); it != self->pending_.end())
                  it->second.sent = false;
            self->writing_.clear();
            self->Break(absl::InternalError(
                StrCat("replica on port ", self->port_, " broke the connection: ", ec.message())));
            return;
          }
          self->writing_.clear();
          self->wbuf_.clear();
          if (self->wbuf_.capacity() > kKeptBuffer) self->wbuf_.shrink_to_fit();
          self->Flush();
        });
  }

  // A read is always pending while the link lives, so a replica that goes
  // away is seen at once, not by the next call.
  void Read() {
    const size_t want = need_ > in_.size() ? need_ - in_.size() : 0;
    socket_.async_read_some(
        in_.prepare(std::clamp<size_t>(want, 64 * 1024, kMaxReadStep)),
        [self = shared_from_this()](beast::error_code ec, size_t n) {
          if (ec) {
            self->Break(absl::InternalError(
                StrCat("replica on port ", self->port_, " broke the connection: ", ec.message())));
            return;
          }
          self->in_.commit(n);
          // A bug (or an allocation failure) costs this link, not the loop's
          // other work: the link breaks and the next call makes a new one.
          try {
            self->Take();
          } catch (const std::exception& e) {
            self->Break(absl::InternalError(StrCat("replica link: ", e.what())));
          }
        });
  }

  void Take() {
    for (;;) {
      auto bytes = in_.data();
      std::string_view data(static_cast<const char*>(bytes.data()), bytes.size());
      link::Frame frame;
      uint64_t need = 0;
      const int64_t used = link::ParseFrame(data, link::kMaxFrame, &frame, &need);
      if (used < 0) {
        Break(absl::InternalError(
            StrCat("replica on port ", port_, " sent a malformed frame on its link")));
        return;
      }
      if (used == 0) {
        need_ = need;
        break;
      }
      need_ = 0;
      auto it = pending_.find(frame.id);
      if (it == pending_.end()) {  // its call timed out
        in_.consume(static_cast<size_t>(used));
        continue;
      }
      // Built before the call leaves pending_: if this throws, Break still
      // answers it.
      UpstreamResult r;
      if (frame.code < 100 || frame.code > 599) {
        r.status = absl::InternalError(
            StrCat("replica on port ", port_, " answered with status ", frame.code));
      } else {
        r.http_status = static_cast<int>(frame.code);
        r.header_lines.assign(frame.head.data(), frame.head.size());
        r.body.assign(frame.body.data(), frame.body.size());
      }
      auto done = std::move(it->second.done);
      pending_.erase(it);
      in_.consume(static_cast<size_t>(used));
      done(std::move(r));  // may start calls on this link: they only queue
      if (broken_) return;
    }
    if (in_.size() == 0 && in_.capacity() > kKeptBuffer) in_.shrink_to_fit();
    if (retiring_ && pending_.empty()) {
      Retire();
      return;
    }
    Read();
  }

  // One timer per link, at the earliest deadline of its calls.
  void ArmTimer(Clock::time_point deadline) {
    if (timer_armed_ && deadline >= timer_at_) return;
    timer_armed_ = true;
    timer_at_ = deadline;
    timer_.expires_at(deadline);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->broken_) return;  // re-armed earlier, or gone
      self->timer_armed_ = false;
      self->Expire();
    });
  }

  void Expire() {
    const Clock::time_point now = Clock::now();
    std::vector<absl::AnyInvocable<void(UpstreamResult)>> expired;
    Clock::time_point next = Clock::time_point::max();
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.deadline <= now) {
        expired.push_back(std::move(it->second.done));
        it = pending_.erase(it);
      } else {
        next = std::min(next, it->second.deadline);
        ++it;
      }
    }
    if (next != Clock::time_point::max()) ArmTimer(next);
    for (auto& done : expired) {
      UpstreamResult r;
      r.status = absl::DeadlineExceededError("timeout");
      done(std::move(r));
    }
    if (retiring_ && !broken_) Retire();
  }

  // The link is over: calls the replica may have are failed with `why`;
  // calls whose frames never left go once more on another link (or fail as
  // unavailable: nothing reached the replica). Calls in a write still out
  // are settled when it completes, by how much of it left.
  void Break(absl::Status why);
  void SettleWrite(size_t written);
  void Settle(Pending p);

  static constexpr size_t kKeptBuffer = 1 << 20;
  static constexpr size_t kMaxReadStep = 4 << 20;
  static constexpr size_t kMaxRequestFrame = 0xffffffffu - 64;
  asio::io_context& io_;
  Stream socket_;
  asio::steady_timer timer_;
  std::string path_;
  uint16_t port_;
  int siblings_;  // the links its loop may keep to the replica (for retries)
  uint32_t next_id_ = 1;
  std::unordered_map<uint32_t, Pending> pending_;
  absl::Status why_;  // why the link broke
  // Calls in the write that was out when the link broke, and where each
  // frame ends in wbuf_.
  std::vector<std::pair<size_t, Pending>> in_write_;
  bool retiring_ = false;
  std::vector<uint32_t> unsent_;  // calls whose frames wait for the next write
  // The calls in the write in progress, with where each frame ends in wbuf_
  // (empty: no write in progress).
  std::vector<std::pair<uint32_t, size_t>> writing_;
  std::string wbuf_;
  beast::flat_buffer in_;
  uint64_t need_ = 0;  // the size of the answer frame being received, once known
  Clock::time_point timer_at_;
  bool timer_armed_ = false;
  bool connecting_ = false;
  bool flush_posted_ = false;
  bool broken_ = false;
};

// This loop thread's links, by replica port.
thread_local std::unordered_map<uint16_t, std::vector<std::shared_ptr<Link>>> links;

// The link with the fewest calls in flight; a new one when every link is
// busy and there may be more (or when there is none).
std::shared_ptr<Link> LinkFor(asio::io_context& io, uint16_t port, std::string_view path,
                              int max_links) {
  auto& set = links[port];
  std::vector<std::shared_ptr<Link>> stale;
  std::erase_if(set, [&](const auto& l) {
    if (!l->broken() && l->path() != path) stale.push_back(l);  // another replica took the port
    return l->broken() || l->path() != path;
  });
  for (auto& l : stale) l->Retire();
  std::shared_ptr<Link>* best = nullptr;
  for (auto& l : set)
    if (best == nullptr || l->in_flight() < (*best)->in_flight()) best = &l;
  if (best != nullptr &&
      ((*best)->in_flight() == 0 || static_cast<int>(set.size()) >= std::max(1, max_links)))
    return *best;
  auto link = std::make_shared<Link>(io, std::string(path), port, max_links);
  set.push_back(link);
  link->Start();
  return link;
}

void Link::Break(absl::Status why) {
  if (broken_) return;
  auto self = shared_from_this();  // the callbacks below may drop the last other reference
  broken_ = true;
  why_ = std::move(why);
  beast::error_code ignored;
  socket_.close(ignored);
  timer_.cancel();
  if (auto it = links.find(port_); it != links.end())
    std::erase_if(it->second, [this](const auto& l) { return l.get() == this; });
  auto pending = std::move(pending_);
  pending_.clear();
  unsent_.clear();
  for (const auto& [id, end] : writing_)
    if (auto it = pending.find(id); it != pending.end()) {
      in_write_.emplace_back(end, std::move(it->second));
      pending.erase(it);
    }
  writing_.clear();
  for (auto& [id, p] : pending) Settle(std::move(p));
}

void Link::SettleWrite(size_t written) {
  auto calls = std::move(in_write_);
  in_write_.clear();
  for (auto& [end, p] : calls) {
    p.sent = end <= written;  // only whole frames can have reached the replica
    Settle(std::move(p));
  }
}

void Link::Settle(Pending p) {
  if (!p.sent && !p.retried) {
    // Nothing reached the replica: another link to it, once. After a refused
    // connection only one already up (a sibling), else it fails below.
    std::shared_ptr<Link> other;
    if (why_.code() != absl::StatusCode::kUnavailable) {
      other = LinkFor(io_, port_, path_, siblings_);
    } else if (auto it = links.find(port_); it != links.end()) {
      for (auto& l : it->second)
        if (!l->broken() && !l->connecting_ && l->path() == path_) other = l;
    }
    if (other) {
      UpstreamRequest request = p.request;
      other->Call(std::move(request), std::move(p.done), /*retried=*/true, p.deadline);
      return;
    }
  }
  UpstreamResult r;
  r.status = p.sent ? why_
                    : absl::UnavailableError(why_.code() == absl::StatusCode::kUnavailable
                                                 ? std::string(why_.message())
                                                 : StrCat("replica on port ", port_,
                                                          " closed its link before the request "
                                                          "was sent"));
  p.done(std::move(r));
}

void Link::Retire() {
  retiring_ = true;
  if (pending_.empty() && writing_.empty())
    Break(absl::UnavailableError(StrCat("link to replica on port ", port_, " replaced")));
}

}  // namespace

void SendUpstream(UpstreamRequest request, absl::AnyInvocable<void(UpstreamResult)> done) {
  if (request.link && !request.unix_socket.empty()) {
    auto* io = static_cast<asio::io_context*>(request.io_context);
    LinkFor(*io, request.port, request.unix_socket, request.links)
        ->Call(std::move(request), std::move(done), /*retried=*/false);
    return;
  }
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
