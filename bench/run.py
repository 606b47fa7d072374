#!/usr/bin/env python3
"""Osprey benchmark: Osprey against references measured in the same run.

Servers, each started on a free port, pinned to the server CPU, checked for a
correct answer once, then loaded by wrk (one thread, pinned to the client CPU):

  nginx     a fixed 200 JSON answer of the size of Osprey's V2 answer: the
            ceiling for an HTTP/1.1 server on one core
  KServe    kserve.ModelServer + XGBoost kserve.Model (bench/kserve_xgb_server.py)
  MLServer  mlserver + mlserver-xgboost, when build/bench/mlserver-venv exists
  Osprey    V2 JSON, V1 predict, V2 binary extension

Every scenario runs BENCH_RUNS times (default 3); the medians of requests/s,
p50 and p99 are reported together with ratios against nginx and against KServe
on the same protocol. Results: stdout, build/bench/results.md and
build/bench/results.json. See bench/README.md for the knobs.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "build" / "bench"
LOG_DIR = OUT_DIR / "logs"
REQ_DIR = OUT_DIR / "requests"
MODEL_DIR = OUT_DIR / "model"
MODEL_FILE = MODEL_DIR / "model.json"
LUA_SCRIPT = ROOT / "bench" / "lua" / "post.lua"
KSERVE_SERVER = ROOT / "bench" / "kserve_xgb_server.py"
MLSERVER_VENV = OUT_DIR / "mlserver-venv"
MLSERVER_FAILED = OUT_DIR / "mlserver-venv.failed"

MODEL_NAME = "iris"
IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
V2_INPUT_NAME = "input-0"


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


@dataclass
class Config:
    seconds: int = env_int("BENCH_SECONDS", 10)
    runs: int = env_int("BENCH_RUNS", 3)
    connections: int = env_int("BENCH_CONNECTIONS", 32)
    warmup_seconds: int = env_int("BENCH_WARMUP_SECONDS", 2)
    server_cpu: str = os.environ.get("BENCH_SERVER_CPU", "0")
    client_cpu: str = os.environ.get("BENCH_CLIENT_CPU", "1")
    ready_timeout: float = env_float("BENCH_READY_TIMEOUT", 120.0)
    osprey_bin: Path = Path(
        os.environ.get("OSPREY_BIN", str(ROOT / "build/release/apps/osprey/osprey"))
    )
    nginx_bin: str = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
    wrk_bin: str = os.environ.get("WRK_BIN", "wrk")
    python: str = os.environ.get("BENCH_PYTHON", sys.executable)
    kserve_logging: bool = os.environ.get("BENCH_KSERVE_LOGGING", "0") == "1"
    enforce_goals: bool = os.environ.get("BENCH_ENFORCE_GOALS", "0") == "1"
    only: List[str] = field(
        default_factory=lambda: [
            s.strip()
            for s in os.environ.get("BENCH_ONLY", "osprey,nginx,kserve,mlserver").split(",")
            if s.strip()
        ]
    )


CFG = Config()


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------
# Model and expected answer


def ensure_model() -> None:
    """Trains a tiny iris multi:softmax Booster if none is there yet."""
    if MODEL_FILE.exists():
        return
    import xgboost as xgb
    from sklearn.datasets import load_iris

    log(f"training iris model -> {MODEL_FILE.relative_to(ROOT)}")
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    iris = load_iris()
    dtrain = xgb.DMatrix(iris.data, label=iris.target, nthread=1)
    params = {
        "objective": "multi:softmax",
        "num_class": 3,
        "max_depth": 3,
        "eta": 0.3,
        "nthread": 1,
        "seed": 0,
    }
    booster = xgb.train(params, dtrain, num_boost_round=10)
    # Written next to, not inside, the model directory (servers scan it); the
    # .json suffix makes xgboost write JSON.
    tmp = OUT_DIR / "model.tmp.json"
    booster.save_model(str(tmp))
    tmp.replace(MODEL_FILE)


def expected_predictions() -> List[float]:
    import numpy as np
    import xgboost as xgb

    booster = xgb.Booster(params={"nthread": 1}, model_file=str(MODEL_FILE))
    dmatrix = xgb.DMatrix(np.array(IRIS_ROWS, dtype=np.float32), nthread=1)
    return [float(v) for v in booster.predict(dmatrix).reshape(-1)]


# --------------------------------------------------------------------------
# Requests and answer checks


def v2_json_body() -> bytes:
    flat = [v for row in IRIS_ROWS for v in row]
    doc = {
        "inputs": [
            {"name": V2_INPUT_NAME, "shape": [2, 4], "datatype": "FP32", "data": flat}
        ]
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def v1_body() -> bytes:
    return json.dumps({"instances": IRIS_ROWS}, separators=(",", ":")).encode()


def v2_binary_body(output_name: str) -> tuple[bytes, int]:
    """V2 binary extension request: JSON header, then 8 little-endian FP32."""
    raw = struct.pack("<8f", *[v for row in IRIS_ROWS for v in row])
    header = {
        "inputs": [
            {
                "name": V2_INPUT_NAME,
                "shape": [2, 4],
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "outputs": [{"name": output_name, "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    return head + raw, len(head)


NUMPY_FORMATS = {
    "FP32": "f",
    "FP64": "d",
    "INT8": "b",
    "INT16": "h",
    "INT32": "i",
    "INT64": "q",
    "UINT8": "B",
    "UINT16": "H",
    "UINT32": "I",
    "UINT64": "Q",
}


def flatten(value) -> List[float]:
    if isinstance(value, list):
        out: List[float] = []
        for item in value:
            out.extend(flatten(item))
        return out
    return [float(value)]


def same_values(got: Sequence[float], want: Sequence[float]) -> bool:
    return len(got) == len(want) and all(abs(g - w) < 1e-4 for g, w in zip(got, want))


@dataclass
class Answer:
    status: int
    headers: Dict[str, str]
    body: bytes


def http_call(port: int, method: str, path: str, body: Optional[bytes] = None,
              headers: Optional[Dict[str, str]] = None, timeout: float = 10.0) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def check_v2_json(answer: Answer, want: List[float]) -> None:
    doc = json.loads(answer.body)
    outputs = doc.get("outputs") or []
    if not outputs:
        raise BenchError(f"no outputs in V2 answer: {answer.body[:300]!r}")
    got = flatten(outputs[0].get("data"))
    if not same_values(got, want):
        raise BenchError(f"V2 answer data {got} != expected {want}")


def check_v1(answer: Answer, want: List[float]) -> None:
    doc = json.loads(answer.body)
    got = flatten(doc.get("predictions"))
    if not same_values(got, want):
        raise BenchError(f"V1 predictions {got} != expected {want}")


def check_v2_binary(answer: Answer, want: List[float]) -> None:
    length = answer.headers.get("inference-header-content-length")
    if length is None:
        raise BenchError("binary answer lacks Inference-Header-Content-Length")
    length = int(length)
    header = json.loads(answer.body[:length])
    offset = length
    outputs = header.get("outputs") or []
    if not outputs:
        raise BenchError(f"no outputs in binary answer header: {header}")
    out = outputs[0]
    size = (out.get("parameters") or {}).get("binary_data_size")
    if size is None:
        raise BenchError(f"output {out.get('name')} is not binary: {out}")
    fmt = NUMPY_FORMATS.get(out.get("datatype", ""))
    if fmt is None:
        raise BenchError(f"unexpected output datatype {out.get('datatype')}")
    raw = answer.body[offset:offset + size]
    if len(raw) != size:
        raise BenchError(f"binary output truncated: {len(raw)} of {size} bytes")
    got = list(struct.unpack(f"<{size // struct.calcsize(fmt)}{fmt}", raw))
    if not same_values(got, want):
        raise BenchError(f"binary output {got} != expected {want}")


# --------------------------------------------------------------------------
# Processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> List[int]:
    ports: List[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def pinned(cpu: str, cmd: Sequence[str]) -> List[str]:
    return ["taskset", "-c", cpu, *cmd]


def nginx_conf(workdir: Path, port: int, answer: str, comment: str) -> str:
    """nginx.conf for one worker in `workdir` on 127.0.0.1:`port`, keep-alive,
    no access log, answering every request with `return {answer}`."""
    return f"""# Generated by bench/run.py: {comment}.
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    default_type application/json;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    client_max_body_size 64m;
    client_body_buffer_size 1m;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            return {answer};
        }}
    }}
}}
"""


def start_nginx_sink(workdir: Path, cpu: str, answer: str, label: str):
    """nginx (1 worker, keep-alive) answering every request with `answer`
    (the directive after `return`, e.g. "202" or "200 '{}'"), pinned to
    `cpu`: a receiver that is never the bottleneck (a payload logger's sink,
    a trace collector). Returns (process, port) once it answers."""
    port = free_port()
    status = int(answer.split()[0])
    conf = nginx_conf(workdir, port, answer, f"{label} that accepts all")
    (workdir / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(pinned(cpu, [
        CFG.nginx_bin, "-p", str(workdir), "-e", str(workdir / "error.log"),
        "-c", str(workdir / "nginx.conf")]), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            if http_call(port, "POST", "/", b"{}").status == status:
                return proc, port
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise BenchError(f"nginx ({label}) did not start")
        time.sleep(0.05)


def iris_isvc(name: str, metadata: str = "", predictor: str = "") -> str:
    """An InferenceService of the xgboost iris example (build/examples), one
    replica; `metadata` and `predictor`: YAML lines added under each."""
    return (f"apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
            f"metadata:\n  name: {name}{metadata}\nspec:\n  predictor:\n    minReplicas: 1\n"
            f"    maxReplicas: 1{predictor}\n    model:\n      modelFormat:\n        name: xgboost\n"
            f"      storageUri: {ROOT / 'build/examples/xgboost-iris'}\n")


class Up:
    """`osprey up` on free ports, pinned to the server CPU, its state in
    `home`; `env`: variables on top of this process's (None drops one)."""

    def __init__(self, home: Path, env: Optional[Dict[str, Optional[str]]] = None):
        self.home = home
        self.port, self.api_port = free_ports(2)
        self.env = dict(os.environ, OSPREY_HOME=str(home),
                        PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
        for k, v in (env or {}).items():
            if v is None:
                self.env.pop(k, None)
            else:
                self.env[k] = v
        self.proc = subprocess.Popen(
            pinned(CFG.server_cpu, [
                str(CFG.osprey_bin), "up", "--data-dir", str(home), "--http-port",
                str(self.port), "--api-port", str(self.api_port), "--grpc-port", "0",
                "--address", "127.0.0.1"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env, cwd=ROOT)
        deadline = time.monotonic() + 20
        while not (home / "endpoint").exists():
            if time.monotonic() > deadline:
                raise BenchError("osprey up did not start")
            time.sleep(0.01)

    def apply(self, text: str) -> None:
        subprocess.run([str(CFG.osprey_bin), "apply", "-f", "-", "--wait"], env=self.env,
                       input=text, check=True, capture_output=True, text=True)

    def replica(self, isvc: str) -> dict:
        """The first replica's status (port, pid) of the InferenceService."""
        out = subprocess.run([str(CFG.osprey_bin), "get", "revisions", "-o", "json"],
                             env=self.env, check=True, capture_output=True, text=True).stdout
        for r in json.loads(out)["items"]:
            if r["metadata"]["labels"]["serving.kserve.io/inferenceservice"] == isvc:
                return r["status"]["replicaStatuses"][0]
        raise BenchError(f"no replica of {isvc}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class ServerProcess:
    """A server started in its own process group, pinned to the server CPU."""

    def __init__(self, name: str, cmd: Sequence[str], ready_path: str, port: int,
                 cwd: Optional[Path] = None, env: Optional[Dict[str, str]] = None,
                 ready_paths: Sequence[str] = ()):
        self.name = name
        self.cmd = list(cmd)
        self.port = port
        self.ready_paths = [ready_path, *ready_paths]
        self.cwd = cwd
        self.env = env
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = LOG_DIR / f"{name}.server.log"

    def start(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log(f"starting {self.name} on port {self.port}: {' '.join(self.cmd)}")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            pinned(CFG.server_cpu, self.cmd), stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=self.cwd, env=self.env, start_new_session=True,
        )
        deadline = time.monotonic() + CFG.ready_timeout
        pending = list(self.ready_paths)
        last = "no answer"
        while pending:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{self.name} not ready within {CFG.ready_timeout:.0f}s "
                    f"({pending[0]}: {last})\n" + self.log_tail()
                )
            try:
                answer = http_call(self.port, "GET", pending[0], timeout=2.0)
                if answer.status == 200:
                    pending.pop(0)
                    continue
                last = f"HTTP {answer.status}"
            except OSError as e:
                last = str(e)
            time.sleep(0.1)
        log(f"{self.name} ready")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"  | {line}" for line in text[-lines:])

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        self._log.close()
        self.proc = None


RUNNING: List[ServerProcess] = []


def stop_all(*_args) -> None:
    while RUNNING:
        RUNNING.pop().stop()


def forget(server: ServerProcess) -> None:
    if server in RUNNING:
        RUNNING.remove(server)


# --------------------------------------------------------------------------
# Scenarios


@dataclass
class Scenario:
    key: str
    label: str
    group: str
    protocol: str  # "v2-json", "v1", "v2-binary", "fixed"
    path: str = ""
    body: bytes = b""
    content_type: str = "application/json"
    header_length: Optional[int] = None
    check: Optional[Callable[[Answer], None]] = None
    status: str = "pending"  # ok, failed, not available
    reason: str = ""
    runs: List[dict] = field(default_factory=list)
    answer: Optional[Answer] = None

    def median(self, metric: str) -> Optional[float]:
        values = [r[metric] for r in self.runs]
        return statistics.median(values) if values else None


def run_wrk(scenario: Scenario, port: int, seconds: int, tag: str) -> dict:
    REQ_DIR.mkdir(parents=True, exist_ok=True)
    body_file = REQ_DIR / f"{scenario.key}.body"
    body_file.write_bytes(scenario.body)
    cmd = pinned(CFG.client_cpu, [
        CFG.wrk_bin, "-t1", f"-c{CFG.connections}", f"-d{seconds}s", "--latency",
        "-s", str(LUA_SCRIPT), f"http://127.0.0.1:{port}{scenario.path}",
        "--", str(body_file), scenario.content_type,
        "" if scenario.header_length is None else str(scenario.header_length),
    ])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    (LOG_DIR / f"{scenario.key}.{tag}.wrk.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}: {proc.stderr.strip()}")
    match = re.search(r"^BENCH_RESULT (\{.*\})$", proc.stdout, re.M)
    if not match:
        raise BenchError(f"no BENCH_RESULT in wrk output:\n{proc.stdout}{proc.stderr}")
    raw = json.loads(match.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", proc.stdout)
    socket_errors = sum(raw[k] for k in
                        ("errors_connect", "errors_read", "errors_write", "errors_timeout"))
    result = {
        "requests": int(raw["requests"]),
        "duration_s": raw["duration_us"] / 1e6,
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["latency_p50_us"] / 1000.0,
        "p90_ms": raw["latency_p90_us"] / 1000.0,
        "p99_ms": raw["latency_p99_us"] / 1000.0,
        "mean_ms": raw["latency_mean_us"] / 1000.0,
        "max_ms": raw["latency_max_us"] / 1000.0,
        "non_2xx": max(int(raw["errors_status"]), int(non2xx.group(1)) if non2xx else 0),
        "socket_errors": int(socket_errors),
    }
    if result["requests"] == 0:
        raise BenchError("wrk completed no requests")
    if result["non_2xx"]:
        raise BenchError(f"{result['non_2xx']} non-2xx answers under load")
    if result["socket_errors"]:
        raise BenchError(f"{result['socket_errors']} socket errors under load "
                         f"(connect/read/write/timeout: {raw['errors_connect']:.0f}/"
                         f"{raw['errors_read']:.0f}/{raw['errors_write']:.0f}/"
                         f"{raw['errors_timeout']:.0f})")
    return result


def verify(scenario: Scenario, port: int) -> None:
    headers = {"Content-Type": scenario.content_type}
    if scenario.header_length is not None:
        headers["Inference-Header-Content-Length"] = str(scenario.header_length)
    answer = http_call(port, "POST", scenario.path, scenario.body, headers)
    if answer.status != 200:
        raise BenchError(f"HTTP {answer.status}: {answer.body[:300]!r}")
    if scenario.check:
        scenario.check(answer)
    scenario.answer = answer


def measure(scenario: Scenario, port: int) -> None:
    """Checks the answer once, warms up, then runs wrk CFG.runs times."""
    try:
        verify(scenario, port)
        log(f"{scenario.label}: answer verified ({len(scenario.answer.body)} bytes)")
        if CFG.warmup_seconds > 0:
            run_wrk(scenario, port, CFG.warmup_seconds, "warmup")
        for i in range(1, CFG.runs + 1):
            result = run_wrk(scenario, port, CFG.seconds, f"run{i}")
            scenario.runs.append(result)
            log(f"{scenario.label}: run {i}/{CFG.runs}: {result['rps']:.0f} req/s, "
                f"p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms")
        scenario.status = "ok"
    except (BenchError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        scenario.status = "failed"
        scenario.reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        scenario.runs.clear()
        log(f"{scenario.label}: FAILED: {e}")


def run_group(server: ServerProcess, scenarios: List[Scenario]) -> None:
    RUNNING.append(server)
    try:
        server.start()
    except BenchError as e:
        for s in scenarios:
            s.status, s.reason = "failed", f"{server.name} did not start"
        log(str(e))
        forget(server)
        server.stop()
        return
    try:
        for s in scenarios:
            measure(s, server.port)
            if server.proc is not None and server.proc.poll() is not None:
                raise BenchError(f"{server.name} died during {s.label}\n{server.log_tail()}")
    except BenchError as e:
        log(str(e))
        for s in scenarios:
            if s.status == "pending":
                s.status, s.reason = "failed", f"{server.name} died"
    finally:
        forget(server)
        server.stop()


# --------------------------------------------------------------------------
# The servers


def json_scenarios(key: str, label: str, want: List[float]) -> tuple[Scenario, Scenario]:
    """The V2 JSON infer and V1 predict scenarios every server group runs."""
    v2 = Scenario(f"{key}-v2-json", f"{label} V2 JSON", key, "v2-json",
                  f"/v2/models/{MODEL_NAME}/infer", v2_json_body(),
                  check=lambda a: check_v2_json(a, want))
    v1 = Scenario(f"{key}-v1", f"{label} V1 predict", key, "v1",
                  f"/v1/models/{MODEL_NAME}:predict", v1_body(),
                  check=lambda a: check_v1(a, want))
    return v2, v1


def osprey_group(want: List[float]) -> tuple[List[Scenario], Optional[bytes]]:
    """Runs Osprey's scenarios; returns them and Osprey's V2 JSON answer body."""
    v2, v1 = json_scenarios("osprey", "Osprey", want)
    binary = Scenario("osprey-v2-binary", "Osprey V2 binary", "osprey", "v2-binary",
                      f"/v2/models/{MODEL_NAME}/infer",
                      content_type="application/octet-stream",
                      check=lambda a: check_v2_binary(a, want))
    scenarios = [v2, v1, binary]
    if "osprey" not in CFG.only:
        return [], None
    if not (CFG.osprey_bin.is_file() and os.access(CFG.osprey_bin, os.X_OK)):
        for s in scenarios:
            s.status, s.reason = "not available", f"no binary at {CFG.osprey_bin}"
        log(f"Osprey binary not found at {CFG.osprey_bin} (set OSPREY_BIN)")
        return scenarios, None

    port = free_port()
    server = ServerProcess(
        "osprey",
        [str(CFG.osprey_bin), "serve", "--model-dir", str(MODEL_DIR),
         "--model-name", MODEL_NAME, "--http-port", str(port), "--http-threads", "1"],
        "/v2/health/ready", port,
    )
    RUNNING.append(server)
    try:
        server.start()
    except BenchError as e:
        log(str(e))
        for s in scenarios:
            s.status, s.reason = "failed", "osprey did not start"
        forget(server)
        server.stop()
        return scenarios, None
    try:
        measure(v2, port)
        # The binary request names the output to return in binary form; take
        # the name from the V2 JSON answer (output-0 if that failed).
        name = "output-0"
        if v2.answer is not None:
            name = json.loads(v2.answer.body)["outputs"][0].get("name", name)
        binary.body, binary.header_length = v2_binary_body(name)
        measure(v1, port)
        measure(binary, port)
    finally:
        forget(server)
        server.stop()
    return scenarios, (v2.answer.body if v2.answer is not None else None)


def nginx_answer_body(osprey_answer: Optional[bytes]) -> tuple[str, str]:
    """The fixed body nginx returns, and where it came from."""
    constructed = ('{"model_name":"iris","model_version":"1","outputs":[{"name":"output-0",'
                   '"datatype":"FP32","shape":[2],"data":[1.0,1.0]}]}')
    if osprey_answer is None:
        return constructed, "constructed (no Osprey answer)"
    text = osprey_answer.decode("utf-8", errors="replace")
    if not re.search(r"[$'\\\r\n]", text):
        return text, "Osprey's V2 JSON answer"
    # Characters nginx.conf would interpret: a JSON filler of the same size.
    filler = '{"data":"' + "x" * max(0, len(osprey_answer) - 11) + '"}'
    return filler, "filler of the size of Osprey's V2 JSON answer"


def nginx_group(osprey_answer: Optional[bytes]) -> List[Scenario]:
    body, origin = nginx_answer_body(osprey_answer)

    def check(answer: Answer) -> None:
        if answer.body != body.encode():
            raise BenchError(f"nginx answered {answer.body[:200]!r}, expected {body!r}")

    scenario = Scenario("nginx", "nginx fixed answer (ceiling)", "nginx", "fixed",
                        f"/v2/models/{MODEL_NAME}/infer", v2_json_body(), check=check)
    scenario.reason = f"{len(body.encode())}-byte body: {origin}"
    if not (shutil.which(CFG.nginx_bin) or os.access(CFG.nginx_bin, os.X_OK)):
        scenario.status, scenario.reason = "not available", f"no nginx at {CFG.nginx_bin}"
        return [scenario]
    workdir = Path(tempfile.mkdtemp(prefix="osprey-bench-nginx-"))
    os.chmod(workdir, 0o755)
    port = free_port()
    conf = nginx_conf(workdir, port, f"200 '{body}'", "a fixed JSON answer to every request")
    (workdir / "nginx.conf").write_text(conf)
    shutil.copy(workdir / "nginx.conf", LOG_DIR / "nginx.conf")
    server = ServerProcess(
        "nginx",
        [CFG.nginx_bin, "-p", str(workdir), "-e", str(workdir / "error.log"),
         "-c", str(workdir / "nginx.conf")],
        "/", port,
    )
    try:
        run_group(server, [scenario])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if scenario.status == "ok":
        scenario.reason = f"{len(body.encode())}-byte body: {origin}"
    return [scenario]


def kserve_group(want: List[float]) -> List[Scenario]:
    v2, v1 = json_scenarios("kserve", "KServe", want)
    port = free_port()
    cmd = [CFG.python, str(KSERVE_SERVER), "--model_dir", str(MODEL_DIR),
           "--model_name", MODEL_NAME, "--http_port", str(port),
           "--workers", "1", "--enable_grpc", "false", "--nthread", "1"]
    if not CFG.kserve_logging:
        cmd.append("--quiet")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               RAY_USAGE_STATS_ENABLED="0")
    server = ServerProcess("kserve", cmd, "/v2/health/ready", port, env=env,
                           ready_paths=[f"/v2/models/{MODEL_NAME}/ready"])
    run_group(server, [v2, v1])
    return [v2, v1]


def mlserver_group(want: List[float]) -> List[Scenario]:
    v2 = Scenario("mlserver-v2-json", "MLServer V2 JSON", "mlserver", "v2-json",
                  f"/v2/models/{MODEL_NAME}/infer", v2_json_body(),
                  check=lambda a: check_v2_json(a, want))
    mlserver = MLSERVER_VENV / "bin" / "mlserver"
    if not (MLSERVER_VENV / ".osprey-bench-ok").exists() or not mlserver.exists():
        why = "not installed"
        if MLSERVER_FAILED.exists():
            why = MLSERVER_FAILED.read_text().splitlines()[0]
        v2.status, v2.reason = "not available", why
        return [v2]
    workdir = Path(tempfile.mkdtemp(prefix="osprey-bench-mlserver-"))
    http_port, grpc_port, metrics_port = free_ports(3)
    (workdir / "settings.json").write_text(json.dumps({
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": 0,
        "debug": False,
        "host": "127.0.0.1",
    }, indent=2))
    model_dir = workdir / MODEL_NAME
    model_dir.mkdir()
    shutil.copy(MODEL_FILE, model_dir / "model.json")
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": MODEL_NAME,
        "implementation": "mlserver_xgboost.XGBoostModel",
        "parameters": {"uri": "./model.json"},
    }, indent=2))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = f"{MLSERVER_VENV / 'bin'}:{env.get('PATH', '')}"
    server = ServerProcess("mlserver", [str(mlserver), "start", str(workdir)],
                           "/v2/health/ready", http_port, cwd=workdir, env=env,
                           ready_paths=[f"/v2/models/{MODEL_NAME}/ready"])
    try:
        run_group(server, [v2])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return [v2]


# --------------------------------------------------------------------------
# Report


def any_failed(scenarios: Sequence[Scenario], bench: str) -> bool:
    """True (after saying which and why) when a scenario did not run to the end."""
    bad = [s for s in scenarios if s.status != "ok"]
    for s in bad:
        print(f"{bench} bench: {s.label} failed: {s.reason}", file=sys.stderr)
    return bool(bad)


def scenario_rows(scenarios: Sequence[Scenario]) -> List[str]:
    """A markdown table of the scenarios' medians: req/s, p50, p99."""
    lines = ["| Scenario | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    for s in scenarios:
        lines.append(f"| {s.label} | {s.median('rps'):.0f} | {s.median('p50_ms'):.3f} | "
                     f"{s.median('p99_ms'):.3f} |")
    return lines


def goal_rows(goals: Sequence[tuple]) -> List[str]:
    """Markdown rows for (goal, target, measured, passed or None when only reported)."""
    lines = ["| Goal | Target | Measured | Result |", "|---|---|---:|---|"]
    for goal, target, measured, passed in goals:
        result = "" if passed is None else ("PASS" if passed else "FAIL")
        lines.append(f"| {goal} | {target} | {measured} | {result} |")
    return lines


def publish(name: str, lines: List[str], data: dict) -> None:
    """Prints the table and writes build/bench/<name>_results.{md,json}."""
    table = "\n".join(lines)
    print(table)
    (OUT_DIR / f"{name}_results.md").write_text(table + "\n")
    (OUT_DIR / f"{name}_results.json").write_text(json.dumps(data, indent=1) + "\n")


def fmt(value: Optional[float], digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def fmt_ratio(value: Optional[float]) -> str:
    """Ratios span 0.001x (KServe vs nginx) to 100x: keep three figures."""
    if value is None:
        return "—"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return a / b


def tool_version(cmd: List[str], pattern: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        match = re.search(pattern, out.stdout + out.stderr)
        return match.group(1) if match else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def python_package_version(python: str, module: str) -> str:
    try:
        out = subprocess.run(
            [python, "-c", f"import importlib.metadata as m; print(m.version('{module}'))"],
            capture_output=True, text=True, timeout=60)
        return out.stdout.strip() or "not installed"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def build_report(scenarios: List[Scenario]) -> tuple[str, dict, bool]:
    by_key = {s.key: s for s in scenarios}
    nginx = by_key.get("nginx")
    nginx_rps = nginx.median("rps") if nginx else None
    nginx_p99 = nginx.median("p99_ms") if nginx else None
    kserve_ref = {
        "v2-json": by_key.get("kserve-v2-json"),
        "v1": by_key.get("kserve-v1"),
        # KServe's REST server has no binary extension: compare with its V2 JSON.
        "v2-binary": by_key.get("kserve-v2-json"),
    }

    rows = []
    results = {}
    for s in scenarios:
        rps, p50, p99 = s.median("rps"), s.median("p50_ms"), s.median("p99_ms")
        ref = kserve_ref.get(s.protocol) if s.group != "nginx" else None
        ref_rps = ref.median("rps") if ref else None
        vs_nginx = ratio(rps, nginx_rps) if s.group != "nginx" else (1.0 if rps else None)
        vs_kserve = ratio(rps, ref_rps)
        note = "" if s.status == "ok" else f"{s.status}: {s.reason}"
        if s.status == "ok" and s.group == "nginx":
            note = s.reason
        if s.protocol == "v2-binary" and vs_kserve is not None:
            note = (note + "; " if note else "") + "vs KServe V2 JSON (KServe REST has no binary extension)"
        rows.append((s.label, fmt(rps, 0), fmt(p50), fmt(p99), fmt_ratio(vs_nginx),
                     fmt_ratio(vs_kserve), note))
        results[s.key] = {
            "label": s.label,
            "server": s.group,
            "protocol": s.protocol,
            "status": s.status,
            "reason": s.reason,
            "runs": s.runs,
            "median": {"rps": rps, "p50_ms": p50, "p99_ms": p99},
            "ratio_vs_nginx": vs_nginx,
            "ratio_vs_kserve": vs_kserve,
            "kserve_reference": ref.key if ref else None,
        }

    goals = []
    osprey = by_key.get("osprey-v2-json")
    kserve_v2 = by_key.get("kserve-v2-json")
    o_rps = osprey.median("rps") if osprey else None
    o_p99 = osprey.median("p99_ms") if osprey else None
    k_rps = kserve_v2.median("rps") if kserve_v2 else None

    def goal(name: str, target: str, measured: Optional[float], limit: Optional[float],
             higher_is_better: bool, unit: str) -> None:
        if measured is None or limit is None:
            verdict = "not evaluated"
        elif higher_is_better:
            verdict = "PASS" if measured >= limit else "FAIL"
        else:
            verdict = "PASS" if measured <= limit else "FAIL"
        goals.append({"goal": name, "target": target, "measured": measured,
                      "limit": limit, "unit": unit, "result": verdict})

    goal("Osprey V2 JSON throughput vs nginx", ">= 0.50x nginx req/s",
         ratio(o_rps, nginx_rps), 0.5, True, "x")
    goal("Osprey V2 JSON throughput vs KServe", ">= 15x KServe V2 JSON req/s",
         ratio(o_rps, k_rps), 15.0, True, "x")
    p99_limit = max(2.0, 2 * nginx_p99) if nginx_p99 is not None else None
    goal("Osprey V2 JSON p99 latency", "<= max(2 ms, 2x nginx p99)"
         + (f" = {p99_limit:.3f} ms" if p99_limit is not None else ""),
         o_p99, p99_limit, False, "ms")

    env = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "server_cpu": CFG.server_cpu,
        "client_cpu": CFG.client_cpu,
        "seconds": CFG.seconds,
        "runs": CFG.runs,
        "warmup_seconds": CFG.warmup_seconds,
        "connections": CFG.connections,
        "wrk": tool_version([CFG.wrk_bin, "-v"], r"wrk (\S+)"),
        "nginx": tool_version([CFG.nginx_bin, "-v"], r"nginx/(\S+)"),
        "kserve": python_package_version(CFG.python, "kserve"),
        "xgboost": python_package_version(CFG.python, "xgboost"),
        "kserve_per_request_logging": CFG.kserve_logging,
        "osprey_bin": str(CFG.osprey_bin),
    }
    if "mlserver" in CFG.only and (MLSERVER_VENV / "bin" / "python").exists():
        env["mlserver"] = python_package_version(str(MLSERVER_VENV / "bin" / "python"), "mlserver")

    lines = [
        "# Osprey benchmark",
        "",
        f"{env['date']} · {env['cpu']} · {env['cpus']} CPUs · server on CPU {CFG.server_cpu}, "
        f"wrk (1 thread, {CFG.connections} connections) on CPU {CFG.client_cpu} · "
        f"median of {CFG.runs} runs of {CFG.seconds} s (after {CFG.warmup_seconds} s warm-up)",
        "",
        "Request: iris, 2x4 FP32 (V2 JSON, V1 `instances`, or V2 binary extension).",
        "",
        "| Scenario | req/s | p50 (ms) | p99 (ms) | vs nginx | vs KServe | Notes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "vs nginx / vs KServe: req/s divided by the nginx ceiling's req/s / by KServe's req/s "
        "on the same protocol, both measured in this run.",
        "",
        "## Goals (Osprey V2 JSON)",
        "",
        "| Goal | Target | Measured | Result |",
        "|---|---|---:|---|",
    ]
    for g in goals:
        measured = "—" if g["measured"] is None else (
            f"{g['measured']:.2f}x" if g["unit"] == "x" else f"{g['measured']:.3f} ms")
        lines.append(f"| {g['goal']} | {g['target']} | {measured} | {g['result']} |")
    lines += [
        "",
        f"Versions: wrk {env['wrk']}, nginx {env['nginx']}, kserve {env['kserve']}"
        + (f", mlserver {env['mlserver']}" if "mlserver" in env else "")
        + f", xgboost {env['xgboost']}. KServe per-request logging: "
        + ("on (stock)" if CFG.kserve_logging else "off") + ".",
        "",
    ]
    report = "\n".join(lines)
    data = {"environment": env, "scenarios": results, "goals": goals}
    goals_ok = all(g["result"] == "PASS" for g in goals)
    return report, data, goals_ok


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: (stop_all(), sys.exit(128 + signum)))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    unknown = set(CFG.only) - {"osprey", "nginx", "kserve", "mlserver"}
    if unknown:
        log(f"unknown BENCH_ONLY entries: {', '.join(sorted(unknown))}")
        return 2
    for tool in ("taskset", CFG.wrk_bin):
        if not shutil.which(tool):
            log(f"{tool} not found")
            return 2

    ensure_model()
    want = expected_predictions()
    log(f"model {MODEL_FILE.relative_to(ROOT)}; expected predictions {want}")

    scenarios: List[Scenario] = []
    try:
        osprey, osprey_answer = osprey_group(want)
        if "nginx" in CFG.only:
            scenarios += nginx_group(osprey_answer)
        if "kserve" in CFG.only:
            scenarios += kserve_group(want)
        if "mlserver" in CFG.only:
            scenarios += mlserver_group(want)
        scenarios += osprey
    finally:
        stop_all()

    report, data, goals_ok = build_report(scenarios)
    (OUT_DIR / "results.md").write_text(report)
    (OUT_DIR / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    print(report)
    log(f"wrote {(OUT_DIR / 'results.md').relative_to(ROOT)} and "
        f"{(OUT_DIR / 'results.json').relative_to(ROOT)}; logs in {LOG_DIR.relative_to(ROOT)}")

    failed = [s for s in scenarios if s.status == "failed"
              or (s.status == "not available" and s.group in ("osprey", "nginx", "kserve"))]
    if failed:
        log("scenarios without a result: " + ", ".join(s.label for s in failed))
        return 1
    if CFG.enforce_goals and not goals_ok:
        log("goals missed (BENCH_ENFORCE_GOALS=1)")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
