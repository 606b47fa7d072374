#include "backends/testing/fake_backend.h"

#include <stdlib.h>

#include <fstream>
#include <system_error>
#include <thread>

#include "common/strings.h"

namespace osprey::testing {
namespace {

// Dim 0 of input 0: the rows of a batchable request.
int64_t Rows(const InferRequest& request) {
  if (request.inputs.empty()) return 0;
  const Shape& shape = request.inputs[0].shape();
  return shape.empty() ? 1 : shape[0];
}

}  // namespace

FakeBackend::FakeBackend(Options options) : state_(std::make_shared<State>()) {
  state_->options = std::move(options);
}

bool FakeBackend::Recognizes(const std::filesystem::path& dir) const {
  std::error_code ec;
  return std::filesystem::is_regular_file(dir / StrCat("model.", state_->options.name), ec);
}

// The expensive part of a real backend (reading files, building the
// framework's model) happens here, never in the constructor of the backend.
absl::StatusOr<std::unique_ptr<Model>> FakeBackend::Load(const LoadOptions& options) const {
  const Options& o = state_->options;
  if (o.on_load) OSPREY_RETURN_IF_ERROR(o.on_load(options));
  if (o.load_delay.count() > 0) std::this_thread::sleep_for(o.load_delay);
  OSPREY_RETURN_IF_ERROR(o.load_status);
  return std::unique_ptr<Model>(std::make_unique<FakeModel>(state_, options));
}

std::vector<int64_t> FakeBackend::executed_rows() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->executed_rows;
}

FakeModel::FakeModel(std::shared_ptr<FakeBackend::State> state, const LoadOptions& options)
    : state_(std::move(state)) {
  metadata_.name = options.name;
  metadata_.versions = {options.version};
  metadata_.platform = state_->options.name;
  metadata_.inputs = state_->options.inputs;
  metadata_.outputs = state_->options.outputs;
  metadata_.batchable = state_->options.batchable;
  state_->live_models.fetch_add(1);
}

FakeModel::~FakeModel() { state_->live_models.fetch_sub(1); }

// Each task gets its own status: one that fails leaves the others alone.
void FakeModel::Execute(std::span<InferTask> tasks) {
  const FakeBackend::Options& o = state_->options;
  for (InferTask& task : tasks) {
    if (o.on_execute) o.on_execute(*task.request);
    if (o.execute_delay.count() > 0) std::this_thread::sleep_for(o.execute_delay);
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->executed_rows.push_back(Rows(*task.request));
    }
    task.status = Echo(*task.request, task.response);
  }
}

absl::Status FakeModel::Echo(const InferRequest& request, InferResponse* response) const {
  const std::optional<double>& marker = state_->options.fail_marker;
  if (marker.has_value() && !request.inputs.empty() &&
      request.inputs[0].datatype() != DataType::kBytes) {
    const Tensor& first = request.inputs[0];
    const int64_t rows = Rows(request);
    const int64_t width = rows > 0 ? first.element_count() / rows : 0;
    for (int64_t r = 0; r < rows && width > 0; ++r)
      if (NumericElementAsDouble(first, r * width) == *marker)
        return absl::InvalidArgumentError(StrCat("row ", r, " of input '", first.name(),
                                                 "' starts with the fake's failure marker ",
                                                 *marker));
  }
  for (size_t i = 0; i < request.inputs.size() && i < metadata_.outputs.size(); ++i) {
    const Tensor& in = request.inputs[i];
    Tensor out(metadata_.outputs[i].name, in.datatype(), in.shape());
    out.SetData(std::string(in.data()));
    response->outputs.push_back(std::move(out));
  }
  return absl::OkStatus();
}

void FakeGate::Pass() {
  std::unique_lock<std::mutex> lock(mu_);
  ++arrivals_;
  cv_.notify_all();
  cv_.wait_for(lock, kLimit, [this] { return open_; });
}

bool FakeGate::WaitArrivals(int n) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, kLimit, [&] { return arrivals_ >= n; });
}

void FakeGate::Open() {
  std::lock_guard<std::mutex> lock(mu_);
  open_ = true;
  cv_.notify_all();
}

FakeRepository::FakeRepository() {
  std::string pattern = (std::filesystem::temp_directory_path() / "osprey-fake-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();  // a test machine without /tmp
  root_ = pattern;
}

FakeRepository::~FakeRepository() {
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

std::filesystem::path FakeRepository::Add(const std::string& model, const std::string& version,
                                          const std::string& backend) {
  std::filesystem::path dir = root_ / model;
  std::filesystem::path files = version.empty() ? dir : dir / version;
  std::filesystem::create_directories(files);
  std::ofstream(files / StrCat("model.", backend)) << "fake\n";
  return dir;
}

}  // namespace osprey::testing
