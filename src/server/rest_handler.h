#pragma once

// KServe V1 and V2 REST routes over the inference core, independent of any
// HTTP library: the HTTP server hands in a parsed request and sends back what
// Handle returns. The only place where a Status becomes an HTTP code.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "net/http_types.h"
#include "server/inference_core.h"
#include "server/metrics.h"
#include "server/server_info.h"

namespace osprey {

class RestHandler : public HttpHandler {
 public:
  RestHandler(ServerInfo info, InferenceCore* core, Metrics* metrics)
      : info_(std::move(info)), core_(core), metrics_(metrics) {}
  ~RestHandler() override;

  // Thread-safe. Calls `done` exactly once with the answer: before Handle
  // returns for everything but inference, explanation and repository
  // load/unload; for an inference on whichever thread completes it (this one,
  // or the model's batcher); for an explanation on the explain thread (one
  // per handler: a slow explanation holds up other explanations, never the
  // caller's event loop); for a load or unload on the registry's loader thread, so a slow
  // load never holds up the caller's thread (an HTTP event loop and every
  // connection on it). The request's strings need to live only until Handle
  // returns; its body is kept by the inference that borrows from it.
  void Handle(const HttpRequest& request, HttpDone done) override;

  // Stops the explain thread (joining the explanation it runs) and drops the
  // explanations still queued, unanswered. Call it before the HTTP server
  // the answers would go to is destroyed; later explanations answer 503.
  void StopExplain();

  // Explanations waiting at most; past it an explanation answers 503.
  static constexpr size_t kMaxQueuedExplanations = 256;

 private:
  bool ExplainQueueFull();
  // core_->Explain; an exception is an Internal error, not the replica's end.
  absl::Status ExplainSafely(const InferRequest& request, InferResponse* response);
  // These answer synchronously, or return nullopt after taking `done` for an
  // inference or a repository load/unload.
  // `waited`: a second look after the model cache loaded the model.
  std::optional<HttpResponse> HandleV1(std::string_view method, std::string_view path,
                                       const HttpRequest& req, HttpDone& done, bool waited = false);
  std::optional<HttpResponse> HandleV2Model(std::string_view method, std::string_view rest,
                                            const HttpRequest& req, HttpDone& done);
  std::optional<HttpResponse> HandleRepository(std::string_view method, std::string_view rest,
                                               const HttpRequest& req, HttpDone& done);
  std::optional<HttpResponse> Infer(std::string_view model, std::string_view version,
                                    const HttpRequest& req, HttpDone& done);
  // :explain (V1) and /explain (V2); see docs/EXPLAIN.md for the shapes.
  // Decoded here, explained on the explain thread.
  std::optional<HttpResponse> ExplainV1(std::string_view model, const HttpRequest& req,
                                        const Model& served, HttpDone& done);
  std::optional<HttpResponse> ExplainV2(std::string_view model, std::string_view version,
                                        const HttpRequest& req, HttpDone& done);
  // Runs `task` on the explain thread (started on first use).
  void PostExplain(absl::AnyInvocable<void()> task);
  std::optional<HttpResponse> StartRawV1(std::string_view model, std::string_view verb,
                                         const HttpRequest& req, HttpDone& done);
  // Runs the inference of HTTP request `req` and answers with
  // encode(request, response) or the error.
  template <typename Encode>
  void StartInfer(InferRequest request, const HttpRequest& req, HttpDone done, Encode encode);

  ServerInfo info_;
  InferenceCore* core_;
  Metrics* metrics_;

  std::mutex explain_mu_;
  std::condition_variable explain_cv_;
  std::deque<absl::AnyInvocable<void()>> explain_queue_;
  bool explain_stopping_ = false;
  std::thread explain_thread_;
};

}  // namespace osprey
