"""InferenceGraph end to end through `osprey up`: KServe's YAML applied with
the real CLI, the graph run inside the gateway, its steps real replicas
(native XGBoost and scikit-learn models, and a probe container that echoes
what it receives). What could fail here: the graph's status and route
(serviceName resolved to the service's predict URL), each router type as
KServe's router behaves (Sequence with $response, Switch conditions and its
404, Ensemble keyed by step name, Splitter weights, Hard and Soft
dependencies, a node calling a node), header propagation to every step, and
steps that scale from zero through the activator.
"""

import http.server
import json
import threading
import time
from pathlib import Path

import pytest
import requests

import harness
from platform_harness import Platform, example_models, isvc_yaml

STABLE_WINDOW_S = 2
GRACE_S = 1
IRIS_CM = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]  # both class 1 (KServe's e2e rows)
IRIS_MM = [[v * 10 for v in row] for row in IRIS_CM]

# A step container: answers every POST as its `mode` file says, and logs the
# request (path, headers, body) to requests.log, one JSON line each.
#   echo        {"service": NAME, "headers": {...}, "body": ...}
#   mm2cm       {"instances": rows / 10} (a transform: millimetres to centimetres)
#   status:N    N {"detail": "Intentional N code"}
#   sleep:S     echo, after S seconds
PROBE = r"""
import http.server, json, os, time
name = open("name").read().strip()
mode = open("mode").read().strip()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        with open("requests.log", "a") as f:
            f.write(json.dumps({"path": self.path, "headers": headers, "body": body}) + "\n")
        status = 200
        if mode.startswith("sleep:"):
            time.sleep(float(mode.split(":")[1]))
        if mode == "echo" or mode.startswith("sleep:"):
            out = {"service": name, "headers": headers, "body": body}
        elif mode == "mm2cm":
            out = {"instances": [[v / 10 for v in row] for row in body["instances"]]}
        else:
            status = int(mode.split(":")[1])
            out = {"detail": f"Intentional {status} code"}
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def examples_dir():
    return example_models()


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory, examples_dir):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("graph") / "home",
                 extra_args=["--autoscale-tick-ms", "200", "--stable-window-s",
                             str(STABLE_WINDOW_S), "--scale-to-zero-grace-s", str(GRACE_S),
                             # KServe's documented router config: headers.propagate
                             "--graph-propagate-headers", "Authorization,Test-Header-*"]).start()
    yield p
    p.stop_everything()


@pytest.fixture(scope="module")
def probes(platform, tmp_path_factory):
    """Applies probe services on first use; returns their directories by name."""
    root = tmp_path_factory.mktemp("probes")
    made = {}

    def probe(name, mode="echo"):
        if name not in made:
            d = root / name
            d.mkdir()
            (d / "server.py").write_text(PROBE)
            (d / "name").write_text(name)
            (d / "mode").write_text(mode)
            platform.apply_text(f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
spec:
  predictor:
    containers:
      - name: kserve-container
        image: example.com/probe:1
        command: ["python3", "server.py"]
        env:
          - name: STORAGE_URI
            value: {d}
""")
            made[name] = d
        return made[name]
    return probe


@pytest.fixture(scope="module")
def models(platform, examples_dir):
    """The XGBoost and scikit-learn iris classifiers as InferenceServices."""
    platform.apply_text(isvc_yaml("xgb-iris", "xgboost", examples_dir / "xgboost-iris"))
    platform.apply_text(isvc_yaml("sk-iris", "sklearn", examples_dir / "sklearn-iris"))
    return ("xgb-iris", "sk-iris")


def graph_condition(platform, name, ctype="Ready"):
    item = platform.get_json("ig", name)
    for c in item.get("status", {}).get("conditions", []):
        if c["type"] == ctype:
            return c
    return {}


def apply_graph(platform, name, nodes, extra_spec=""):
    platform.apply_text(f"""apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: {name}
spec:{extra_spec}
  nodes:
{nodes}""", wait=False)
    harness.wait_until(lambda: graph_condition(platform, name).get("status") == "True",
                       30, f"InferenceGraph {name} Ready")


def call(platform, graph, body, headers=None, path="/"):
    h = {"Host": f"{graph}-default.example.com", **(headers or {})}
    return requests.post(f"{platform.gateway}{path}", data=json.dumps(body), headers=h,
                         timeout=harness.HTTP_TIMEOUT_S)


def logged(probe_dir):
    path = Path(probe_dir) / "requests.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sequence_transform_then_classifier(platform, probes, models):
    probes("mm2cm", "mm2cm")
    apply_graph(platform, "chain", """    root:
      routerType: Sequence
      steps:
      - serviceName: mm2cm
        name: transform
      - serviceName: xgb-iris
        name: classify
        data: $response
""")
    r = call(platform, "chain", {"instances": IRIS_MM})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1.0, 1.0]}
    assert r.headers["Content-Type"] == "application/json"
    # The transform got the request on its InferenceService's predict path.
    assert logged(probes("mm2cm"))[-1]["path"] == "/v1/models/mm2cm:predict"
    # Status and `osprey get ig` as KServe shows them.
    item = platform.get_json("ig", "chain")
    assert item["status"]["url"] == f"http://chain-default.example.com:{platform.gateway_port}"
    types = {c["type"]: c["status"] for c in item["status"]["conditions"]}
    assert types == {"ConfigurationsReady": "True", "Ready": "True", "RoutesReady": "True",
                     "Stopped": "False"}, types
    table = platform.cli("get", "ig").stdout.splitlines()
    assert table[0].split() == ["NAME", "URL", "READY", "AGE"], table
    row = next(line.split() for line in table[1:] if line.startswith("chain "))
    assert row[1:3] == [item["status"]["url"], "True"], row


def test_graph_waits_for_its_services(platform, probes):
    apply_graph_text = """apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: early
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
      - serviceName: late-echo
"""
    platform.apply_text(apply_graph_text, wait=False)
    harness.wait_until(lambda: graph_condition(platform, "early").get("reason") ==
                       "ServiceNotFound", 30, "the graph to report its missing service")
    assert graph_condition(platform, "early")["status"] == "False"
    assert call(platform, "early", {}).status_code == 404  # not routed
    probes("late-echo")
    harness.wait_until(lambda: graph_condition(platform, "early").get("status") == "True", 30,
                       "the graph Ready once its service is")
    r = call(platform, "early", {"x": 1})
    assert r.status_code == 200 and r.json()["service"] == "late-echo", r.text


def test_switch_on_a_request_field(platform, probes):
    probes("echo-a")
    probes("echo-b")
    apply_graph(platform, "switch", """    root:
      routerType: Switch
      steps:
      - serviceName: echo-a
        condition: "[@this].#(decision_picker==A)"
      - serviceName: echo-b
        condition: "[@this].#(decision_picker==B)"
""")
    for picker, service in (("A", "echo-a"), ("B", "echo-b")):
        r = call(platform, "switch", {"decision_picker": picker, "key1": {"name": "abc"}})
        assert r.status_code == 200, r.text
        assert r.json()["service"] == service
        assert r.json()["body"] == {"decision_picker": picker, "key1": {"name": "abc"}}
    r = call(platform, "switch", {"decision_picker": "NO_MATCH"})
    assert r.status_code == 404
    assert r.json() == {"error": "Failed to process request",
                        "cause": "None of the routes matched with the switch condition"}


def test_ensemble_of_two_models(platform, models):
    apply_graph(platform, "ensemble", """    root:
      routerType: Ensemble
      steps:
      - serviceName: xgb-iris
        name: xgb
      - serviceName: sk-iris
        name: sklearn
""")
    r = call(platform, "ensemble", {"instances": IRIS_CM})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["sklearn", "xgb"], body  # keys sorted, as Go encodes a map
    assert body["xgb"] == {"predictions": [1, 1]}
    assert body["sklearn"] == {"predictions": [1, 1]}


def test_splitter_within_one_point_over_2000_requests(platform, probes):
    probes("split-a")
    probes("split-b")
    apply_graph(platform, "splitter", """    root:
      routerType: Splitter
      steps:
      - serviceName: split-a
        weight: 30
      - serviceName: split-b
        weight: 70
""")
    n = 2000
    session = requests.Session()
    counts = {}
    for _ in range(n):
        r = session.post(f"{platform.gateway}/", data="{}",
                         headers={"Host": "splitter-default.example.com"}, timeout=30)
        assert r.status_code == 200, r.text
        service = r.json()["service"]
        counts[service] = counts.get(service, 0) + 1
    assert set(counts) == {"split-a", "split-b"}, counts
    share = counts["split-a"] / n
    assert abs(share - 0.30) <= 0.01, counts


def test_hard_dependency_failing_stops_the_graph(platform, probes):
    probes("err-404", "status:404")
    ok = probes("ok-echo")
    before = len(logged(ok))
    apply_graph(platform, "hard", """    root:
      routerType: Sequence
      steps:
      - serviceName: err-404
        name: rootStep1
        dependency: Hard
      - serviceName: ok-echo
        name: rootStep2
        dependency: Soft
""")
    r = call(platform, "hard", {"x": 1})
    assert r.status_code == 404
    assert r.json() == {"detail": "Intentional 404 code"}
    assert len(logged(ok)) == before, "a step after a failed Hard one must not run"


def test_soft_dependency_failing_continues(platform, probes):
    probes("err-404", "status:404")
    probes("ok-echo")
    apply_graph(platform, "soft", """    root:
      routerType: Sequence
      steps:
      - serviceName: err-404
        name: rootStep1
        dependency: Soft
      - serviceName: ok-echo
        name: rootStep2
""")
    r = call(platform, "soft", {"x": 1})
    assert r.status_code == 200, r.text
    assert r.json()["service"] == "ok-echo"
    assert r.json()["body"] == {"x": 1}  # no data: $response, so the request


def test_a_node_calls_a_node(platform, probes, models):
    probes("mm2cm", "mm2cm")
    apply_graph(platform, "nested", """    root:
      routerType: Sequence
      steps:
      - serviceName: mm2cm
      - nodeName: vote
        data: $response
    vote:
      routerType: Ensemble
      steps:
      - serviceName: xgb-iris
        name: xgb
      - serviceName: sk-iris
        name: sklearn
""")
    r = call(platform, "nested", {"instances": IRIS_MM})
    assert r.status_code == 200, r.text
    assert r.json() == {"sklearn": {"predictions": [1, 1]}, "xgb": {"predictions": [1, 1]}}


def test_headers_reach_every_step(platform, probes):
    dirs = {name: probes(name) for name in ("hdr-a", "hdr-b", "hdr-c")}
    apply_graph(platform, "headers", """    root:
      routerType: Sequence
      steps:
      - serviceName: hdr-a
      - nodeName: fan
    fan:
      routerType: Ensemble
      steps:
      - serviceName: hdr-b
        name: b
      - serviceName: hdr-c
        name: c
""")
    before = {name: len(logged(d)) for name, d in dirs.items()}
    r = call(platform, "headers", {"x": 1},
             headers={"Authorization": "Bearer t0ken", "test-header-key": "v1",
                      "X-Other": "kept-back", "x-request-id": "graph-req-1"})
    assert r.status_code == 200, r.text
    for name, d in dirs.items():
        entries = logged(d)
        assert len(entries) == before[name] + 1, name
        h = entries[-1]["headers"]
        assert h.get("authorization") == "Bearer t0ken", (name, h)
        assert h.get("test-header-key") == "v1", (name, h)
        assert "x-other" not in h, (name, h)  # not in the propagation patterns
        assert h.get("content-type") == "application/json", (name, h)
        assert h.get("x-request-id") == "graph-req-1", (name, h)
        assert entries[-1]["body"] == {"x": 1}, name


def test_graph_steps_scale_from_zero(platform, examples_dir):
    platform.apply_text(isvc_yaml("cold-iris", "xgboost", examples_dir / "xgboost-iris",
                                  extra_predictor="\n    minReplicas: 0"))
    apply_graph(platform, "cold", """    root:
      routerType: Sequence
      steps:
      - serviceName: cold-iris
""")

    def replicas():
        return sum(r["status"]["replicas"] for r in platform.revisions("cold-iris"))

    harness.wait_until(lambda: replicas() == 0, STABLE_WINDOW_S + GRACE_S + 20,
                       "cold-iris at zero replicas")
    assert graph_condition(platform, "cold")["status"] == "True"
    r = call(platform, "cold", {"instances": IRIS_CM})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1.0, 1.0]}
    assert replicas() >= 1


def test_delete_unroutes_the_graph(platform, probes):
    probes("echo-a")
    apply_graph(platform, "gone", """    root:
      routerType: Sequence
      steps:
      - serviceName: echo-a
""")
    assert call(platform, "gone", {}).status_code == 200
    platform.cli("delete", "ig", "gone")
    harness.wait_until(lambda: call(platform, "gone", {}).status_code == 404, 10,
                       "the graph's host unrouted")


def test_graph_timeout_answers_504(platform, probes):
    probes("slow", "sleep:5")
    apply_graph(platform, "hasty", """    root:
      routerType: Sequence
      steps:
      - serviceName: slow
""", extra_spec="\n  timeout: 1")
    t0 = time.monotonic()
    r = call(platform, "hasty", {})
    took = time.monotonic() - t0
    assert r.status_code == 504, r.text
    assert r.json()["error"] == "Failed to process request"
    assert 0.9 < took < 4, took


def test_step_client_timeout_is_an_error(platform, probes):
    probes("slow", "sleep:5")
    apply_graph(platform, "impatient", """    root:
      routerType: Sequence
      steps:
      - serviceName: slow
        dependency: Soft
""", extra_spec="\n  routerTimeouts:\n    serviceClient: 1")
    r = call(platform, "impatient", {})
    assert r.status_code == 500, r.text
    assert "serviceClient" in r.json()["cause"], r.text


class Outside(http.server.BaseHTTPRequestHandler):
    """A service outside the platform: answers its path and Host."""
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        data = json.dumps({"outside": self.path, "host": self.headers["Host"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_outside_url_step_and_restart(osprey_bin, tmp_path):
    server = http.server.ThreadingHTTPServer((harness.HOST, 0), Outside)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    p = Platform(osprey_bin, tmp_path / "home").start()
    try:
        apply_graph(p, "outside", f"""    root:
      routerType: Sequence
      steps:
      - serviceUrl: http://{harness.HOST}:{port}/score?x=1
""")
        r = call(p, "outside", {})
        assert r.status_code == 200, r.text
        assert r.json() == {"outside": "/score?x=1", "host": f"{harness.HOST}:{port}"}
        ready_since = graph_condition(p, "outside")["lastTransitionTime"]
        p.stop()
        p.start()  # the store keeps the graph and its status; it is routed again
        harness.wait_until(lambda: graph_condition(p, "outside").get("status") == "True", 30,
                           "the graph Ready after a restart")
        assert call(p, "outside", {}).status_code == 200
        # Ready all along: the same transition time, one Ready event.
        assert graph_condition(p, "outside")["lastTransitionTime"] == ready_since
        events = p.cli("get", "events").stdout
        assert events.count("InferenceGraphReady") == 1, events
        assert "inferencegraph/outside" in events, events
    finally:
        p.stop_everything()
        server.shutdown()
