#include "link/link_client.h"

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/strings.h"

namespace osprey::link {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using Stream = asio::generic::stream_protocol::socket;
using osprey::internal::ConnectRefused;

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
            self->Break(ConnectRefused(ec)
                            ? osprey::internal::RefusedError(self->port_)
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
      AppendFrameHeader(&wbuf_, id, 0, request.head.size(), body);
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
      Frame frame;
      uint64_t need = 0;
      const int64_t used = ParseFrame(data, kMaxFrame, &frame, &need);
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

void SendOnLink(UpstreamRequest request, absl::AnyInvocable<void(UpstreamResult)> done) {
  auto* io = static_cast<asio::io_context*>(request.io_context);
  LinkFor(*io, request.port, request.unix_socket, request.links)
      ->Call(std::move(request), std::move(done), /*retried=*/false);
}

}  // namespace osprey::link
