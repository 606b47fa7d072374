"""Osprey's Python model worker: one process serving one model for the C++
server over its stdin/stdout.

Frames, both ways: a little-endian u32 JSON length and u64 payload length,
the JSON header, then the payload (tensor bytes, concatenated in header
order, in the binary layout of the Open Inference Protocol: row-major,
little-endian, BYTES elements as u32 length + bytes).

  worker -> server, once: {"ready": true, "inputs": [...], "outputs": [...],
                           "feature_names": [...]}  or  {"error": "..."}
  server -> worker:       {"inputs": [{"name", "datatype", "shape"}], "parameters": {...}}
  worker -> server:       {"outputs": [{"name", "datatype", "shape"}]}  or
                          {"error": "<Type>: <message>"}

usage: osprey_worker.py --format sklearn --model-dir DIR
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
                       for b in (str(v).encode() for v in array.ravel()))
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

    def predict(self, X):
        if X.dtype == object:
            X = as_frame(X, self.feature_names) if self.feature_names else X.astype(np.float64)
        elif self.feature_names and self.needs_frame():
            import pandas as pd

            X = pd.DataFrame(X, columns=self.feature_names)
        return self.model.predict_proba(X) if self.proba else self.model.predict(X)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--format", required=True, choices=["sklearn"])
    parser.add_argument("--model-dir", required=True)
    args = parser.parse_args()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints from user code must not corrupt frames
    try:
        model = SklearnModel(args.model_dir)
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
            spec = head["inputs"][0]
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            if spec["datatype"] == "BYTES":
                X, _ = decode_bytes(payload, count)
            else:
                X = np.frombuffer(payload, dtype=DTYPES[spec["datatype"]], count=count)
            X = X.reshape(spec["shape"])
            datatype, shape, raw = encode(model.predict(X))
            write_frame(stdout, {"outputs": [{"name": "output-0", "datatype": datatype,
                                              "shape": shape}]}, raw)
        except Exception as e:  # noqa: BLE001
            write_frame(stdout, {"error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    sys.exit(main())
