#include "server/validate.h"

#include "common/strings.h"

namespace osprey {

absl::Status ValidateRequest(const ModelMetadata& md, const InferRequest& request) {
  OSPREY_RETURN_IF_ERROR(ValidateInputs(md, request));
  for (const RequestedOutput& o : request.outputs) {
    bool known = false;
    for (const TensorSpec& s : md.outputs) known = known || s.name == o.name;
    if (!known) {
      std::string names;
      for (const TensorSpec& s : md.outputs) StrAppend(&names, names.empty() ? "" : ", ", s.name);
      return absl::InvalidArgumentError(StrCat("unknown output '", o.name, "' requested; model '",
                                               md.name, "' has outputs: ", names));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateInputs(const ModelMetadata& md, const InferRequest& request) {
  if (md.raw_requests) return absl::OkStatus();  // the model checks its own input
  if (request.inputs.size() != md.inputs.size())
    return absl::InvalidArgumentError(StrCat("model '", md.name, "' expects ", md.inputs.size(),
                                             " input(s), got ", request.inputs.size()));
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const Tensor& t = request.inputs[i];
    const TensorSpec* spec = nullptr;
    if (md.inputs.size() == 1) {
      spec = &md.inputs[0];
    } else {
      for (const TensorSpec& s : md.inputs)
        if (s.name == t.name()) spec = &s;
      if (spec == nullptr)
        return absl::InvalidArgumentError(
            StrCat("unknown input '", t.name(), "' for model '", md.name, "'"));
    }
    if (!ShapeMatches(spec->shape, t.shape()))
      return absl::InvalidArgumentError(StrCat("input '", t.name(), "': model '", md.name,
                                               "' expects shape ", ShapeToString(spec->shape),
                                               ", got ", ShapeToString(t.shape())));
    if (t.datatype() != spec->datatype) {
      bool convertible = md.converts_input_datatypes && t.datatype() != DataType::kBytes;
      if (!convertible)
        return absl::InvalidArgumentError(
            StrCat("input '", t.name(), "': model '", md.name, "' expects datatype ",
                   DataTypeName(spec->datatype), ", got ", DataTypeName(t.datatype())));
    }
  }
  return absl::OkStatus();
}

absl::Status WarmUp(Model& model) {
  const ModelMetadata& md = model.metadata();
  if (md.skip_warm_up) return absl::OkStatus();
  InferRequest request;
  request.model_name = md.name;
  for (const TensorSpec& spec : md.inputs) {
    Shape shape = spec.shape;
    for (int64_t& d : shape)
      if (d < 0) d = 1;
    Tensor t(spec.name, spec.datatype, shape);
    int64_t count = t.element_count();
    std::string* bytes = t.mutable_owned_data();
    if (spec.datatype == DataType::kBytes) {
      for (int64_t i = 0; i < count; ++i) AppendBytesElement("", bytes);
    } else {
      bytes->assign(static_cast<size_t>(count) * ElementSize(spec.datatype), '\0');
    }
    request.inputs.push_back(std::move(t));
  }
  InferResponse response;
  InferTask task{&request, &response, absl::OkStatus()};
  model.Execute(std::span<InferTask>(&task, 1));
  if (!task.status.ok())
    return absl::Status(task.status.code(), StrCat("model '", md.name,
                                                   "' loaded but failed its warm-up "
                                                   "inference: ",
                                                   task.status.message()));
  return absl::OkStatus();
}

}  // namespace osprey
