#include "trace/exporter.h"

#include <algorithm>

#include "common/json_writer.h"
#include "common/logging.h"
#include "common/strings.h"
#include "net/http_client.h"

namespace osprey::trace {
namespace {

void WriteValue(JsonWriter& j, const AttributeValue& v) {
  j.BeginObject();
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>)
          j.Key("stringValue").String(x);
        else if constexpr (std::is_same_v<T, int64_t>)
          j.Key("intValue").String(std::to_string(x));  // int64 as a string in OTLP JSON
        else if constexpr (std::is_same_v<T, double>)
          j.Key("doubleValue").Double(x);
        else
          j.Key("boolValue").Bool(x);
      },
      v);
  j.EndObject();
}

void WriteAttributes(JsonWriter& j, const std::vector<Attribute>& attributes) {
  j.Key("attributes").BeginArray();
  for (const Attribute& a : attributes) {
    j.BeginObject().Key("key").String(a.key).Key("value");
    WriteValue(j, a.value);
    j.EndObject();
  }
  j.EndArray();
}

std::string_view Hex(uint64_t v, char* buf) {
  Hex16(v, buf);
  return std::string_view(buf, 16);
}

}  // namespace

std::string EncodeOtlpJson(std::span<const Span> spans, const Resource& resource) {
  std::string out;
  out.reserve(256 + spans.size() * 512);
  JsonWriter j(&out);
  j.BeginObject().Key("resourceSpans").BeginArray().BeginObject();
  j.Key("resource").BeginObject().Key("attributes").BeginArray();
  for (const auto& [k, v] : resource)
    j.BeginObject()
        .Key("key")
        .String(k)
        .Key("value")
        .BeginObject()
        .Key("stringValue")
        .String(v)
        .EndObject()
        .EndObject();
  j.EndArray().EndObject();
  j.Key("scopeSpans").BeginArray().BeginObject();
  j.Key("scope").BeginObject().Key("name").String("osprey").EndObject();
  j.Key("spans").BeginArray();
  char trace_id[32], id[16];
  for (const Span& s : spans) {
    Hex16(s.trace_hi, trace_id);
    Hex16(s.trace_lo, trace_id + 16);
    j.BeginObject();
    j.Key("traceId").String(std::string_view(trace_id, 32));
    j.Key("spanId").String(Hex(s.span_id, id));
    if (s.parent_id != 0) j.Key("parentSpanId").String(Hex(s.parent_id, id));
    j.Key("name").String(s.name);
    j.Key("kind").Int(static_cast<int>(s.kind));
    j.Key("startTimeUnixNano").String(std::to_string(s.start_unix_ns));
    // Converted apart, start and end may cross by a few ns across a re-measured clock offset.
    j.Key("endTimeUnixNano").String(std::to_string(std::max(s.start_unix_ns, s.end_unix_ns)));
    WriteAttributes(j, s.attributes);
    if (!s.events.empty()) {
      j.Key("events").BeginArray();
      for (const SpanEvent& e : s.events) {
        j.BeginObject().Key("name").String(e.name);
        j.Key("timeUnixNano").String(std::to_string(e.time_unix_ns));
        WriteAttributes(j, e.attributes);
        j.EndObject();
      }
      j.EndArray();
    }
    if (s.status != Span::Status::kUnset) {
      j.Key("status").BeginObject().Key("code").Int(static_cast<int>(s.status));
      if (!s.status_message.empty()) j.Key("message").String(s.status_message);
      j.EndObject();
    }
    j.EndObject();
  }
  j.EndArray().EndObject().EndArray();
  j.EndObject().EndArray().EndObject();
  return out;
}

Exporter::Exporter(Options options) : options_(std::move(options)) {
  queue_.reserve(options_.batch);
  thread_ = std::thread([this] { Run(); });
}

Exporter::~Exporter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool Exporter::Submit(Span span) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= options_.queue_limit) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    queue_.push_back(std::move(span));
    ++submitted_;
    wake = queue_.size() == options_.batch;
  }
  if (wake) cv_.notify_one();
  return true;
}

void Exporter::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = submitted_;
  flush_ = true;
  cv_.notify_one();
  flushed_.wait(lock, [&] { return handled_ >= target || stopping_; });
}

void Exporter::Run() {
  HttpClient client;
  std::vector<Span> batch;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait_for(lock, options_.interval,
                 [&] { return stopping_ || flush_ || queue_.size() >= options_.batch; });
    flush_ = false;
    if (queue_.empty()) {
      flushed_.notify_all();
      if (stopping_) return;
      continue;
    }
    while (!queue_.empty()) {
      const size_t n = std::min(queue_.size(), options_.batch);
      batch.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + static_cast<ptrdiff_t>(n)));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(n));
      lock.unlock();
      HttpClientRequest r;
      r.method = "POST";
      r.url = options_.url;
      r.headers = {{"Content-Type", "application/json"}};
      r.body = EncodeOtlpJson(batch, options_.resource);
      r.timeout = options_.timeout;
      r.connect_timeout =
          std::min<std::chrono::milliseconds>(options_.timeout, std::chrono::milliseconds(2000));
      auto sent = client.Send(r);
      if (sent.ok() && sent->status / 100 == 2) {
        exported_.fetch_add(n, std::memory_order_relaxed);
      } else {
        failed_.fetch_add(1, std::memory_order_relaxed);
        dropped_.fetch_add(n, std::memory_order_relaxed);
        OSPREY_LOG(kDebug) << "trace export to " << options_.url << " failed: "
                           << (sent.ok() ? StrCat("HTTP ", sent->status, " ", sent->body)
                                         : std::string(sent.status().message()));
      }
      batch.clear();
      lock.lock();
      handled_ += n;
    }
    flushed_.notify_all();
    if (stopping_ && queue_.empty()) return;
  }
}

}  // namespace osprey::trace
