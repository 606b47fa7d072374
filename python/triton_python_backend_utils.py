"""The module Triton's Python models import as `triton_python_backend_utils`
(usually `as pb_utils`), for models served by Osprey's Python workers
(python/osprey_worker.py, format "python"): the same names and behaviour, so
a model.py written for Triton runs unchanged on CPU.

What a model gets: pb_utils.InferenceRequest objects (inputs(),
request_id(), requested_output_names(), parameters()), returns
pb_utils.InferenceResponse objects made of pb_utils.Tensor (name, numpy
array) and may set a pb_utils.TritonError; the model-configuration helpers
(get_input_config_by_name, triton_string_to_numpy, ...), Logger, and the
auto_complete_config() object. What needs Triton itself is refused with a
TritonModelException naming it: calling other models from a model
(InferenceRequest.exec, "BLS"), decoupled response senders, GPU tensors.
"""

import json
import struct
import sys

import numpy as np

# -- datatypes ---------------------------------------------------------------

TRITON_STRING_TO_NUMPY = {
    "TYPE_BOOL": bool, "TYPE_UINT8": np.uint8, "TYPE_UINT16": np.uint16,
    "TYPE_UINT32": np.uint32, "TYPE_UINT64": np.uint64, "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16, "TYPE_INT32": np.int32, "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16, "TYPE_FP32": np.float32, "TYPE_FP64": np.float64,
    "TYPE_STRING": np.object_,
}

# Triton's numeric datatype codes (TRITONSERVER_DataType) and numpy's types.
_CODES = [(1, np.bool_), (2, np.uint8), (3, np.uint16), (4, np.uint32), (5, np.uint64),
          (6, np.int8), (7, np.int16), (8, np.int32), (9, np.int64), (10, np.float16),
          (11, np.float32), (12, np.float64), (13, np.object_)]


def triton_string_to_numpy(triton_type_string):
    return TRITON_STRING_TO_NUMPY[triton_type_string]


def triton_to_numpy_type(data_type):
    for code, dtype in _CODES:
        if code == data_type:
            return dtype
    return None


def numpy_to_triton_type(data_type):
    if data_type in (np.object_, np.bytes_) or np.dtype(data_type).kind in "OS":
        return 13
    for code, dtype in _CODES:
        if np.dtype(data_type) == np.dtype(dtype):
            return code
    return None


def serialize_byte_tensor(input_tensor):
    """A BYTES tensor as one flat uint8 array of 4-byte-length-prefixed elements."""
    if input_tensor.size == 0:
        return np.empty([0], dtype=np.uint8)
    chunks = []
    for value in input_tensor.flatten(order="C"):
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        chunks.append(struct.pack("<I", len(raw)) + raw)
    return np.frombuffer(b"".join(chunks), dtype=np.uint8)


def deserialize_bytes_tensor(encoded_tensor):
    """The elements of serialize_byte_tensor's layout, as a 1-D array of bytes objects."""
    raw = bytes(encoded_tensor)
    out, offset = [], 0
    while offset < len(raw):
        (n,) = struct.unpack_from("<I", raw, offset)
        out.append(raw[offset + 4:offset + 4 + n])
        offset += 4 + n
    return np.array(out, dtype=np.object_)


# -- errors ------------------------------------------------------------------

class TritonError:
    """An error to answer one request with (InferenceResponse(error=...))."""

    UNKNOWN = 0
    INTERNAL = 1
    NOT_FOUND = 2
    INVALID_ARG = 3
    UNAVAILABLE = 4
    UNSUPPORTED = 5
    ALREADY_EXISTS = 6
    CANCELLED = 7

    def __init__(self, message, code=INTERNAL):
        self._message = message
        self._code = code

    def message(self):
        return self._message

    def code(self):
        return self._code

    def __str__(self):
        return str(self._message)

    def __repr__(self):
        return f"TritonError({self._message!r}, code={self._code})"


class TritonModelException(Exception):
    """Raised by the model, or by this module where Triton's would raise."""

    def __init__(self, msg):
        super().__init__(msg)
        self._msg = msg

    def message(self):
        return self._msg


def _unsupported(what):
    raise TritonModelException(f"{what} is not supported by Osprey's Python backend")


# -- tensors, requests, responses ----------------------------------------------

class Tensor:
    """A named tensor of an InferenceRequest or InferenceResponse, held as numpy."""

    def __init__(self, name, numpy_array, triton_dtype=None):
        if not isinstance(numpy_array, np.ndarray):
            raise TritonModelException(
                f"tensor '{name}': expected a numpy array, got {type(numpy_array).__name__}")
        if numpy_array.dtype.kind == "U" or numpy_array.dtype == np.void:
            raise TritonModelException(
                f"tensor '{name}': numpy dtype {numpy_array.dtype} is not supported; "
                "use np.object_ for strings and bytes")
        if triton_dtype is not None:
            wanted = triton_to_numpy_type(triton_dtype)
            if wanted is not None and wanted is not np.object_ and numpy_array.dtype != wanted:
                numpy_array = numpy_array.view(wanted)
        else:
            triton_dtype = numpy_to_triton_type(numpy_array.dtype)
        self._name = name
        self._array = numpy_array
        self._triton_dtype = triton_dtype

    def name(self):
        return self._name

    def as_numpy(self):
        return self._array

    def triton_dtype(self):
        return self._triton_dtype

    def shape(self):
        return list(self._array.shape)

    def is_cpu(self):
        return True

    def to_dlpack(self):
        if self._array.dtype == np.object_:
            raise TritonModelException(f"tensor '{self._name}': BYTES tensors have no DLPack form")
        return self._array.__dlpack__()

    @staticmethod
    def from_dlpack(name, capsule):
        if hasattr(capsule, "__dlpack__"):
            if hasattr(capsule, "device") and str(getattr(capsule, "device")) not in ("cpu",):
                _unsupported("a tensor on a GPU")
            array = np.from_dlpack(capsule)
        else:
            # A bare capsule (e.g. torch.utils.dlpack.to_dlpack): through torch.
            import torch.utils.dlpack

            array = torch.utils.dlpack.from_dlpack(capsule).numpy()
        return Tensor(name, np.asarray(array))

    def __repr__(self):
        return f"Tensor({self._name!r}, shape={list(self._array.shape)}, dtype={self._array.dtype})"


class InferenceRequest:
    """One request to the model, as execute() receives it."""

    def __init__(self, inputs=None, request_id="", correlation_id=0,
                 requested_output_names=None, model_name="", model_version=-1, flags=0,
                 parameters=None, **_):
        self._inputs = list(inputs or [])
        self._request_id = request_id
        self._correlation_id = correlation_id
        self._requested_output_names = list(requested_output_names or [])
        self._model_name = model_name
        self._model_version = model_version
        self._flags = flags
        if parameters is None:
            parameters = {}
        self._parameters = parameters if isinstance(parameters, str) else json.dumps(parameters)

    def inputs(self):
        return self._inputs

    def request_id(self):
        return self._request_id

    def correlation_id(self):
        return self._correlation_id

    def requested_output_names(self):
        return self._requested_output_names

    def parameters(self):
        """The request's parameters, as a JSON string (Triton's form)."""
        return self._parameters

    def flags(self):
        return self._flags

    def model_name(self):
        return self._model_name

    def is_cancelled(self):
        return False

    def get_response_sender(self):
        _unsupported("a decoupled response sender")

    def exec(self, *args, **kwargs):
        _unsupported("calling another model from a model (InferenceRequest.exec, BLS)")

    async def async_exec(self, *args, **kwargs):
        _unsupported("calling another model from a model (InferenceRequest.async_exec, BLS)")


class InferenceResponse:
    """The answer to one request: output tensors, or an error."""

    def __init__(self, output_tensors=None, error=None, parameters=None):
        if output_tensors is None:
            output_tensors = []
        if not isinstance(output_tensors, list):
            raise TritonModelException('"output_tensors" must be a list.')
        self._output_tensors = output_tensors
        self._error = error
        self._parameters = parameters

    def output_tensors(self):
        return self._output_tensors

    def has_error(self):
        return self._error is not None

    def error(self):
        return self._error


def get_input_tensor_by_name(inference_request, name):
    for tensor in inference_request.inputs():
        if tensor.name() == name:
            return tensor
    return None


def get_output_tensor_by_name(inference_response, name):
    for tensor in inference_response.output_tensors():
        if tensor.name() == name:
            return tensor
    return None


def get_input_config_by_name(model_config, name):
    for entry in model_config.get("input", []):
        if entry["name"] == name:
            return entry
    return None


def get_output_config_by_name(model_config, name):
    for entry in model_config.get("output", []):
        if entry["name"] == name:
            return entry
    return None


# -- request flags -------------------------------------------------------------

TRITONSERVER_REQUEST_FLAG_SEQUENCE_START = 1
TRITONSERVER_REQUEST_FLAG_SEQUENCE_END = 2
TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1


# -- logging -------------------------------------------------------------------

class Logger:
    """Log lines of the model, to the worker's stderr (the server's log)."""

    class LogLevel:
        INFO = 0
        WARNING = 1
        ERROR = 2
        VERBOSE = 3

    _NAMES = {0: "INFO", 1: "WARNING", 2: "ERROR", 3: "VERBOSE"}

    @staticmethod
    def log(message, level=0):
        print(f"[python model] {Logger._NAMES.get(level, 'INFO')}: {message}", file=sys.stderr,
              flush=True)

    @staticmethod
    def log_info(message):
        Logger.log(message, Logger.LogLevel.INFO)

    @staticmethod
    def log_warn(message):
        Logger.log(message, Logger.LogLevel.WARNING)

    @staticmethod
    def log_error(message):
        Logger.log(message, Logger.LogLevel.ERROR)

    @staticmethod
    def log_verbose(message):
        Logger.log(message, Logger.LogLevel.VERBOSE)


# -- auto_complete_config -------------------------------------------------------

class ModelConfig:
    """What a model's auto_complete_config(auto_complete_model_config) gets:
    its configuration, which it may complete (tensors, batching)."""

    def __init__(self, model_config):
        self._config = model_config

    def as_dict(self):
        return self._config

    def max_batch_size(self):
        return self._config.get("max_batch_size", 0)

    def set_max_batch_size(self, max_batch_size):
        if self._config.get("max_batch_size", 0) not in (0, max_batch_size):
            raise ValueError(
                f"configuration has max_batch_size {self._config['max_batch_size']}, "
                f"the model sets {max_batch_size}")
        self._config["max_batch_size"] = int(max_batch_size)

    def set_dynamic_batching(self):
        self._config.setdefault("dynamic_batching", {"preferred_batch_size": [],
                                                     "max_queue_delay_microseconds": 0})

    def _add(self, key, tensor):
        for field in ("name", "data_type", "dims"):
            if field not in tensor:
                raise ValueError(f"{key} tensor {tensor} has no '{field}'")
        listed = self._config.setdefault(key, [])
        for existing in listed:
            if existing["name"] == tensor["name"]:
                for field in ("data_type", "dims"):
                    if existing.get(field) not in (None, [], tensor[field]):
                        raise ValueError(
                            f"{key} '{tensor['name']}': the configuration has {field} "
                            f"{existing[field]}, the model sets {tensor[field]}")
                existing.update(tensor)
                return
        listed.append(dict(tensor))

    def add_input(self, input):  # noqa: A002 (Triton's name)
        self._add("input", input)

    def add_output(self, output):
        self._add("output", output)

    def set_model_transaction_policy(self, transaction_policy_dict):
        self._config["model_transaction_policy"] = dict(transaction_policy_dict)
