"""Starts `osprey up` (the local platform) for end-to-end tests and drives it
through the real CLI (`osprey apply/get/describe/delete/logs`) and its gateway.
"""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import requests

import harness

REPO_ROOT = harness.REPO_ROOT
VENV_BIN = REPO_ROOT / ".venv" / "bin"
EXAMPLES = REPO_ROOT / "examples"
# Readiness of a replica: a native model is ready in well under a second, a
# Python-hosted one in a few; the deadline leaves room for a loaded machine.
READY_TIMEOUT_S = 60


def example_models():
    """Trains (once) the models the examples serve; returns their root."""
    root = REPO_ROOT / "build" / "examples"
    subprocess.run([str(VENV_BIN / "python"), str(EXAMPLES / "train_example.py"), str(root)],
                   check=True)
    return root


# A stand-in replica for custom-container tests, run as `python3 server.py`
# in its model directory (STORAGE_URI) on $PORT. Files there steer it: with
# `require-marker`, it is ready only if `ready-marker` existed at its start;
# `delay` holds seconds to wait before answering a POST; with `health-path`,
# GET answers only that path (404 elsewhere); every POST is
# logged to `posts.log` with the number of POSTs in progress at its start.
# It answers in HTTP/1.0 (the connection closes after each answer), except
# on paths ending /http11 (HTTP/1.1, Content-Length, kept alive) and
# /chunked (HTTP/1.1, chunked); those carry x-answer-framing and x-conn (the
# client port of the connection). /hugelength and /badheader answer broken
# heads (a Content-Length of 2^64-1, a header value with a bare LF).
TEST_SERVER = """
import http.server, os, threading, time
ready = not os.path.exists("require-marker") or os.path.exists("ready-marker")
delay = float(open("delay").read()) if os.path.exists("delay") else 0
lock = threading.Lock()
in_flight = 0
health_path = open("health-path").read().strip() if os.path.exists("health-path") else None
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if health_path is not None and self.path != health_path:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200 if ready else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_POST(self):
        global in_flight
        with lock:
            in_flight += 1
            with open("posts.log", "a") as f:
                f.write(f"post {in_flight}\\n")
        time.sleep(delay)
        with lock:
            in_flight -= 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"predictions": [1]}'
        framing = self.path.rsplit("/", 1)[-1]
        if framing in ("hugelength", "badheader"):  # broken answers
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            if framing == "hugelength":
                self.send_header("Content-Length", str(2 ** 64 - 1))
            else:
                self.send_header("X-Split", "1\\nTransfer-Encoding: chunked")
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if framing in ("http11", "chunked"):
            self.protocol_version = "HTTP/1.1"
            self.close_connection = False
        self.send_response(200)
        if framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        if framing in ("http11", "chunked"):
            self.send_header("x-answer-framing", framing)
            self.send_header("x-conn", str(self.client_address[1]))
        self.end_headers()
        if framing == "chunked":
            for part in (body[:7], body[7:]):
                self.wfile.write(b"%x\\r\\n%s\\r\\n" % (len(part), part))
            self.wfile.write(b"0\\r\\n\\r\\n")
        else:
            self.wfile.write(body)
    def do_HEAD(self):
        self.protocol_version = "HTTP/1.1"
        self.send_response(200)
        self.send_header("Content-Length", "20")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def custom_server_yaml(name, model_dir, extra_predictor=""):
    """An InferenceService running TEST_SERVER from `model_dir`."""
    (Path(model_dir) / "server.py").write_text(TEST_SERVER)
    return f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
spec:
  predictor:{extra_predictor}
    containers:
      - name: kserve-container
        image: example.com/{name}:1
        command: ["python3", "server.py"]
        env:
          - name: STORAGE_URI
            value: {model_dir}
"""


class Platform:
    """One `osprey up` process with its own data directory and free ports."""

    def __init__(self, binary: Path, data_dir: Path, env=None, extra_args=()):
        self.binary = Path(binary)
        self.data_dir = Path(data_dir)
        self.gateway_port, self.api_port, self.grpc_port = harness.free_ports(3)
        self._picked = (self.gateway_port, self.api_port, self.grpc_port)
        self.env = dict(os.environ)
        # Custom containers run `python3`: the project's venv has the kserve SDK.
        self.env["PATH"] = f"{VENV_BIN}:{self.env.get('PATH', '')}"
        self.env["OSPREY_HOME"] = str(self.data_dir)
        self.env.pop("OSPREY_SERVER", None)
        self.env.pop("OSPREY_TOKEN", None)
        if env:
            self.env.update(env)
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-up.log"

    @property
    def gateway(self):
        return f"http://{harness.HOST}:{self.gateway_port}"

    @property
    def api(self):
        return f"http://{harness.HOST}:{self.api_port}"

    @property
    def auth(self):
        """The API's bearer token as a header (every read and write needs it)."""
        token = (self.data_dir / "token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def start(self):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            log = open(self.log_path, "ab")
            args = [str(self.binary), "up", "--data-dir", str(self.data_dir),
                    "--http-port", str(self.gateway_port), "--api-port", str(self.api_port),
                    "--grpc-port", str(self.grpc_port),
                    "--address", harness.HOST, *self.extra_args]
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env, cwd=REPO_ROOT)
            log.close()
            try:
                harness.wait_until(self._api_up, harness.LIVE_DEADLINE_S,
                                   "osprey up's API to answer")
                return self
            except AssertionError:
                # A port picked free was taken before osprey up bound it (by
                # another process): pick the ports this harness chose again.
                if attempt == 2 or self.proc.poll() is None or "cannot listen" not in self.log():
                    raise
                fresh = harness.free_ports(3)
                self.gateway_port, self.api_port, self.grpc_port = (
                    new if now == old else now
                    for now, old, new in zip(
                        (self.gateway_port, self.api_port, self.grpc_port), self._picked, fresh))
                self._picked = fresh
        return self

    def _api_up(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"osprey up exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(f"{self.api}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop_everything(self):
        """Stops osprey up and any replica it left (after a kill -9)."""
        self.stop()
        for rev in self.revision_pids():
            try:
                os.killpg(rev, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    # ---- CLI ----
    def cli(self, *args, check=True, input=None, timeout=READY_TIMEOUT_S + 30):
        r = subprocess.run([str(self.binary), *args], capture_output=True, text=True,
                           env=self.env, input=input, timeout=timeout, cwd=REPO_ROOT)
        if check and r.returncode != 0:
            raise AssertionError(f"osprey {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stdout}\n{r.stderr}\n--- osprey up log ---\n{self.log()}")
        return r

    def apply(self, path, *extra, wait=True):
        args = ["apply", "-f", str(path), *extra]
        if wait:
            args += ["--wait", "--timeout", str(READY_TIMEOUT_S)]
        return self.cli(*args)

    def apply_text(self, yaml_text, *extra, wait=True, check=True):
        args = ["apply", "-f", "-", *extra]
        if wait:
            args += ["--wait", "--timeout", str(READY_TIMEOUT_S)]
        return self.cli(*args, input=yaml_text, check=check)

    def get_json(self, kind, name=None, namespace="default"):
        args = ["get", kind] + ([name] if name else []) + ["-n", namespace, "-o", "json"]
        return json.loads(self.cli(*args).stdout)

    def isvc(self, name, namespace="default"):
        return self.get_json("isvc", name, namespace)

    def condition(self, name, ctype="Ready", namespace="default"):
        for c in self.isvc(name, namespace)["status"].get("conditions", []):
            if c["type"] == ctype:
                return c
        return {}

    def revisions(self, isvc=None, namespace="default"):
        items = self.get_json("revisions", namespace=namespace)["items"]
        return [r for r in items
                if isvc is None
                or r["metadata"]["labels"]["serving.kserve.io/inferenceservice"] == isvc]

    def revision_pids(self):
        pids = []
        try:
            for rev in self.revisions():
                pids += [r["pid"] for r in rev["status"]["replicaStatuses"] if r["pid"]]
        except Exception:  # the platform may be down already
            pass
        return pids

    # ---- data plane through the gateway ----
    def host(self, name, namespace="default"):
        return f"{name}-{namespace}.example.com"

    def predict_v1(self, name, instances, namespace="default", by_host=True):
        headers = {"Host": self.host(name, namespace)} if by_host else {}
        return requests.post(f"{self.gateway}/v1/models/{name}:predict",
                             json={"instances": instances}, headers=headers,
                             timeout=harness.HTTP_TIMEOUT_S)

    def rest_infer(self, name, inputs, parameters=None):
        """POST /v2/models/{name}/infer through the kserve SDK's REST client
        (kserve.InferInput inputs); its InferResponse."""
        import asyncio

        from kserve import InferenceRESTClient, InferRequest, RESTConfig

        request = InferRequest(model_name=name, infer_inputs=inputs, parameters=parameters)

        async def run():
            client = InferenceRESTClient(RESTConfig(protocol="v2",
                                                    timeout=harness.HTTP_TIMEOUT_S))
            try:
                return await client.infer(self.gateway, request, model_name=name,
                                          headers={"Host": self.host(name)})
            finally:
                await client.close()

        return asyncio.run(run())


def isvc_yaml(name, fmt, storage_uri, extra_model="", extra_predictor="", namespace=None):
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}{ns}
spec:
  predictor:{extra_predictor}
    model:
      modelFormat:
        name: {fmt}
      storageUri: {storage_uri}{extra_model}
"""


class Load:
    """Continuous load through the gateway from `threads` keep-alive clients.

    Counts every answer by the revision that gave it (x-osprey-revision) and
    keeps every failure (status, body). window(n) blocks until n answers
    arrived after the call and returns their split.
    """

    def __init__(self, port, host, path, body, threads=4):
        import http.client
        self._http = http.client
        self.port, self.host, self.path = port, host, path
        self.body = json.dumps(body).encode()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.stopping = False
        self.total = 0
        self.failures = []
        self.counts = {}
        self.window_left = 0
        self.latencies = []

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _run(self):
        conn = None
        while not self.stopping:
            if conn is None:
                conn = self._http.HTTPConnection(harness.HOST, self.port, timeout=30)
            t0 = time.monotonic()
            try:
                conn.request("POST", self.path, body=self.body,
                             headers={"Host": self.host, "Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                status, revision = resp.status, resp.getheader("x-osprey-revision", "")
            except (OSError, self._http.HTTPException) as e:
                conn.close()
                conn = None
                status, revision, data = 0, "", repr(e).encode()
            with self.cond:
                self.total += 1
                self.latencies.append(time.monotonic() - t0)
                if status != 200:
                    self.failures.append((status, data[:300]))
                if self.window_left > 0:
                    self.counts[revision] = self.counts.get(revision, 0) + 1
                    self.window_left -= 1
                    if self.window_left == 0:
                        self.cond.notify_all()
        if conn is not None:
            conn.close()

    def window(self, n, timeout=120):
        """The split of the next n answers: {revision: count}."""
        with self.cond:
            self.counts = {}
            self.window_left = n
            if not self.cond.wait_for(lambda: self.window_left == 0, timeout):
                raise AssertionError(f"only {n - self.window_left} of {n} answers in {timeout}s")
            return dict(self.counts)

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(timeout=60)
        return self.total, self.failures
