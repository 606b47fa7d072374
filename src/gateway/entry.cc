#include "gateway/entry.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "common/logging.h"
#include "net/http_client.h"
#include "protocol/json_writer.h"

namespace osprey::gateway {
namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Hop-by-hop headers and those the HTTP server writes itself.
bool Skipped(std::string_view name) {
  for (std::string_view h : {"connection", "keep-alive", "transfer-encoding", "content-length",
                             "host", "expect", "upgrade", "te", "trailer", "proxy-connection"})
    if (IEquals(name, h)) return true;
  return false;
}

bool SkippedInResponse(std::string_view name) {
  return Skipped(name) || IEquals(name, "content-type") || IEquals(name, "date") ||
         IEquals(name, "server") || IEquals(name, "x-request-id") ||
         IEquals(name, "inference-header-content-length");
}

HttpResponse Error(int status, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = JsonError(message);
  return r;
}

// The model name in /v1/models/{name}[:verb] or /v2/models/{name}[/...].
std::string_view PathModel(std::string_view path) {
  for (std::string_view prefix : {"/v1/models/", "/v2/models/"}) {
    if (!path.starts_with(prefix)) continue;
    std::string_view rest = path.substr(prefix.size());
    size_t end = rest.find_first_of("/:?");
    return rest.substr(0, end);
  }
  return {};
}

}  // namespace

const RouteTarget* FindTarget(const RouteTable& table, std::string_view host,
                              std::string_view path) {
  if (size_t colon = host.rfind(':'); colon != std::string_view::npos) host = host.substr(0, colon);
  for (const auto& [h, index] : table.hosts)
    if (IEquals(h, host)) return &table.targets[index];
  std::string_view model = PathModel(path);
  if (model.empty()) return nullptr;
  const RouteTarget* found = nullptr;
  for (const auto& t : table.targets)
    if (t.name == model && (found == nullptr || t.namespace_ == "default")) found = &t;
  return found;
}

struct EntryHandler::Impl {
  struct Job {
    std::string method;
    std::string target;
    std::vector<std::pair<std::string, std::string>> headers;
    std::shared_ptr<const std::string> body;
    std::vector<uint16_t> ports;
    std::string revision;
    int timeout_seconds = 0;
    HttpDone done;
  };

  Options options;
  RouteSource routes;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> queue;
  bool stopping = false;
  std::vector<std::thread> threads;
  std::atomic<uint64_t> next{0};

  void Work() {
    HttpClient client;
    while (true) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;
        job = std::move(queue.front());
        queue.pop_front();
      }
      job.done(Forward(client, job));
    }
  }

  HttpResponse Forward(HttpClient& client, const Job& job) {
    HttpClientRequest request;
    request.method = job.method;
    request.headers = job.headers;
    if (job.body) request.body = *job.body;
    request.timeout = std::chrono::seconds(job.timeout_seconds);
    const size_t n = job.ports.size();
    const uint64_t first = next.fetch_add(1);
    absl::Status last;
    for (size_t attempt = 0; attempt < n; ++attempt) {
      uint16_t port = job.ports[(first + attempt) % n];
      request.url = StrCat("http://127.0.0.1:", port, job.target);
      auto response = client.Send(request);
      if (response.ok()) {
        HttpResponse out;
        out.status = response->status;
        out.body = std::move(response->body);
        out.content_type = "";
        for (auto& [name, value] : response->headers) {
          if (IEquals(name, "content-type") || IEquals(name, "inference-header-content-length") ||
              !SkippedInResponse(name))
            out.headers.emplace_back(std::move(name), std::move(value));
        }
        return out;
      }
      last = response.status();
      // Only a refused connection is safe to retry: nothing reached the replica.
      if (last.code() != absl::StatusCode::kUnavailable) break;
    }
    if (last.code() == absl::StatusCode::kDeadlineExceeded)
      return Error(504, StrCat("revision ", job.revision, " did not answer within ",
                               job.timeout_seconds, " s"));
    return Error(502, StrCat("revision ", job.revision, ": ", last.message()));
  }
};

EntryHandler::EntryHandler(Options options, RouteSource routes) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  impl_->routes = std::move(routes);
  for (int i = 0; i < std::max(1, options.proxy_threads); ++i)
    impl_->threads.emplace_back([this] { impl_->Work(); });
}

EntryHandler::~EntryHandler() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  for (auto& t : impl_->threads) t.join();
}

void EntryHandler::Handle(const HttpRequest& request, HttpDone done) {
  std::shared_ptr<const RouteTable> table = impl_->routes();
  std::string_view host = FindHeader(request.headers, "Host");
  std::string_view path = request.target.substr(0, request.target.find('?'));
  const RouteTarget* target = table ? FindTarget(*table, host, path) : nullptr;
  if (target == nullptr) {
    done(Error(404, StrCat("no InferenceService serves host '", host, "' or path '", path,
                           "' (is it applied and ready? `osprey get isvc`)")));
    return;
  }
  if (target->ports.empty()) {
    HttpResponse r = Error(503, StrCat("InferenceService ", target->namespace_, "/", target->name,
                                       ": revision ", target->revision, " has no ready replica"));
    r.headers.emplace_back("Retry-After", "1");
    done(std::move(r));
    return;
  }
  Impl::Job job;
  job.method = std::string(request.method);
  job.target = std::string(request.target);
  if (request.headers.visit != nullptr)
    request.headers.visit(request.headers.context, [&](std::string_view n, std::string_view v) {
      if (!Skipped(n)) job.headers.emplace_back(std::string(n), std::string(v));
    });
  job.body = request.body;
  job.ports = target->ports;
  job.revision = target->revision;
  job.timeout_seconds =
      target->timeout_seconds > 0 ? target->timeout_seconds : impl_->options.default_timeout_seconds;
  job.done = std::move(done);
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->queue.push_back(std::move(job));
  }
  impl_->cv.notify_one();
}

}  // namespace osprey::gateway
