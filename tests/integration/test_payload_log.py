"""Payload logging (the InferenceService `logger`) end to end through `osprey up`.

A real CloudEvents receiver runs in the test: a small http.server whose
every POST is parsed by the CloudEvents SDK's `from_http(headers, body)`.
What could fail here: the modes (all, request, response), metadataHeaders
and metadataAnnotations, the request and response events sharing Ce-Id,
bodies byte for byte, a failed request logged with its status, a logger on
the transformer and one on the predictor (Ce-Component, one Ce-Id through
both), a sink that is down (requests still answered at once, retries and
give-ups counted on /metrics, delivery resuming once it is back) and a slow
sink (requests still answered at once, every event delivered).
"""

import http.server
import json
import re
import threading
import time
import uuid

import cloudevents.http as cloudevents_http
import pytest
import requests

import harness
from platform_harness import Platform, example_models, isvc_yaml

IRIS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
REQ = "org.kubeflow.serving.inference.request"
RESP = "org.kubeflow.serving.inference.response"

# A custom-container predictor answering every POST with the status in
# its `status` file and a fixed body; a transformer (with --predictor_host)
# passing each POST body and x-request-id on to its predictor.
PROBE = r"""
import http.server, os, sys, urllib.request, urllib.error
args = sys.argv[1:]
predictor = args[args.index("--predictor_host") + 1] if "--predictor_host" in args else None
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if predictor:
            req = urllib.request.Request("http://" + predictor + self.path, data=raw, headers={
                "Content-Type": "application/json",
                "x-request-id": self.headers.get("x-request-id", "")})
            try:
                with urllib.request.urlopen(req) as r:
                    status, data = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, data = e.code, e.read()
        else:
            status = int(open("status").read())
            data = b'{"detail": "the probe says ' + str(status).encode() + b'"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


class Sink:
    """A CloudEvents receiver on a fixed port: every POST parsed by the SDK.

    `delay` seconds before each answer; stop() and start() again on the same
    port (a sink that goes down and comes back)."""

    def __init__(self, port):
        self.port = port
        self.events = []  # (path, CloudEvent, the raw body)
        self.errors = []
        self.delay = 0.0
        self.lock = threading.Lock()
        self.server = None

    def start(self):
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    event = cloudevents_http.from_http(dict(self.headers.items()), body)
                    with sink.lock:
                        sink.events.append((self.path, event, body))
                except Exception as e:  # noqa: BLE001 (kept for the assertion)
                    with sink.lock:
                        sink.errors.append(repr(e))
                if sink.delay:
                    time.sleep(sink.delay)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}/{path}"

    def at(self, path):
        with self.lock:
            return [e for p, e, _ in self.events if p == "/" + path]

    def raw(self, path, ce_id):
        """The raw bodies of the events with `ce_id`, by type."""
        with self.lock:
            return {e["type"]: b for p, e, b in self.events if p == "/" + path and e["id"] == ce_id}

    def by_id(self, path, ce_id):
        return [e for e in self.at(path) if e["id"] == ce_id]


@pytest.fixture(scope="module")
def examples_dir():
    return example_models()


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory, examples_dir):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("payload-log") / "home").start()
    yield p
    p.stop_everything()


@pytest.fixture(scope="module")
def sink():
    s = Sink(harness.free_ports(1)[0]).start()
    yield s
    s.stop()


def logger(url, mode="all", extra=""):
    return f"\n    logger:\n      url: {url}\n      mode: {mode}{extra}"


def post(platform, name, body=None, headers=None, path=None):
    h = {"Host": platform.host(name), **(headers or {})}
    data = body if body is not None else json.dumps({"instances": IRIS}).encode()
    return requests.post(f"{platform.gateway}{path or f'/v1/models/{name}:predict'}", data=data,
                         headers={"Content-Type": "application/json", **h},
                         timeout=harness.HTTP_TIMEOUT_S)


def gateway_metric(platform, name, labels=""):
    text = requests.get(f"{platform.api}/metrics", timeout=5).text
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def events_total(platform, result):
    return gateway_metric(platform, "osprey_gateway_payload_log_events_total",
                          f'{{result="{result}"}}') or 0


@pytest.fixture(scope="module")
def services(platform, sink, examples_dir, tmp_path_factory):
    model = examples_dir / "xgboost-iris"
    annotations = "\n  annotations:\n    team: fraud\n    other: x"
    docs = [
        isvc_yaml("log-all", "xgboost", model, extra_predictor=logger(
            sink.url("all"), "all",
            "\n      metadataHeaders: [x-tenant, X-B3-TraceId]"
            "\n      metadataAnnotations: [team]")).replace(
                "  name: log-all", "  name: log-all" + annotations),
        isvc_yaml("log-req", "xgboost", model, extra_predictor=logger(sink.url("req"), "request")),
        isvc_yaml("log-resp", "xgboost", model,
                  extra_predictor=logger(sink.url("resp"), "response")),
        isvc_yaml("no-log", "xgboost", model),
    ]
    root = tmp_path_factory.mktemp("probes")
    for name, status in (("failing", 500), ("chain", 200)):
        d = root / name
        d.mkdir()
        (d / "server.py").write_text(PROBE)
        (d / "status").write_text(str(status))
    docs.append(f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: failing
spec:
  predictor:{logger(sink.url("failing"))}
    containers:
      - name: kserve-container
        image: example.com/probe:1
        command: ["python3", "server.py"]
        env:
          - name: STORAGE_URI
            value: {root / "failing"}
""")
    docs.append(f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: chain
spec:
  predictor:{logger(sink.url("chain-p"), "all")}
    model:
      modelFormat:
        name: xgboost
      storageUri: {model}
  transformer:{logger(sink.url("chain-t"), "all")}
    containers:
      - name: kserve-container
        image: example.com/transformer:1
        command: ["python3", "server.py"]
        env:
          - name: STORAGE_URI
            value: {root / "chain"}
""")
    platform.apply_text("---\n".join(docs))
    return docs


def test_mode_all_logs_both_payloads_with_one_id(platform, sink, services):
    body = json.dumps({"instances": IRIS}, separators=(",", ":")).encode()
    r = post(platform, "log-all", body, headers={
        "x-request-id": "rid-all-1", "X-Tenant": "acme", "x-b3-traceid": "abc123"})
    assert r.status_code == 200, r.text
    events = harness.wait_until(lambda: len(sink.by_id("all", "rid-all-1")) == 2 and
                                sink.by_id("all", "rid-all-1"), 10, "both events")
    assert not sink.errors
    by_type = {e["type"]: e for e in events}
    assert set(by_type) == {REQ, RESP}
    req, resp = by_type[REQ], by_type[RESP]
    assert req.data == json.loads(body)  # the SDK parses JSON data
    for e in (req, resp):
        assert e["specversion"] == "1.0"
        assert e["inferenceservicename"] == "log-all"
        assert e["namespace"] == "default"
        assert e["component"] == "predictor"
        assert e["source"].startswith("log-all-predictor-")
        assert e["endpoint"] == e["source"]
        assert json.loads(e["metadata"]) == {"X-Tenant": ["acme"], "X-B3-Traceid": ["abc123"]}
        assert json.loads(e["annotations"]) == {"team": "fraud"}
        assert e["time"]
    assert resp["httpstatus"] == "200"
    assert resp.data == r.json()
    assert req["time"] <= resp["time"]


def test_bodies_arrive_byte_for_byte(platform, sink, services):
    # Odd spacing and key order: the event carries the bytes, not a re-encoding.
    body = b'{ "instances" :[[6.8,2.8,4.8,1.4]] ,"z":1}'
    r = post(platform, "log-all", body, headers={"x-request-id": "rid-bytes"})
    assert r.status_code == 200, r.text
    harness.wait_until(lambda: len(sink.by_id("all", "rid-bytes")) == 2, 10, "events")
    raw = sink.raw("all", "rid-bytes")
    assert raw[REQ] == body
    assert raw[RESP] == r.content


def test_mode_request_and_mode_response(platform, sink, services):
    for name in ("log-req", "log-resp"):
        r = post(platform, name, headers={"x-request-id": f"rid-{name}"})
        assert r.status_code == 200, r.text
    harness.wait_until(lambda: sink.by_id("req", "rid-log-req") and
                       sink.by_id("resp", "rid-log-resp"), 10, "events")
    assert [e["type"] for e in sink.by_id("req", "rid-log-req")] == [REQ]
    assert [e["type"] for e in sink.by_id("resp", "rid-log-resp")] == [RESP]
    assert json.loads(sink.by_id("req", "rid-log-req")[0]["metadata"]) == {}


def test_generated_id_is_shared_and_answered(platform, sink, services):
    r = post(platform, "log-all")
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    events = harness.wait_until(lambda: len(sink.by_id("all", rid)) == 2 and
                                sink.by_id("all", rid), 10, "events")
    assert {e["type"] for e in events} == {REQ, RESP}


def test_a_failed_request_is_logged_with_its_status(platform, sink, services):
    r = post(platform, "failing", headers={"x-request-id": "rid-fail"})
    assert r.status_code == 500
    events = harness.wait_until(lambda: len(sink.by_id("failing", "rid-fail")) == 2 and
                                sink.by_id("failing", "rid-fail"), 10, "events")
    resp = [e for e in events if e["type"] == RESP][0]
    assert resp["httpstatus"] == "500"
    assert resp.data == {"detail": "the probe says 500"}


def test_transformer_and_predictor_log_as_their_components(platform, sink, services):
    r = post(platform, "chain", headers={"x-request-id": "rid-chain"})
    assert r.status_code == 200, r.text
    harness.wait_until(lambda: len(sink.by_id("chain-t", "rid-chain")) == 2 and
                       len(sink.by_id("chain-p", "rid-chain")) == 2, 10, "events")
    assert {e["component"] for e in sink.by_id("chain-t", "rid-chain")} == {"transformer"}
    assert {e["component"] for e in sink.by_id("chain-p", "rid-chain")} == {"predictor"}
    assert {e["source"] for e in sink.by_id("chain-t", "rid-chain")} == {
        next(e["source"] for e in sink.by_id("chain-t", "rid-chain"))}
    assert all(e["source"].startswith("chain-transformer-")
               for e in sink.by_id("chain-t", "rid-chain"))
    # The transformer passed the request on as it got it.
    resp_t = [e for e in sink.by_id("chain-t", "rid-chain") if e["type"] == RESP][0]
    assert resp_t.data == r.json()


def timed_requests(platform, name, n):
    latencies = []
    start = time.monotonic()
    with requests.Session() as s:
        for i in range(n):
            t = time.monotonic()
            r = s.post(f"{platform.gateway}/v1/models/{name}:predict",
                       data=json.dumps({"instances": IRIS}),
                       headers={"Host": platform.host(name), "Content-Type": "application/json",
                                "x-request-id": f"{name}-{uuid.uuid4().hex}"},
                       timeout=harness.HTTP_TIMEOUT_S)
            latencies.append(time.monotonic() - t)
            assert r.status_code == 200, r.text
    return time.monotonic() - start, max(latencies)


def test_a_down_sink_costs_requests_nothing_and_delivery_resumes(platform, services,
                                                                 examples_dir):
    port = harness.free_ports(1)[0]
    down = Sink(port)
    platform.apply_text(isvc_yaml("log-down", "xgboost", examples_dir / "xgboost-iris",
                                  extra_predictor=logger(down.url("down"))))
    baseline, _ = timed_requests(platform, "no-log", 100)
    failed0, retries0 = events_total(platform, "failed"), gateway_metric(
        platform, "osprey_gateway_payload_log_retries_total") or 0
    elapsed, worst = timed_requests(platform, "log-down", 100)
    # Answered at full speed: no request waited for the sink.
    assert elapsed < 2 * baseline + 1.0, (elapsed, baseline)
    assert worst < 0.5, worst
    harness.wait_until(lambda: (gateway_metric(
        platform, "osprey_gateway_payload_log_retries_total") or 0) > retries0, 10, "retries")
    harness.wait_until(lambda: events_total(platform, "failed") > failed0, 10, "a give-up")
    down.start()
    try:
        # Every event is either delivered once the sink is back or given up.
        harness.wait_until(
            lambda: len(down.at("down")) + events_total(platform, "failed") - failed0 >= 200,
            60, "every event delivered or given up")
        assert len(down.at("down")) > 0
        assert not down.errors
        # Delivery resumed: a new request's events arrive.
        r = post(platform, "log-down", headers={"x-request-id": "rid-back"})
        assert r.status_code == 200
        harness.wait_until(lambda: len(down.by_id("down", "rid-back")) == 2, 10, "events")
    finally:
        down.stop()


def test_a_slow_sink_costs_requests_nothing(platform, sink, services):
    baseline, _ = timed_requests(platform, "no-log", 50)
    sink.delay = 0.05
    try:
        before = len(sink.at("all"))
        elapsed, worst = timed_requests(platform, "log-all", 50)
        assert elapsed < 2 * baseline + 1.0, (elapsed, baseline)
        # 100 events at 50 ms each on two senders: about 2.5 s.
        harness.wait_until(lambda: len(sink.at("all")) - before >= 100, 30, "every event")
    finally:
        sink.delay = 0.0
    assert events_total(platform, "dropped") == 0
    text = requests.get(f"{platform.api}/metrics", timeout=5).text
    assert "# TYPE osprey_gateway_payload_log_queue_depth gauge" in text


def test_the_logger_is_validated_by_field(platform):
    r = platform.apply_text(isvc_yaml("bad-log", "xgboost", "/nowhere",
                                      extra_predictor=logger("kafka://broker/topic")),
                            wait=False, check=False)
    assert r.returncode != 0
    assert "spec.predictor.logger.url" in r.stdout + r.stderr
