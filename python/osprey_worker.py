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
("size": the tensor's bytes in the payload; every "parameters" is optional.) A sampled request carries
"traceparent" too (see Tracing below).

A model with Triton's configuration (--model-config-json) says so in its
greeting: "triton": {"max_batch_size": N, "dynamic_batching": {...}} and
"platform". Triton's Python models (--format python) take several requests
in one frame, answered in one frame, one entry each:

  server -> worker:       {"requests": [{"inputs": [...], "id": "...",
                           "parameters": {...}, "outputs": ["name", ...]}, ...]}
  worker -> server:       {"responses": [{"outputs": [...]} or
                           {"error": "...", "code": "INVALID_ARG"}, ...]}
                          or {"error": "..."} when execute() itself failed

Tracing: a request with "traceparent" (the server's execution span of a
sampled request) gets a span of the worker's own work, exported by OTLP/HTTP
(JSON) to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT
+ /v1/traces, which the worker inherits from its server (so do
OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES: its spans say the same
service as its server's), from a thread of its own with a bounded queue (a
full queue drops the span). A custom model sees the worker span's
traceparent in its headers.

usage: osprey_worker.py --format sklearn|onnx|python|mlflow|... --model-dir DIR
"""

import argparse
import atexit
import json
import os
import queue
import secrets
import struct
import sys
import threading
import time
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


class SpanExporter:
    """OTLP/HTTP JSON export of the worker's spans, off the request path: a
    bounded queue (a full one drops the span, counted) and a thread of its own
    that sends what came in during `interval` seconds in one POST."""

    def __init__(self, url, resource, limit=2048, batch=256, interval=0.2):
        self.url, self.batch, self.interval = url, batch, interval
        self.resource = [{"key": k, "value": {"stringValue": str(v)}} for k, v in resource]
        self.queue = queue.Queue(maxsize=limit)
        self.dropped = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        atexit.register(self.close)

    @staticmethod
    def from_env(environ):
        """The exporter the OTEL_* variables ask for (as the server reads
        them), or None."""
        def get(name):
            return environ.get(name, "").strip()
        if get("OTEL_SDK_DISABLED") == "true" or get("OTEL_TRACES_EXPORTER") == "none":
            return None
        url = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if not url and get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            url = get("OTEL_EXPORTER_OTLP_ENDPOINT").rstrip("/") + "/v1/traces"
        if not url:
            return None
        return SpanExporter(url, resource_from_env(environ))

    def submit(self, span):
        try:
            self.queue.put_nowait(span)
        except queue.Full:
            self.dropped += 1

    def _send(self, spans):
        import urllib.request  # here: a worker that does not trace never loads it

        body = {"resourceSpans": [{"resource": {"attributes": self.resource}, "scopeSpans": [
            {"scope": {"name": "osprey.python_worker"}, "spans": spans}]}]}
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=5).read()
        except Exception:  # noqa: BLE001 (tracing never fails a request)
            self.dropped += len(spans)

    def _run(self):
        stop = False
        while not stop:
            first = self.queue.get()
            if first is None:
                return
            spans, deadline = [first], time.monotonic() + self.interval
            while len(spans) < self.batch:
                try:
                    span = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if span is None:
                    stop = True
                    break
                spans.append(span)
            self._send(spans)

    def close(self):
        try:
            self.queue.put(None, timeout=1)
            self.thread.join(timeout=5)
        except Exception:  # noqa: BLE001
            pass


def resource_from_env(environ):
    """[(key, value)]: service.name (OTEL_SERVICE_NAME, else a service.name in
    OTEL_RESOURCE_ATTRIBUTES, else osprey-serve, as the server ranks them),
    the other OTEL_RESOURCE_ATTRIBUTES, and this process's id."""
    attributes = []
    for item in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, eq, value = item.partition("=")
        if eq and key.strip():
            attributes.append((key.strip(), value.strip()))
    name = environ.get("OTEL_SERVICE_NAME", "").strip() or next(
        (v for k, v in attributes if k == "service.name"), "osprey-serve")
    return ([("service.name", name)] + [kv for kv in attributes if kv[0] != "service.name"] +
            [("process.pid", os.getpid()), ("osprey.process", "python-worker")])


def parse_traceparent(value):
    """(trace id, parent span id) of a valid sampled traceparent, else None."""
    parts = value.strip().split("-") if isinstance(value, str) else []
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        int(parts[1], 16), int(parts[2], 16)
        sampled = int(parts[3], 16) & 1
    except ValueError:
        return None
    if not sampled or parts[1] == "0" * 32 or parts[2] == "0" * 16:
        return None
    return parts[1], parts[2]


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


def decode_bytes(raw, count, text=True):
    """BYTES elements as str (text) or as bytes objects, in an object array."""
    out, offset = [], 0
    for _ in range(count):
        (n,) = struct.unpack_from("<I", raw, offset)
        element = raw[offset + 4:offset + 4 + n]
        out.append(element.decode("utf-8", "replace") if text else element)
        offset += 4 + n
    return np.array(out, dtype=object), offset


def decode_inputs(specs, payload, offset=0, text=True):
    """The tensors `specs` describe, read from `payload` at `offset`: ({name: array}, end)."""
    inputs = {}
    for spec in specs:
        count = int(np.prod(spec["shape"])) if spec["shape"] else 1
        raw = payload[offset:offset + spec["size"]]
        offset += spec["size"]
        if spec["datatype"] == "BYTES":
            value, _ = decode_bytes(raw, count, text)
        else:
            value = np.frombuffer(raw, dtype=DTYPES[spec["datatype"]], count=count)
        inputs[spec["name"]] = value.reshape(spec["shape"])
    return inputs, offset


def encode_outputs(results):
    """{name: array} as the answer's tensor descriptions and payload chunks."""
    outputs, chunks = [], []
    for name, result in results.items():
        datatype, shape, raw = encode(result)
        outputs.append({"name": name, "datatype": datatype, "shape": shape, "size": len(raw)})
        chunks.append(raw)
    return outputs, chunks


# -- Triton's model configuration (config.pbtxt, as JSON) ----------------------

TRITON_TYPES = {"TYPE_BOOL": "BOOL", "TYPE_UINT8": "UINT8", "TYPE_UINT16": "UINT16",
                "TYPE_UINT32": "UINT32", "TYPE_UINT64": "UINT64", "TYPE_INT8": "INT8",
                "TYPE_INT16": "INT16", "TYPE_INT32": "INT32", "TYPE_INT64": "INT64",
                "TYPE_FP16": "FP16", "TYPE_FP32": "FP32", "TYPE_FP64": "FP64",
                "TYPE_STRING": "BYTES", "TYPE_BF16": "BF16"}


class TritonConfig:
    """What a worker needs of a model's Triton configuration: its tensors
    (with the batch dimension in front when it batches), their reshapes,
    and its batching."""

    def __init__(self, config):
        self.config = config
        self.max_batch_size = int(config.get("max_batch_size", 0))
        self.inputs = [self.spec(e) for e in config.get("input", [])]
        self.outputs = [self.spec(e) for e in config.get("output", [])]
        self.reshapes = {e["name"]: [int(d) for d in e["reshape"].get("shape", [])]
                         for e in config.get("input", []) + config.get("output", [])
                         if e.get("reshape") is not None}
        self.dims = {e["name"]: [int(d) for d in e.get("dims", [])]
                     for e in config.get("output", [])}

    def spec(self, entry):
        if entry.get("data_type") not in TRITON_TYPES:
            raise ValueError(f"config.pbtxt: tensor '{entry.get('name')}' has data_type "
                             f"{entry.get('data_type')}")
        batch = [-1] if self.max_batch_size > 0 else []
        return {"name": entry["name"], "datatype": TRITON_TYPES[entry["data_type"]],
                "shape": batch + [int(d) for d in entry.get("dims", [])]}

    def batching(self, merge):
        out = {"max_batch_size": self.max_batch_size}
        dynamic = self.config.get("dynamic_batching")
        if dynamic is not None and self.max_batch_size > 0:
            out["dynamic_batching"] = {
                "max_queue_delay_us": int(dynamic.get("max_queue_delay_microseconds", 0)),
                "preferred_batch_sizes": [int(p) for p in dynamic.get("preferred_batch_size", [])],
                "merge": merge}
        return out

    def _batched(self, array, shape):
        lead = [array.shape[0]] if self.max_batch_size > 0 and array.ndim > 0 else []
        return array.reshape(lead + list(shape))

    def reshape_input(self, name, array):
        """An input as the model takes it (its reshape, after the batch)."""
        return self._batched(array, self.reshapes[name]) if name in self.reshapes else array

    def reshape_output(self, name, array):
        """An output with a reshape, in its declared dims."""
        if name not in self.reshapes or name not in self.dims:
            return array
        return self._batched(np.asarray(array), self.dims[name])


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
    """An ONNX model through onnxruntime, one thread per call. With Triton's
    configuration: the file it names, and its tensors (checked against the
    model's), reshapes and batching."""

    def __init__(self, model_dir, triton=None, model_file=None):
        import onnxruntime as ort

        if model_file:
            paths = [os.path.join(model_dir, model_file)]
            if not os.path.exists(paths[0]):
                raise FileNotFoundError(f"default_model_filename '{model_file}' not found in "
                                        f"{model_dir}")
        else:
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
        self.triton = triton
        if triton is not None:
            self.inputs = self.declared("input", triton.inputs, self.inputs)
            self.outputs = self.declared("output", triton.outputs, self.outputs)

    @staticmethod
    def declared(kind, configured, own):
        """The configuration's tensors, each checked against the model's own."""
        if not configured:
            return own
        by_name = {t["name"]: t for t in own}
        for t in configured:
            if t["name"] not in by_name:
                raise ValueError(f"config.pbtxt {kind} '{t['name']}' is not an {kind} of the ONNX "
                                 f"model (it has: {', '.join(sorted(by_name))})")
            if t["datatype"] != by_name[t["name"]]["datatype"]:
                raise ValueError(f"config.pbtxt {kind} '{t['name']}' has datatype {t['datatype']}, "
                                 f"the ONNX model's is {by_name[t['name']]['datatype']}")
        return configured

    @staticmethod
    def spec(arg):
        if arg.type not in ONNX_TYPES:
            raise TypeError(f"tensor '{arg.name}' has type {arg.type}, which is not a tensor "
                            "Osprey can carry (export classifiers with zipmap=False)")
        shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or [])]
        return {"name": arg.name, "datatype": ONNX_TYPES[arg.type], "shape": shape}

    def describe(self):
        out = {"inputs": self.inputs, "outputs": self.outputs, "feature_names": []}
        if self.triton is not None:
            out.update(platform="onnxruntime_onnx", triton=self.triton.batching(merge=True))
        return out

    def predict(self, inputs):
        feeds = {}
        for spec in self.inputs:
            if spec["name"] not in inputs:
                raise KeyError(f"missing input '{spec['name']}'")
            value = inputs[spec["name"]]
            if self.triton is not None:
                value = self.triton.reshape_input(spec["name"], value)
            feeds[spec["name"]] = value.astype(str) if spec["datatype"] == "BYTES" else value
        names = [spec["name"] for spec in self.outputs]
        results = self.session.run(names, feeds)
        if self.triton is not None:
            results = [self.triton.reshape_output(n, r) for n, r in zip(names, results)]
        return dict(zip(names, results))


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



class TorchServeModel:
    """A TorchServe model archive (.mar) run as TorchServe runs it: extracted
    to a directory of its own, its handler loaded by TorchServe's own model
    loader (a built-in handler of the torchserve package, or the archive's
    .py with a handle() function or one handler class), initialize(context)
    once, then handle(data, context) per request with the context TorchServe
    gives it. Requests come in through KServe's envelopes, as KServe's
    torchserve runtime sends them: a V1 body through the kserve envelope
    (the handler gets the instances, the answer is {"predictions": ...}, or
    {"explanations": ...} for :explain), V2 tensors through the kservev2
    envelope (a row per input, outputs named after the inputs)."""

    V1 = CustomModel.V1
    V2_NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
                "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
                "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}

    def __init__(self, model_dir, model_name, archive, version):
        import ts
        from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
        from ts.model_loader import TsModelLoader
        from ts.torch_handler.request_envelope.kserve import KServeEnvelope
        from ts.torch_handler.request_envelope.kservev2 import KServev2Envelope

        path = os.path.join(model_dir, archive)
        self.dir = self.extracted(path, archive)
        manifest_path = os.path.join(self.dir, "MAR-INF", "MANIFEST.json")
        if not os.path.exists(manifest_path):
            raise ValueError(f"{archive} has no MAR-INF/MANIFEST.json (not a TorchServe archive)")
        with open(manifest_path) as f:
            manifest = json.load(f).get("model", {})
        handler = manifest.get("handler", "")
        if not handler:
            raise ValueError(f"{archive}: MAR-INF/MANIFEST.json names no handler")
        sys.path.insert(0, self.dir)  # the handler's own modules (model.py, ...)
        os.chdir(self.dir)  # as TorchServe runs a worker: relative paths are the archive's
        metrics = MetricsCacheYamlImpl(
            config_file_path=os.path.join(os.path.dirname(ts.__file__), "configs",
                                          "metrics.yaml"))
        metrics.initialize_cache()
        self.service = TsModelLoader().load(model_name, self.dir, handler, None, 1, None, True,
                                            metrics)
        entry = self.service._entry_point  # the handler's, before any envelope
        self.v1 = KServeEnvelope(entry).handle
        self.v2 = KServev2Envelope(entry).handle
        self.version = version or manifest.get("modelVersion", "")

    @staticmethod
    def extracted(path, archive):
        """The archive unpacked once per content, shared by every worker and
        every restart (a directory keyed by its path, size and time under the
        temporary directory; a killed worker leaves nothing new behind)."""
        import hashlib
        import shutil
        import tempfile
        import zipfile

        st = os.stat(path)
        key = hashlib.sha256(f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}"
                             .encode()).hexdigest()[:20]
        root = os.path.join(tempfile.gettempdir(), f"osprey-torchserve-{os.getuid()}")
        os.makedirs(root, exist_ok=True)
        final = os.path.join(root, key)
        if os.path.isdir(final):
            return final
        staging = tempfile.mkdtemp(prefix=f"{key}.", dir=root)
        try:
            with zipfile.ZipFile(path) as mar:
                for member in mar.namelist():  # zipfile drops '..' and roots; say so anyway
                    if member.startswith("/") or ".." in member.split("/"):
                        raise ValueError(
                            f"{archive}: member {member!r} would land outside the archive")
                mar.extractall(staging)
            os.rename(staging, final)
        except OSError:
            if not os.path.isdir(final):  # another worker won the race: use theirs
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final

    def describe(self):
        return {"inputs": [], "outputs": [], "feature_names": [], "raw_requests": True,
                "platform": "pytorch_torchserve"}

    def handle(self, handle, body, headers):
        """One request through `handle` (an envelope), as TorchServe's worker
        runs a batch of one: the handler's answer to it."""
        import binascii
        import uuid

        from PIL import UnidentifiedImageError
        from ts.context import RequestProcessor
        from ts.utils.util import PredictionException

        context = self.service.context
        request_headers = {"body": {"content-type": "application/json"}}
        request_headers.update(headers)
        context.request_ids = {0: str(uuid.uuid4())}
        context.request_processor = [RequestProcessor(request_headers)]
        if context.metrics is not None:
            context.metrics.request_ids = context.request_ids
        context.cl_socket = None
        try:
            answers = handle([{"body": body}], context)
        except (binascii.Error, UnidentifiedImageError) as e:  # the data, not the model
            raise BadRequest(f"the request's data cannot be decoded: {e}") from None
        except PredictionException as e:
            if 400 <= e.error_code < 500:
                raise BadRequest(e.message) from None
            raise RuntimeError(f"{e.message} (TorchServe code {e.error_code})") from None
        if not isinstance(answers, list) or len(answers) != 1:
            raise RuntimeError("the handler did not answer with a list holding one answer per "
                               f"request (got {type(answers).__name__})")
        # A handler may set the request's status (context.set_response_status).
        code = context.request_processor[0].get_response_status_code()
        if code is not None and code >= 400:
            phrase = context.request_processor[0].get_response_status_phrase() or ""
            message = f"the handler answered {code}: {phrase or answers[0]}"
            if code < 500:
                raise BadRequest(message)
            raise RuntimeError(message)
        return answers[0]

    def predict(self, inputs, head, parameters):
        headers = {k: v for k, v in parameters.get("headers", {}).items() if isinstance(v, str)}
        if parameters.get("verb") == "explain":
            headers["explain"] = "True"
        if self.V1 in inputs:
            try:
                body = json.loads(inputs[self.V1].ravel()[0])
            except ValueError as e:
                raise BadRequest(f"the request body is not JSON: {e}") from None
            if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
                raise BadRequest('a V1 request to a TorchServe model holds "instances": a list '
                                 '(e.g. [{"data": "<base64 image>"}])')
            answer = self.handle(self.v1, body, headers)
            text = json.dumps(answer, default=lambda o: o.tolist() if hasattr(o, "tolist")
                              else str(o))
            return {self.V1: np.array([text], dtype=object)}
        body = {"inputs": []}
        for spec in head["inputs"]:
            value = inputs[spec["name"]]
            if spec["datatype"] == "BYTES":
                data = [self.text_or_bytes(v) for v in value.ravel()]
            else:
                data = value.ravel().tolist()
            body["inputs"].append({"name": spec["name"], "shape": spec["shape"],
                                   "datatype": spec["datatype"], "data": data})
        answer = self.handle(self.v2, body, headers)
        outputs = {}
        for out in answer.get("outputs", []) if isinstance(answer, dict) else []:
            dtype = self.V2_NUMPY.get(out["datatype"])
            if dtype is None:  # BYTES: text as it is, anything else as JSON
                values = [v if isinstance(v, (str, bytes)) else json.dumps(v, default=str)
                          for v in out["data"]]
                outputs[out["name"]] = np.array(values, dtype=object).reshape(list(out["shape"]))
            else:
                outputs[out["name"]] = np.asarray(out["data"], dtype=dtype).reshape(
                    list(out["shape"]))
        if not outputs:
            raise RuntimeError("the handler's answer holds no outputs")
        return outputs

    @staticmethod
    def text_or_bytes(value):
        """A BYTES element as the kservev2 envelope has it from JSON: text when
        it is UTF-8 (a base64 image), else the bytes (a binary tensor)."""
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value



class PredictorError(RuntimeError):
    """The predictor could not be reached or failed (not the request's fault)."""


class ArtExplainer:
    """KServe's ART explainer (spec.explainer.art), configured as KServe's
    artserver is (--predictor_host, --adversary_type, --nb_classes,
    --max_iter). :explain takes {"instances": [image, label]} (the image a
    batch of one, e.g. [1, 28, 28, 1], channels last) and runs the
    adversarial-robustness-toolbox's SquareAttack against the predictor as a
    black box: each probe is a V1 :predict of the flattened images, whose
    answers (class indices, or per-class scores) become the classifier's
    scores. The answer: the adversarial example, its L2 distance to the
    image, and the predicted class of both. :predict goes to the predictor."""

    V1 = CustomModel.V1

    def __init__(self, model_name, args):
        from art.attacks.evasion.square_attack import SquareAttack  # noqa: F401 (fail at load)

        parser = argparse.ArgumentParser(prog="ART explainer", add_help=False)
        parser.add_argument("--predictor_host")
        parser.add_argument("--predictor_protocol", default="v1")
        parser.add_argument("--predictor_use_ssl", default="false")
        parser.add_argument("--predictor_request_timeout_seconds", type=float, default=600)
        parser.add_argument("--adversary_type", default="SquareAttack")
        parser.add_argument("--max_iter", type=int, default=1000)
        parser.add_argument("--nb_classes", type=int, default=10)
        settings, _ = parser.parse_known_args(args)
        if not settings.predictor_host:
            raise ValueError("the ART explainer needs --predictor_host (its predictor)")
        if settings.adversary_type.lower() != "squareattack":
            raise ValueError(f"unsupported adversary type '{settings.adversary_type}': "
                             "the ART explainer runs SquareAttack")
        if settings.predictor_protocol != "v1":
            raise ValueError(f"the ART explainer calls its predictor over v1, not "
                             f"{settings.predictor_protocol}")
        if settings.nb_classes < 2 or settings.max_iter < 1:
            raise ValueError("--nb_classes must be at least 2 and --max_iter at least 1")
        host, _, prefix = settings.predictor_host.partition("/")
        self.host = host
        self.ssl = settings.predictor_use_ssl.lower() in ("true", "1", "yes")
        self.path = f"/{prefix.strip('/')}/v1/models/{model_name}:predict" if prefix \
            else f"/v1/models/{model_name}:predict"
        self.timeout = settings.predictor_request_timeout_seconds
        self.nb_classes = settings.nb_classes
        self.max_iter = settings.max_iter
        self.connection = None

    def describe(self):
        return {"inputs": [], "outputs": [], "feature_names": [], "raw_requests": True,
                "platform": "art"}

    def post(self, body):
        """The predictor's answer to a V1 :predict body: (status, bytes)."""
        import http.client

        for attempt in (0, 1):  # a kept-alive connection the predictor closed: once more
            try:
                if self.connection is None:
                    cls = http.client.HTTPSConnection if self.ssl else http.client.HTTPConnection
                    self.connection = cls(self.host, timeout=self.timeout)
                self.connection.request("POST", self.path, body,
                                        {"Content-Type": "application/json"})
                response = self.connection.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as e:
                self.connection.close()
                self.connection = None
                if attempt:
                    raise PredictorError(f"the predictor at {self.host} cannot be reached: "
                                         f"{e}") from None
        raise AssertionError("unreachable")

    def scores(self, x):
        """The black box: one row of class scores per image of `x`."""
        n = len(x)
        status, data = self.post(json.dumps({"instances": x.reshape((n, -1)).tolist()}).encode())
        if status != 200:
            text = data[:300].decode("utf-8", "replace")
            if 400 <= status < 500:
                raise BadRequest(f"the predictor refused the image ({status}): {text}")
            raise PredictorError(f"the predictor answered {status}: {text}")
        try:
            predictions = json.loads(data).get("predictions")
        except (ValueError, AttributeError):
            raise PredictorError("the predictor's answer is not V1 JSON: "
                                 f"{data[:200].decode('utf-8', 'replace')}") from None
        if not isinstance(predictions, list) or len(predictions) != n:
            raise PredictorError(f"the predictor's answer has no {n} predictions")
        rows = np.zeros((n, self.nb_classes))
        for i, p in enumerate(predictions):
            if isinstance(p, list) and len(p) == self.nb_classes and \
                    all(isinstance(v, (int, float)) for v in p):
                rows[i] = np.asarray(p, dtype=np.float64)
            elif isinstance(p, (int, float)) and 0 <= int(p) < self.nb_classes and int(p) == p:
                rows[i, int(p)] = 1
            else:
                raise PredictorError(f"prediction {p!r} is neither a class index below "
                                     f"{self.nb_classes} (--nb_classes) nor "
                                     f"{self.nb_classes} scores")
        return rows

    def explain(self, body):
        from art.attacks.evasion.square_attack import SquareAttack
        from art.estimators.classification import BlackBoxClassifierNeuralNetwork

        instances = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(instances, list) or len(instances) != 2:
            raise BadRequest('the ART explainer takes {"instances": [image, label]}: a batch of '
                             'one image (e.g. [1, 28, 28, 1], channels last) and its label')
        try:
            inputs = np.asarray(instances[0], dtype=np.float64)
            label = np.asarray(instances[1])
        except (ValueError, TypeError) as e:
            raise BadRequest(f"the image is not a numeric array: {e}") from None
        if inputs.ndim != 4:
            raise BadRequest(f"the image has shape {list(inputs.shape)}: SquareAttack takes a "
                             "batch of images [n, height, width, channels]")
        if label.size != len(inputs) or not np.issubdtype(label.dtype, np.number) or \
                not np.all((label >= 0) & (label < self.nb_classes)):
            raise BadRequest(f"the label must be one class index below {self.nb_classes} per "
                             f"image, got {instances[1]!r}")
        classifier = BlackBoxClassifierNeuralNetwork(
            self.scores, inputs.shape, self.nb_classes, channels_first=False,
            clip_values=(-np.inf, np.inf))
        prediction = np.argmax(classifier.predict(inputs, batch_size=1))
        attack = SquareAttack(estimator=classifier, max_iter=self.max_iter, verbose=False)
        try:
            adversarial = attack.generate(x=inputs, y=label)
        except PredictorError:
            raise
        except ValueError as e:  # ART's word on the label or the image
            raise BadRequest(f"SquareAttack cannot run on this request: {e}") from None
        adversarial_prediction = np.argmax(classifier.predict(adversarial))
        l2 = np.linalg.norm(np.reshape(adversarial[0] - inputs, [-1]))
        return {"explanations": {"adversarial_example": adversarial.tolist(),
                                 "L2 error": l2.tolist(),
                                 "adversarial_prediction": adversarial_prediction.tolist(),
                                 "prediction": prediction.tolist()}}

    def predict(self, inputs, parameters):
        if self.V1 not in inputs:
            raise BadRequest("the ART explainer answers V1 requests (:explain, :predict)")
        raw = inputs[self.V1].ravel()[0]
        if parameters.get("verb") != "explain":  # the predictor's answer, as it gave it
            status, data = self.post(raw.encode() if isinstance(raw, str) else raw)
            if status != 200:
                raise (BadRequest if 400 <= status < 500 else PredictorError)(
                    data[:300].decode("utf-8", "replace"))
            return {self.V1: np.array([data.decode()], dtype=object)}
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise BadRequest(f"the request body is not JSON: {e}") from None
        return {self.V1: np.array([json.dumps(self.explain(body))], dtype=object)}


TRITON_ERROR_CODES = {0: "UNKNOWN", 1: "INTERNAL", 2: "NOT_FOUND", 3: "INVALID_ARG",
                      4: "UNAVAILABLE", 5: "UNSUPPORTED", 6: "ALREADY_EXISTS", 7: "CANCELLED"}


class TritonPython:
    """A model of Triton's Python backend: model.py's TritonPythonModel, run
    unchanged with Osprey's triton_python_backend_utils (beside this file).
    auto_complete_config() may complete the configuration; initialize(args)
    gets Triton's args; execute() gets every request of a batch as a list
    and answers each; finalize() runs when the worker ends."""

    def __init__(self, model_dir, args):
        import importlib.util

        import triton_python_backend_utils as pb_utils

        self.pb_utils = pb_utils
        config = json.loads(args.model_config_json or "{}")
        script = os.path.join(model_dir, args.model_file or "model.py")
        if not os.path.isfile(script):
            raise FileNotFoundError(f"no {os.path.basename(script)} in {model_dir}")
        sys.path.insert(0, model_dir)
        spec = importlib.util.spec_from_file_location("model", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cls = getattr(module, "TritonPythonModel", None)
        if cls is None:
            raise AttributeError(f"{os.path.basename(script)} defines no class TritonPythonModel")
        if hasattr(cls, "auto_complete_config"):
            completed = cls.auto_complete_config(pb_utils.ModelConfig(config))
            if completed is not None:
                config = completed.as_dict() if hasattr(completed, "as_dict") else completed
        if config.get("model_transaction_policy", {}).get("decoupled"):
            raise ValueError("decoupled models answer a request with several responses, which "
                             "Osprey does not serve")
        self.triton = TritonConfig(config)
        if not self.triton.inputs:
            raise ValueError("config.pbtxt declares no input (a Python model's tensors are "
                             "declared there, or by its auto_complete_config)")
        self.name = args.model_name
        self.model = cls()
        if hasattr(self.model, "initialize"):
            self.model.initialize({
                "model_config": json.dumps(config),
                "model_instance_kind": "CPU",
                "model_instance_name": args.instance_name or f"{self.name}_0",
                "model_instance_device_id": "0",
                "model_repository": args.model_repository or model_dir,
                "model_version": args.model_version,
                "model_name": self.name,
            })

    def describe(self):
        return {"inputs": self.triton.inputs, "outputs": self.triton.outputs,
                "feature_names": [], "platform": "python",
                "triton": self.triton.batching(merge=False)}

    def execute(self, requests):
        """requests: [(inputs {name: array}, id, parameters, requested output names)]
        -> one entry per request: {name: array}, or (message, code name)."""
        pb = self.pb_utils
        batch = []
        for inputs, request_id, parameters, outputs in requests:
            tensors = [pb.Tensor(n, self.triton.reshape_input(n, v)) for n, v in inputs.items()]
            batch.append(pb.InferenceRequest(inputs=tensors, request_id=request_id,
                                             requested_output_names=outputs,
                                             parameters=parameters, model_name=self.name))
        responses = self.model.execute(batch)
        if responses is None or len(responses) != len(batch):
            got = "None" if responses is None else f"{len(responses)} responses"
            raise pb.TritonModelException(
                f"execute() must return one InferenceResponse per request: got {got} for "
                f"{len(batch)} request(s)")
        out = []
        for response in responses:
            if not isinstance(response, pb.InferenceResponse):
                raise pb.TritonModelException(
                    f"execute() returned a {type(response).__name__}, not an InferenceResponse")
            if response.has_error():
                error = response.error()
                message = error.message() if hasattr(error, "message") else str(error)
                code = error.code() if hasattr(error, "code") else 1
                out.append((str(message), TRITON_ERROR_CODES.get(code, "INTERNAL")))
                continue
            out.append({t.name(): self.triton.reshape_output(t.name(), t.as_numpy())
                        for t in response.output_tensors()})
        return out

    def finalize(self):
        if hasattr(self.model, "finalize"):
            self.model.finalize()


FORMATS = {"sklearn": SklearnModel, "onnx": OnnxModel, "custom": CustomModel,
           "tensorflow": TensorflowModel, "paddle": PaddleModel, "python": TritonPython,
           "mlflow": MlflowModel, "torchserve": TorchServeModel,
           "art": ArtExplainer}


def serve_requests(model, head, payload):
    """One frame of several requests to a Triton Python model: the answer frame."""
    requests, offset = [], 0
    for r in head["requests"]:
        inputs, offset = decode_inputs(r["inputs"], payload, offset, text=False)
        requests.append((inputs, r.get("id", ""), r.get("parameters", {}), r.get("outputs", [])))
    answers, chunks = [], []
    for result in model.execute(requests):
        if isinstance(result, tuple):
            answers.append({"error": result[0], "code": result[1]})
            continue
        outputs, parts = encode_outputs(result)
        answers.append({"outputs": outputs})
        chunks.extend(parts)
    return {"responses": answers}, b"".join(chunks)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--format", required=True, choices=sorted(FORMATS))
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--model-name", default="model")
    # A model with Triton's configuration: the configuration as JSON, the
    # file it names, its version, its directory and this worker's instance.
    parser.add_argument("--model-config-json", default="")
    parser.add_argument("--model-file", default="")
    parser.add_argument("--model-version", default="1")
    parser.add_argument("--model-repository", default="")
    parser.add_argument("--instance-name", default="")
    # The model's own arguments (an explainer's settings), a JSON array.
    parser.add_argument("--model-args-json", default="")
    args = parser.parse_args()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints from user code must not corrupt frames
    try:
        cls = FORMATS[args.format]
        if cls is CustomModel:
            model = cls(args.model_dir, args.model_name)
        elif cls is TritonPython:
            model = cls(args.model_dir, args)
        elif cls is ArtExplainer:
            model = cls(args.model_name, json.loads(args.model_args_json or "[]"))
        elif cls is TorchServeModel:
            model = cls(args.model_dir, args.model_name, args.model_file, args.model_version)
        elif cls is OnnxModel and args.model_config_json:
            model = cls(args.model_dir, TritonConfig(json.loads(args.model_config_json)),
                        args.model_file)
        else:
            model = cls(args.model_dir)
        write_frame(stdout, {"ready": True, **model.describe()})
    except (Exception, SystemExit) as e:  # noqa: BLE001 (the reason goes back to the server)
        traceback.print_exc()
        write_frame(stdout, {"error": f"{type(e).__name__}: {e}"})
        return 1
    exporter = SpanExporter.from_env(os.environ)
    while True:
        try:
            head, payload = read_frame(stdin)
        except EOFError:
            if isinstance(model, TritonPython):
                model.finalize()
            return 0
        trace = parse_traceparent(head.get("traceparent")) if exporter is not None else None
        if trace is not None:
            span_id, start_ns, end_ns, error = secrets.token_hex(8), time.time_ns(), 0, None
        try:
            if "requests" in head:
                write_frame(stdout, *serve_requests(model, head, payload))
                continue
            # A TorchServe handler gets binary elements as bytes, as TorchServe would.
            inputs, _ = decode_inputs(head["inputs"], payload,
                                      text=not isinstance(model, TorchServeModel))
            parameters = dict(head.get("parameters", {}), headers=head.get("headers", {}))
            if trace is not None and isinstance(parameters["headers"], dict):
                parameters["headers"]["traceparent"] = f"00-{trace[0]}-{span_id}-01"
            if isinstance(model, MlflowModel):
                results = model.predict(inputs, head)
            elif isinstance(model, TorchServeModel):
                results = model.predict(inputs, head, parameters)
            elif isinstance(model, (CustomModel, TensorflowModel, ArtExplainer)):
                results = model.predict(inputs, parameters)
            else:
                results = model.predict(inputs)
            output_parameters = getattr(results, "output_parameters", {})
            outputs, chunks = encode_outputs(results)
            for o in outputs:
                if o["name"] in output_parameters:
                    o["parameters"] = output_parameters[o["name"]]
            end_ns = time.time_ns()
            answer = {"outputs": outputs}
            if getattr(results, "parameters", None):
                answer["parameters"] = results.parameters
            write_frame(stdout, answer, b"".join(chunks))
        except BadRequest as e:
            end_ns, error = time.time_ns(), str(e)
            write_frame(stdout, {"error": str(e), "invalid": True})
        except Exception as e:  # noqa: BLE001
            end_ns, error = time.time_ns(), f"{type(e).__name__}: {e}"
            write_frame(stdout, {"error": error})
        if trace is not None:
            exporter.submit(worker_span(trace, span_id, start_ns, end_ns, args, error))


def worker_span(trace, span_id, start_ns, end_ns, args, error):
    """The OTLP JSON span of one request's work in the worker, a child of the
    server's execution span (`trace`: (trace id, its span id))."""
    span = {"traceId": trace[0], "spanId": span_id, "parentSpanId": trace[1],
            "name": f"python {args.format} predict", "kind": 1,
            "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(end_ns),
            "attributes": [
                {"key": "osprey.model", "value": {"stringValue": args.model_name}},
                {"key": "osprey.worker.format", "value": {"stringValue": args.format}}]}
    if error is not None:
        span["status"] = {"code": 2, "message": error}
    return span


if __name__ == "__main__":
    sys.exit(main())
