#include "storage/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>

#include "common/strings.h"

namespace osprey::storage {
namespace {

constexpr size_t kErrorBodyLimit = 64 << 10;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool RetryableCurlCode(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

bool RetryableStatus(long status) { return status >= 500 || status == 408 || status == 429; }

}  // namespace

// Where one attempt's bytes go: a 2xx body into the file or the string, any
// other body (an error document) into error_body.
struct HttpClient::Sink {
  CURL* curl = nullptr;
  std::filesystem::path file_path;
  FILE* file = nullptr;
  std::string* memory = nullptr;
  uint64_t max_body = 0;
  std::string error_body;
  bool over_limit = false;
  bool write_failed = false;
  const ByteProgress* progress = nullptr;
  // Stall detection: the time the byte count last moved.
  std::chrono::steady_clock::duration stall_timeout{};
  std::chrono::steady_clock::time_point last_move;
  uint64_t last_bytes = 0;
  bool stalled = false;

  bool Success() const {
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    return status >= 200 && status < 300;
  }

  // Clears what an earlier attempt wrote.
  bool Reset() {
    error_body.clear();
    last_move = std::chrono::steady_clock::now();
    last_bytes = 0;
    stalled = false;
    if (memory != nullptr) memory->clear();
    if (!file_path.empty()) {
      if (file != nullptr) std::fclose(file);
      file = std::fopen(file_path.c_str(), "wb");
      return file != nullptr;
    }
    return true;
  }

  ~Sink() {
    if (file != nullptr) std::fclose(file);
  }

  static size_t Write(char* data, size_t size, size_t n, void* user) {
    auto* sink = static_cast<Sink*>(user);
    size_t bytes = size * n;
    if (!sink->Success()) {
      size_t room = kErrorBodyLimit - std::min(kErrorBodyLimit, sink->error_body.size());
      sink->error_body.append(data, std::min(room, bytes));
      return bytes;
    }
    if (sink->memory != nullptr) {
      if (sink->memory->size() + bytes > sink->max_body) {
        sink->over_limit = true;
        return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
      }
      sink->memory->append(data, bytes);
      return bytes;
    }
    if (std::fwrite(data, 1, bytes, sink->file) != bytes) {
      sink->write_failed = true;
      return 0;
    }
    return bytes;
  }

  // Called by libcurl at least once a second, bytes moving or not.
  static int Progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
    auto* sink = static_cast<Sink*>(user);
    auto now = std::chrono::steady_clock::now();
    if (static_cast<uint64_t>(dlnow) != sink->last_bytes) {
      sink->last_bytes = static_cast<uint64_t>(dlnow);
      sink->last_move = now;
    } else if (now - sink->last_move >= sink->stall_timeout) {
      sink->stalled = true;
      return 1;  // aborts the transfer (CURLE_ABORTED_BY_CALLBACK)
    }
    if (sink->progress != nullptr && *sink->progress && sink->Success())
      (*sink->progress)(static_cast<uint64_t>(dlnow), static_cast<uint64_t>(dltotal));
    return 0;
  }
};

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {
  GlobalInit();
  curl_ = curl_easy_init();
}

HttpClient::~HttpClient() {
  if (curl_ != nullptr) curl_easy_cleanup(curl_);
}

absl::StatusOr<HttpResponse> HttpClient::Get(const HttpRequest& request, uint64_t max_body) {
  std::string body;
  Sink sink;
  sink.memory = &body;
  sink.max_body = max_body;
  OSPREY_ASSIGN_OR_RETURN(HttpResponse response, Perform(request, &sink));
  if (response.status >= 200 && response.status < 300) response.body = std::move(body);
  return response;
}

absl::StatusOr<HttpResponse> HttpClient::Download(const HttpRequest& request,
                                                  const std::filesystem::path& file,
                                                  const ByteProgress& progress) {
  Sink sink;
  sink.file_path = file;
  sink.progress = &progress;
  OSPREY_ASSIGN_OR_RETURN(HttpResponse response, Perform(request, &sink));
  if (sink.file != nullptr && std::fclose(sink.file) != 0) {
    sink.file = nullptr;
    return absl::InternalError(StrCat("cannot write ", file.string()));
  }
  sink.file = nullptr;
  return response;
}

absl::StatusOr<HttpResponse> HttpClient::Perform(const HttpRequest& request, Sink* sink) {
  if (curl_ == nullptr) return absl::InternalError("cannot initialize libcurl");
  sink->curl = curl_;
  sink->stall_timeout = options_.stall_timeout;
  HttpResponse response;
  absl::Status last_error;
  for (int attempt = 0; attempt <= options_.retries; ++attempt) {
    if (attempt > 0) {
      auto wait = options_.retry_backoff * (1 << std::min(attempt - 1, 10));
      std::this_thread::sleep_for(
          std::min<std::chrono::milliseconds>(wait, std::chrono::seconds(10)));
    }
    response.attempts = attempt + 1;
    if (!sink->Reset())
      return absl::InternalError(StrCat("cannot create ", sink->file_path.string()));

    curl_easy_reset(curl_);
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl_, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl_, CURLOPT_USERAGENT, "osprey-storage/" OSPREY_VERSION);
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options_.connect_timeout.count()));
    // Stalls are detected in Sink::Progress to the second; libcurl's own
    // low-speed check (a moving average, so slower to notice) backs it up.
    curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_TIME,
                     static_cast<long>(std::max<int64_t>(1, options_.stall_timeout.count())));
    curl_easy_setopt(curl_, CURLOPT_TCP_KEEPALIVE, 1L);
    if (options_.follow_redirects) {
      curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 1L);
      curl_easy_setopt(curl_, CURLOPT_MAXREDIRS, 5L);
      curl_easy_setopt(curl_, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    }
    curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
    if (!options_.ca_bundle.empty())
      curl_easy_setopt(curl_, CURLOPT_CAINFO, options_.ca_bundle.c_str());
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &Sink::Write);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(curl_, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl_, CURLOPT_XFERINFOFUNCTION, &Sink::Progress);
    curl_easy_setopt(curl_, CURLOPT_XFERINFODATA, sink);

    curl_slist* headers = nullptr;
    if (request.headers)
      for (const std::string& h : request.headers())
        headers = curl_slist_append(headers, h.c_str());
    std::unique_ptr<curl_slist, void (*)(curl_slist*)> header_list(headers, curl_slist_free_all);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);

    CURLcode code = curl_easy_perform(curl_);
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &response.status);

    if (code == CURLE_OK) {
      if (!(response.status >= 200 && response.status < 300)) response.body = sink->error_body;
      if (RetryableStatus(response.status) && attempt < options_.retries) continue;
      return response;
    }
    if (sink->over_limit)
      return absl::ResourceExhaustedError(
          StrCat("GET ", request.url, ": body larger than ", sink->max_body, " bytes"));
    if (sink->write_failed)
      return absl::InternalError(StrCat("GET ", request.url, ": cannot write ",
                                        sink->file_path.string(), " (disk full?)"));
    std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(code);
    bool stalled = sink->stalled || (code == CURLE_OPERATION_TIMEDOUT &&
                                     std::string_view(errbuf).starts_with("Operation too slow"));
    std::string message = stalled
                              ? StrCat("GET ", request.url, ": transfer stalled (no data for ",
                                       static_cast<int64_t>(options_.stall_timeout.count()), " s)")
                              : StrCat("GET ", request.url, ": ", detail);
    if (code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL)
      return absl::InvalidArgumentError(message);
    if (!stalled && !RetryableCurlCode(code)) return absl::UnavailableError(message);
    StrAppend(&message, " (", response.attempts,
              response.attempts == 1 ? " attempt)" : " attempts)");
    last_error = stalled || code == CURLE_OPERATION_TIMEDOUT ? absl::DeadlineExceededError(message)
                                                             : absl::UnavailableError(message);
  }
  return last_error;
}

namespace {
std::string_view ReasonPhrase(long status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 410:
      return "Gone";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}
}  // namespace

absl::Status HttpStatusError(std::string_view what, long status, std::string_view detail) {
  std::string message = StrCat(what, ": HTTP ", static_cast<int64_t>(status));
  if (detail.empty()) detail = ReasonPhrase(status);
  if (!detail.empty()) StrAppend(&message, " ", detail);
  if (status == 404) return absl::NotFoundError(message);
  if (status == 401) return absl::UnauthenticatedError(message);
  if (status == 403) return absl::PermissionDeniedError(message);
  if (status >= 500) return absl::UnavailableError(message);
  return absl::FailedPreconditionError(message);
}

}  // namespace osprey::storage
