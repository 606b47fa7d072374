#include "gateway/observers/payload_log.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <memory>

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
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    if (!started_) {
      started_ = true;
      for (int i = 0; i < std::max(1, options_.senders); ++i)
        senders_.emplace_back([this] { RunSender(); });
    }
    for (auto& ev : events) {
      if (queue_.size() >= options_.queue_limit) {
        ++dropped;
        continue;
      }
      queue_.push_back(std::move(ev));
    }
  }
  if (dropped) dropped_.fetch_add(dropped, std::memory_order_relaxed);
  cv_.notify_one();
  if (events.size() > 1) cv_.notify_one();
}

bool PayloadLogObserver::Backoff(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stopping_; });
}

void PayloadLogObserver::RunSender() {
  // The lowest CPU priority: on a saturated machine the requests go first
  // and the queue overflows (counted) rather than the answers slowing down.
  if (options_.low_priority) setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
  HttpClient client;
  HttpClientRequest request;
  request.method = "POST";
  request.timeout = options_.timeout;
  request.connect_timeout = std::min(options_.timeout, std::chrono::milliseconds(2000));
  for (;;) {
    PayloadEvent ev;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      ev = std::move(queue_.front());
      queue_.pop_front();
    }
    request.url = std::move(ev.url);
    request.headers = std::move(ev.headers);
    request.body = std::move(ev.body);
    // No Content-Type of its own: none (libcurl would add a form's).
    if (std::none_of(request.headers.begin(), request.headers.end(),
                     [](const auto& h) { return h.first == "Content-Type"; }))
      request.headers.emplace_back("Content-Type", "");
    std::chrono::milliseconds backoff = options_.backoff;
    bool delivered = false;
    for (int attempt = 0; attempt < std::max(1, options_.attempts); ++attempt) {
      if (attempt > 0) {
        retries_.fetch_add(1, std::memory_order_relaxed);
        if (!Backoff(backoff)) return;
        backoff = std::min(backoff * 2, options_.max_backoff);
      }
      auto r = client.Send(request);
      if (r.ok() && r->status >= 200 && r->status < 300) {
        delivered = true;
        break;
      }
      if (r.ok() && !Retryable(r->status)) break;  // the sink refuses it
    }
    (delivered ? sent_ : failed_).fetch_add(1, std::memory_order_relaxed);
  }
}

PayloadLogObserver::Counts PayloadLogObserver::counts() const {
  Counts c;
  c.sent = sent_.load(std::memory_order_relaxed);
  c.failed = failed_.load(std::memory_order_relaxed);
  c.dropped = dropped_.load(std::memory_order_relaxed);
  c.retries = retries_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  c.queued = queue_.size();
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
