"""Request tracing end to end through `osprey up`, read back from a real
collector: Jaeger all-in-one v1.75.0 (scripts/jaeger.sh), its OTLP/HTTP
receiver and query API on free ports of its own, with `osprey up` exporting
to it through OTEL_EXPORTER_OTLP_ENDPOINT.

What could fail here, each read back through Jaeger's /api/traces:
- one trace per request, continuing the client's traceparent: the gateway's
  span under the client's, the replica's under the gateway's, the queue and
  execution spans under the replica's, and a Python worker's span (scikit-
  learn) under the execution; a native model (XGBoost) without a worker;
- service names (osprey-gateway, {isvc}-predictor) and resource attributes
  (namespace, InferenceService, revision, model, the worker's process);
  span kinds and semantic-convention attributes;
- the replica receives the gateway's traceparent (its span as parent, the
  sampled flag), the client's tracestate unchanged and x-b3-traceid;
- a cold start: the wait in the activator's queue as a child span of the
  gateway's;
- a transformer (the KServe SDK) calling its predictor through the gateway:
  the predictor's hop hangs under the transformer's span (x-b3-traceid);
- an InferenceGraph: the graph's span, its steps' calls under it;
- a gRPC ModelInfer (tritonclient) through the gateway's gRPC port: the
  gateway's span and the replica's named by the method, rpc.* attributes;
- serving.osprey.dev/trace-sampling "0": no span anywhere for a request
  that starts its trace (a client's sampled traceparent still wins);
- the exporter's counters on the gateway's and a replica's /metrics.

Jaeger is built by `scripts/deps.sh` (make test, make bench). Without the
binary these tests skip, saying how to build it; with OSPREY_REQUIRE_JAEGER=1
(make integration) they fail instead.
"""

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

import harness
from platform_harness import Platform, example_models, isvc_yaml

REPO_ROOT = harness.REPO_ROOT
IRIS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
# Spans reach Jaeger from three exporters (gateway, replica, worker), each
# sending at least every 200 ms; the deadline leaves room for a loaded machine.
TRACE_DEADLINE_S = 30
FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures"

# Jaeger v2 (an OpenTelemetry Collector): OTLP/HTTP in, memory storage, the
# query API and a health check, every port given (tests run in parallel).
JAEGER_CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 50ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""

# A custom-container predictor that answers each POST with the headers it
# received (lower-cased names).
ECHO = r"""
import http.server, json, os
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        data = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def require_jaeger():
    return os.environ.get("OSPREY_REQUIRE_JAEGER", "") not in ("", "0")


def jaeger_binary():
    r = subprocess.run([str(REPO_ROOT / "scripts" / "jaeger.sh"), "bin"], capture_output=True,
                       text=True)
    return Path(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip() else None


class Jaeger:
    """One Jaeger all-in-one on free ports, with its query API."""

    def __init__(self, binary, workdir):
        self.binary, self.workdir = binary, Path(workdir)
        self.proc = None
        self.log_path = self.workdir / "jaeger.log"

    def start(self):
        for attempt in range(3):
            self.otlp, self.query, query_grpc, self.health = harness.free_ports(4)
            config = self.workdir / "jaeger.yaml"
            config.write_text(JAEGER_CONFIG.format(otlp=self.otlp, query=self.query,
                                                   query_grpc=query_grpc, health=self.health))
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen([str(self.binary), "--config", str(config)],
                                             stdout=log, stderr=subprocess.STDOUT)
            try:
                harness.wait_until(self._healthy, harness.LIVE_DEADLINE_S, "Jaeger's health check")
                return self
            except AssertionError:
                self.stop()
                # A port chosen free was taken before Jaeger bound it: again.
                if attempt == 2 or "address already in use" not in self.log():
                    raise AssertionError(f"Jaeger did not start:\n{self.log()}") from None
        return self

    def _healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError("Jaeger exited")
        try:
            return requests.get(f"http://127.0.0.1:{self.health}/status", timeout=1).ok
        except requests.ConnectionError:
            return False

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.otlp}"

    def api(self, path, **params):
        r = requests.get(f"http://127.0.0.1:{self.query}/api/{path}", params=params, timeout=10)
        if r.status_code == 404:
            return []
        r.raise_for_status()
        return r.json()["data"] or []

    def traces(self, trace_id):
        """Jaeger's traces with `trace_id` (one, or none yet)."""
        return self.api(f"traces/{trace_id}")

    def search(self, service, **tags):
        return self.api("traces", service=service, tags=json.dumps(tags), lookback="1h",
                        limit=50)

    def services(self):
        return self.api("services")


class Trace:
    """A Jaeger trace: its spans by id, each with its service, process tags
    and span tags."""

    def __init__(self, data):
        self.id = data["traceID"]
        processes = data["processes"]
        self.spans = {}
        for s in data["spans"]:
            p = processes[s["processID"]]
            parents = [r["spanID"] for r in s["references"] if r["refType"] == "CHILD_OF"]
            self.spans[s["spanID"]] = {
                "id": s["spanID"], "name": s["operationName"], "trace": s["traceID"],
                "parent": parents[0] if parents else None, "service": p["serviceName"],
                "process": {t["key"]: t["value"] for t in p.get("tags", [])},
                "tags": {t["key"]: t["value"] for t in s.get("tags", [])},
                "start": s["startTime"], "duration": s["duration"]}

    def shape(self, parent):
        """The spans under `parent` as a sorted tree: [(service, name, [...])]."""
        return sorted((s["service"], s["name"], self.shape(s["id"]))
                      for s in self.spans.values() if s["parent"] == parent)

    def find(self, service, name):
        found = [s for s in self.spans.values() if s["service"] == service and s["name"] == name]
        assert len(found) == 1, f"{len(found)} spans {service} {name!r} in {self.describe()}"
        return found[0]

    def describe(self):
        return json.dumps(sorted((s["service"], s["name"], s["id"], s["parent"])
                                 for s in self.spans.values()), indent=1)


def wait_trace(jaeger, trace_id, spans):
    """The trace once Jaeger has `spans` spans of it, and no more than one trace."""
    def complete():
        found = jaeger.traces(trace_id)
        assert len(found) <= 1, f"{len(found)} traces with id {trace_id}"
        return found and len(found[0]["spans"]) >= spans and Trace(found[0])
    try:
        return harness.wait_until(complete, TRACE_DEADLINE_S, f"{spans} spans of {trace_id}",
                                  interval=0.1)
    except AssertionError as e:
        found = jaeger.traces(trace_id)
        raise AssertionError(f"{e}; got {Trace(found[0]).describe() if found else 'none'}\n"
                             f"--- jaeger ---\n{jaeger.log()}") from None


def new_traceparent():
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def tree(*children):
    return sorted(children)


def node(service, name, *children):
    return (service, name, tree(*children))


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory):
    binary = jaeger_binary()
    if binary is None:
        why = "Jaeger is not built; build it with make jaeger-deps (scripts/jaeger.sh build)"
        if require_jaeger():
            pytest.fail(f"OSPREY_REQUIRE_JAEGER is set but {why}", pytrace=False)
        pytest.skip(why)
    j = Jaeger(binary, tmp_path_factory.mktemp("jaeger")).start()
    yield j
    j.stop()


@pytest.fixture(scope="module")
def platform(osprey_bin, jaeger, tmp_path_factory):
    # Short autoscaler windows: the service "cold" (minReplicas 0) goes to
    # zero within seconds.
    p = Platform(osprey_bin, tmp_path_factory.mktemp("tracing") / "home",
                 env={"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.endpoint,
                      "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
                 extra_args=["--autoscale-tick-ms", "200", "--stable-window-s", "2",
                             "--scale-to-zero-grace-s", "1"])
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER",
                 "OTEL_TRACES_SAMPLER_ARG", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        p.env.pop(name, None)
    p.start()
    yield p
    p.stop_everything()


@pytest.fixture(scope="module")
def services(platform, fixtures, tmp_path_factory):
    """Applied at once: skl (sklearn: a Python worker), xgb (xgboost: native),
    cold (xgboost, minReplicas 0), quiet (xgboost, trace-sampling 0), echo (a
    custom container), flowers (a KServe SDK transformer before an xgboost
    predictor) and the graph chain."""
    examples = example_models()
    root = tmp_path_factory.mktemp("tracing-containers")
    echo = root / "echo"
    echo.mkdir()
    (echo / "server.py").write_text(ECHO)
    features = root / "features"
    features.mkdir()
    for name in ("feature_transformer.py", "features.csv"):
        shutil.copy(FIXTURES_DIR / "transformer" / name, features)
    quiet = isvc_yaml("quiet", "xgboost", examples / "xgboost-iris").replace(
        "  name: quiet\n",
        "  name: quiet\n  annotations:\n    serving.osprey.dev/trace-sampling: \"0\"\n")
    docs = [
        isvc_yaml("cold", "xgboost", examples / "xgboost-iris",
                  extra_predictor="\n    minReplicas: 0"),
        isvc_yaml("skl", "sklearn", examples / "sklearn-iris"),
        isvc_yaml("xgb", "xgboost", examples / "xgboost-iris"),
        quiet,
        f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: echo
spec:
  predictor:
    containers:
      - name: kserve-container
        image: example.com/echo:1
        command: ["python3", "server.py"]
        env:
          - name: STORAGE_URI
            value: {echo}
""",
        f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: flowers
spec:
  predictor:
    model:
      modelFormat:
        name: xgboost
      storageUri: {fixtures.model_dir("xgb-iris-softprob")}
  transformer:
    containers:
      - name: kserve-container
        image: example.com/feature-transformer:1
        command: ["python3", "feature_transformer.py"]
        args: ["--predictor_protocol=v1"]
        env:
          - name: STORAGE_URI
            value: {features}
"""]
    platform.apply_text("---\n".join(docs))
    platform.apply_text("""apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: chain
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
      - serviceName: skl
        name: first
      - serviceName: xgb
        name: second
        data: $request
""")

    def graph_ready():
        item = platform.get_json("ig", "chain")
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in item.get("status", {}).get("conditions", []))
    harness.wait_until(graph_ready, 30, "InferenceGraph chain Ready", interval=0.1)


def post(platform, host, path, body, headers=None):
    r = requests.post(f"{platform.gateway}{path}", json=body,
                      headers={"Host": f"{host}-default.example.com", **(headers or {})},
                      timeout=harness.HTTP_TIMEOUT_S)
    assert r.status_code == 200, r.text
    return r


def predict(platform, name, headers=None):
    return post(platform, name, f"/v1/models/{name}:predict", {"instances": IRIS}, headers)


def test_python_worker_request_is_one_trace_under_the_clients_span(platform, jaeger, services):
    trace_id, client_span, traceparent = new_traceparent()
    predict(platform, "skl", {"traceparent": traceparent, "x-request-id": "skl-1"})
    t = wait_trace(jaeger, trace_id, 5)
    path = "/v1/models/skl:predict"
    assert t.shape(client_span) == tree(
        node("osprey-gateway", f"POST {path}",
             node("skl-predictor", f"POST {path}",
                  node("skl-predictor", "queue skl"),
                  node("skl-predictor", "execute skl",
                       node("skl-predictor", "python sklearn predict"))))), t.describe()
    assert all(s["trace"] == trace_id for s in t.spans.values())

    gateway = t.find("osprey-gateway", f"POST {path}")
    assert gateway["tags"]["span.kind"] == "server"
    for key, value in {"http.request.method": "POST", "url.path": path,
                       "server.address": "skl-default.example.com",
                       "http.response.status_code": 200, "k8s.namespace.name": "default",
                       "osprey.inferenceservice": "skl", "osprey.component": "predictor",
                       "osprey.revision": "skl-predictor-00001",
                       "osprey.request_id": "skl-1"}.items():
        assert gateway["tags"].get(key) == value, (key, gateway["tags"])
    assert re.fullmatch(r"127\.0\.0\.1:\d+", gateway["tags"]["osprey.replica"])

    replica = t.find("skl-predictor", f"POST {path}")
    assert replica["tags"]["span.kind"] == "server"
    assert replica["tags"]["http.response.status_code"] == 200
    assert replica["tags"]["osprey.model"] == "skl"
    resource = {"service.namespace": "default", "k8s.namespace.name": "default",
                "osprey.inferenceservice": "skl", "osprey.component": "predictor",
                "osprey.revision": "skl-predictor-00001", "osprey.model": "skl",
                "osprey.model.format": "sklearn"}
    for key, value in resource.items():
        assert replica["process"].get(key) == value, (key, replica["process"])
    execute = t.find("skl-predictor", "execute skl")
    assert execute["tags"]["osprey.batch.size"] == 1
    assert t.find("skl-predictor", "queue skl")["tags"]["span.kind"] == "internal"
    worker = t.find("skl-predictor", "python sklearn predict")
    for key, value in resource.items():
        assert worker["process"].get(key) == value, (key, worker["process"])
    assert worker["process"]["osprey.process"] == "python-worker"
    assert worker["tags"]["osprey.model"] == "skl"
    # Children inside their parents: one machine, one clock, each process
    # converting to wall time on its own (within microseconds).
    slack_us = 200
    for child, parent in ((replica, gateway), (execute, replica), (worker, execute)):
        assert parent["start"] <= child["start"] + slack_us, (parent, child)
        assert (child["start"] + child["duration"] <=
                parent["start"] + parent["duration"] + slack_us), (parent, child)


def test_native_model_and_a_trace_started_at_the_gateway(platform, jaeger, services):
    trace_id, client_span, traceparent = new_traceparent()
    predict(platform, "xgb", {"traceparent": traceparent})
    path = "/v1/models/xgb:predict"
    t = wait_trace(jaeger, trace_id, 4)
    assert t.shape(client_span) == tree(
        node("osprey-gateway", f"POST {path}",
             node("xgb-predictor", f"POST {path}",
                  node("xgb-predictor", "queue xgb"),
                  node("xgb-predictor", "execute xgb")))), t.describe()
    assert t.find("xgb-predictor", f"POST {path}")["process"]["osprey.model.format"] == "xgboost"

    # Without a traceparent the gateway starts the trace: its span is the root.
    predict(platform, "xgb", {"x-request-id": "xgb-root"})
    found = harness.wait_until(lambda: jaeger.search("osprey-gateway", **{
        "osprey.request_id": "xgb-root"}), TRACE_DEADLINE_S, "the gateway's own trace")
    assert len(found) == 1
    t = wait_trace(jaeger, found[0]["traceID"], 4)
    assert t.shape(None) == tree(
        node("osprey-gateway", f"POST {path}",
             node("xgb-predictor", f"POST {path}",
                  node("xgb-predictor", "queue xgb"),
                  node("xgb-predictor", "execute xgb")))), t.describe()


# A gRPC client in a process of its own (tests/integration/conftest.py: the
# gRPC client families cannot share this one): ModelInfer with the given
# traceparent metadata through the gateway's gRPC port.
GRPC_CLIENT = """
import sys
import numpy as np
import tritonclient.grpc as g
client = g.InferenceServerClient(sys.argv[1])
inp = g.InferInput("input-0", [2, 4], "FP32")
inp.set_data_from_numpy(np.array(%r, dtype=np.float32))
result = client.infer(sys.argv[2], [inp], headers={"traceparent": sys.argv[3]})
print(result.get_response().outputs[0].name)
""" % (IRIS,)


def test_grpc_call_is_one_trace_through_gateway_and_replica(platform, jaeger, services):
    trace_id, client_span, traceparent = new_traceparent()
    r = subprocess.run([sys.executable, "-c", GRPC_CLIENT, f"127.0.0.1:{platform.grpc_port}", "xgb", traceparent],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    method = "inference.GRPCInferenceService/ModelInfer"
    t = wait_trace(jaeger, trace_id, 4)
    assert t.shape(client_span) == tree(
        node("osprey-gateway", method,
             node("xgb-predictor", method,
                  node("xgb-predictor", "queue xgb"),
                  node("xgb-predictor", "execute xgb")))), t.describe()
    gateway = t.find("osprey-gateway", method)
    assert gateway["tags"]["rpc.system"] == "grpc" and gateway["tags"]["rpc.method"] == "ModelInfer"
    assert gateway["tags"]["rpc.grpc.status_code"] == 0, gateway["tags"]
    assert gateway["tags"]["osprey.inferenceservice"] == "xgb"
    replica = t.find("xgb-predictor", method)
    assert replica["tags"]["rpc.service"] == "inference.GRPCInferenceService", replica["tags"]


def test_a_cold_start_waits_in_the_activator_queue_span(platform, jaeger, services):
    harness.wait_until(lambda: sum(r["status"].get("replicas", 0)
                                   for r in platform.revisions("cold")) == 0,
                       60, "cold at zero replicas", interval=0.2)
    trace_id, client_span, traceparent = new_traceparent()
    predict(platform, "cold", {"traceparent": traceparent})
    t = wait_trace(jaeger, trace_id, 5)
    path = "/v1/models/cold:predict"
    assert t.shape(client_span) == tree(
        node("osprey-gateway", f"POST {path}",
             node("osprey-gateway", "activator queue"),
             node("cold-predictor", f"POST {path}",
                  node("cold-predictor", "queue cold"),
                  node("cold-predictor", "execute cold")))), t.describe()
    gateway = t.find("osprey-gateway", f"POST {path}")
    queue = t.find("osprey-gateway", "activator queue")
    replica = t.find("cold-predictor", f"POST {path}")
    assert gateway["tags"]["osprey.cold_start"] is True
    assert queue["tags"]["osprey.cold_start"] is True
    assert queue["tags"]["osprey.revision"] == "cold-predictor-00001"
    # The replica took the request once the wait was over.
    assert queue["start"] + queue["duration"] <= replica["start"] + 200
    assert queue["duration"] > 0


def test_replica_gets_the_gateways_traceparent_and_the_clients_tracestate(platform, jaeger,
                                                                          services):
    trace_id, client_span, traceparent = new_traceparent()
    seen = post(platform, "echo", "/v1/models/echo:predict", {"instances": IRIS},
                {"traceparent": traceparent, "tracestate": "vendor=abc,other=1"}).json()
    t = wait_trace(jaeger, trace_id, 1)
    gateway = t.find("osprey-gateway", "POST /v1/models/echo:predict")
    assert gateway["parent"] == client_span
    assert seen["traceparent"] == f"00-{trace_id}-{gateway['id']}-01"
    assert seen["tracestate"] == "vendor=abc,other=1"
    assert seen["x-b3-traceid"] == trace_id


def test_transformer_hop_hangs_under_the_transformers_span(platform, jaeger, services):
    trace_id, client_span, traceparent = new_traceparent()
    r = post(platform, "flowers", "/v1/models/flowers:predict",
             {"instances": [{"flower_id": "f-03"}]}, {"traceparent": traceparent})
    assert r.json()["predictions"][0]["flower_id"] == "f-03"
    t = wait_trace(jaeger, trace_id, 5)
    # The predictor's hop comes in by path (/serving/default/flowers-predictor/...),
    # named by the path sent on, the prefix cut off.
    path = "/v1/models/flowers:predict"
    assert t.shape(client_span) == tree(
        node("osprey-gateway", f"POST {path}",
             node("osprey-gateway", f"POST {path}",
                  node("flowers-predictor", f"POST {path}",
                       node("flowers-predictor", "queue flowers"),
                       node("flowers-predictor", "execute flowers"))))), t.describe()
    by_component = {s["tags"]["osprey.component"]: s for s in t.spans.values()
                    if s["service"] == "osprey-gateway"}
    assert sorted(by_component) == ["predictor", "transformer"]
    assert by_component["transformer"]["parent"] == client_span
    assert by_component["predictor"]["parent"] == by_component["transformer"]["id"]


def test_graph_steps_are_children_of_the_graphs_span(platform, jaeger, services):
    trace_id, client_span, traceparent = new_traceparent()
    post(platform, "chain", "/", {"instances": IRIS}, {"traceparent": traceparent})
    t = wait_trace(jaeger, trace_id, 10)
    skl, xgb = "/v1/models/skl:predict", "/v1/models/xgb:predict"
    assert t.shape(client_span) == tree(
        node("osprey-gateway", "POST /",
             node("osprey-gateway", f"POST {skl}",
                  node("skl-predictor", f"POST {skl}",
                       node("skl-predictor", "queue skl"),
                       node("skl-predictor", "execute skl",
                            node("skl-predictor", "python sklearn predict")))),
             node("osprey-gateway", f"POST {xgb}",
                  node("xgb-predictor", f"POST {xgb}",
                       node("xgb-predictor", "queue xgb"),
                       node("xgb-predictor", "execute xgb"))))), t.describe()
    graph = t.find("osprey-gateway", "POST /")
    assert graph["tags"]["osprey.inferencegraph"] == "default/chain"
    assert graph["tags"]["span.kind"] == "server"
    assert t.find("osprey-gateway", f"POST {skl}")["tags"]["span.kind"] == "client"


def test_sampling_zero_by_annotation(platform, jaeger, services):
    # A request that starts its trace at the quiet service: nothing; then one
    # at a traced service, whose trace arriving shows the gateway's exporter
    # has sent everything before it.
    predict(platform, "quiet", {"x-request-id": "quiet-1"})
    predict(platform, "xgb", {"x-request-id": "after-quiet-1"})
    harness.wait_until(lambda: jaeger.search("osprey-gateway", **{
        "osprey.request_id": "after-quiet-1"}), TRACE_DEADLINE_S, "the traced request's trace")
    assert jaeger.search("osprey-gateway", **{"osprey.request_id": "quiet-1"}) == []
    assert "quiet-predictor" not in jaeger.services()

    # A client's sampled traceparent wins (the sampler is parent-based).
    trace_id, client_span, traceparent = new_traceparent()
    predict(platform, "quiet", {"traceparent": traceparent})
    t = wait_trace(jaeger, trace_id, 4)
    assert t.find("osprey-gateway", "POST /v1/models/quiet:predict")["parent"] == client_span


def metric(text, name):
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_exporter_counters_on_metrics(platform, jaeger, services):
    predict(platform, "skl")
    for text in (requests.get(f"{platform.api}/metrics", timeout=5).text,
                 requests.get(f"http://127.0.0.1:"
                              f"{platform.revisions('skl')[0]['status']['replicaStatuses'][0]['port']}"
                              f"/metrics", timeout=5).text):
        assert "# TYPE osprey_trace_spans_dropped_total counter" in text
        assert metric(text, "osprey_trace_spans_dropped_total") == 0
        assert metric(text, "osprey_trace_export_failures_total") == 0
    harness.wait_until(
        lambda: metric(requests.get(f"{platform.api}/metrics", timeout=5).text,
                       "osprey_trace_spans_exported_total") > 0,
        TRACE_DEADLINE_S, "spans exported by the gateway")
