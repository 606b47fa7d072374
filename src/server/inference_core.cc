#include "server/inference_core.h"

#include <algorithm>

#include "protocol/content_type.h"
#include "server/batcher.h"
#include "server/tracing.h"
#include "server/validate.h"

namespace osprey {
namespace {

double Seconds(InferenceCore::Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// A completion holds no reference to the ServedModel: it may be the last thing
// to run on a batcher thread, and must not be what destroys the batcher.
void Complete(std::string_view name, std::string_view version, ModelMetrics& m,
              const InferRequest& request, InferResponse* response,
              InferenceCore::Clock::time_point arrival, absl::Status status, ExecutionTimes times,
              InferDone& done) {
  m.pending.fetch_sub(1, std::memory_order_relaxed);
  if (request.trace.sampled() && times.start.time_since_epoch().count() != 0)
    TraceExecution(request.trace,
                   {name, version, arrival, times.start, times.end, times.batch_size, &status});
  if (!status.ok()) {
    m.failure.fetch_add(1, std::memory_order_relaxed);
    done(std::move(status));
    return;
  }
  if (!request.outputs.empty()) {
    std::erase_if(response->outputs, [&](const Tensor& t) {
      return std::none_of(request.outputs.begin(), request.outputs.end(),
                          [&](const RequestedOutput& o) { return o.name == t.name(); });
    });
  }
  response->model_name.assign(name);
  response->model_version.assign(version);
  response->id = request.id;
  m.success.fetch_add(1, std::memory_order_relaxed);
  m.queue.Observe(Seconds(times.start - arrival));
  m.compute.Observe(Seconds(times.end - times.start));
  m.predict.Observe(Seconds(times.end - times.start));
  m.request.Observe(Seconds(times.end - arrival));
  done(absl::OkStatus());
}

}  // namespace

void InferenceCore::Infer(InferRequest& request, InferResponse* response, Clock::time_point arrival,
                          InferDone done) {
  auto found = registry_->Get(request.model_name, request.model_version);
  if (!found.ok() && !request.waited_for_model && registry_->LoadsOnDemand(request.model_name)) {
    // The memory budget evicted it (or it was never loaded): loaded for this
    // request, which waits on the registry's loader thread, not here.
    request.waited_for_model = true;
    registry_->LoadIfAbsentAsync(
        request.model_name,
        [this, &request, response, arrival, done = std::move(done)](absl::Status s) mutable {
          if (!s.ok()) {
            done(absl::UnavailableError(
                StrCat("model '", request.model_name,
                       "' could not be loaded for this request: ", s.message())));
            return;
          }
          Infer(request, response, arrival, std::move(done));
        });
    return;
  }
  if (!found.ok()) {
    done(found.status());
    return;
  }
  if (registry_->CachesModels()) registry_->CountLookup(!request.waited_for_model);
  const ServedModel& model = **found;
  ModelMetrics& m = *model.metrics;
  absl::Status status = HasContentTypes(request)
                            ? DecodeContentTypes(model.model->metadata(), &request)
                            : absl::OkStatus();
  if (status.ok()) status = ValidateRequest(model.model->metadata(), request);
  if (!status.ok()) {
    m.failure.fetch_add(1, std::memory_order_relaxed);
    done(std::move(status));
    return;
  }
  if (monitor_ != nullptr && monitor_->model() == model.name) monitor_->Observe(request, response);
  m.pending.fetch_add(1, std::memory_order_relaxed);
  if (model.batcher != nullptr) {
    // Metrics outlive every model; names are copied (no reference to the model).
    model.batcher->Submit(
        &request, response,
        [name = model.name, version = model.version, &m, &request, response, arrival,
         done = std::move(done)](absl::Status s, ExecutionTimes times) mutable {
          Complete(name, version, m, request, response, arrival, std::move(s), times, done);
        });
    return;
  }
  ExecutionTimes times;
  times.start = Clock::now();
  InferTask task{&request, response, absl::OkStatus()};
  model.model->Execute(std::span<InferTask>(&task, 1));
  times.end = Clock::now();
  m.executions.fetch_add(1, std::memory_order_relaxed);
  Complete(model.name, model.version, m, request, response, arrival, std::move(task.status), times,
           done);
}

absl::Status InferenceCore::Explain(const InferRequest& request, InferResponse* response) {
  OSPREY_ASSIGN_OR_RETURN(auto found, registry_->Get(request.model_name, request.model_version));
  const ServedModel& model = *found;
  if (!model.model->explains())
    return absl::UnimplementedError(StrCat("model '", model.name, "' has no explainer"));
  OSPREY_RETURN_IF_ERROR(ValidateInputs(model.model->metadata(), request));
  for (const RequestedOutput& o : request.outputs)
    if (o.name != "contributions")
      return absl::InvalidArgumentError(StrCat("unknown output '", o.name, "' requested; model '",
                                               model.name, "' explains with: contributions"));
  OSPREY_RETURN_IF_ERROR(model.model->Explain(request, response));
  response->model_name.assign(model.name);
  response->model_version.assign(model.version);
  response->id = request.id;
  return absl::OkStatus();
}

void InferenceCore::CountDecodeFailure(std::string_view model_name) {
  auto served = registry_->Get(model_name, "");
  if (served.ok()) (*served)->metrics->failure.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace osprey
