"""Shared helpers for Osprey's end-to-end tests.

Starts the real `osprey` binary, talks HTTP to it (through `requests` and
through raw sockets where the wire format itself is under test), encodes and
decodes the binary tensor extension, and compares answers with what xgboost
itself predicts for the fixture models.
"""

import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BINARY = REPO_ROOT / "build" / "dev" / "apps" / "osprey" / "osprey"
TRAINER = REPO_ROOT / "tests" / "fixtures" / "train_iris.py"
DEFAULT_FIXTURES = REPO_ROOT / "build" / "fixtures"

HOST = "127.0.0.1"
LIVE_DEADLINE_S = 20.0
HTTP_TIMEOUT_S = 30.0
RTOL = 1e-6
ATOL = 1e-6

INPUT_NAME = "input-0"
OUTPUT_NAME = "output-0"

# Open Inference Protocol datatypes with their little-endian numpy layout.
NP_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}

MODEL_NAMES = (
    "xgb-iris-softmax",
    "xgb-iris-softprob",
    "xgb-iris-binary",
    "xgb-regression",
    "xgb-iris-named",
)

# KServe's own XGBoost end-to-end case: two iris rows, both class 1.
KSERVE_E2E_INSTANCES = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


def osprey_binary() -> Path:
    return Path(os.environ.get("OSPREY_BIN") or DEFAULT_BINARY)


def fixtures_root() -> Path:
    return Path(os.environ.get("OSPREY_FIXTURES") or DEFAULT_FIXTURES).resolve()


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list:
    """n distinct free ports: all bound at once while chosen (one at a time,
    the kernel may hand out the same port twice)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def connection_refused(host, port) -> bool:
    """True when nothing listens on host:port (a refused connect)."""
    try:
        s = socket.create_connection((host, port), timeout=1)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    s.close()
    return False


def wait_until(predicate, timeout, what, interval=0.02):
    """Polls predicate until it returns a truthy value; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------
# The server process


ALL_SERVERS = []  # every server started this session, for failure reports


class ServerStartError(AssertionError):
    pass


class OspreyServer:
    """One `osprey serve` process on a free HTTP port and a free gRPC port.

    Unless args already name --grpc-port or say --no-grpc, every server gets
    its own free gRPC port (`grpc_port`, else None), so servers never share
    the default 8081.
    """

    def __init__(self, binary: Path, args, log_dir: Path, label: str, env=None):
        self.binary = Path(binary)
        self.env = dict(os.environ, **env) if env else None  # extra environment variables
        self.args = [str(a) for a in args]
        self.label = label
        self.host = HOST
        self.port = None
        self.grpc_port = None
        self._pick_grpc_port = not any(
            a == "--no-grpc" or a == "--grpc-port" or a.startswith("--grpc-port=") for a in self.args
        )
        if not self._pick_grpc_port:
            for i, a in enumerate(self.args):
                if a == "--grpc-port" and i + 1 < len(self.args):
                    self.grpc_port = int(self.args[i + 1])
                elif a.startswith("--grpc-port="):
                    self.grpc_port = int(a.split("=", 1)[1])
        self.proc = None
        self.started_at = None
        self.stopped_at = None
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = log_dir / f"{label}.stderr.log"
        self.stdout_path = log_dir / f"{label}.stdout.log"

    # -- process control ---------------------------------------------------

    @property
    def command(self):
        cmd = [str(self.binary), "serve", *self.args, "--http-port", str(self.port)]
        if self._pick_grpc_port:
            cmd += ["--grpc-port", str(self.grpc_port)]
        return cmd

    @property
    def grpc_target(self):
        """host:port of the gRPC listener, for gRPC clients."""
        assert self.grpc_port, f"{self.label} serves no gRPC on a known port"
        return f"{self.host}:{self.grpc_port}"

    def start(self, live_deadline=LIVE_DEADLINE_S):
        for attempt in range(3):
            self.port = free_port()
            if self._pick_grpc_port:
                self.grpc_port = free_port()
                while self.grpc_port == self.port:
                    self.grpc_port = free_port()
            with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
                header = f"=== {' '.join(self.command)}\n".encode()
                err.write(header)
                err.flush()
                self.proc = subprocess.Popen(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=str(REPO_ROOT),
                    env=self.env,
                )
            self.started_at = time.monotonic()
            self.stopped_at = None
            if self not in ALL_SERVERS:
                ALL_SERVERS.append(self)
            try:
                self._wait_live(live_deadline)
                return self
            except ServerStartError:
                self.stop()
                # Another process may have taken a port between our probe
                # and the server's bind; retry on new ports in that case only.
                tail = self.log_tail().lower()
                if ("in use" not in tail and "cannot listen" not in tail) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _wait_live(self, deadline_s):
        deadline = time.monotonic() + deadline_s
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise ServerStartError(
                    f"osprey exited with status {rc} before answering /v2/health/live\n"
                    f"command: {' '.join(self.command)}\n--- stderr tail ---\n{self.log_tail()}"
                )
            try:
                r = requests.get(self.url("/v2/health/live"), timeout=1.0)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"osprey did not answer /v2/health/live within {deadline_s:.0f}s\n"
                    f"command: {' '.join(self.command)}\n--- stderr tail ---\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for exit; returns the exit status or None on timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, term_timeout=15.0):
        """SIGTERM, then SIGKILL if it does not exit in time; returns the status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=term_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        return self.proc.returncode

    def mark_exited(self):
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()

    def log_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, max_chars=6000) -> str:
        text = self.log_text()
        if len(text) > max_chars:
            text = "...\n" + text[-max_chars:]
        return text

    # -- HTTP -------------------------------------------------------------

    @property
    def base_url(self):
        return f"http://{self.host}:{self.port}"

    def url(self, path):
        return self.base_url + path

    # Every call opens a fresh connection, so one test's broken connection
    # never leaks into the next.
    def get(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        return requests.get(self.url(path), **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        return requests.post(self.url(path), **kw)

    def wait_ready(self, models=None, deadline=LIVE_DEADLINE_S):
        """Waits for /v2/health/ready, or for each named model's ready endpoint."""
        if models is None:
            wait_until(
                lambda: self._ok("/v2/health/ready"),
                deadline,
                f"{self.label}: /v2/health/ready\n--- stderr tail ---\n{self.log_tail()}",
            )
            return self
        for m in models:
            wait_until(
                lambda: self._ok(f"/v2/models/{m}/ready", ready_field=True),
                deadline,
                f"{self.label}: model {m} ready\n--- stderr tail ---\n{self.log_tail()}",
            )
        return self

    def _ok(self, path, ready_field=False):
        try:
            r = requests.get(self.url(path), timeout=2.0)
        except requests.RequestException:
            return False
        if r.status_code != 200:
            return False
        return (not ready_field) or r.json().get("ready") is True

    def repository_index(self, body=None):
        r = self.post("/v2/repository/index", json=body if body is not None else {})
        assert r.status_code == 200, (r.status_code, r.text)
        return {entry["name"]: entry for entry in r.json()}


def relevant_servers(since: float):
    """Servers alive at some point after `since` (a time.monotonic value)."""
    return [
        s
        for s in ALL_SERVERS
        if s.started_at is not None and (s.stopped_at is None or s.stopped_at >= since)
    ]


# --------------------------------------------------------------------------
# Fixture models and the framework oracle


class Fixtures:
    """The trained fixture models and xgboost's expected predictions for them."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.models_dir = self.root / "models"
        self._expected = {}
        self._boosters = {}
        self._lock = threading.Lock()

    def model_dir(self, name) -> Path:
        return self.models_dir / name

    def expected(self, name) -> dict:
        if name not in self._expected:
            path = self.root / "expected" / f"{name}.json"
            self._expected[name] = json.loads(path.read_text())
        return self._expected[name]

    def inputs(self, name) -> np.ndarray:
        return np.asarray(self.expected(name)["inputs"], dtype=np.float32)

    def predictions(self, name) -> np.ndarray:
        return np.asarray(self.expected(name)["predictions"], dtype=np.float64)

    def num_features(self, name) -> int:
        return self.expected(name)["num_features"]

    def make_repository(self, dest: Path, names=MODEL_NAMES) -> Path:
        """Copies the named model directories into a fresh repository at dest."""
        import shutil

        dest.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copytree(self.model_dir(name), dest / name)
        return dest

    def oracle(self, name, X) -> np.ndarray:
        """xgboost's own prediction for float32 rows X on the fixture model."""
        import xgboost as xgb

        X = np.asarray(X, dtype=np.float32)
        with self._lock:
            if name not in self._boosters:
                exp = self.expected(name)
                booster = xgb.Booster(model_file=str(self.model_dir(name) / exp["file"]))
                booster.set_param({"nthread": 1})
                self._boosters[name] = booster
            booster = self._boosters[name]
            d = xgb.DMatrix(X, feature_names=booster.feature_names, nthread=1)
            return np.asarray(booster.predict(d), dtype=np.float64)


def assert_close(actual, expected, what=""):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


def assert_error(resp, status, *fragments):
    """Checks an error answer: status code, {"error": "..."} body, message fragments."""
    assert resp.status_code == status, (
        f"expected HTTP {status}, got {resp.status_code}: {resp.text[:500]}"
    )
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {resp.text[:500]!r}")
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], (
        f'error body must be {{"error": "<message>"}}, got {body!r}'
    )
    for frag in fragments:
        assert str(frag) in body["error"], f"error message {body['error']!r} should mention {frag!r}"
    return body["error"]


# --------------------------------------------------------------------------
# V2 requests and the binary tensor extension


def v2_json_request(X, datatype="FP32", nested=False, request_id=None, outputs=None,
                    parameters=None, name=INPUT_NAME):
    X = np.asarray(X)
    data = X.tolist() if nested else X.reshape(-1).tolist()
    body = {"inputs": [{"name": name, "shape": list(X.shape), "datatype": datatype, "data": data}]}
    if request_id is not None:
        body["id"] = request_id
    if outputs is not None:
        body["outputs"] = outputs
    if parameters is not None:
        body["parameters"] = parameters
    return body


def output_array(out: dict) -> np.ndarray:
    """A JSON output tensor (flat or nested data) as an array of its shape."""
    return np.asarray(out["data"], dtype=np.float64).reshape(out["shape"])


def binary_body(header: dict, raws):
    """Body and headers for a request whose tensors follow the JSON header."""
    head = json.dumps(header).encode()
    body = head + b"".join(raws)
    headers = {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }
    return body, headers


def v2_binary_request(X, datatype, request_id=None, outputs=None, parameters=None,
                      name=INPUT_NAME):
    """Encodes X as one binary input tensor; returns (body, headers)."""
    arr = np.ascontiguousarray(np.asarray(X).astype(NP_DTYPES[datatype]))
    raw = arr.tobytes()
    header = {
        "inputs": [
            {
                "name": name,
                "shape": list(arr.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        ]
    }
    if request_id is not None:
        header["id"] = request_id
    if outputs is not None:
        header["outputs"] = outputs
    if parameters is not None:
        header["parameters"] = parameters
    return binary_body(header, [raw])


@dataclass
class DecodedInfer:
    header: dict
    outputs: dict = field(default_factory=dict)   # name -> ndarray
    binary: dict = field(default_factory=dict)    # name -> raw bytes when sent binary


def decode_infer_response(status, headers, body: bytes) -> DecodedInfer:
    """Splits an inference answer into its JSON header and output arrays.

    Binary outputs are decoded by hand: little-endian, row-major, in output
    order right after the JSON header.
    """
    assert status == 200, f"HTTP {status}: {body[:500]!r}"
    lower = {k.lower(): v for k, v in headers.items()}
    hlen = lower.get("inference-header-content-length")
    if hlen is None:
        header = json.loads(body)
        offset = len(body)
    else:
        hlen = int(hlen)
        assert 0 <= hlen <= len(body), f"Inference-Header-Content-Length {hlen} > body {len(body)}"
        header = json.loads(body[:hlen])
        offset = hlen
    decoded = DecodedInfer(header=header)
    for out in header["outputs"]:
        params = out.get("parameters") or {}
        size = params.get("binary_data_size")
        dtype = NP_DTYPES[out["datatype"]]
        if size is None:
            assert "data" in out, f"output {out['name']} has neither data nor binary_data_size"
            decoded.outputs[out["name"]] = np.asarray(out["data"], dtype=dtype).reshape(out["shape"])
        else:
            assert "data" not in out, f"binary output {out['name']} must not also carry data"
            raw = body[offset : offset + size]
            assert len(raw) == size, f"output {out['name']}: {len(raw)} of {size} bytes present"
            offset += size
            decoded.binary[out["name"]] = raw
            decoded.outputs[out["name"]] = np.frombuffer(raw, dtype=dtype).reshape(out["shape"])
    assert offset == len(body), f"{len(body) - offset} unexplained trailing bytes in the answer"
    return decoded


def decode_response(resp: requests.Response) -> DecodedInfer:
    return decode_infer_response(resp.status_code, resp.headers, resp.content)


# --------------------------------------------------------------------------
# Raw HTTP/1.1 over a socket (keep-alive, pipelining, partial requests)


def raw_request(method, path, body=b"", headers=None, host=HOST, content_length=None):
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    hdrs = dict(headers or {})
    if body or method in ("POST", "PUT") or content_length is not None:
        hdrs.setdefault("Content-Length", str(len(body) if content_length is None else content_length))
    for k, v in hdrs.items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: dict  # lower-cased names
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode(errors="replace")

    # Lets assert_error() take a raw answer too.
    @property
    def status_code(self):
        return self.status


def read_response(fp, head_request=False) -> RawResponse:
    """Reads one HTTP/1.1 response from a socket file (Content-Length or chunked)."""
    status_line = fp.readline()
    if not status_line:
        raise ConnectionError("connection closed before a response arrived")
    parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    assert parts[0].startswith("HTTP/1."), f"bad status line {status_line!r}"
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = {}
    while True:
        line = fp.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if 100 <= status < 200:
        return read_response(fp, head_request)
    body = b""
    if head_request or status in (204, 304):
        pass
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size_line = fp.readline()
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while fp.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(fp.read(size))
            fp.readline()
        body = b"".join(chunks)
    elif "content-length" in headers:
        n = int(headers["content-length"])
        body = fp.read(n)
        if len(body) != n:
            raise ConnectionError(f"connection closed after {len(body)} of {n} body bytes")
    else:
        body = fp.read()
    return RawResponse(status, reason, headers, body)


class RawConnection:
    """A plain TCP connection to the server for byte-exact HTTP tests."""

    def __init__(self, server: OspreyServer, timeout=HTTP_TIMEOUT_S):
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fp = self.sock.makefile("rb")

    def send(self, data: bytes):
        self.sock.sendall(data)

    def read(self, head_request=False) -> RawResponse:
        return read_response(self.fp, head_request)

    def request(self, method, path, body=b"", headers=None) -> RawResponse:
        self.send(raw_request(method, path, body, headers))
        return self.read(head_request=(method == "HEAD"))

    def close(self):
        try:
            self.fp.close()
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------
# Sanity probe used after every bad request


def check_still_serving(server: OspreyServer, fixtures: Fixtures, model="xgb-iris-softmax"):
    """A good V2 and a good V1 request on model still get the framework's answers."""
    X = fixtures.inputs(model)[:7]
    want = fixtures.predictions(model)[:7]
    r = server.post(f"/v2/models/{model}/infer", json=v2_json_request(X, request_id="probe"))
    assert r.status_code == 200, f"server stopped serving V2 after a bad request: {r.status_code} {r.text[:300]}"
    body = r.json()
    assert body["id"] == "probe"
    assert_close(output_array(body["outputs"][0]), want, "V2 after bad request")
    r = server.post(f"/v1/models/{model}:predict", json={"instances": X.tolist()})
    assert r.status_code == 200, f"server stopped serving V1 after a bad request: {r.status_code} {r.text[:300]}"
    assert_close(r.json()["predictions"], want, "V1 after bad request")
