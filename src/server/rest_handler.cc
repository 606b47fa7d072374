#include "server/rest_handler.h"

#include "common/json_writer.h"
#include "common/strings.h"
#include "net/status.h"
#include "protocol/v1_json.h"
#include "protocol/v2_json.h"
#include "server/tracing.h"

namespace osprey {
namespace {

HttpResponse Json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse MethodNotAllowed(std::string_view method, std::string_view path,
                              std::string_view allowed) {
  return Json(405,
              JsonError(StrCat("method ", method, " not allowed on ", path, "; use ", allowed)));
}

HttpResponse NotFoundRoute(std::string_view path) {
  return Json(404, JsonError(StrCat("no route for ", path)));
}

// Splits "a/b/c" at the first '/'.
std::pair<std::string_view, std::string_view> Head(std::string_view s) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return {s, {}};
  return {s.substr(0, slash), s.substr(slash + 1)};
}

std::string ModelStatusJson(std::string_view name, bool ready) {
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("name").String(name).Key("ready").Bool(ready).EndObject();
  return body;
}

}  // namespace

void RestHandler::Handle(const HttpRequest& req, HttpDone done) {
  std::string_view path = req.target.substr(0, req.target.find('?'));
  std::string_view method = req.method;
  std::optional<HttpResponse> response;
  if (path.starts_with("/v2/models/")) {
    response = HandleV2Model(method, path.substr(11), req, done);
  } else if (path.starts_with("/v1/")) {
    response = HandleV1(method, path, req, done);
  } else if (path == "/v2/health/live") {
    response = Json(200, R"({"live":true})");
  } else if (path == "/v2/health/ready") {
    bool ready = core_->registry()->AllReady();
    response = Json(ready ? 200 : 503, ready ? R"({"ready":true})" : R"({"ready":false})");
  } else if (path == "/v2" || path == "/v2/") {
    response = method == "GET"
                   ? Json(200, EncodeV2ServerMetadata(info_.name, info_.version, info_.extensions))
                   : MethodNotAllowed(method, path, "GET");
  } else if (path.starts_with("/v2/repository/")) {
    response = HandleRepository(method, path.substr(15), req, done);
  } else if (path == "/") {
    response = Json(200, R"({"status":"alive"})");
  } else if (path == "/metrics") {
    std::string text = metrics_->Render();
    text += core_->registry()->CacheMetrics();
    if (const RequestMonitor* monitor = core_->monitor()) monitor->detector().RenderMetrics(&text);
    AppendTraceMetrics(&text);
    response = Json(200, std::move(text));
    response->content_type = "text/plain; version=0.0.4; charset=utf-8";
  } else {
    response = NotFoundRoute(path);
  }
  if (!response.has_value()) return;  // `done` is called when the inference or load completes
  metrics_->CountHttpResponse(response->status);
  done(*std::move(response));
}

std::optional<HttpResponse> RestHandler::HandleV1(std::string_view method, std::string_view path,
                                                  const HttpRequest& req, HttpDone& done,
                                                  bool waited) {
  if (path == "/v1/models") {
    if (method != "GET") return MethodNotAllowed(method, path, "GET");
    std::string body;
    JsonWriter w(&body);
    w.BeginObject().Key("models").BeginArray();
    for (const auto& n : core_->registry()->ReadyNames()) w.String(n);
    w.EndArray().EndObject();
    return Json(200, std::move(body));
  }
  if (!path.starts_with("/v1/models/")) return NotFoundRoute(path);
  std::string_view rest = path.substr(11);
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) {
    if (method != "GET") return MethodNotAllowed(method, path, "GET");
    auto served = core_->registry()->Get(rest, "");
    if (!served.ok()) return ErrorResponse(served.status());
    return Json(200, ModelStatusJson(rest, true));
  }
  std::string_view model = rest.substr(0, colon);
  std::string_view verb = rest.substr(colon + 1);
  if (verb != "predict" && verb != "explain") return NotFoundRoute(path);
  if (method != "POST") return MethodNotAllowed(method, path, "POST");
  auto served = core_->registry()->Get(model, "");
  if (!served.ok() && !waited && core_->registry()->LoadsOnDemand(model)) {
    // Evicted by the memory budget (or never loaded): loaded first, then the
    // request is handled as if it had just arrived (its metadata decodes it).
    // The request outlives this call: what it points to (its target, its
    // headers, which the transport keeps only until Handle returns) is
    // copied, and kept until it is answered.
    struct Held {
      std::string method, target, path;
      std::vector<std::pair<std::string, std::string>> headers;
      HttpRequest req;
    };
    auto held = std::make_shared<Held>();
    held->method = std::string(method);
    held->target = std::string(req.target);
    held->path = std::string(path);
    if (req.headers.visit != nullptr)
      req.headers.visit(req.headers.context, [&](std::string_view n, std::string_view v) {
        held->headers.emplace_back(std::string(n), std::string(v));
      });
    held->req = req;
    held->req.method = held->method;
    held->req.target = held->target;
    held->req.headers.context = held.get();
    held->req.headers.visit = [](const void* context, HeaderSource::Visit f) {
      for (const auto& [n, v] : static_cast<const Held*>(context)->headers) f(n, v);
    };
    core_->registry()->LoadIfAbsentAsync(
        std::string(model), [this, held, done = std::move(done)](absl::Status s) mutable {
          // `held` lives as long as the answer's completion does.
          HttpDone answer = [held, done = std::move(done)](HttpResponse r) mutable {
            done(std::move(r));
          };
          std::optional<HttpResponse> r =
              s.ok() ? HandleV1(held->method, held->path, held->req, answer, true)
                     : ErrorResponse(absl::UnavailableError(StrCat(
                           "the model could not be loaded for this request: ", s.message())));
          if (r.has_value()) answer(*std::move(r));
        });
    return std::nullopt;
  }
  if (!served.ok()) return ErrorResponse(served.status());
  if ((*served)->model->metadata().raw_requests) return StartRawV1(model, verb, req, done);
  if (verb == "explain") return ExplainV1(model, req, *(*served)->model, done);
  auto decoded = DecodeV1PredictRequest(*req.body, (*served)->model->metadata());
  if (!decoded.ok()) {
    core_->CountDecodeFailure(model);
    return ErrorResponse(decoded.status());
  }
  decoded->model_name = std::string(model);
  decoded->waited_for_model = waited;
  const bool records = (*served)->model->metadata().v1_records;
  StartInfer(*std::move(decoded), req, std::move(done),
             [records](const InferRequest&, const InferResponse& response) {
               return Json(200, EncodeV1PredictResponse(response, records));
             });
  return std::nullopt;
}

std::optional<HttpResponse> RestHandler::HandleV2Model(std::string_view method,
                                                       std::string_view rest,
                                                       const HttpRequest& req, HttpDone& done) {
  auto [model, tail] = Head(rest);
  std::string_view version;
  if (tail.starts_with("versions/")) {
    std::tie(version, tail) = Head(tail.substr(9));
    if (version.empty()) return NotFoundRoute(rest);
  }
  if (tail == "infer") {
    if (method != "POST") return MethodNotAllowed(method, "infer", "POST");
    return Infer(model, version, req, done);
  }
  if (tail == "explain") {
    if (method != "POST") return MethodNotAllowed(method, "explain", "POST");
    return ExplainV2(model, version, req, done);
  }
  if (tail == "drift") {
    // The drift and outlier detector's state (monitor/detector.h).
    if (method != "GET") return MethodNotAllowed(method, "drift", "GET");
    const RequestMonitor* monitor = core_->monitor();
    if (monitor == nullptr || monitor->model() != model)
      return ErrorResponse(absl::NotFoundError(StrCat(
          "model '", model, "' has no drift detector (serving.osprey.dev/drift-reference)")));
    return Json(200, monitor->detector().StateJson());
  }
  if (tail.empty() || tail == "ready" || tail == "config") {
    if (method != "GET") return MethodNotAllowed(method, rest, "GET");
    auto served = core_->registry()->Get(model, version);
    if (!served.ok()) return ErrorResponse(served.status());
    if (tail == "ready") return Json(200, ModelStatusJson(model, true));
    if (tail == "config")
      return Json(200, !(*served)->config_json.empty()
                           ? (*served)->config_json
                           : EncodeTritonModelConfig((*served)->model->metadata()));
    ModelMetadata metadata = (*served)->model->metadata();
    metadata.versions = (*served)->versions;
    return Json(200, EncodeV2ModelMetadata(metadata));
  }
  return NotFoundRoute(StrCat("/v2/models/", rest));
}

std::optional<HttpResponse> RestHandler::Infer(std::string_view model, std::string_view version,
                                               const HttpRequest& req, HttpDone& done) {
  auto decoded = DecodeV2InferRequest(req.body, req.inference_header_length);
  if (!decoded.ok()) {
    core_->CountDecodeFailure(model);
    return ErrorResponse(decoded.status());
  }
  decoded->model_name.assign(model);
  decoded->model_version.assign(version);
  StartInfer(*std::move(decoded), req, std::move(done),
             [](const InferRequest& request, const InferResponse& response) {
               EncodedBody encoded = EncodeV2InferResponse(response, request);
               HttpResponse r = Json(200, std::move(encoded.body));
               if (encoded.json_length.has_value()) {
                 r.inference_header_length = encoded.json_length;
                 r.content_type = "application/octet-stream";
               }
               return r;
             });
  return std::nullopt;
}

RestHandler::~RestHandler() { StopExplain(); }

void RestHandler::StopExplain() {
  std::deque<absl::AnyInvocable<void()>> dropped;
  {
    std::lock_guard<std::mutex> lock(explain_mu_);
    explain_stopping_ = true;
    dropped.swap(explain_queue_);
  }
  explain_cv_.notify_all();
  if (explain_thread_.joinable()) explain_thread_.join();
  dropped.clear();  // their answers are never sent: the server is going
}

bool RestHandler::ExplainQueueFull() {
  std::lock_guard<std::mutex> lock(explain_mu_);
  return explain_stopping_ || explain_queue_.size() >= kMaxQueuedExplanations;
}

absl::Status RestHandler::ExplainSafely(const InferRequest& request, InferResponse* response) {
  try {
    return core_->Explain(request, response);
  } catch (const std::exception& e) {
    return absl::InternalError(StrCat("the explanation failed: ", e.what()));
  } catch (...) {
    return absl::InternalError("the explanation failed");
  }
}

void RestHandler::PostExplain(absl::AnyInvocable<void()> task) {
  std::unique_lock<std::mutex> lock(explain_mu_);
  if (explain_stopping_) {  // stopped meanwhile: dropped, as the queued ones
    lock.unlock();
    return;
  }
  explain_queue_.push_back(std::move(task));
  if (!explain_thread_.joinable())
    explain_thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(explain_mu_);
      for (;;) {
        explain_cv_.wait(lock, [this] { return explain_stopping_ || !explain_queue_.empty(); });
        if (explain_stopping_) return;  // what is queued is dropped by StopExplain
        absl::AnyInvocable<void()> next = std::move(explain_queue_.front());
        explain_queue_.pop_front();
        lock.unlock();
        next();
        lock.lock();
      }
    });
  explain_cv_.notify_one();
}

// Model::Explain is never batched: each request is explained on its own, on
// the explain thread, so a long explanation (TreeSHAP of many rows) never
// holds up this event loop's other connections.
std::optional<HttpResponse> RestHandler::ExplainV1(std::string_view model, const HttpRequest& req,
                                                   const Model& served, HttpDone& done) {
  if (!served.explains())
    return ErrorResponse(absl::UnimplementedError(StrCat("model '", model, "' has no explainer")));
  if (ExplainQueueFull())
    return ErrorResponse(absl::UnavailableError(
        StrCat("too many explanations waiting (", kMaxQueuedExplanations, "); try again later")));
  const ModelMetadata& metadata = served.metadata();
  auto decoded = DecodeV1PredictRequest(*req.body, metadata);
  if (!decoded.ok()) {
    core_->CountDecodeFailure(model);
    return ErrorResponse(decoded.status());
  }
  decoded->model_name = std::string(model);
  PostExplain([this, request = *std::move(decoded), names = metadata.feature_names,
               done = std::move(done)]() mutable {
    InferResponse response;
    absl::Status s = ExplainSafely(request, &response);
    HttpResponse r;
    if (!s.ok()) {
      r = ErrorResponse(s);
    } else if (response.outputs.empty()) {
      r = ErrorResponse(absl::InternalError("the model's explanation is missing"));
    } else {
      auto body = EncodeV1ExplainResponse(response.outputs[0], names);
      r = body.ok() ? Json(200, *std::move(body))
                    : ErrorResponse(absl::InternalError(body.status().message()));
    }
    metrics_->CountHttpResponse(r.status);
    done(std::move(r));
  });
  return std::nullopt;
}

std::optional<HttpResponse> RestHandler::ExplainV2(std::string_view model, std::string_view version,
                                                   const HttpRequest& req, HttpDone& done) {
  if (ExplainQueueFull())
    return ErrorResponse(absl::UnavailableError(
        StrCat("too many explanations waiting (", kMaxQueuedExplanations, "); try again later")));
  auto decoded = DecodeV2InferRequest(req.body, req.inference_header_length);
  if (!decoded.ok()) {
    core_->CountDecodeFailure(model);
    return ErrorResponse(decoded.status());
  }
  decoded->model_name.assign(model);
  decoded->model_version.assign(version);
  PostExplain([this, request = *std::move(decoded), done = std::move(done)]() mutable {
    InferResponse response;
    absl::Status s = ExplainSafely(request, &response);
    HttpResponse r;
    if (!s.ok()) {
      r = ErrorResponse(s);
    } else {
      EncodedBody encoded = EncodeV2InferResponse(response, request);
      r = Json(200, std::move(encoded.body));
      if (encoded.json_length.has_value()) {
        r.inference_header_length = encoded.json_length;
        r.content_type = "application/octet-stream";
      }
    }
    metrics_->CountHttpResponse(r.status);
    done(std::move(r));
  });
  return std::nullopt;
}

// A model that takes V1 bodies as sent (a custom Python model): the body goes
// to it as BYTES input "__v1__", its answer comes back verbatim.
std::optional<HttpResponse> RestHandler::StartRawV1(std::string_view model, std::string_view verb,
                                                    const HttpRequest& req, HttpDone& done) {
  InferRequest request;
  request.model_name = std::string(model);
  Tensor body("__v1__", DataType::kBytes, {1});
  AppendBytesElement(*req.body, body.mutable_owned_data());
  request.inputs.push_back(std::move(body));
  request.parameters.push_back({"verb", std::string(verb)});
  StartInfer(std::move(request), req, std::move(done),
             [](const InferRequest&, const InferResponse& response) {
               for (const Tensor& t : response.outputs) {
                 std::string_view answer;
                 if (t.name() == "__v1__" && t.datatype() == DataType::kBytes &&
                     BytesReader(t.data()).Next(&answer))
                   return Json(200, std::string(answer));
               }
               return ErrorResponse(absl::InternalError("the model's V1 answer is missing"));
             });
  return std::nullopt;
}

template <typename Encode>
void RestHandler::StartInfer(InferRequest request, const HttpRequest& req, HttpDone done,
                             Encode encode) {
  request.headers = req.headers;
  struct Call {
    InferRequest request;
    InferResponse response;
    HttpDone done;
    // A sampled request's trace (server/tracing.h): the caller's span and
    // the request's own.
    uint64_t parent_span = 0;
    RequestSpan span;
    std::string path;
  };
  auto call = std::make_unique<Call>();
  Call* c = call.get();
  c->request = std::move(request);
  c->done = std::move(done);
  c->request.trace = StartRequestTrace(req.headers, &c->parent_span);
  if (c->request.trace.sampled()) {
    c->path = std::string(req.target.substr(0, req.target.find('?')));
    c->span.method = "POST";
    c->span.path = c->path;
    c->span.arrival =
        req.arrival.time_since_epoch().count() ? req.arrival : std::chrono::steady_clock::now();
  }
  core_->Infer(c->request, &c->response, req.arrival,
               [this, call = std::move(call), encode](absl::Status s) mutable {
                 HttpResponse r = s.ok() ? encode(call->request, call->response) : ErrorResponse(s);
                 if (s.ok() && call->response.outlier_score.has_value())
                   StrAppend(&r.header_lines, kOutlierScoreHeader, ": ",
                             *call->response.outlier_score, "\r\n");
                 metrics_->CountHttpResponse(r.status);
                 if (call->request.trace.sampled()) {
                   RequestSpan& span = call->span;
                   span.model = call->request.model_name;
                   span.http_status = r.status;
                   span.end = std::chrono::steady_clock::now();
                   EndRequestTrace(call->request.trace, call->parent_span, span);
                 }
                 call->done(std::move(r));
               });
}

std::optional<HttpResponse> RestHandler::HandleRepository(std::string_view method,
                                                          std::string_view rest,
                                                          const HttpRequest& req, HttpDone& done) {
  if (method != "POST") return MethodNotAllowed(method, rest, "POST");
  ModelRegistry* registry = core_->registry();
  if (rest == "index") {
    auto ready_only = DecodeV2RepositoryIndexRequest(*req.body);
    if (!ready_only.ok()) return ErrorResponse(ready_only.status());
    std::vector<RepositoryEntry> entries;
    for (const ModelStatus& s : registry->Index()) {
      if (*ready_only && s.state != ModelState::kReady) continue;
      entries.push_back({s.name, s.version, std::string(ModelStateName(s.state)), s.reason});
    }
    return Json(200, EncodeV2RepositoryIndex(entries));
  }
  if (!rest.starts_with("models/")) return NotFoundRoute(rest);
  auto [model, action] = Head(rest.substr(7));
  if (action != "load" && action != "unload") return NotFoundRoute(rest);
  // Answered from the registry's loader thread: {"name":..., "load": true}
  // (or "unload"), or the error.
  auto answer = [this, name = std::string(model), action = std::string(action),
                 done = std::move(done)](absl::Status s) mutable {
    HttpResponse r;
    if (s.ok()) {
      std::string body;
      JsonWriter w(&body);
      w.BeginObject().Key("name").String(name).Key(action).Bool(true).EndObject();
      r = Json(200, std::move(body));
    } else {
      r = ErrorResponse(s);
    }
    metrics_->CountHttpResponse(r.status);
    done(std::move(r));
  };
  std::string name(model);
  if (action == "load")
    registry->LoadFromRepositoryAsync(std::move(name), std::move(answer));
  else
    registry->UnloadAsync(std::move(name), std::move(answer));
  return std::nullopt;
}

}  // namespace osprey
