#include "backends/torch/torch_backend.h"

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <cstring>
#include <map>
#include <mutex>
#include <semaphore>

#include "backends/model_config.h"
#include "backends/model_files.h"
#include "backends/simple_backend.h"
#include "backends/torch/torch_files.h"
#include "backends/torch/torch_plugin.h"
#include "common/logging.h"
#include "common/strings.h"

namespace osprey {
namespace {

namespace fs = std::filesystem;
using torch_files::FindTorchFile;

// libtorch messages carry a C++ backtrace; the first line says what happened.
std::string TorchMessage(const c10::Error& e) {
  std::string m = e.what_without_backtrace();
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

// The TorchScript interpreter reports an error raised in forward() as a
// traceback of the scripted code; its last line is "<Type>: <message>".
std::string InterpreterMessage(std::string_view m) {
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.remove_suffix(1);
  size_t nl = m.rfind('\n');
  return std::string(nl == std::string_view::npos ? m : m.substr(nl + 1));
}

absl::StatusOr<c10::ScalarType> ToTorch(DataType t, std::string_view tensor) {
  switch (t) {
    case DataType::kBool:
      return c10::kBool;
    case DataType::kUint8:
      return c10::kByte;
    case DataType::kInt8:
      return c10::kChar;
    case DataType::kInt16:
      return c10::kShort;
    case DataType::kInt32:
      return c10::kInt;
    case DataType::kInt64:
      return c10::kLong;
    case DataType::kFp16:
      return c10::kHalf;
    case DataType::kFp32:
      return c10::kFloat;
    case DataType::kFp64:
      return c10::kDouble;
    case DataType::kBf16:
      return c10::kBFloat16;
    default:
      return absl::InvalidArgumentError(StrCat("tensor '", tensor, "': datatype ", DataTypeName(t),
                                               " has no libtorch equivalent"));
  }
}

absl::StatusOr<DataType> FromTorch(c10::ScalarType t) {
  switch (t) {
    case c10::kBool:
      return DataType::kBool;
    case c10::kByte:
      return DataType::kUint8;
    case c10::kChar:
      return DataType::kInt8;
    case c10::kShort:
      return DataType::kInt16;
    case c10::kInt:
      return DataType::kInt32;
    case c10::kLong:
      return DataType::kInt64;
    case c10::kHalf:
      return DataType::kFp16;
    case c10::kFloat:
      return DataType::kFp32;
    case c10::kDouble:
      return DataType::kFp64;
    case c10::kBFloat16:
      return DataType::kBf16;
    default:
      return absl::InternalError(StrCat("model returned a tensor of type ", c10::toString(t),
                                        ", which has no protocol datatype"));
  }
}

// libtorch's thread pools are process-wide, sized once.
void ConfigureThreads(int intra_op) {
  static std::once_flag once;
  std::call_once(once, [intra_op] {
    at::set_num_threads(std::max(1, intra_op));
    try {
      at::set_num_interop_threads(1);
    } catch (const c10::Error&) {
      // Already started by an earlier use; keeps its size.
    }
  });
}

class TorchModel : public Model {
 public:
  absl::Status Init(const LoadOptions& options) {
    const std::optional<ModelConfigFile>& config = options.config;
    ConfigureThreads(options.threads_per_call);
    std::string source;
    try {
      OSPREY_ASSIGN_OR_RETURN(
          fs::path file,
          FindTorchFile(options.dir, config ? config->default_model_filename : std::string()));
      source = file.filename().string();
      module_ = torch::jit::load(file.string(), c10::kCPU);
      module_.eval();
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(
          StrCat("cannot load TorchScript model ", source, ": ", TorchMessage(e)));
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(
          StrCat("cannot load TorchScript model ", source, ": ", e.what()));
    }
    metadata_.name = options.name;
    metadata_.versions = {options.version};
    metadata_.platform = "pytorch_libtorch";
    if (config.has_value() && !config->inputs.empty()) {
      metadata_.inputs = config->inputs;
      metadata_.outputs = config->outputs;
      metadata_.batchable = config->max_batch_size > 0;
      metadata_.batching = config->dynamic_batching;
      // As many batches at once as the instance groups ask.
      if (metadata_.batching.has_value() && options.instances > 0)
        metadata_.batching->executors = options.instances;
      batched_ = config->max_batch_size > 0;
      reshapes_ = config->reshapes;
    } else {
      metadata_.inputs = {{"input-0", DataType::kFp32, {-1, -1}}};
      metadata_.outputs = {{"output-0", DataType::kFp32, {-1, -1}}};
      metadata_.skip_warm_up = true;
    }
    for (const TensorSpec& in : metadata_.inputs) {
      OSPREY_ASSIGN_OR_RETURN(c10::ScalarType t, ToTorch(in.datatype, in.name));
      input_types_.push_back(t);
    }
    // Instance groups bound how many executions run at once.
    if (options.instances > 0)
      slots_ = std::make_unique<std::counting_semaphore<>>(options.instances);
    OSPREY_LOG(kInfo) << "model '" << options.name << "': TorchScript " << source
                      << (config ? " with config.pbtxt" : " (no config.pbtxt: default tensors)");
    return absl::OkStatus();
  }

  const ModelMetadata& metadata() const override { return metadata_; }

  void Execute(std::span<InferTask> tasks) override {
    if (slots_ != nullptr) slots_->acquire();
    for (InferTask& task : tasks) {
      try {
        task.status = Run(*task.request, task.response);
      } catch (const c10::Error& e) {
        // Errors raised inside the model (shape mismatch in a matmul, a
        // scripted `raise`): the request's fault far more often than not.
        task.status = absl::InvalidArgumentError(
            StrCat("model '", metadata_.name, "' failed: ", TorchMessage(e)));
      } catch (const std::exception& e) {
        // An exception raised while the interpreter ran forward(): a torch op
        // refusing its arguments or the model's own `raise`, both about the
        // request it was given.
        task.status = absl::InvalidArgumentError(
            StrCat("model '", metadata_.name, "' failed: ", InterpreterMessage(e.what())));
      }
    }
    if (slots_ != nullptr) slots_->release();
  }

 private:
  absl::Status Run(const InferRequest& request, InferResponse* response) {
    c10::InferenceMode guard;
    std::vector<c10::IValue> inputs;
    inputs.reserve(request.inputs.size());
    for (size_t i = 0; i < metadata_.inputs.size(); ++i) {
      // Declared order; a single-input model takes its input under any name.
      const Tensor* in = nullptr;
      if (metadata_.inputs.size() == 1) {
        in = &request.inputs[0];
      } else {
        for (const Tensor& t : request.inputs)
          if (t.name() == metadata_.inputs[i].name) in = &t;
      }
      if (in == nullptr)
        return absl::InvalidArgumentError(StrCat("missing input '", metadata_.inputs[i].name, "'"));
      if (in->datatype() != metadata_.inputs[i].datatype)
        return absl::InvalidArgumentError(StrCat("input '", in->name(), "' has datatype ",
                                                 DataTypeName(in->datatype()), ", expected ",
                                                 DataTypeName(metadata_.inputs[i].datatype)));
      std::vector<int64_t> sizes(in->shape().begin(), in->shape().end());
      // The request's bytes are borrowed for the call; clone() would copy,
      // so the tensor is built over them and only read by the model.
      const char* data = in->data().data();
      at::Tensor t = torch::from_blob(const_cast<char*>(data), sizes,
                                      torch::TensorOptions().dtype(input_types_[i]));
      // Binary-extension bytes follow a JSON header of any length: copy a
      // misaligned tensor rather than hand kernels unaligned elements.
      if (reinterpret_cast<uintptr_t>(data) % ElementSize(in->datatype()) != 0) t = t.clone();
      // config.pbtxt's reshape: the shape forward() takes, after the batch.
      if (auto r = reshapes_.find(metadata_.inputs[i].name); r != reshapes_.end())
        t = t.reshape(BatchedShape(sizes, r->second));
      inputs.emplace_back(std::move(t));
    }
    c10::IValue result = module_.forward(std::move(inputs));
    std::vector<at::Tensor> outs;
    if (result.isTensor()) {
      outs.push_back(result.toTensor());
    } else if (result.isTuple()) {
      for (const auto& v : result.toTupleRef().elements()) {
        if (!v.isTensor())
          return absl::InternalError("model returned a tuple holding a non-tensor");
        outs.push_back(v.toTensor());
      }
    } else if (result.isTensorList()) {
      for (const at::Tensor& t : result.toTensorVector()) outs.push_back(t);
    } else {
      return absl::InternalError(
          StrCat("model returned a ", result.tagKind(), "; expected a tensor or tuple of tensors"));
    }
    for (size_t i = 0; i < outs.size(); ++i) {
      at::Tensor t = outs[i].contiguous();
      // An output with a reshape is reported in its declared dims.
      if (i < metadata_.outputs.size() && reshapes_.count(metadata_.outputs[i].name) > 0) {
        const Shape& dims = metadata_.outputs[i].shape;
        std::vector<int64_t> sizes(t.sizes().begin(), t.sizes().end());
        t = t.reshape(BatchedShape(sizes, Shape(dims.begin() + (batched_ ? 1 : 0), dims.end())));
      }
      OSPREY_ASSIGN_OR_RETURN(DataType type, FromTorch(t.scalar_type()));
      std::string name =
          i < metadata_.outputs.size() ? metadata_.outputs[i].name : StrCat("output-", i);
      Tensor out(std::move(name), type, Shape(t.sizes().begin(), t.sizes().end()));
      std::string* bytes = out.mutable_owned_data();
      bytes->resize(t.nbytes());
      if (t.nbytes() > 0) std::memcpy(bytes->data(), t.data_ptr(), t.nbytes());
      response->outputs.push_back(std::move(out));
    }
    return absl::OkStatus();
  }

  // `shape` after the batch dimension of `sizes` (when the model batches).
  std::vector<int64_t> BatchedShape(const std::vector<int64_t>& sizes, const Shape& shape) const {
    std::vector<int64_t> out;
    if (batched_ && !sizes.empty()) out.push_back(sizes[0]);
    out.insert(out.end(), shape.begin(), shape.end());
    return out;
  }

  torch::jit::script::Module module_;
  std::vector<c10::ScalarType> input_types_;
  ModelMetadata metadata_;
  bool batched_ = false;  // dim 0 of every tensor is the batch (max_batch_size > 0)
  std::map<std::string, Shape> reshapes_;
  std::unique_ptr<std::counting_semaphore<>> slots_;  // null: no limit
};

}  // namespace

const Backend& TorchBackend() {
  // Recognition is the server's (LazyTorchBackend); the plugin only loads.
  static const SimpleBackend<TorchModel> backend("pytorch", [](const fs::path&) { return false; });
  return backend;
}

}  // namespace osprey

// The plugin's one entry point (see torch_plugin.h).
extern "C" __attribute__((visibility("default"))) const osprey::Backend* osprey_torch_backend() {
  return &osprey::TorchBackend();
}
