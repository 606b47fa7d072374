#include "kube/client.h"

#include <rapidjson/document.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <thread>

#include "common/json_dom.h"
#include "net/http_client.h"

namespace osprey::kube {

std::string ResourcePath(const ResourceRef& ref, std::string_view ns, std::string_view name,
                         std::string_view subresource) {
  std::string path = ref.group.empty() ? StrCat("/api/", ref.version)
                                       : StrCat("/apis/", ref.group, "/", ref.version);
  if (ref.namespaced && !ns.empty()) StrAppend(&path, "/namespaces/", ns);
  StrAppend(&path, "/", ref.plural);
  if (!name.empty()) StrAppend(&path, "/", name);
  if (!subresource.empty()) StrAppend(&path, "/", subresource);
  return path;
}

std::string QueryEscape(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

namespace {

// Causes travel as a payload on the status, under this type URL.
constexpr char kCausesPayload[] = "osprey.kube/causes";

absl::Status StatusForCode(int code, const std::string& reason, const std::string& text) {
  switch (code) {
    case 400:
    case 422:
      return absl::InvalidArgumentError(text);
    case 401:
      return absl::UnauthenticatedError(text);
    case 403:
      return absl::PermissionDeniedError(text);
    case 404:
      return absl::NotFoundError(text);
    case 409:
      return reason == "AlreadyExists" ? absl::AlreadyExistsError(text) : absl::AbortedError(text);
    case 410:
      return absl::OutOfRangeError(text);
    case 429:
      return absl::UnavailableError(text);
    default:
      return code >= 500 ? absl::UnavailableError(text) : absl::UnknownError(text);
  }
}

}  // namespace

absl::Status StatusOf(const Response& r, std::string_view what) {
  if (r.status >= 200 && r.status < 300) return absl::OkStatus();
  std::string message;
  std::string reason;
  std::string causes;  // details.causes[].reason, comma-separated
  rapidjson::Document d;
  if (!d.Parse(r.body.data(), r.body.size()).HasParseError() && d.IsObject()) {
    message = json::GetString(d, "message");
    reason = json::GetString(d, "reason");
    auto details = d.FindMember("details");
    if (details != d.MemberEnd() && details->value.IsObject()) {
      auto list = details->value.FindMember("causes");
      if (list != details->value.MemberEnd() && list->value.IsArray()) {
        for (const auto& cause : list->value.GetArray()) {
          if (!cause.IsObject()) continue;
          std::string name = json::GetString(cause, "reason");
          if (name.empty()) continue;
          if (!causes.empty()) causes += ",";
          causes += name;
        }
      }
    }
  }
  if (message.empty()) message = r.body.substr(0, 300);
  std::string text =
      StrCat(what, ": ", r.status, " ", reason.empty() ? "" : reason + ": ", message);
  absl::Status status = StatusForCode(r.status, reason, text);
  if (!causes.empty()) status.SetPayload(kCausesPayload, absl::Cord(causes));
  return status;
}

bool HasCause(const absl::Status& status, std::string_view cause) {
  auto causes = status.GetPayload(kCausesPayload);
  if (!causes) return false;
  std::string list(*causes);
  std::string_view rest = list;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    if (rest.substr(0, comma) == cause) return true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

RateLimiter::RateLimiter(double qps, int burst)
    : qps_(qps > 0 ? qps : 1e9), burst_(burst > 0 ? burst : 1), tokens_(burst_) {}

RateLimiter::Clock::duration RateLimiter::Take(Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!started_) {
    started_ = true;
    last_ = now;
  }
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * qps_);
    last_ = now;
  }
  tokens_ -= 1;  // may go negative: later callers queue behind this one
  if (tokens_ >= 0) return Clock::duration::zero();
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(-tokens_ / qps_));
}

// Idle connections, one per concurrent caller at most.
struct Client::Pool {
  std::mutex mu;
  std::vector<std::unique_ptr<HttpClient>> idle;
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> writes{0};

  std::unique_ptr<HttpClient> Take() {
    std::lock_guard<std::mutex> lock(mu);
    if (idle.empty()) return std::make_unique<HttpClient>();
    auto c = std::move(idle.back());
    idle.pop_back();
    return c;
  }
  void Give(std::unique_ptr<HttpClient> c) {
    std::lock_guard<std::mutex> lock(mu);
    if (idle.size() < 16) idle.push_back(std::move(c));
  }
};

Client::Client(Config config, ClientOptions options)
    : config_(std::move(config)),
      options_(std::move(options)),
      tls_(std::make_unique<TlsOptions>()),
      limiter_(options_.qps, options_.burst),
      pool_(std::make_unique<Pool>()) {
  tls_->ca_pem = config_.ca_pem;
  tls_->ca_file = config_.ca_file;
  tls_->cert_pem = config_.cert_pem;
  tls_->cert_file = config_.cert_file;
  tls_->key_pem = config_.key_pem;
  tls_->key_file = config_.key_file;
  tls_->insecure = config_.insecure;
  token_ = config_.token;
}

Client::~Client() = default;

uint64_t Client::requests() const { return pool_->requests.load(); }
uint64_t Client::writes() const { return pool_->writes.load(); }

// The bearer token; a token file is read again when it changed on disk (a
// projected service-account token is replaced before it expires).
std::string Client::Bearer() {
  if (config_.token_file.empty()) return config_.token;
  std::error_code ec;
  auto mtime = std::filesystem::last_write_time(config_.token_file, ec);
  std::lock_guard<std::mutex> lock(token_mu_);
  if (!ec && (token_.empty() || mtime != token_mtime_)) {
    std::ifstream in(config_.token_file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
      text.pop_back();
    if (!text.empty()) {
      token_ = std::move(text);
      token_mtime_ = mtime;
    }
  }
  return token_;
}

absl::StatusOr<Response> Client::Send(std::string_view method, const std::string& path,
                                      const std::string& body, std::string_view content_type,
                                      const std::function<void(std::string_view)>* on_line,
                                      const std::function<bool()>* keep_going,
                                      std::chrono::milliseconds timeout) {
  if (auto wait = limiter_.Take(RateLimiter::Clock::now()); wait > RateLimiter::Clock::duration{})
    std::this_thread::sleep_for(wait);
  pool_->requests.fetch_add(1);
  if (method != "GET") pool_->writes.fetch_add(1);
  HttpClientRequest req;
  req.method = std::string(method);
  req.url = config_.server + path;
  req.tls = tls_.get();
  req.timeout = timeout;
  req.headers.emplace_back("Accept", "application/json");
  req.headers.emplace_back("User-Agent", options_.user_agent);
  if (!body.empty()) req.headers.emplace_back("Content-Type", std::string(content_type));
  if (std::string token = Bearer(); !token.empty())
    req.headers.emplace_back("Authorization", StrCat("Bearer ", token));
  req.body = body;
  std::string pending;  // a line split across pieces
  if (on_line != nullptr) {
    req.on_body = [&](std::string_view piece) {
      pending.append(piece);
      size_t start = 0;
      for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1)
        if (nl > start) (*on_line)(std::string_view(pending).substr(start, nl - start));
      pending.erase(0, start);
      return true;
    };
  }
  if (keep_going != nullptr) req.keep_going = *keep_going;
  auto client = pool_->Take();
  auto result = client->Send(req);
  pool_->Give(std::move(client));
  if (!result.ok()) return result.status();
  if (on_line != nullptr && !pending.empty() && result->status / 100 == 2) (*on_line)(pending);
  Response r;
  r.status = result->status;
  r.body = std::move(result->body);
  return r;
}

absl::StatusOr<Response> Client::Call(std::string_view method, const std::string& path,
                                      const std::string& body, std::string_view content_type) {
  return Send(method, path, body, content_type, nullptr, nullptr, options_.timeout);
}

absl::StatusOr<std::string> Client::Get(const std::string& path) {
  OSPREY_ASSIGN_OR_RETURN(Response r, Call("GET", path));
  OSPREY_RETURN_IF_ERROR(StatusOf(r, StrCat("GET ", path)));
  return std::move(r.body);
}

absl::StatusOr<std::set<std::string>> Client::ServedResources(const std::string& group_version) {
  OSPREY_ASSIGN_OR_RETURN(std::string body, Get(StrCat("/apis/", group_version)));
  rapidjson::Document d;
  d.Parse(body.data(), body.size());
  std::set<std::string> out;
  if (!d.HasParseError() && d.IsObject() && d.HasMember("resources") && d["resources"].IsArray())
    for (const auto& r : d["resources"].GetArray()) out.insert(json::GetString(r, "name"));
  return out;
}

absl::StatusOr<std::string> Client::Apply(const std::string& path, const std::string& object_json,
                                          std::string_view manager, bool force) {
  std::string target = StrCat(path, "?fieldManager=", QueryEscape(manager));
  if (force) target += "&force=true";
  // JSON is YAML: the apply patch type takes either.
  OSPREY_ASSIGN_OR_RETURN(Response r,
                          Call("PATCH", target, object_json, "application/apply-patch+yaml"));
  OSPREY_RETURN_IF_ERROR(StatusOf(r, StrCat("apply ", path)));
  return std::move(r.body);
}

absl::StatusOr<std::string> Client::MergePatch(const std::string& path,
                                               const std::string& patch_json) {
  OSPREY_ASSIGN_OR_RETURN(Response r,
                          Call("PATCH", path, patch_json, "application/merge-patch+json"));
  OSPREY_RETURN_IF_ERROR(StatusOf(r, StrCat("patch ", path)));
  return std::move(r.body);
}

absl::Status Client::Watch(const std::string& path_and_query,
                           const std::function<void(std::string_view line)>& on_line,
                           const std::function<bool()>& keep_going,
                           std::chrono::milliseconds timeout) {
  OSPREY_ASSIGN_OR_RETURN(Response r,
                          Send("GET", path_and_query, "", "", &on_line, &keep_going, timeout));
  if (r.status / 100 != 2) return StatusOf(r, StrCat("watch ", path_and_query));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Client>> Connect(const std::string& kubeconfig_flag,
                                                const ClientOptions& options) {
  OSPREY_ASSIGN_OR_RETURN(Config config, ResolveConfig(kubeconfig_flag));
  auto client = std::make_unique<Client>(config, options);
  auto version = client->Get("/version");
  if (!version.ok())
    return absl::UnavailableError(StrCat("cannot reach the API server (", config.source,
                                         "): ", StatusMessage(version.status())));
  return client;
}

}  // namespace osprey::kube
