#include "server/inference_core.h"

#include <algorithm>

#include "server/validate.h"

namespace osprey {
namespace {
double Seconds(InferenceCore::Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}
}  // namespace

absl::Status InferenceCore::Infer(const InferRequest& request, InferResponse* response,
                                  Clock::time_point arrival) {
  OSPREY_ASSIGN_OR_RETURN(std::shared_ptr<const ServedModel> served,
                          registry_->Get(request.model_name, request.model_version));
  ModelMetrics& m = *served->metrics;
  absl::Status status = ValidateRequest(served->model->metadata(), request);
  if (!status.ok()) {
    m.failure.fetch_add(1, std::memory_order_relaxed);
    return status;
  }
  m.pending.fetch_add(1, std::memory_order_relaxed);
  Clock::time_point start = Clock::now();
  InferTask task{&request, response, absl::OkStatus()};
  served->model->Execute(std::span<InferTask>(&task, 1));
  Clock::time_point end = Clock::now();
  m.pending.fetch_sub(1, std::memory_order_relaxed);
  m.executions.fetch_add(1, std::memory_order_relaxed);
  if (!task.status.ok()) {
    m.failure.fetch_add(1, std::memory_order_relaxed);
    return task.status;
  }
  if (!request.outputs.empty()) {
    std::erase_if(response->outputs, [&](const Tensor& t) {
      return std::none_of(request.outputs.begin(), request.outputs.end(),
                          [&](const RequestedOutput& o) { return o.name == t.name(); });
    });
  }
  response->model_name = served->name;
  response->model_version = served->version;
  response->id = request.id;
  m.success.fetch_add(1, std::memory_order_relaxed);
  m.queue.Observe(Seconds(start - arrival));
  m.compute.Observe(Seconds(end - start));
  m.predict.Observe(Seconds(end - start));
  m.request.Observe(Seconds(end - arrival));
  return absl::OkStatus();
}

void InferenceCore::CountDecodeFailure(std::string_view model_name) {
  auto served = registry_->Get(model_name, "");
  if (served.ok()) (*served)->metrics->failure.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace osprey
