#include "backends/python/python_backend.h"

#include <unistd.h>

#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "backends/python/worker_process.h"
#include "backends/simple_backend.h"
#include "backends/torchserve_store.h"
#include "common/json_writer.h"
#include "common/logging.h"
#include "common/strings.h"
#include "common/trace_context.h"
#include "protocol/json_util.h"
#include "rapidjson/document.h"

namespace osprey {
namespace {

namespace fs = std::filesystem;

std::string FromEnv(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

bool IsSklearnDir(const fs::path& dir) {
  std::error_code ec;
  for (const char* f : {"model.joblib", "model.pkl", "model.pickle"})
    if (fs::is_regular_file(dir / f, ec)) return true;
  return false;
}

bool IsOnnxDir(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".onnx" && e.is_regular_file(ec)) return true;
  return false;
}

// What a format runs in the worker, and how it reports itself.
struct PythonFormat {
  const char* name;      // the worker's --format
  const char* platform;  // metadata platform
  const char* label;     // for the log
};
constexpr PythonFormat kSklearn{"sklearn", "sklearn", "scikit-learn"};
constexpr PythonFormat kOnnx{"onnx", "onnxruntime_onnx", "ONNX (onnxruntime)"};
constexpr PythonFormat kCustom{"custom", "custom", "a custom kserve.Model"};
constexpr PythonFormat kTensorflow{"tensorflow", "tensorflow_savedmodel", "TensorFlow SavedModel"};
constexpr PythonFormat kPaddle{"paddle", "paddle", "Paddle inference model"};
constexpr PythonFormat kTritonPython{"python", "python", "a Triton Python model"};

bool IsTritonPython(const PythonFormat& f) { return std::string_view(f.name) == "python"; }

// A Python model's answer to one request of a frame that carried several:
// Triton's error codes as statuses.
absl::Status TritonErrorStatus(std::string_view code, std::string message) {
  if (code == "INVALID_ARG") return absl::InvalidArgumentError(message);
  if (code == "NOT_FOUND") return absl::NotFoundError(message);
  if (code == "UNAVAILABLE") return absl::UnavailableError(message);
  if (code == "UNSUPPORTED") return absl::UnimplementedError(message);
  if (code == "ALREADY_EXISTS") return absl::AlreadyExistsError(message);
  if (code == "CANCELLED") return absl::CancelledError(message);
  return absl::InternalError(message);
}

constexpr PythonFormat kMlflow{"mlflow", "mlflow", "MLflow model (mlflow.pyfunc)"};
constexpr PythonFormat kTorchServe{"torchserve", "pytorch_torchserve",
                                   "TorchServe archive (its handler)"};

bool IsTorchServe(const PythonFormat& f) { return std::string_view(f.name) == "torchserve"; }

constexpr PythonFormat kArt{"art", "art", "ART explainer (adversarial-robustness-toolbox)"};

// An MLmodel file marks an MLflow model, whatever flavor's files lie beside it.
bool IsMlflowDir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "MLmodel", ec);
}

bool IsPaddleDir(const fs::path& dir) {
  std::error_code ec;
  bool model = false, params = false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    model = model || e.path().extension() == ".pdmodel";
    params = params || e.path().extension() == ".pdiparams";
  }
  return model && params;
}

bool IsSavedModelDir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "saved_model.pb", ec);
}

bool IsCustomDir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "model.py", ec);
}

absl::StatusOr<TensorSpec> ParseSpec(const rapidjson::Value& v) {
  if (!v.IsObject() || !v.HasMember("name") || !v.HasMember("datatype") || !v.HasMember("shape") ||
      !v["name"].IsString() || !v["datatype"].IsString() || !v["shape"].IsArray())
    return absl::InternalError("Python worker sent a malformed tensor description");
  TensorSpec s;
  s.name = v["name"].GetString();
  s.datatype = ParseDataType(v["datatype"].GetString());
  if (s.datatype == DataType::kInvalid)
    return absl::InternalError(StrCat("Python worker sent datatype ", v["datatype"].GetString()));
  for (const auto& d : v["shape"].GetArray()) {
    if (!d.IsInt64()) return absl::InternalError("Python worker sent a malformed shape");
    s.shape.push_back(d.GetInt64());
  }
  if (auto p = v.FindMember("parameters"); p != v.MemberEnd())
    OSPREY_RETURN_IF_ERROR(
        DecodeParameters(p->value, StrCat("tensor '", s.name, "' parameters"), &s.parameters));
  return s;
}

class PythonModel : public Model {
 public:
  explicit PythonModel(const PythonFormat& format) : format_(format) {}
  ~PythonModel() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (respawner_.joinable()) respawner_.join();
  }

  absl::Status Init(const LoadOptions& options) {
    name_ = options.name;
    argv_ = {FromEnv("OSPREY_PYTHON", OSPREY_PYTHON_DEFAULT),
             FromEnv("OSPREY_PYTHON_WORKER", OSPREY_PYTHON_WORKER_DEFAULT),
             "--format",
             format_.name,
             "--model-dir",
             options.dir.string(),
             "--model-name",
             options.name};
    if (options.config.has_value()) {
      const ModelConfigFile& c = *options.config;
      for (std::string arg :
           {std::string("--model-config-json"), ModelConfigJson(c), std::string("--model-version"),
            options.version, std::string("--model-repository"), options.model_root.string()})
        argv_.push_back(std::move(arg));
      // The file the configuration names, unless it is the directory loaded.
      if (!c.default_model_filename.empty() && options.dir.filename() != c.default_model_filename) {
        argv_.push_back("--model-file");
        argv_.push_back(c.default_model_filename);
      }
      instance_group_ = c.instance_groups.empty() ? c.name : c.instance_groups[0].name;
    } else if (IsTorchServe(format_)) {
      // The archive the store serves under this name (its configuration's).
      OSPREY_ASSIGN_OR_RETURN(torchserve::StoreModel m,
                              torchserve::FindStoreModel(options.dir, options.name));
      for (std::string arg : {std::string("--model-file"), m.archive.string(),
                              std::string("--model-version"), m.version})
        argv_.push_back(std::move(arg));
    } else if (IsTritonPython(format_)) {
      return absl::InvalidArgumentError(
          StrCat("model '", options.name,
                 "': a Triton Python model needs its config.pbtxt (backend: \"python\")"));
    }
    if (!options.args.empty()) {
      std::string json;
      JsonWriter j(&json);
      j.BeginArray();
      for (const std::string& a : options.args) j.String(a);
      j.EndArray();
      argv_.push_back("--model-args-json");
      argv_.push_back(std::move(json));
    }
    const int workers = std::max(1, options.workers);
    // Start them all, then wait for each: the imports overlap.
    std::vector<std::unique_ptr<WorkerProcess>> started;
    for (int i = 0; i < workers; ++i) {
      OSPREY_ASSIGN_OR_RETURN(auto w, WorkerProcess::Spawn(WorkerArgv(i)));
      started.push_back(std::move(w));
    }
    for (auto& w : started) {
      OSPREY_ASSIGN_OR_RETURN(std::string ready, Handshake(*w));
      if (metadata_.inputs.empty()) OSPREY_RETURN_IF_ERROR(Describe(ready, options, workers));
      pids_.insert(w->pid());
      idle_.push_back(std::move(w));
    }
    total_ = workers;
    next_index_ = workers;
    respawner_ = std::thread([this] { Respawn(); });
    OSPREY_LOG(kInfo) << "model '" << name_ << "': " << format_.label << " in " << workers
                      << " Python worker(s) (" << argv_[0] << ")";
    return absl::OkStatus();
  }

  const ModelMetadata& metadata() const override { return metadata_; }

  // The workers' resident memory (/proc/<pid>/statm).
  uint64_t ExternalResidentBytes() const override {
    std::set<int> pids;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pids = pids_;
    }
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    uint64_t total = 0;
    for (int pid : pids) {
      std::ifstream statm(StrCat("/proc/", pid, "/statm"));
      uint64_t size = 0, resident = 0;
      if (statm >> size >> resident) total += resident * page;
    }
    return total;
  }

  void Execute(std::span<InferTask> tasks) override {
    if (IsTritonPython(format_)) {
      ExecuteTogether(tasks);
      return;
    }
    for (InferTask& task : tasks) {
      std::unique_ptr<WorkerProcess> w = Acquire();
      if (w == nullptr) {
        task.status = absl::UnavailableError(StrCat(
            "model '", name_, "' has no Python worker running (they keep failing to start)"));
        continue;
      }
      bool worker_ok = true;
      task.status = Run(*w, *task.request, task.response, &worker_ok);
      Release(std::move(w), worker_ok);
    }
  }

 private:
  // argv of worker `index` (a Triton Python model's instance name).
  std::vector<std::string> WorkerArgv(int index) const {
    std::vector<std::string> argv = argv_;
    if (IsTritonPython(format_)) {
      argv.push_back("--instance-name");
      argv.push_back(StrCat(instance_group_, "_", index));
    }
    return argv;
  }

  // A Triton Python model takes the tasks together: one worker, one frame,
  // one execute() call with every request, each answered on its own.
  void ExecuteTogether(std::span<InferTask> tasks) {
    std::unique_ptr<WorkerProcess> w = Acquire();
    if (w == nullptr) {
      for (InferTask& task : tasks)
        task.status = absl::UnavailableError(StrCat(
            "model '", name_, "' has no Python worker running (they keep failing to start)"));
      return;
    }
    std::string head, payload;
    JsonWriter j(&head);
    j.BeginObject().Key("requests").BeginArray();
    for (const InferTask& task : tasks) {
      const InferRequest& request = *task.request;
      j.BeginObject();
      WriteInputs(request, j);
      j.Key("id").String(request.id);
      j.Key("parameters");
      EncodeJsonParameters(request.parameters, j);
      j.Key("outputs").BeginArray();
      for (const RequestedOutput& o : request.outputs) j.String(o.name);
      j.EndArray().EndObject();
      for (const Tensor& in : request.inputs) payload.append(in.data());
    }
    j.EndArray().EndObject();
    absl::Status s = w->Write(head, payload);
    absl::StatusOr<WorkerProcess::Frame> frame = s.ok() ? w->Read() : s;
    if (!frame.ok()) {
      for (InferTask& task : tasks)
        task.status =
            absl::InternalError(StrCat("model '", name_, "': ", frame.status().message()));
      Release(std::move(w), false);
      return;
    }
    Release(std::move(w), true);
    absl::Status all = AnswerEach(*frame, tasks);
    if (!all.ok())
      for (InferTask& task : tasks) task.status = all;
  }

  // The answer to a frame of several requests: each task's outputs or error;
  // a status for them all when execute() failed or the frame is malformed.
  absl::Status AnswerEach(const WorkerProcess::Frame& frame, std::span<InferTask> tasks) {
    rapidjson::Document doc;
    OSPREY_RETURN_IF_ERROR(ParseAnswer(frame, &doc));
    if (!doc.HasMember("responses") || !doc["responses"].IsArray() ||
        doc["responses"].Size() != tasks.size())
      return absl::InternalError("Python worker's answer does not have one response per request");
    size_t offset = 0;
    size_t i = 0;
    for (const auto& r : doc["responses"].GetArray()) {
      InferTask& task = tasks[i++];
      if (r.HasMember("error") && r["error"].IsString()) {
        const std::string code =
            r.HasMember("code") && r["code"].IsString() ? r["code"].GetString() : "";
        task.status = TritonErrorStatus(code, r["error"].GetString());
        continue;
      }
      task.status = ReadOutputs(r, frame.payload, &offset, task.response);
    }
    return absl::OkStatus();
  }

  // The tensors an answer's "outputs" describes, from `payload` at `offset`.
  absl::Status ReadOutputs(const rapidjson::Value& answer, const std::string& payload,
                           size_t* offset, InferResponse* response) {
    if (!answer.IsObject() || !answer.HasMember("outputs") || !answer["outputs"].IsArray())
      return absl::InternalError("Python worker's answer has no outputs");
    for (const auto& o : answer["outputs"].GetArray()) {
      OSPREY_ASSIGN_OR_RETURN(TensorSpec spec, ParseSpec(o));
      if (!o.HasMember("size") || !o["size"].IsUint64() ||
          *offset + o["size"].GetUint64() > payload.size())
        return absl::InternalError("Python worker's answer has a malformed size");
      const size_t size = o["size"].GetUint64();
      Tensor out(spec.name, spec.datatype, spec.shape);
      *out.mutable_parameters() = std::move(spec.parameters);
      out.SetData(payload.substr(*offset, size));
      *offset += size;
      OSPREY_RETURN_IF_ERROR(out.Validate());
      response->outputs.push_back(std::move(out));
    }
    return absl::OkStatus();
  }

  // "inputs": the request's tensor descriptions (a single-input model takes
  // its input under any name, as validated; a raw V1 body keeps its own).
  void WriteInputs(const InferRequest& request, JsonWriter& j) const {
    j.Key("inputs").BeginArray();
    for (const Tensor& in : request.inputs) {
      const std::string& name = metadata_.inputs.size() == 1 && in.name() != "__v1__"
                                    ? metadata_.inputs[0].name
                                    : in.name();
      j.BeginObject().Key("name").String(name).Key("datatype").String(DataTypeName(in.datatype()));
      j.Key("shape").BeginArray();
      for (int64_t d : in.shape()) j.Int(d);
      j.EndArray().Key("size").Int(static_cast<int64_t>(in.data().size()));
      if (!in.parameters().empty()) {
        j.Key("parameters");
        EncodeJsonParameters(in.parameters(), j);
      }
      j.EndObject();
    }
    j.EndArray();
  }

  // The worker's first frame: its description, or why it could not load.
  absl::StatusOr<std::string> Handshake(WorkerProcess& w) {
    auto frame = w.Read();
    if (!frame.ok())
      return absl::FailedPreconditionError(StrCat("Python worker for model '", name_,
                                                  "' did not start: ", frame.status().message(),
                                                  " (see the server log for its output)"));
    rapidjson::Document doc;
    doc.Parse(frame->json.data(), frame->json.size());
    if (doc.HasParseError() || !doc.IsObject())
      return absl::InternalError("Python worker sent a malformed greeting");
    if (doc.HasMember("error") && doc["error"].IsString())
      return absl::InvalidArgumentError(
          StrCat("cannot load model '", name_, "': ", doc["error"].GetString()));
    return std::move(frame->json);
  }

  absl::Status Describe(const std::string& ready, const LoadOptions& options, int workers) {
    rapidjson::Document doc;
    doc.Parse(ready.data(), ready.size());
    metadata_.name = options.name;
    metadata_.versions = {options.version};
    metadata_.platform = format_.platform;
    // scikit-learn converts whatever numbers it gets, Paddle casts to float32
    // as KServe's paddleserver does; ONNX and TensorFlow want their types.
    metadata_.converts_input_datatypes =
        std::string_view(format_.name) == "sklearn" || std::string_view(format_.name) == "paddle";
    for (const char* key : {"inputs", "outputs"}) {
      if (!doc.HasMember(key) || !doc[key].IsArray())
        return absl::InternalError(StrCat("Python worker's greeting has no ", key));
      for (const auto& v : doc[key].GetArray()) {
        OSPREY_ASSIGN_OR_RETURN(TensorSpec s, ParseSpec(v));
        (std::string_view(key) == "inputs" ? metadata_.inputs : metadata_.outputs).push_back(s);
      }
    }
    if (auto p = doc.FindMember("parameters"); p != doc.MemberEnd())
      OSPREY_RETURN_IF_ERROR(DecodeParameters(p->value, "model parameters", &metadata_.parameters));
    metadata_.raw_requests = doc.HasMember("raw_requests") && doc["raw_requests"].IsTrue();
    if (doc.HasMember("platform") && doc["platform"].IsString())
      metadata_.platform = doc["platform"].GetString();
    // With Triton's configuration, its batching and nothing else.
    if (doc.HasMember("triton") && doc["triton"].IsObject())
      return DescribeBatching(doc["triton"], workers);
    // Batchable when every tensor's first dimension is variable (the batch).
    metadata_.batchable = !metadata_.inputs.empty() && !metadata_.raw_requests;
    for (const auto* specs : {&metadata_.inputs, &metadata_.outputs})
      for (const TensorSpec& t : *specs)
        metadata_.batchable = metadata_.batchable && !t.shape.empty() && t.shape[0] == -1;
    // Categorical columns take no zeros; the worker answered its greeting
    // only after loading the model, which is the readiness that matters.
    metadata_.skip_warm_up =
        metadata_.raw_requests || (doc.HasMember("skip_warm_up") && doc["skip_warm_up"].IsTrue()) ||
        (!metadata_.inputs.empty() && metadata_.inputs[0].datatype == DataType::kBytes);
    if (doc.HasMember("feature_names") && doc["feature_names"].IsArray())
      for (const auto& n : doc["feature_names"].GetArray())
        if (n.IsString()) metadata_.feature_names.push_back(n.GetString());
    // Adaptive batching by default: requests arriving while every worker is
    // busy run together, with no added wait.
    if (!metadata_.batchable) return absl::OkStatus();
    BatchingHint hint;
    hint.max_batch_size = 64;
    hint.max_queue_delay_us = 0;
    hint.executors = workers;
    hint.overridable = true;
    metadata_.batching = hint;
    return absl::OkStatus();
  }

  // A Triton configuration's batching, as the worker reports it: requests
  // batch only with dynamic_batching, as many batches at once as workers.
  absl::Status DescribeBatching(const rapidjson::Value& triton, int workers) {
    if (!triton.HasMember("max_batch_size") || !triton["max_batch_size"].IsInt64())
      return absl::InternalError("Python worker's greeting has a malformed 'triton'");
    const int64_t max_batch_size = triton["max_batch_size"].GetInt64();
    metadata_.batchable = max_batch_size > 0;
    if (!metadata_.batchable || !triton.HasMember("dynamic_batching") ||
        !triton["dynamic_batching"].IsObject()) {
      // A model that takes its requests as a list is batched only as its
      // configuration says, never by the server's flags (which merge rows).
      if (IsTritonPython(format_)) metadata_.batchable = false;
      return absl::OkStatus();
    }
    const auto& d = triton["dynamic_batching"];
    BatchingHint hint;
    hint.max_batch_size = max_batch_size;
    if (d.HasMember("max_queue_delay_us") && d["max_queue_delay_us"].IsInt64())
      hint.max_queue_delay_us = d["max_queue_delay_us"].GetInt64();
    if (d.HasMember("preferred_batch_sizes") && d["preferred_batch_sizes"].IsArray())
      for (const auto& p : d["preferred_batch_sizes"].GetArray())
        if (p.IsInt64()) hint.preferred_batch_sizes.push_back(p.GetInt64());
    hint.merge = !d.HasMember("merge") || !d["merge"].IsFalse();
    hint.executors = workers;
    metadata_.batching = hint;
    return absl::OkStatus();
  }

  absl::Status Run(WorkerProcess& w, const InferRequest& request, InferResponse* response,
                   bool* worker_ok) {
    std::string head;
    JsonWriter j(&head);
    j.BeginObject();
    WriteInputs(request, j);
    // Request parameters the model may read (a custom model's verb), and the
    // request's headers for a model that takes them (names lower-cased).
    j.Key("parameters");
    EncodeJsonParameters(request.parameters, j);
    // A sampled request's trace: the worker's span is a child of its
    // execution (common/trace_context.h).
    if (request.trace.sampled()) {
      TraceparentBuffer tp;
      j.Key("traceparent")
          .String(FormatTraceparent(request.trace.trace_hi, request.trace.trace_lo,
                                    request.trace.execute_span_id != 0
                                        ? request.trace.execute_span_id
                                        : request.trace.span_id,
                                    true, &tp));
    }
    if (metadata_.raw_requests && request.headers.visit != nullptr) {
      j.Key("headers").BeginObject();
      request.headers.visit(request.headers.context,
                            [&j](std::string_view name, std::string_view value) {
                              std::string lower(name);
                              for (char& c : lower)
                                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                              j.Key(lower).String(value);
                            });
      j.EndObject();
    }
    j.EndObject();
    // One input goes straight from the request's bytes; several are joined.
    std::string payload;
    if (request.inputs.size() > 1)
      for (const Tensor& in : request.inputs) payload.append(in.data());
    absl::Status s = w.Write(head, request.inputs.size() == 1 ? request.inputs[0].data() : payload);
    if (s.ok()) {
      auto frame = w.Read();
      if (frame.ok()) return Answer(*frame, response);
      s = frame.status();
    }
    *worker_ok = false;
    return absl::InternalError(StrCat("model '", name_, "': ", s.message()));
  }

  absl::Status Answer(const WorkerProcess::Frame& frame, InferResponse* response) {
    rapidjson::Document doc;
    OSPREY_RETURN_IF_ERROR(ParseAnswer(frame, &doc));
    if (auto p = doc.FindMember("parameters"); p != doc.MemberEnd())
      OSPREY_RETURN_IF_ERROR(
          DecodeParameters(p->value, "answer parameters", &response->parameters));
    size_t offset = 0;
    return ReadOutputs(doc, frame.payload, &offset, response);
  }

  // An answer frame's JSON; the model's error when it raised one.
  absl::Status ParseAnswer(const WorkerProcess::Frame& frame, rapidjson::Document* doc) const {
    doc->Parse(frame.json.data(), frame.json.size());
    if (doc->HasParseError() || !doc->IsObject())
      return absl::InternalError("Python worker sent a malformed answer");
    if (doc->HasMember("error") && (*doc)["error"].IsString()) {
      // The worker may say the request was at fault (it does not fit the model).
      if (doc->HasMember("invalid") && (*doc)["invalid"].IsTrue())
        return absl::InvalidArgumentError(
            StrCat("model '", name_, "': ", (*doc)["error"].GetString()));
      return absl::InternalError(
          StrCat("model '", name_, "' raised ", (*doc)["error"].GetString()));
    }
    return absl::OkStatus();
  }

  std::unique_ptr<WorkerProcess> Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !idle_.empty() || total_ == 0 || stopping_; });
    if (idle_.empty()) return nullptr;
    auto w = std::move(idle_.front());
    idle_.pop_front();
    return w;
  }

  void Release(std::unique_ptr<WorkerProcess> w, bool ok) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ok) {
      idle_.push_back(std::move(w));
    } else {
      OSPREY_LOG(kWarning) << "model '" << name_ << "': Python worker " << w->pid() << " "
                           << w->ExitDescription() << "; starting a replacement";
      pids_.erase(w->pid());
      dead_.push_back(std::move(w));
    }
    cv_.notify_all();
  }

  // Replaces dead workers off the request path. A worker being replaced
  // still counts in total_, so requests wait for it rather than fail.
  void Respawn() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stopping_ || !dead_.empty(); });
      if (stopping_) return;
      const size_t count = dead_.size();
      dead_.clear();  // reaps them
      lock.unlock();
      std::vector<std::unique_ptr<WorkerProcess>> fresh;
      for (size_t i = 0; i < count; ++i) {
        auto w = WorkerProcess::Spawn(WorkerArgv(next_index_++));
        if (w.ok() && Handshake(**w).ok()) fresh.push_back(*std::move(w));
      }
      lock.lock();
      total_ -= static_cast<int>(count - fresh.size());
      if (fresh.size() < count) {
        OSPREY_LOG(kError) << "model '" << name_ << "': " << count - fresh.size()
                           << " replacement Python worker(s) did not start";
      }
      for (auto& w : fresh) {
        pids_.insert(w->pid());
        idle_.push_back(std::move(w));
      }
      cv_.notify_all();
    }
  }

  const PythonFormat& format_;
  std::string name_;
  std::vector<std::string> argv_;
  std::string instance_group_;  // a Triton Python model's first instance group
  int next_index_ = 0;          // of the next replacement worker (the respawner's own)
  ModelMetadata metadata_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<WorkerProcess>> idle_;
  std::vector<std::unique_ptr<WorkerProcess>> dead_;
  int total_ = 0;       // workers alive (idle or running a request)
  std::set<int> pids_;  // of the workers alive
  bool stopping_ = false;
  std::thread respawner_;
};

// The model class and backend of one format.
template <const PythonFormat& kFormat>
class FormatModel : public PythonModel {
 public:
  FormatModel() : PythonModel(kFormat) {}
};

template <const PythonFormat& kFormat>
const Backend& FormatBackend(bool (*recognizes)(const fs::path& dir)) {
  static const SimpleBackend<FormatModel<kFormat>> backend(kFormat.name, recognizes);
  return backend;
}

}  // namespace

const Backend& SklearnBackend() { return FormatBackend<kSklearn>(IsSklearnDir); }
const Backend& OnnxBackend() { return FormatBackend<kOnnx>(IsOnnxDir); }
const Backend& CustomBackend() { return FormatBackend<kCustom>(IsCustomDir); }
const Backend& TensorflowBackend() { return FormatBackend<kTensorflow>(IsSavedModelDir); }
const Backend& PaddleBackend() { return FormatBackend<kPaddle>(IsPaddleDir); }
// Only a configuration names it (backend: "python"): a model.py alone is a
// custom kserve.Model.
const Backend& TritonPythonBackend() {
  return FormatBackend<kTritonPython>([](const fs::path&) { return false; });
}
const Backend& MlflowBackend() { return FormatBackend<kMlflow>(IsMlflowDir); }
// Only `osprey serve --model-format art` names it: the explainer has no files.
const Backend& ArtExplainerBackend() {
  return FormatBackend<kArt>([](const fs::path&) { return false; });
}
// KServe's pytorch format in TorchServe's layout: the same format name as the
// TorchScript backend, told apart by the files (the registry asks both).
const Backend& TorchServeBackend() {
  static const SimpleBackend<FormatModel<kTorchServe>> backend(
      "pytorch", [](const fs::path& dir) { return torchserve::IsStore(dir); });
  return backend;
}

}  // namespace osprey
