#include "gateway/observers/payload_log.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>
#include <memory>
#include <optional>

#include "common/json_writer.h"
#include "common/prometheus.h"
#include "common/strings.h"
#include "gateway/route_table.h"
#include "net/http_client.h"

namespace osprey::gateway {
namespace {

constexpr char kRequestType[] = "org.kubeflow.serving.inference.request";
constexpr char kResponseType[] = "org.kubeflow.serving.inference.response";

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Calls fn(name, value) for each "Name: value" line of `lines`, up to a
// blank line; values trimmed of blanks.
template <typename Fn>
void ForEachHeader(std::string_view lines, Fn&& fn) {
  while (!lines.empty()) {
    const size_t eol = lines.find("\r\n");
    std::string_view line = lines.substr(0, eol);
    lines.remove_prefix(eol == std::string_view::npos ? lines.size() : eol + 2);
    if (line.empty()) return;  // the head's end
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    fn(line.substr(0, colon), value);
  }
}

// The request head's header lines (after its request line).
std::string_view HeaderLines(std::string_view head) {
  const size_t eol = head.find("\r\n");
  return eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
}

std::string_view Find(std::string_view lines, std::string_view name) {
  std::string_view found;
  bool seen = false;
  ForEachHeader(lines, [&](std::string_view n, std::string_view v) {
    if (!seen && IEquals(n, name)) {
      found = v;
      seen = true;
    }
  });
  return found;
}

bool Retryable(int status) { return status == 429 || status >= 500; }

}  // namespace

bool ParseSinkUrl(std::string_view url, SinkUrl* out) {
  if (!url.starts_with("http://")) return false;
  url.remove_prefix(7);
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  out->path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (authority.empty() || authority.find('@') != std::string_view::npos) return false;
  out->authority = std::string(authority);
  if (authority.front() == '[') {  // [v6]:port
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    out->host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    out->port = authority.starts_with(":") ? std::string(authority.substr(1)) : "80";
  } else {
    const size_t colon = authority.rfind(':');
    out->host = std::string(authority.substr(0, colon));
    out->port = colon == std::string_view::npos ? "80" : std::string(authority.substr(colon + 1));
  }
  return !out->host.empty() && !out->port.empty();
}

int ParseResponse(std::string_view in, int* status, size_t* consumed, bool* close) {
  const size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return in.size() > (64 << 10) ? -1 : 0;
  const std::string_view head = in.substr(0, head_end + 2);
  if (!head.starts_with("HTTP/1.") || head.size() < 12) return -1;
  *status = 0;
  for (char c : head.substr(9, 3)) {
    if (c < '0' || c > '9') return -1;
    *status = *status * 10 + (c - '0');
  }
  std::optional<size_t> length;
  bool chunked = false;
  *close = head.starts_with("HTTP/1.0");
  ForEachHeader(head.substr(head.find("\r\n") + 2), [&](std::string_view n, std::string_view v) {
    if (IEquals(n, "content-length")) {
      size_t l = 0;
      for (char c : v) l = (c >= '0' && c <= '9') ? l * 10 + (c - '0') : l;
      length = l;
    } else if (IEquals(n, "transfer-encoding")) {
      chunked = IEquals(v, "chunked");
    } else if (IEquals(n, "connection")) {
      *close = IEquals(v, "close");
    }
  });
  size_t at = head_end + 4;
  if (*status / 100 == 1 || *status == 204 || *status == 304) {
    *consumed = at;
    return 1;
  }
  if (chunked) {
    for (;;) {
      const size_t eol = in.find("\r\n", at);
      if (eol == std::string_view::npos) return 0;
      size_t size = 0;
      for (char c : in.substr(at, eol - at)) {
        const int d = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
        if (d < 0) break;  // chunk extensions
        size = size * 16 + d;
      }
      if (size == 0) {  // the last chunk, then trailers up to a blank line
        const size_t end = in.find("\r\n\r\n", eol);
        if (end == std::string_view::npos) return 0;
        *consumed = end + 4;
        return 1;
      }
      at = eol + 2 + size + 2;
      if (at > in.size()) return 0;
    }
  }
  if (!length) {  // a body up to the connection's end: the answer is its head
    *consumed = at;
    *close = true;
    return 2;
  }
  if (in.size() < at + *length) return 0;
  *consumed = at + *length;
  return 1;
}

Pipeline::~Pipeline() { Close(); }

void Pipeline::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  in_.clear();
}

bool Pipeline::Connect(const SinkUrl& url, std::chrono::milliseconds timeout) {
  if (fd_ >= 0 && authority_ == url.authority) return true;
  if (authority_ != url.authority) close_each_ = false;
  Close();
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &found) != 0) return false;
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  for (addrinfo* a = found; a != nullptr && fd_ < 0; a = a->ai_next) {
    fd_ = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd_ < 0) continue;
    // Also the connect timeout (Linux).
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (::connect(fd_, a->ai_addr, a->ai_addrlen) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  freeaddrinfo(found);
  authority_ = url.authority;
  return fd_ >= 0;
}

void Pipeline::Post(const SinkUrl& url, const std::vector<PayloadEvent*>& events,
                    std::chrono::milliseconds timeout, std::vector<int>* statuses) {
  statuses->assign(events.size(), 0);
  // Each event's request, kept apart so that what got no answer can go again.
  out_.clear();
  std::vector<size_t> starts;
  starts.reserve(events.size() + 1);
  for (const PayloadEvent* ev : events) {
    starts.push_back(out_.size());
    StrAppend(&out_, "POST ", url.path, " HTTP/1.1\r\nHost: ", url.authority, "\r\n");
    for (const auto& [n, v] : ev->headers) StrAppend(&out_, n, ": ", v, "\r\n");
    StrAppend(&out_, "Content-Length: ", ev->body.size(), "\r\n\r\n");
    out_.append(ev->body);
  }
  starts.push_back(out_.size());
  size_t done = 0;
  bool retried_stale = false;
  char buf[16384];
  while (done < events.size()) {
    const bool reused = fd_ >= 0 && authority_ == url.authority;
    if (!Connect(url, timeout)) return;
    // A sink that closes its connection after an answer gets one request per
    // connection: the rest of a pipelined write would only be lost.
    const size_t upto = close_each_ ? done + 1 : events.size();
    bool failed = false, timed_out = false, closed = false;
    const size_t first = done;
    for (size_t off = starts[done]; off < starts[upto] && !failed;) {
      const ssize_t n = ::send(fd_, out_.data() + off, starts[upto] - off, MSG_NOSIGNAL);
      if (n <= 0) {
        failed = true;
      } else {
        off += static_cast<size_t>(n);
      }
    }
    while (!failed && !closed && done < upto) {
      int status = 0;
      size_t consumed = 0;
      bool close = false;
      const int r = ParseResponse(in_, &status, &consumed, &close);
      if (r < 0) {
        failed = true;
      } else if (r > 0) {
        in_.erase(0, consumed);
        if (status / 100 == 1) continue;  // interim
        (*statuses)[done++] = status;
        closed = close;
      } else {
        const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) timed_out = true;
        if (n <= 0) {
          failed = true;
        } else {
          in_.append(buf, static_cast<size_t>(n));
        }
      }
    }
    if (done == events.size() && !closed && !failed) return;
    Close();
    if (closed) {
      // Answered, then closed: the rest at once on a new connection, one
      // per connection from now on when more were waiting.
      if (done < upto || upto - first > 1) close_each_ = true;
      continue;
    }
    // No answer at all on a kept-alive connection the sink closed meanwhile:
    // once more, at once. A timeout is not that: the sink may have them all,
    // and what got no answer goes again only after the caller's backoff.
    if (done == first && reused && !timed_out && !retried_stale) {
      retried_stale = true;
      continue;
    }
    return;
  }
}

std::string CanonicalHeaderName(std::string_view name) {
  std::string out(name);
  bool upper = true;
  for (char& c : out) {
    c = upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
              : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    upper = c == '-';
  }
  return out;
}

std::string Rfc3339(std::chrono::system_clock::time_point t) {
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  time_t secs = static_cast<time_t>(micros / 1000000);
  int64_t frac = micros % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(frac));
  return buf;
}

void BuildPayloadEvents(const Exchange& e, std::string_view request_time,
                        std::string_view response_time, std::vector<PayloadEvent>* out) {
  if (e.route == nullptr || e.route->logger == nullptr) return;
  if (e.kind != Exchange::Kind::kHttp && e.kind != Exchange::Kind::kInternal) return;
  const RouteLogger& logger = *e.route->logger;
  const bool requests = logger.mode != RouteLogger::Mode::kResponse;
  const bool responses = logger.mode != RouteLogger::Mode::kRequest;
  const std::string_view request_headers = HeaderLines(e.request_head);

  std::string id(Find(request_headers, "ce-id"));
  if (id.empty()) id = std::string(e.request_id);

  // Ce-Metadata: the named request headers, each with all its values, in
  // the order metadataHeaders names them.
  std::string metadata;
  JsonWriter json(&metadata);
  json.BeginObject();
  for (const std::string& name : logger.metadata_headers) {
    bool any = false;
    ForEachHeader(request_headers, [&](std::string_view n, std::string_view v) {
      if (!IEquals(n, name)) return;
      if (!any) json.Key(CanonicalHeaderName(name)).BeginArray();
      any = true;
      json.String(v);
    });
    if (any) json.EndArray();
  }
  json.EndObject();
  std::string annotations;
  if (!logger.annotations.empty()) {
    JsonWriter a(&annotations);
    a.BeginObject();
    for (const auto& [k, v] : logger.annotations) a.Key(k).String(v);
    a.EndObject();
  }

  auto event = [&](const char* type, std::string_view time, std::string_view content_type,
                   std::string_view body) {
    PayloadEvent ev;
    ev.url = logger.url;
    auto& h = ev.headers;
    h.reserve(14);
    h.emplace_back("Ce-Specversion", "1.0");
    h.emplace_back("Ce-Id", id);
    h.emplace_back("Ce-Type", type);
    h.emplace_back("Ce-Source", std::string(e.revision));
    h.emplace_back("Ce-Time", std::string(time));
    h.emplace_back("Ce-Inferenceservicename", e.route->name);
    h.emplace_back("Ce-Namespace", e.route->namespace_);
    h.emplace_back("Ce-Component", logger.component);
    h.emplace_back("Ce-Endpoint", std::string(e.revision));
    h.emplace_back("Ce-Metadata", metadata);
    if (!annotations.empty()) h.emplace_back("Ce-Annotations", annotations);
    if (!content_type.empty()) h.emplace_back("Content-Type", std::string(content_type));
    ev.body = std::string(body);
    return ev;
  };
  if (requests)
    out->push_back(
        event(kRequestType, request_time, Find(request_headers, "content-type"), e.request_body));
  if (responses) {
    std::string_view content_type = Find(e.response_headers, "content-type");
    if (content_type.empty()) content_type = e.response_content_type;
    PayloadEvent ev = event(kResponseType, response_time, content_type, e.response_body);
    // Before Content-Type, with the other attributes.
    auto at = ev.headers.end();
    if (!content_type.empty()) --at;
    ev.headers.insert(at, {"Ce-Httpstatus", StrCat(e.http_status)});
    out->push_back(std::move(ev));
  }
}

PayloadLogObserver::PayloadLogObserver(Options options) : options_(options) {}

PayloadLogObserver::~PayloadLogObserver() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : senders_) t.join();
}

void PayloadLogObserver::OnComplete(const Exchange& e) {
  if (e.route == nullptr || e.route->logger == nullptr) return;
  // Steady times as wall-clock times: now, less how long ago they were.
  const auto steady_now = Exchange::Clock::now();
  const auto wall_now = std::chrono::system_clock::now();
  auto wall = [&](Exchange::Clock::time_point t) {
    return wall_now -
           std::chrono::duration_cast<std::chrono::system_clock::duration>(steady_now - t);
  };
  std::vector<PayloadEvent> events;
  BuildPayloadEvents(e, Rfc3339(wall(e.start)), Rfc3339(wall(e.end)), &events);
  if (!events.empty()) Enqueue(std::move(events));
}

void PayloadLogObserver::Enqueue(std::vector<PayloadEvent> events) {
  size_t dropped = 0;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    if (!started_) {
      started_ = true;
      for (int i = 0; i < std::max(1, options_.senders); ++i)
        senders_.emplace_back([this] { RunSender(); });
    }
    for (auto& ev : events) {
      if (queued_ >= options_.queue_limit ||
          queued_bytes_ + ev.body.size() > options_.queue_bytes) {
        ++dropped;
        continue;
      }
      queued_bytes_ += ev.body.size();
      ++queued_;
      auto& queue = sinks_[ev.url].queue;
      // Wake a sender for a sink's first event, and for a full batch; no more.
      wake = wake || queue.empty() || queue.size() + 1 == kBatch;
      queue.push_back(std::move(ev));
    }
  }
  if (dropped) dropped_.fetch_add(dropped, std::memory_order_relaxed);
  // Every sender: one lingering on another sink's batch waits on the same
  // condition and would take a single wake-up for itself.
  if (wake) cv_.notify_all();
}

std::map<std::string, PayloadLogObserver::Sink>::iterator PayloadLogObserver::NextReadyLocked(
    Clock::time_point now, Clock::time_point* wake) {
  // The sinks in turn, starting after the last one served.
  auto start = sinks_.upper_bound(last_);
  for (size_t n = 0; n < sinks_.size(); ++n, ++start) {
    if (start == sinks_.end()) start = sinks_.begin();
    Sink& s = start->second;
    if (s.busy || s.queue.empty()) continue;
    if (s.not_before <= now) return start;
    *wake = std::min(*wake, s.not_before);
  }
  return sinks_.end();
}

void PayloadLogObserver::RunSender() {
  // The lowest CPU priority: on a saturated machine the requests go first
  // and the queue overflows (counted) rather than the answers slowing down.
  if (options_.low_priority) setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
  HttpClient client;  // https:// sinks
  // http:// sinks: a kept-alive connection to each (by authority), so that
  // sinks served in turn do not reconnect per batch.
  std::map<std::string, Pipeline> pipelines;
  std::vector<PayloadEvent> batch;
  std::vector<PayloadEvent*> pending;
  std::vector<int> statuses;
  for (;;) {
    std::string url;
    batch.clear();
    {
      std::unique_lock<std::mutex> lock(mu_);
      for (;;) {
        if (stopping_) return;
        Clock::time_point wake = Clock::time_point::max();
        auto it = NextReadyLocked(Clock::now(), &wake);
        if (it == sinks_.end()) {
          if (wake == Clock::time_point::max())
            cv_.wait(lock);
          else
            cv_.wait_until(lock, wake);
          continue;
        }
        Sink& sink = it->second;
        // A moment for more to come: one wake-up and one write per batch,
        // not per event (a busy gateway shares its CPU with this thread).
        if (sink.queue.size() < kBatch) {
          sink.busy = true;  // its own to wait on
          cv_.wait_for(lock, kLinger, [&] { return stopping_ || sink.queue.size() >= kBatch; });
          sink.busy = false;
          if (stopping_) return;
        }
        last_ = it->first;
        url = it->first;
        const size_t n = std::min(kBatch, sink.queue.size());
        for (size_t i = 0; i < n; ++i) {
          queued_bytes_ -= sink.queue.front().body.size();
          batch.push_back(std::move(sink.queue.front()));
          sink.queue.pop_front();
        }
        queued_ -= n;
        sink.busy = true;
        break;
      }
    }
    SinkUrl parsed;
    if (pipelines.size() > 64) pipelines.clear();  // sinks come and go: a bound
    Pipeline& pipeline = pipelines[ParseSinkUrl(url, &parsed) ? parsed.authority : std::string()];
    pending.clear();
    for (auto& ev : batch) pending.push_back(&ev);
    Attempt(pending, client, pipeline, &statuses);
    // What went through is counted; what may go through later goes back to
    // the head of its queue, behind a backoff; the rest is given up.
    std::vector<PayloadEvent> again;
    uint64_t sent = 0, failed = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      const int status = statuses[i];
      if (status >= 200 && status < 300) {
        ++sent;
      } else if ((status == 0 || Retryable(status)) &&
                 ++batch[i].attempts < std::max(1, options_.attempts)) {
        again.push_back(std::move(batch[i]));
      } else {
        ++failed;  // attempts spent, or the sink refuses it
      }
    }
    sent_.fetch_add(sent, std::memory_order_relaxed);
    failed_.fetch_add(failed, std::memory_order_relaxed);
    retries_.fetch_add(again.size(), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      Sink& sink = sinks_[url];
      sink.busy = false;
      if (again.empty()) {
        sink.backoff = std::chrono::milliseconds(0);
        sink.not_before = {};
      } else {
        sink.backoff = sink.backoff.count() == 0 ? options_.backoff
                                                 : std::min(sink.backoff * 2, options_.max_backoff);
        sink.not_before = Clock::now() + sink.backoff;
        for (auto it = again.rbegin(); it != again.rend(); ++it) {
          queued_bytes_ += it->body.size();
          ++queued_;
          sink.queue.push_front(std::move(*it));
        }
      }
      if (sink.queue.empty() && sink.backoff.count() == 0) sinks_.erase(url);
    }
    cv_.notify_all();  // a sink free again, or a new time to wake for
  }
}

void PayloadLogObserver::Attempt(const std::vector<PayloadEvent*>& pending, HttpClient& client,
                                 Pipeline& pipeline, std::vector<int>* statuses) {
  SinkUrl url;
  if (ParseSinkUrl(pending[0]->url, &url)) {
    pipeline.Post(url, pending, options_.timeout, statuses);
    return;
  }
  statuses->assign(pending.size(), 0);
  for (size_t i = 0; i < pending.size(); ++i) {
    HttpClientRequest request;
    request.method = "POST";
    request.url = pending[i]->url;
    request.headers = pending[i]->headers;
    request.body = pending[i]->body;
    request.timeout = options_.timeout;
    // No Content-Type of its own: none (libcurl would add a form's).
    if (std::none_of(request.headers.begin(), request.headers.end(),
                     [](const auto& h) { return h.first == "Content-Type"; }))
      request.headers.emplace_back("Content-Type", "");
    auto r = client.Send(request);
    if (r.ok()) (*statuses)[i] = r->status;
    // A sink that does not answer is not asked again now: the rest wait
    // out its backoff (not a timeout each).
    if (!r.ok()) break;
  }
}

PayloadLogObserver::Counts PayloadLogObserver::counts() const {
  Counts c;
  c.sent = sent_.load(std::memory_order_relaxed);
  c.failed = failed_.load(std::memory_order_relaxed);
  c.dropped = dropped_.load(std::memory_order_relaxed);
  c.retries = retries_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  c.queued = queued_;
  return c;
}

void PayloadLogObserver::Render(std::string* out) const {
  const Counts c = counts();
  prometheus::AppendFamily("osprey_gateway_payload_log_events_total", "counter",
                           "Payload-log CloudEvents by outcome: sent (2xx from the sink), failed "
                           "(given up after retries, or refused), dropped (queue full).",
                           out);
  StrAppend(out, "osprey_gateway_payload_log_events_total{result=\"sent\"} ", c.sent, "\n");
  StrAppend(out, "osprey_gateway_payload_log_events_total{result=\"failed\"} ", c.failed, "\n");
  StrAppend(out, "osprey_gateway_payload_log_events_total{result=\"dropped\"} ", c.dropped, "\n");
  prometheus::AppendFamily("osprey_gateway_payload_log_retries_total", "counter",
                           "Payload-log delivery attempts after an event's first.", out);
  StrAppend(out, "osprey_gateway_payload_log_retries_total ", c.retries, "\n");
  prometheus::AppendFamily("osprey_gateway_payload_log_queue_depth", "gauge",
                           "Payload-log CloudEvents waiting to be sent.", out);
  StrAppend(out, "osprey_gateway_payload_log_queue_depth ", c.queued, "\n");
}

}  // namespace osprey::gateway
