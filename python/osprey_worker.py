"""Osprey's Python model worker: one process serving one model for the C++
server over its stdin/stdout.

Frames, both ways: a little-endian u32 JSON length and u64 payload length,
the JSON header, then the payload (tensor bytes, concatenated in header
order, in the binary layout of the Open Inference Protocol: row-major,
little-endian, BYTES elements as u32 length + bytes).

  worker -> server, once: {"ready": true, "inputs": [...], "outputs": [...],
                           "feature_names": [...], "parameters": {...}}  or  {"error": "..."}
  server -> worker:       {"inputs": [{"name", "datatype", "shape", "size", "parameters"}],
                           "parameters": {...}, "headers": {...} (raw-request models)}
  worker -> server:       {"outputs": [{"name", "datatype", "shape", "size", "parameters"}],
                           "parameters": {...}}  or
                          {"error": "<Type>: <message>"}  or
                          {"error": "<message>", "invalid": true} (the request's fault: 400)
("size": the tensor's bytes in the payload; every "parameters" is optional.)

usage: osprey_worker.py --format FORMAT --model-dir DIR [--model-name NAME]
"""

import argparse
import json
import os
import struct
import sys
import traceback

import numpy as np

DTYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
          "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
          "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
SKLEARN_FILES = ("model.joblib", "model.pkl", "model.pickle")
ONNX_TYPES = {"tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16",
              "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32",
              "tensor(int64)": "INT64", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
              "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(bool)": "BOOL",
              "tensor(string)": "BYTES"}


def read_exact(stream, n):
    chunks = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(stream):
    head_len, payload_len = struct.unpack("<IQ", read_exact(stream, 12))
    head = json.loads(read_exact(stream, head_len))
    return head, read_exact(stream, payload_len)


def write_frame(stream, head, payload=b""):
    data = json.dumps(head).encode()
    stream.write(struct.pack("<IQ", len(data), len(payload)) + data + payload)
    stream.flush()


def decode_bytes(raw, count):
    out, offset = [], 0
    for _ in range(count):
        (n,) = struct.unpack_from("<I", raw, offset)
        out.append(raw[offset + 4:offset + 4 + n].decode("utf-8", "replace"))
        offset += 4 + n
    return np.array(out, dtype=object), offset


def encode(array):
    """A result as (datatype, shape, bytes)."""
    array = np.asarray(array)
    if array.dtype.kind in "OUS":
        raw = b"".join(struct.pack("<I", len(b)) + b
                       for b in (v if isinstance(v, bytes) else str(v).encode()
                                 for v in array.ravel()))
        return "BYTES", list(array.shape), raw
    for name, dtype in DTYPES.items():
        if array.dtype == dtype:
            return name, list(array.shape), np.ascontiguousarray(array).tobytes()
    array = array.astype(np.float64)
    return "FP64", list(array.shape), array.tobytes()


def as_frame(values, columns):
    """Text cells (a BYTES tensor) as a DataFrame: numeric where a column parses."""
    import pandas as pd

    frame = pd.DataFrame(values, columns=columns)
    for c in frame.columns:
        converted = pd.to_numeric(frame[c], errors="coerce")
        if converted.notna().sum() == frame[c].astype(bool).sum():  # every non-empty cell parsed
            frame[c] = converted
        else:
            frame[c] = frame[c].replace("", np.nan)
    return frame


class SklearnModel:
    def __init__(self, model_dir):
        import joblib

        paths = [os.path.join(model_dir, f) for f in SKLEARN_FILES
                 if os.path.exists(os.path.join(model_dir, f))]
        if not paths:
            raise FileNotFoundError(f"no {', '.join(SKLEARN_FILES)} in {model_dir}")
        if len(paths) > 1:
            raise ValueError(f"several model files in {model_dir}: {paths}")
        self.model = joblib.load(paths[0])
        self.proba = os.environ.get("PREDICT_PROBA", "false").lower() == "true"
        if self.proba and not hasattr(self.model, "predict_proba"):
            raise ValueError(f"PREDICT_PROBA is set but {type(self.model).__name__} "
                             "has no predict_proba")
        names = getattr(self.model, "feature_names_in_", None)
        self.feature_names = [str(n) for n in names] if names is not None else []
        self.n_features = int(getattr(self.model, "n_features_in_", 0) or len(self.feature_names))

    def describe(self):
        probe_out = "FP64"
        if not self.proba and hasattr(self.model, "classes_"):
            probe_out = encode(np.asarray(self.model.classes_[:1]))[0]
        width = [-1, len(self.model.classes_)] if self.proba else [-1]
        text = bool(self.feature_names) and self.needs_frame()
        return {"inputs": [{"name": "input-0", "datatype": "BYTES" if text else "FP64",
                            "shape": [-1, self.n_features]}],
                "outputs": [{"name": "output-0", "datatype": probe_out, "shape": width}],
                "feature_names": self.feature_names}

    def needs_frame(self):
        """A pipeline with column selection by name takes a DataFrame."""
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        steps = self.model.steps if isinstance(self.model, Pipeline) else [(None, self.model)]
        return any(isinstance(s, ColumnTransformer) for _, s in steps)

    def predict(self, inputs):
        X = next(iter(inputs.values()))
        if X.dtype == object:
            X = as_frame(X, self.feature_names) if self.feature_names else X.astype(np.float64)
        elif self.feature_names and self.needs_frame():
            import pandas as pd

            X = pd.DataFrame(X, columns=self.feature_names)
        result = self.model.predict_proba(X) if self.proba else self.model.predict(X)
        return {"output-0": result}


class OnnxModel:
    """An ONNX model through onnxruntime, one thread per call."""

    def __init__(self, model_dir):
        import onnxruntime as ort

        paths = sorted(os.path.join(model_dir, f) for f in os.listdir(model_dir)
                       if f.endswith(".onnx"))
        if not paths:
            raise FileNotFoundError(f"no *.onnx file in {model_dir}")
        if len(paths) > 1:
            named = [p for p in paths if os.path.basename(p) == "model.onnx"]
            if not named:
                raise ValueError(f"several ONNX files in {model_dir}: {paths}; name one model.onnx")
            paths = named
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(paths[0], options, providers=["CPUExecutionProvider"])
        self.inputs = [self.spec(i) for i in self.session.get_inputs()]
        self.outputs = [self.spec(o) for o in self.session.get_outputs()]

    @staticmethod
    def spec(arg):
        if arg.type not in ONNX_TYPES:
            raise TypeError(f"tensor '{arg.name}' has type {arg.type}, which is not a tensor "
                            "Osprey can carry (export classifiers with zipmap=False)")
        shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or [])]
        return {"name": arg.name, "datatype": ONNX_TYPES[arg.type], "shape": shape}

    def describe(self):
        return {"inputs": self.inputs, "outputs": self.outputs, "feature_names": []}

    def predict(self, inputs):
        feeds = {}
        for spec in self.inputs:
            if spec["name"] not in inputs:
                raise KeyError(f"missing input '{spec['name']}'")
            value = inputs[spec["name"]]
            feeds[spec["name"]] = value.astype(str) if spec["datatype"] == "BYTES" else value
        results = self.session.run(None, feeds)
        return {spec["name"]: r for spec, r in zip(self.outputs, results)}


class CustomModel:
    """A user's script with a kserve.Model subclass, run unchanged: executed as
    __main__, the models it hands to kserve.ModelServer().start([...]) are
    taken over instead of starting KServe's server. V1 bodies arrive as the
    dicts the client sent; V2 as kserve.InferRequest; sync and async methods
    both work (kserve.Model.__call__ runs preprocess -> predict/explain ->
    postprocess)."""

    V1 = "__v1__"

    def __init__(self, model_dir, model_name):
        import asyncio
        import runpy

        import kserve

        scripts = sorted(f for f in os.listdir(model_dir) if f.endswith(".py"))
        script = "model.py" if "model.py" in scripts else (scripts[0] if len(scripts) == 1 else None)
        if script is None:
            raise FileNotFoundError(f"no model.py (or single *.py) in {model_dir}")
        captured = []

        class Captured(Exception):
            pass

        def start(server, models, *args, **kwargs):
            captured.extend(models)
            raise Captured()

        kserve.ModelServer.start = start
        sys.argv = [os.path.join(model_dir, script), "--model_name", model_name]
        sys.path.insert(0, model_dir)
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
        except Captured:
            pass
        if not captured:
            raise RuntimeError(f"{script} did not call kserve.ModelServer().start([...])")
        named = [m for m in captured if m.name == model_name]
        self.model = (named or captured)[0]
        if not self.model.ready:
            self.model.load()
        self.loop = asyncio.new_event_loop()
        self.kserve = kserve

    def describe(self):
        return {"inputs": [], "outputs": [], "feature_names": [], "raw_requests": True}

    def predict(self, inputs, parameters):
        from kserve.protocol.infer_type import InferInput, InferRequest

        verb = self.kserve.model.InferenceVerb.EXPLAIN if parameters.get("verb") == "explain" \
            else self.kserve.model.InferenceVerb.PREDICT
        headers = parameters.get("headers", {})
        if self.V1 in inputs:
            body = json.loads(inputs[self.V1].ravel()[0])
            result = self.loop.run_until_complete(self.model(body, headers=headers, verb=verb))
            if isinstance(result, tuple):
                result = result[0]
            if hasattr(result, "to_rest"):
                result = result.to_rest()
            text = json.dumps(result, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
            return {self.V1: np.array([text], dtype=object)}
        request_inputs = []
        for name, value in inputs.items():
            datatype = encode(value[:0] if value.ndim else value)[0]
            infer_input = InferInput(name, list(value.shape), datatype)
            infer_input.set_data_from_numpy(value, binary_data=False)
            request_inputs.append(infer_input)
        request = InferRequest(model_name=self.model.name, infer_inputs=request_inputs)
        result = self.loop.run_until_complete(self.model(request, headers=headers, verb=verb))
        if isinstance(result, tuple):
            result = result[0]
        if isinstance(result, dict):
            raise TypeError("a V2 request's answer must be a kserve.InferResponse, got a dict")
        return {out.name: out.as_numpy() for out in result.outputs}


TF_TYPES = {"float32": "FP32", "float64": "FP64", "float16": "FP16", "bfloat16": "BF16",
            "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
            "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
            "bool": "BOOL", "string": "BYTES"}


def unwrap_b64(value):
    """TF Serving's {"b64": "..."} binary values, anywhere in a JSON value, as bytes."""
    import base64

    if isinstance(value, dict):
        if set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        return {k: unwrap_b64(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_b64(v) for v in value]
    return value


def to_json(array):
    """A tensor's value as JSON: strings decoded (b64 when not UTF-8)."""
    import base64

    if array.dtype == object:
        def text(b):
            if isinstance(b, bytes):
                try:
                    return b.decode("utf-8")
                except UnicodeDecodeError:
                    return {"b64": base64.b64encode(b).decode()}
            return b
        return np.vectorize(text, otypes=[object])(array).tolist() if array.size else []
    return array.tolist()


class TensorflowModel:
    """A TensorFlow SavedModel, answered as TF Serving answers: V1 bodies in the
    row ("instances") or columnar ("inputs") form, "signature_name", {"b64": ...}
    binary values; answers {"predictions": ...} or {"outputs": ...}."""

    V1 = CustomModel.V1

    def __init__(self, model_dir):
        import tensorflow as tf

        if not os.path.exists(os.path.join(model_dir, "saved_model.pb")):
            raise FileNotFoundError(f"no saved_model.pb in {model_dir}")
        self.tf = tf
        self.model = tf.saved_model.load(model_dir)
        self.signatures = dict(self.model.signatures)
        if "serving_default" not in self.signatures:
            raise ValueError(f"the SavedModel has no serving_default signature "
                             f"(it has: {sorted(self.signatures)})")

    def signature(self, name):
        if name not in self.signatures:
            raise KeyError(f"signature '{name}' not found (the model has: {sorted(self.signatures)})")
        sig = self.signatures[name]
        inputs = sig.structured_input_signature[1]
        return sig, inputs, sig.structured_outputs

    @staticmethod
    def spec(name, tensor_spec):
        dtype = tensor_spec.dtype.name
        if dtype not in TF_TYPES:
            raise TypeError(f"tensor '{name}' has dtype {dtype}, which Osprey cannot carry")
        shape = [-1 if d is None else int(d) for d in tensor_spec.shape.as_list()] \
            if tensor_spec.shape.rank is not None else [-1]
        return {"name": name, "datatype": TF_TYPES[dtype], "shape": shape}

    def describe(self):
        _, inputs, outputs = self.signature("serving_default")
        return {"inputs": [self.spec(n, s) for n, s in sorted(inputs.items())],
                "outputs": [self.spec(n, s) for n, s in sorted(outputs.items())],
                "feature_names": [], "raw_requests": True}

    def run(self, sig, inputs, feeds):
        tensors = {}
        for name, spec in inputs.items():
            if name not in feeds:
                raise KeyError(f"missing input '{name}' (the signature takes: {sorted(inputs)})")
            tensors[name] = self.tf.constant(feeds[name], dtype=spec.dtype)
        return {k: v.numpy() for k, v in sig(**tensors).items()}

    def predict(self, inputs, parameters):
        if self.V1 not in inputs:  # V2 tensors, by the default signature's names
            sig, specs, _ = self.signature("serving_default")
            feeds = {k: (v.astype(object) if v.dtype == object else v) for k, v in inputs.items()}
            return self.run(sig, specs, feeds)
        body = unwrap_b64(json.loads(inputs[self.V1].ravel()[0]))
        sig, specs, _ = self.signature(body.get("signature_name", "serving_default"))
        names = sorted(specs)
        if "instances" in body:
            rows = body["instances"]
            if rows and all(isinstance(r, dict) for r in rows):
                feeds = {n: [r[n] for r in rows if n in r] for n in names}
            elif len(names) == 1:
                feeds = {names[0]: rows}
            else:
                raise ValueError(f"the signature takes {len(names)} inputs {names}: "
                                 "send each instance as an object naming them")
            out = self.run(sig, specs, feeds)
            if len(out) == 1:
                answer = {"predictions": to_json(next(iter(out.values())))}
            else:
                columns = {k: to_json(v) for k, v in out.items()}
                answer = {"predictions": [{k: columns[k][i] for k in columns}
                                          for i in range(len(next(iter(columns.values()))))]}
        elif "inputs" in body:
            value = body["inputs"]
            feeds = value if isinstance(value, dict) else {names[0]: value}
            out = self.run(sig, specs, feeds)
            answer = {"outputs": to_json(next(iter(out.values()))) if len(out) == 1
                      else {k: to_json(v) for k, v in out.items()}}
        else:
            raise ValueError("the request needs 'instances' (row form) or 'inputs' (columnar form)")
        return {self.V1: np.array([json.dumps(answer)], dtype=object)}


PADDLE_TYPES = {"float32": "FP32", "float64": "FP64", "float16": "FP16", "int8": "INT8",
                "int16": "INT16", "int32": "INT32", "int64": "INT64", "uint8": "UINT8",
                "bool": "BOOL"}


class PaddleModel:
    """A Paddle inference model (*.pdmodel + *.pdiparams) as KServe's
    paddleserver loads it (paddle.inference); the metadata declares the shapes
    and datatypes of the program's feed and fetch variables, and inputs are
    cast to those datatypes (float32 when the program does not say)."""

    def __init__(self, model_dir):
        from paddle import inference

        def one(ext):
            found = sorted(f for f in os.listdir(model_dir) if f.endswith(ext))
            if len(found) != 1:
                raise FileNotFoundError(f"need exactly one *{ext} in {model_dir}, found {found}")
            return os.path.join(model_dir, found[0])

        program = one(".pdmodel")
        config = inference.Config(program, one(".pdiparams"))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(1)
        config.disable_glog_info()
        self.predictor = inference.create_predictor(config)
        self.input_names = self.predictor.get_input_names()
        self.output_names = self.predictor.get_output_names()
        declared = self.declared(program, self.input_names + self.output_names)
        self.specs = {n: declared.get(n, {"name": n, "datatype": "FP32", "shape": [-1, -1]})
                      for n in self.input_names + self.output_names}

    @staticmethod
    def declared(program, names):
        """The feed and fetch variables' shapes and datatypes, as the program
        declares them (-1: any size); {} when it cannot be read."""
        try:
            from paddle.base import core

            with open(program, "rb") as f:
                desc = core.ProgramDesc(f.read())
            block = desc.block(0)  # valid while desc lives
        except Exception:  # noqa: BLE001 (paddle.inference reads it; shapes are a bonus)
            return {}
        specs = {}
        for name in names:
            var = block.find_var(name.encode())
            if var is None:
                continue
            dtype = str(var.dtype()).replace("paddle.", "")
            shape = [int(d) if int(d) >= 0 else -1 for d in var.shape()]
            if dtype in PADDLE_TYPES and shape:
                specs[name] = {"name": name, "datatype": PADDLE_TYPES[dtype], "shape": shape}
        return specs

    def describe(self):
        inputs = [self.specs[n] for n in self.input_names]
        # Zeros are a valid warm-up request only when every size but the batch's is known.
        unknown = any(-1 in s["shape"][1:] for s in inputs)
        return {"inputs": inputs, "outputs": [self.specs[n] for n in self.output_names],
                "feature_names": [], "skip_warm_up": unknown}

    def predict(self, inputs):
        for name in self.input_names:
            if name not in inputs:
                raise KeyError(f"missing input '{name}'")
            dtype = DTYPES[self.specs[name]["datatype"]]
            self.predictor.get_input_handle(name).copy_from_cpu(
                np.ascontiguousarray(inputs[name], dtype=dtype))
        self.predictor.run()
        return {n: self.predictor.get_output_handle(n).copy_to_cpu() for n in self.output_names}


class BadRequest(ValueError):
    """The request, not the model, is at fault: the server answers 400."""


class Outputs(dict):
    """A model's results by output name, with parameters for the answer and
    for each output (a content type, say)."""

    def __init__(self, results, parameters=None, output_parameters=None):
        super().__init__(results)
        self.parameters = parameters or {}
        self.output_parameters = output_parameters or {}


# An MLflow column type's V2 datatype and content type (MLServer's mapping).
MLFLOW_COLUMNS = {"boolean": ("BOOL", "np"), "integer": ("INT32", "np"), "long": ("INT64", "np"),
                  "float": ("FP32", "np"), "double": ("FP64", "np"), "string": ("BYTES", "str"),
                  "binary": ("BYTES", "base64"), "datetime": ("BYTES", "datetime")}
# Request parameters that steer the protocol, not the model's predict(params=...).
PROTOCOL_PARAMETERS = {"content_type", "headers", "binary_data_output", "verb"}


def numpy_datatype(dtype):
    """A NumPy dtype's V2 datatype (strings and objects are BYTES)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return "BYTES"
    for name, t in DTYPES.items():
        if dtype == t:
            return name
    raise TypeError(f"dtype {dtype} has no V2 datatype")


def mlflow_specs(schema, prefix):
    """An MLflow signature schema as V2 tensor metadata: a column is a [-1, 1]
    tensor of its type, a tensor spec keeps its dtype and shape; unnamed ones
    are prefix + position (input-0, ...), as MLServer declares them."""
    from mlflow.types.schema import TensorSpec

    specs = []
    for i, spec in enumerate(schema.inputs):
        if isinstance(spec, TensorSpec):
            datatype, content_type = numpy_datatype(spec.type), "np"
            shape = [int(d) for d in spec.shape]
        else:  # a column; arrays, objects and maps travel as JSON text
            datatype, content_type = MLFLOW_COLUMNS.get(getattr(spec.type, "name", None),
                                                        ("BYTES", "pd_json"))
            shape = [-1, 1]
        specs.append({"name": spec.name or f"{prefix}{i}", "datatype": datatype, "shape": shape,
                      "parameters": {"content_type": content_type}})
    return specs


def decode_mlflow_input(value, content_type):
    """One request tensor as the content type says: np an array, str a list of
    strings, base64 and datetime a list of bytes / datetimes, pd_json a list
    of JSON values."""
    import base64
    import binascii
    import datetime

    if content_type in (None, "np"):
        return value
    cells = value.ravel().tolist()
    if content_type == "str":
        return [str(c) for c in cells]
    if content_type == "base64":
        def unpack(c):
            raw = c.encode("ascii", "replace") if isinstance(c, str) else c
            try:
                return base64.b64decode(raw, validate=True)
            except binascii.Error:
                return raw
        return [unpack(c) for c in cells]
    if content_type == "datetime":
        try:
            return [datetime.datetime.fromisoformat(str(c)) for c in cells]
        except ValueError as e:
            raise BadRequest(f"datetime input: {e}") from None
    if content_type == "pd_json":
        try:
            return [json.loads(c) for c in cells]
        except ValueError as e:
            raise BadRequest(f"pd_json input: {e}") from None
    raise BadRequest(f"unknown content type '{content_type}' (Osprey decodes np, str, base64, "
                     "datetime and pd_json inputs)")


def mlflow_column(name, decoded):
    """A request tensor as a DataFrame column (its first dimension the rows)."""
    import pandas as pd

    if isinstance(decoded, np.ndarray):
        if decoded.ndim > 1 and decoded.size != decoded.shape[0]:
            raise BadRequest(f"input '{name}' of shape {list(decoded.shape)} is not a column: "
                             "send [n] or [n, 1]")
        return pd.Series(decoded.reshape(decoded.shape[0] if decoded.ndim else 1))
    return pd.Series(decoded)


class MlflowModel:
    """An MLflow model directory (an MLmodel file; flavors sklearn, xgboost,
    lightgbm, python_function, ...) through mlflow.pyfunc, served as MLServer's
    MLflow runtime serves it. V2: the metadata comes from the signature; a
    request is decoded by its content type (parameters.content_type, else the
    signature's: pd for columns, np for one tensor, dict for named tensors);
    the answer is encoded by what predict() returned (a DataFrame: one output
    per column; an array: output-1; a dict of arrays: one output per key).
    V1 bodies are read as MLflow's scoring server reads them (instances,
    inputs, dataframe_split, dataframe_records) and answered {"predictions"}."""

    V1 = CustomModel.V1

    def __init__(self, model_dir):
        if not os.path.exists(os.path.join(model_dir, "MLmodel")):
            raise FileNotFoundError(f"no MLmodel file in {model_dir}")
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(model_dir)
        signature = self.model.metadata.signature
        self.inputs = mlflow_specs(signature.inputs, "input-") if signature else []
        self.outputs = mlflow_specs(signature.outputs, "output-") \
            if signature and signature.outputs else []
        self.input_content = {s["name"]: s["parameters"]["content_type"] for s in self.inputs}
        self.content_type = None
        if signature is not None:
            schema = signature.inputs
            self.content_type = ("dict" if schema.has_input_names() else "np") \
                if schema.is_tensor_spec() else "pd"

    def describe(self):
        return {"inputs": self.inputs, "outputs": self.outputs, "feature_names": [],
                "raw_requests": True,
                "parameters": {"content_type": self.content_type} if self.content_type else {}}

    def predict(self, inputs, head):
        from mlflow.exceptions import MlflowException

        try:
            if head.get("parameters", {}).get("verb") == "explain":
                raise BadRequest("an MLflow model has no explainer: use :predict")
            if self.V1 in inputs:
                return self.predict_v1(inputs[self.V1].ravel()[0])
            data, params = self.decode(inputs, head)
            return self.encode(self.model.predict(data, params=params))
        except MlflowException as e:  # schema enforcement: the request does not fit
            if e.error_code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
                raise BadRequest(e.message) from None
            raise

    def decode(self, inputs, head):
        parameters = head.get("parameters", {})
        tensor_parameters = {t["name"]: t.get("parameters", {}) for t in head["inputs"]}
        decoded = {}
        for name, value in inputs.items():
            declared = self.input_content.get(name)
            decoded[name] = decode_mlflow_input(
                value, tensor_parameters[name].get("content_type", declared))
        content_type = parameters.get("content_type", self.content_type)
        params = {k: v for k, v in parameters.items() if k not in PROTOCOL_PARAMETERS} or None
        if content_type == "pd":
            import pandas as pd

            return pd.DataFrame({n: mlflow_column(n, d) for n, d in decoded.items()}), \
                params
        if content_type == "dict":
            return decoded, params
        if content_type in ("np", "str"):
            if len(decoded) != 1:
                raise BadRequest(f"content type '{content_type}' takes one input tensor, "
                                 f"got {len(decoded)}")
            value = next(iter(decoded.values()))
            if content_type == "str" and isinstance(value, np.ndarray):
                value = decode_mlflow_input(value, "str")
            return value, params
        if content_type is None:
            raise BadRequest("the model has no signature: say how to read the request with "
                             "parameters.content_type: 'pd' (inputs are columns), 'np' (one "
                             "tensor) or 'dict' (named tensors)")
        raise BadRequest(f"unknown content type '{content_type}' (Osprey reads pd, np, dict "
                         "and str requests)")

    @staticmethod
    def encode(result):
        import pandas as pd

        if isinstance(result, pd.DataFrame):
            results, kinds = {}, {}
            for column in result.columns:
                values = result[column].to_numpy()
                if values.dtype == object:
                    cells = values.tolist()
                    if all(isinstance(c, str) for c in cells):
                        kinds[str(column)] = {"content_type": "str"}
                    else:  # anything else travels as JSON text
                        values = np.array([json.dumps(c, default=str) for c in cells],
                                          dtype=object)
                        kinds[str(column)] = {"content_type": "pd_json"}
                results[str(column)] = values.reshape(-1, 1)
            return Outputs(results, {"content_type": "pd"}, kinds)
        if isinstance(result, dict):
            arrays = {str(k): np.asarray(v) for k, v in result.items()}
            arrays = {k: v.reshape(-1, 1) if v.ndim <= 1 else v for k, v in arrays.items()}
            return Outputs(arrays, {"content_type": "dict"},
                           {k: {"content_type": "np"} for k in arrays})
        if isinstance(result, list) and result and all(isinstance(v, str) for v in result):
            return Outputs({"output-1": np.array(result, dtype=object).reshape(-1, 1)},
                           {"content_type": "str"}, {"output-1": {"content_type": "str"}})
        array = np.asarray(result.to_numpy() if isinstance(result, pd.Series) else result)
        if array.ndim <= 1:  # a batch of scalars is [n, 1]
            array = array.reshape(-1, 1)
        return Outputs({"output-1": array}, {"content_type": "np"},
                       {"output-1": {"content_type": "np"}})

    def predict_v1(self, body):
        from io import StringIO

        from mlflow.pyfunc.scoring_server import (_split_data_and_params, infer_and_parse_data,
                                                  predictions_to_json)

        data, params = _split_data_and_params(body)
        data = infer_and_parse_data(data, self.model.metadata.get_input_schema())
        out = StringIO()
        predictions_to_json(self.model.predict(data, params=params), out)
        return {self.V1: np.array([out.getvalue()], dtype=object)}


FORMATS = {"sklearn": SklearnModel, "onnx": OnnxModel, "custom": CustomModel,
           "tensorflow": TensorflowModel, "paddle": PaddleModel, "mlflow": MlflowModel}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--format", required=True, choices=sorted(FORMATS))
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--model-name", default="model")
    args = parser.parse_args()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints from user code must not corrupt frames
    try:
        cls = FORMATS[args.format]
        model = cls(args.model_dir, args.model_name) if cls is CustomModel else cls(args.model_dir)
        write_frame(stdout, {"ready": True, **model.describe()})
    except Exception as e:  # noqa: BLE001 (the reason goes back to the server)
        traceback.print_exc()
        write_frame(stdout, {"error": f"{type(e).__name__}: {e}"})
        return 1
    while True:
        try:
            head, payload = read_frame(stdin)
        except EOFError:
            return 0
        try:
            inputs, offset = {}, 0
            for spec in head["inputs"]:
                count = int(np.prod(spec["shape"])) if spec["shape"] else 1
                raw = payload[offset:offset + spec["size"]]
                offset += spec["size"]
                if spec["datatype"] == "BYTES":
                    value, _ = decode_bytes(raw, count)
                else:
                    value = np.frombuffer(raw, dtype=DTYPES[spec["datatype"]], count=count)
                inputs[spec["name"]] = value.reshape(spec["shape"])
            outputs, chunks = [], []
            parameters = dict(head.get("parameters", {}), headers=head.get("headers", {}))
            if isinstance(model, MlflowModel):
                results = model.predict(inputs, head)
            elif isinstance(model, (CustomModel, TensorflowModel)):
                results = model.predict(inputs, parameters)
            else:
                results = model.predict(inputs)
            output_parameters = getattr(results, "output_parameters", {})
            for name, result in results.items():
                datatype, shape, raw = encode(result)
                outputs.append({"name": name, "datatype": datatype, "shape": shape,
                                "size": len(raw), **({"parameters": output_parameters[name]}
                                                     if name in output_parameters else {})})
                chunks.append(raw)
            answer = {"outputs": outputs}
            if getattr(results, "parameters", None):
                answer["parameters"] = results.parameters
            write_frame(stdout, answer, b"".join(chunks))
        except BadRequest as e:
            write_frame(stdout, {"error": str(e), "invalid": True})
        except Exception as e:  # noqa: BLE001
            write_frame(stdout, {"error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    sys.exit(main())
