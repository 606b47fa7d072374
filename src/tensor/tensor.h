#pragma once

// Protocol-neutral tensors, inference requests and responses, and model
// metadata. Nothing here knows a wire format: the codecs in src/protocol turn
// JSON, binary parts or protobuf into these types, and backends only see these.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/header_source.h"
#include "common/status.h"
#include "common/trace_context.h"

namespace osprey {

enum class DataType : uint8_t {
  kInvalid = 0,
  kBool,
  kUint8,
  kUint16,
  kUint32,
  kUint64,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFp16,
  kFp32,
  kFp64,
  kBf16,
  kBytes,
};

// Size of one element in bytes; 0 for BYTES (each element carries its length).
size_t ElementSize(DataType type);
// Protocol name ("FP32", "BYTES", ...).
std::string_view DataTypeName(DataType type);
// Parses a protocol name; kInvalid when unknown. Names are case-sensitive as in the spec.
DataType ParseDataType(std::string_view name);
bool IsIntegral(DataType type);
bool IsFloating(DataType type);

// Dimensions, row-major; -1 marks a variable dimension in metadata only.
using Shape = std::vector<int64_t>;
std::string ShapeToString(const Shape& shape);
// Number of elements, or InvalidArgument for negative dims or overflow.
absl::StatusOr<int64_t> ElementCount(const Shape& shape);
// True when `actual` fits `pattern` (same rank, equal dims except -1 in pattern).
bool ShapeMatches(const Shape& pattern, const Shape& actual);

using ParameterValue = std::variant<bool, int64_t, double, std::string>;
// Request/tensor parameters in arrival order; lists are short, so a vector.
using Parameters = std::vector<std::pair<std::string, ParameterValue>>;
const ParameterValue* FindParameter(const Parameters& params, std::string_view key);
// The parameter as a bool if it is one; nullopt if absent or of another type.
std::optional<bool> GetBoolParameter(const Parameters& params, std::string_view key);
std::optional<int64_t> GetIntParameter(const Parameters& params, std::string_view key);

// A named, typed, shaped tensor. Its bytes use the binary extension's raw
// layout: little-endian, row-major, no padding, BOOL one byte per element, each
// BYTES element a 4-byte little-endian length followed by its bytes.
//
// The bytes are either owned (a std::string inside the tensor) or borrowed from
// a buffer whose lifetime the owner of the tensor guarantees, normally the
// request body kept alive by InferRequest::backing.
class Tensor {
 public:
  Tensor() = default;
  Tensor(std::string name, DataType datatype, Shape shape)
      : name_(std::move(name)), datatype_(datatype), shape_(std::move(shape)) {}

  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  DataType datatype() const { return datatype_; }
  void set_datatype(DataType type) { datatype_ = type; }
  const Shape& shape() const { return shape_; }
  Shape* mutable_shape() { return &shape_; }
  const Parameters& parameters() const { return parameters_; }
  Parameters* mutable_parameters() { return &parameters_; }

  std::string_view data() const { return borrowed_ ? view_ : std::string_view(owned_); }
  // Switches to owned storage and returns it for filling.
  std::string* mutable_owned_data() {
    if (borrowed_) {
      owned_.assign(view_);
      borrowed_ = false;
    }
    return &owned_;
  }
  void SetData(std::string bytes) {
    owned_ = std::move(bytes);
    borrowed_ = false;
  }
  void BorrowData(std::string_view bytes) {
    view_ = bytes;
    borrowed_ = true;
  }

  // Checks that the bytes agree with datatype and shape: fixed-size types hold
  // exactly count*size bytes; BYTES holds exactly count length-prefixed elements.
  // The message names the tensor and both sizes.
  absl::Status Validate() const;

  // Element count from the shape (shape already validated).
  int64_t element_count() const;

 private:
  std::string name_;
  DataType datatype_ = DataType::kInvalid;
  Shape shape_;
  Parameters parameters_;
  std::string owned_;
  std::string_view view_;
  bool borrowed_ = false;
};

// Iterates the elements of a BYTES tensor's raw bytes. Returns false at the end
// or on malformed input (use Tensor::Validate first).
class BytesReader {
 public:
  explicit BytesReader(std::string_view raw) : raw_(raw) {}
  bool Next(std::string_view* element);

 private:
  std::string_view raw_;
};
// Appends one BYTES element (length prefix + bytes) to `raw`.
void AppendBytesElement(std::string_view element, std::string* raw);

// Converts any numeric or BOOL tensor to float32 values (FP16/BF16 widened,
// integers rounded to nearest float). InvalidArgument for BYTES, naming the tensor.
absl::Status ConvertToFloat32(const Tensor& tensor, std::vector<float>* out);
// The same to float64 (exact for every datatype but (U)INT64 beyond 2^53).
absl::Status ConvertToFloat64(const Tensor& tensor, std::vector<double>* out);
// Reads element `index` of a numeric tensor as double (for JSON output).
double NumericElementAsDouble(const Tensor& tensor, int64_t index);

float HalfToFloat(uint16_t half);
uint16_t FloatToHalf(float value);
float Bfloat16ToFloat(uint16_t value);
uint16_t FloatToBfloat16(float value);

struct RequestedOutput {
  std::string name;
  Parameters parameters;
};

// One inference call, decoded from any protocol.
struct InferRequest {
  std::string model_name;
  std::string model_version;  // empty: the server's choice
  std::string id;             // echoed in the response when non-empty
  Parameters parameters;
  std::vector<Tensor> inputs;
  std::vector<RequestedOutput> outputs;  // empty: every output
  // Keeps borrowed tensor bytes alive: the HTTP body, or the gRPC message.
  // May be null when the caller keeps that buffer alive for the request's life.
  std::shared_ptr<const void> backing;
  HeaderSource headers;  // empty when the transport has none to offer (gRPC)
  // Its trace (server/tracing.h); not sampled unless the frontend says so.
  // A merged batch has none: each request's spans carry the batch's times.
  TraceContext trace;
  // It waited for its model to load (the model cache's miss: the registry's
  // LoadsOnDemand); counted as a miss, not a hit, when it runs.
  bool waited_for_model = false;
};

struct InferResponse {
  std::string model_name;
  std::string model_version;
  std::string id;
  Parameters parameters;
  std::vector<Tensor> outputs;
  // The largest outlier score (Mahalanobis distance to the reference) of the
  // request's rows, when the model server scores requests for the client
  // (server/monitoring.h); not part of the encoded body.
  std::optional<double> outlier_score;
};

// Declared input or output of a model.
struct TensorSpec {
  std::string name;
  DataType datatype = DataType::kFp32;
  Shape shape;  // -1 for variable dimensions, including the batch dimension
  // Shown with the tensor in V2 REST metadata when not empty (a content type
  // that says how the model reads the tensor).
  Parameters parameters;
};

// A model's own request for dynamic batching (e.g. from its config.pbtxt);
// overrides the server-wide flags for that model.
struct BatchingHint {
  int64_t max_batch_size = 0;
  int64_t max_queue_delay_us = 0;
  std::vector<int64_t> preferred_batch_sizes;
  int executors = 0;         // threads executing batches; 0: the server's setting
  bool overridable = false;  // a backend's default: server batching flags, when set, win
  // False: a batch reaches Model::Execute as its requests, one task each,
  // not merged into one (a model that takes a list of requests, as Triton's
  // Python models do).
  bool merge = true;
};

struct ModelMetadata {
  std::string name;
  std::vector<std::string> versions;
  std::string platform;  // backend name, e.g. "xgboost"
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  // Shown in V2 REST metadata when not empty (the content type a request is
  // read with when it names none).
  Parameters parameters;
  // Named columns of the (single) input, for V1 rows given as dicts; may be empty.
  std::vector<std::string> feature_names;
  // Numeric inputs of any datatype are converted by the backend (KServe's
  // tree-model servers accept whatever numpy accepts). False: datatype must match.
  bool converts_input_datatypes = false;
  // Dim 0 of every input and output counts rows, and the model computes each
  // row independently of the others: requests may be batched along it.
  bool batchable = false;
  std::optional<BatchingHint> batching;
  // A request of zeros (empty strings for BYTES) is not a valid input, so the
  // load skips the warm-up request: shapes only declared as placeholders, or
  // columns that hold categories.
  bool skip_warm_up = false;
  // V1 answers are records: one object per row mapping every output's name
  // to its value (KServe's pmmlserver), not the first output's values.
  bool v1_records = false;
  // The model takes requests as clients send them (a user's own Python model
  // class): no declared tensors to validate against; a V1 body goes to it
  // verbatim as BYTES input "__v1__" and its answer, output "__v1__", goes
  // back verbatim; `:explain` reaches it as request parameter verb=explain.
  bool raw_requests = false;
};

}  // namespace osprey
