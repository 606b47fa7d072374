"""`osprey gateway` end to end, against the real control plane (conftest.py).

The gateway runs as a local process with the test's kubeconfig.

- Routes alone: an InferenceService whose status is written by hand through the
  status subresource, and EndpointSlices written by hand that point at small
  HTTP servers on pod-like addresses (10.245.X.Y/32 added to `lo`: the API
  server refuses loopback addresses in EndpointSlices). No operator, no
  Deployment: only the gateway reads the cluster.
- With the operator and the test node (kubelet.py): a real revision
  Deployment, its pods running `osprey serve`, its EndpointSlices made by
  kube-controller-manager; the gateway routes to the pod, scales the revision
  to zero when idle and back to one for a request it holds.
"""

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from kubeenv import REPO_ROOT, wait_until
from osprey_process import OspreyProcess, free_port

OSPREY = Path(os.environ.get("OSPREY_BIN")
              or REPO_ROOT / "build" / "dev" / "apps" / "osprey" / "osprey").resolve()
TRAINER = REPO_ROOT / "tests" / "fixtures" / "train_iris.py"
FIXTURES = Path(os.environ.get("OSPREY_FIXTURES") or REPO_ROOT / "build" / "fixtures").resolve()
ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"
SLICE_PATH = "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
ADDRESS_LABEL = "lo:ospreygw"


@pytest.fixture
def pod_addresses():
    """Three pod-like addresses on lo (10.245.X.2-4), removed afterwards."""
    base = f"10.245.{random.randrange(1, 250)}"
    added = []
    for last in (2, 3, 4):
        ip = f"{base}.{last}"
        proc = subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo", "label", ADDRESS_LABEL],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            for a in added:
                subprocess.run(["ip", "addr", "del", f"{a}/32", "dev", "lo"], capture_output=True)
            pytest.skip(f"cannot add {ip} to lo (needs CAP_NET_ADMIN): {proc.stderr.strip()}")
        added.append(ip)
    yield added
    for a in added:
        subprocess.run(["ip", "addr", "del", f"{a}/32", "dev", "lo"], capture_output=True)


class Backend:
    """A replica stand-in: answers every request with its name (JSON and an
    x-backend header), on `ip`:`port`."""

    def __init__(self, name, ip, port):
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # Head and body leave in two writes: without this, Nagle holds
                # the body until the gateway's delayed ACK (40 ms a request).
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                backend.hits += 1
                body = json.dumps({"backend": name, "path": self.path,
                                   "host": self.headers.get("Host")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("x-backend", name)
                self.end_headers()
                self.wfile.write(body)

            do_GET = answer
            do_POST = answer

            def log_message(self, *args):
                pass

        self.name = name
        self.hits = 0
        self.server = ThreadingHTTPServer((ip, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Gateway(OspreyProcess):
    """One `osprey gateway` process on loopback ports; its log under `dir`."""

    def __init__(self, kube, dir, *args, kubeconfig=None):
        port = free_port()
        self.grpc_port = free_port()
        super().__init__("gateway", dir, port,
                         ["--kubeconfig", kubeconfig or kube.kubeconfig, "--address", "127.0.0.1",
                          "--http-port", port, "--grpc-port", self.grpc_port, "--threads", "2",
                          "--log-level", "debug", *args])
        self.url = f"http://127.0.0.1:{self.port}"

    def status(self, path):
        return self.get(path)


@pytest.fixture
def gateway(kube, crds, tmp_path):
    started = []

    def start(*args, kubeconfig=None):
        g = Gateway(kube, tmp_path, *args, kubeconfig=kubeconfig)
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()


def endpoint_slice(ns, service, endpoints, port):
    """An EndpointSlice of Service `service`: endpoints as (ip, ready)."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-hand", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service,
                                "endpointslice.kubernetes.io/managed-by": "osprey-test"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}}
                      for ip, ready in endpoints],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }


def put_slice(kube, ns, service, endpoints, port):
    path = SLICE_PATH.format(ns=ns)
    body = endpoint_slice(ns, service, endpoints, port)
    existing = kube.api.get_or_none(f"{path}/{service}-hand")
    if existing is None:
        kube.api.post(path, body)
    else:
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        kube.api.put(f"{path}/{service}-hand", body)


def split_isvc(kube, ns, name, traffic, latest):
    """An InferenceService with its status written as the operator writes it:
    traffic = [(revision, percent, tag)]."""
    path = ISVC_PATH.format(ns=ns)
    kube.api.post(path, {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": name, "namespace": ns,
                     "annotations": {"serving.kserve.io/enable-tag-routing": "true"}},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                         "storageUri": "gs://bucket/model"}}}})
    status = {
        "url": f"http://{name}-{ns}.example.com",
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "components": {"predictor": {
            "latestCreatedRevision": latest, "latestReadyRevision": latest,
            "traffic": [dict({"revisionName": r, "percent": p, "latestRevision": r == latest},
                             **({"tag": t} if t else {})) for r, p, t in traffic]}},
    }
    kube.api.patch(f"{path}/{name}/status", {"status": status})


def send(session, gw, host, n, path="/v1/models/split:predict"):
    """n requests with Host `host`; returns ({backend: count}, failures)."""
    counts, failures = {}, []
    for _ in range(n):
        try:
            r = session.post(gw.url + path, headers={"Host": host},
                             data=b'{"instances": [[1, 2, 3, 4]]}', timeout=10)
        except requests.RequestException as e:
            failures.append(str(e))
            continue
        if r.status_code != 200:
            failures.append(f"{r.status_code} {r.text[:200]}")
            continue
        b = r.headers["x-backend"]
        counts[b] = counts.get(b, 0) + 1
    return counts, failures


def test_gateway_splits_over_endpoint_slices_and_follows_readiness(kube, namespace, gateway,
                                                                   pod_addresses):
    ns = namespace
    ip_a, ip_b, ip_c = pod_addresses
    port = free_port(ip_a)
    backends = {"a": Backend("a", ip_a, port), "b": Backend("b", ip_b, port),
                "c": Backend("c", ip_c, port)}
    try:
        r1, r2 = "split-predictor-00001", "split-predictor-00002"
        split_isvc(kube, ns, "split", [(r1, 90, "prev"), (r2, 10, "latest")], latest=r2)
        put_slice(kube, ns, r1, [(ip_a, True), (ip_b, True)], port)
        put_slice(kube, ns, r2, [(ip_c, True)], port)

        gw = gateway("--namespace", ns)
        wait_until(lambda: gw.status("/readyz") == 200, 30, "the gateway to be ready")
        host = f"split-{ns}.example.com"
        session = requests.Session()
        # The informers' first lists make the first table: it is complete.
        started = time.monotonic()
        counts, failures = send(session, gw, host, 2000)
        elapsed = time.monotonic() - started
        print(f"2000 requests through the gateway, one at a time: {elapsed:.2f} s "
              f"({2000 / elapsed:.0f}/s), {counts}")
        assert failures == [], (failures[:5], gw.tail())
        to_r1 = counts.get("a", 0) + counts.get("b", 0)
        to_r2 = counts.get("c", 0)
        assert to_r1 + to_r2 == 2000
        assert abs(to_r1 / 2000 - 0.90) <= 0.01, counts
        assert abs(to_r2 / 2000 - 0.10) <= 0.01, counts
        # One at a time, every call finds both replicas idle: the first in
        # route order takes it (least outstanding, ties in order).
        assert counts.get("a", 0) == to_r1, counts

        # Tags route to one revision each; the model name routes without a host.
        assert send(session, gw, f"latest-{host}", 20)[0] == {"c": 20}
        assert send(session, gw, f"prev-{host}", 20)[0] == {"a": 20}
        r = session.post(gw.url + "/v1/models/split:predict", headers={"Host": "elsewhere"},
                         data=b"{}", timeout=10)
        assert r.status_code == 200 and r.headers["x-osprey-revision"] in (r1, r2)

        # An endpoint turns not ready: it leaves the routes, the other takes
        # its revision's share.
        put_slice(kube, ns, r1, [(ip_a, False), (ip_b, True)], port)
        wait_until(lambda: set(send(session, gw, f"prev-{host}", 10)[0]) == {"b"}, 10,
                   f"{ip_a} to leave the routes")
        before_a = backends["a"].hits
        counts, failures = send(session, gw, host, 500)
        assert failures == [], failures[:5]
        assert backends["a"].hits == before_a and "a" not in counts, counts
        assert abs(counts.get("c", 0) - 50) <= 2 and counts.get("b", 0) + counts["c"] == 500, counts

        # A revision with no ready endpoint holds its requests until one is ready.
        updates = gw.metrics()["osprey_gateway_route_updates_total"]
        put_slice(kube, ns, r2, [(ip_c, False)], port)
        wait_until(lambda: gw.metrics()["osprey_gateway_route_updates_total"] > updates, 10,
                   "a route table without the second revision's endpoint")
        held = {}

        def call():
            held["response"] = requests.post(gw.url + "/v1/models/split:predict",
                                             headers={"Host": f"latest-{host}"}, data=b"{}",
                                             timeout=30)

        t = threading.Thread(target=call)
        t.start()
        wait_until(lambda: gw.metrics().get(
            f'osprey_gateway_queue_depth{{namespace="{ns}",inferenceservice="split",'
            f'component="predictor",revision="{r2}"}}') == 1, 10,
            "the request to wait in the gateway's queue")
        put_slice(kube, ns, r2, [(ip_c, True)], port)
        t.join(timeout=20)
        assert not t.is_alive()
        assert held["response"].status_code == 200, held["response"].text
        assert held["response"].headers["x-backend"] == "c"

        m = gw.metrics()
        assert m["osprey_gateway_route_updates_total"] >= 3
        assert m["osprey_gateway_scale_writes_total"] == 0  # no Deployment to scale here
    finally:
        for b in backends.values():
            b.stop()


@pytest.fixture(scope="module")
def models():
    proc = subprocess.run([sys.executable, str(TRAINER), str(FIXTURES)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return FIXTURES


def isvc_condition(obj, ctype):
    for c in ((obj or {}).get("status") or {}).get("conditions", []):
        if c["type"] == ctype:
            return c
    return {}


def test_gateway_scales_a_revision_to_zero_and_back_for_a_held_request(kube, kube_node, namespace,
                                                                       gateway, models, tmp_path):
    from test_operator import Operator  # the operator process, as its own tests run it

    if kube_node.address_mode != "alias":
        pytest.skip("pods have loopback addresses here: their Services get no endpoints")
    ns = namespace
    model = "xgb-iris-softmax"
    want = json.loads((models / "expected" / f"{model}.json").read_text())
    op = Operator(kube, tmp_path, "--namespace", ns)
    try:
        # The gateway as deployed: its service account's token (rbac-gateway.yaml)
        # and leader election for the scale decisions.
        deploy = REPO_ROOT / "deploy" / "kubernetes"
        kube.kubectl("apply", "-f", deploy / "namespace.yaml", "-f", deploy / "rbac-gateway.yaml")
        token = kube.kubectl("create", "token", "osprey-gateway", "-n", "osprey-system",
                             "--duration=1h").stdout.strip()
        config = tmp_path / "gateway.kubeconfig"
        config.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "sa",
            "clusters": [{"name": "c", "cluster": {
                "server": kube.server, "certificate-authority": str(kube.pki / "ca.crt")}}],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}]}))
        gw = gateway("--namespace", ns, "--autoscale-tick-ms", "500", "--stable-window-s", "6",
                     "--scale-to-zero-grace-s", "2", "--leader-elect",
                     "--lease-namespace", "osprey-system", "--lease-name", f"gateway-{ns}",
                     "--lease-duration-s", "2",
                     # As deployed: only the slices of Osprey's Services (the EndpointSlice
                     # controller copies a Service's labels onto its slices).
                     "--endpointslice-selector", "app.kubernetes.io/managed-by=osprey",
                     kubeconfig=config)
        wait_until(lambda: gw.metrics().get("osprey_gateway_autoscaler_leader") == 1, 10,
                   "the gateway to lead its lease")
        kube.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "cold",
                         "annotations": {"autoscaling.knative.dev/target": "0.1"}},
            "spec": {"predictor": {"minReplicas": 0, "maxReplicas": 3, "model": {
                "modelFormat": {"name": "xgboost"},
                "storageUri": f"file://{models / 'models' / model}"}}}}))
        path = f"{ISVC_PATH.format(ns=ns)}/cold"
        wait_until(lambda: isvc_condition(kube.api.get_or_none(path), "Ready").get("status") ==
                   "True", 90, "InferenceService cold to be Ready")
        deployment = f"/apis/apps/v1/namespaces/{ns}/deployments/cold-predictor-00001-deployment"
        host = f"cold-{ns}.example.com"

        def predict(timeout=10):
            return requests.post(f"{gw.url}/v1/models/cold:predict", headers={"Host": host},
                                 json={"instances": want["inputs"]}, timeout=timeout)

        # Routed to the pod once its endpoint is in the revision's EndpointSlice.
        r = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(predict()), 30,
                       "a prediction through the gateway")
        assert [float(v) for v in r.json()["predictions"]] == \
            [float(v) for v in want["predictions"]]
        assert r.headers["x-osprey-revision"] == "cold-predictor-00001"
        assert kube.api.get(deployment)["spec"]["replicas"] >= 1

        # gRPC by :authority, to the pod's grpc port.
        tgrpc = pytest.importorskip("tritonclient.grpc")
        import numpy as np
        c = tgrpc.InferenceServerClient(url=f"127.0.0.1:{gw.grpc_port}",
                                        channel_args=[("grpc.default_authority", host)])
        rows = np.array(want["inputs"], dtype=np.float32)
        inp = tgrpc.InferInput("input-0", list(rows.shape), "FP32")
        inp.set_data_from_numpy(rows)
        got = c.infer("cold", [inp], client_timeout=30).as_numpy("output-0")
        assert [float(v) for v in got] == [float(v) for v in want["predictions"]]

        # Load above the target (0.1 request in flight per replica): scaled up
        # on the gateway's measurements, within maxReplicas; every request answered.
        stop = threading.Event()
        failures = []

        def load():
            session = requests.Session()
            while not stop.is_set():
                r = session.post(f"{gw.url}/v1/models/cold:predict", headers={"Host": host},
                                 json={"instances": want["inputs"]}, timeout=10)
                if r.status_code != 200:
                    failures.append(r.status_code)

        threads = [threading.Thread(target=load) for _ in range(8)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: kube.api.get(deployment)["spec"]["replicas"] >= 2, 20,
                       "the gateway to scale the revision up under load")
            wait_until(lambda: gw.metrics().get(
                f'osprey_gateway_ready_replicas{{namespace="{ns}",inferenceservice="cold",'
                f'component="predictor",revision="cold-predictor-00001"}}', 0) >= 2, 30, "the new replicas to be routed")
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert failures == []
        assert kube.api.get(deployment)["spec"]["replicas"] <= 3

        # Idle for the stable window and the grace: scaled to zero, its pods go.
        # The gateway routes to none of them before it writes the scale: no
        # request races their exit.
        gauge = (f'osprey_gateway_ready_replicas{{namespace="{ns}",inferenceservice="cold",'
                 f'component="predictor",revision="cold-predictor-00001"}}')
        wait_until(lambda: kube.api.get(deployment)["spec"]["replicas"] == 0, 60,
                   "the gateway to scale the idle revision to zero", interval=0.02)
        assert gw.metrics()[gauge] == 0
        slices = f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"

        def ready_endpoints():
            items = kube.api.get(slices, {"labelSelector":
                                          "kubernetes.io/service-name=cold-predictor-00001"})
            return [e for s in items["items"] for e in s.get("endpoints") or []
                    if (e.get("conditions") or {}).get("ready", True)]

        wait_until(lambda: ready_endpoints() == [], 30, "the revision's endpoints to go")

        # A request now waits in the gateway, which scales the revision to one
        # at once; the pod starts and answers it.
        started = time.monotonic()
        r = predict(timeout=90)
        cold_start = time.monotonic() - started
        print(f"cold start through the gateway: {cold_start:.2f} s")
        assert r.status_code == 200, (r.text, gw.tail())
        assert [float(v) for v in r.json()["predictions"]] == \
            [float(v) for v in want["predictions"]]
        assert kube.api.get(deployment)["spec"]["replicas"] >= 1
        m = gw.metrics()
        assert m["osprey_gateway_activations_total"] >= 1, gw.tail()
        assert m["osprey_gateway_scale_errors_total"] == 0, gw.tail()
        # The scale is the gateway's: the operator neither fought it nor failed.
        assert op.metrics()["osprey_operator_reconcile_errors_total"] == 0, op.tail()
    finally:
        op.stop()


ISTIO_CRDS = REPO_ROOT / "tests" / "kube" / "fixtures" / "istio-crds.yaml"


def test_gateway_routes_istio_resources_beside_inference_services(kube, namespace, gateway,
                                                                  pod_addresses, knative_crd):
    """Cluster mode serves Istio's kinds too: a VirtualService to an
    InferenceService, to a Knative Service and to a ServiceEntry's endpoints,
    a DestinationRule's subsets picking endpoints by label, all through the
    one gateway."""
    kube.kubectl("apply", "-f", str(ISTIO_CRDS))
    kube.kubectl("wait", "--for", "condition=established", "crd",
                 "virtualservices.networking.istio.io", "destinationrules.networking.istio.io",
                 "serviceentries.networking.istio.io", "gateways.networking.istio.io")
    ns = namespace
    ip_a, ip_b, ip_c = pod_addresses
    port = free_port(ip_a)
    backends = [Backend("a", ip_a, port), Backend("b", ip_b, port), Backend("c", ip_c, port)]
    try:
        r1 = "model-predictor-00001"
        split_isvc(kube, ns, "model", [(r1, 100, None)], latest=r1)
        put_slice(kube, ns, r1, [(ip_a, True)], port)
        # A Knative Service with its status as the operator writes it.
        ksvc_path = f"/apis/serving.knative.dev/v1/namespaces/{ns}/services"
        kube.api.post(ksvc_path, {
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "hello", "namespace": ns},
            "spec": {"template": {"spec": {"containers": [{"image": "hello"}]}}}})
        kube.api.patch(f"{ksvc_path}/hello/status", {"status": {
            "url": f"http://hello.{ns}.example.com", "observedGeneration": 1,
            "latestCreatedRevisionName": "hello-00001", "latestReadyRevisionName": "hello-00001",
            "conditions": [{"type": "Ready", "status": "True"}],
            "traffic": [{"revisionName": "hello-00001", "percent": 100, "latestRevision": True}]}})
        put_slice(kube, ns, "hello-00001", [(ip_c, True)], port)
        objects = f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: {ns}}}
spec:
  hosts: [reviews.{ns}.svc.cluster.local]
  ports: [{{number: 9080, name: http}}]
  resolution: STATIC
  endpoints:
  - {{address: {ip_b}, ports: {{http: {port}}}, labels: {{version: v1}}}}
  - {{address: {ip_c}, ports: {{http: {port}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: {ns}}}
spec:
  host: reviews
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {{name: shop, namespace: {ns}}}
spec:
  hosts: [shop.example.com]
  http:
  - match: [{{uri: {{prefix: /predict}}}}]
    rewrite: {{uri: /v1/models/model:predict}}
    route: [{{destination: {{host: model}}}}]
  - match: [{{uri: {{prefix: /hello}}}}]
    route: [{{destination: {{host: hello.{ns}.svc.cluster.local}}}}]
  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
    route: [{{destination: {{host: reviews, subset: v2}}}}]
  - route: [{{destination: {{host: reviews, subset: v1}}}}]
"""
        kube.kubectl("apply", "-f", "-", input=objects)
        gw = gateway("--namespace", ns)
        wait_until(lambda: gw.status("/readyz") == 200, 30, "the gateway to be ready")
        session = requests.Session()

        def backend(path, headers=None):
            r = session.post(gw.url + path, headers={"Host": "shop.example.com", **(headers or {})},
                             data=b"{}", timeout=10)
            return r.headers.get("x-backend") if r.status_code == 200 else r.status_code

        wait_until(lambda: backend("/page") == "b", 20, "the VirtualService's routes")
        r = session.post(gw.url + "/predict", headers={"Host": "shop.example.com"}, data=b"{}",
                         timeout=10)
        assert r.headers["x-backend"] == "a" and r.json()["path"] == "/v1/models/model:predict"
        assert backend("/hello") == "c"
        r = session.get(gw.url + "/", headers={"Host": f"hello.{ns}.example.com"}, timeout=10)
        assert r.headers["x-backend"] == "c"
        assert [backend("/page", {"end-user": "jason"}) for _ in range(5)] == ["c"] * 5
        assert [backend("/page") for _ in range(5)] == ["b"] * 5
        # The InferenceService's own routes are unchanged beside them.
        r = session.post(gw.url + "/v1/models/model:predict",
                         headers={"Host": f"model-{ns}.example.com"}, data=b"{}", timeout=10)
        assert r.headers["x-backend"] == "a"
        # A change of the VirtualService is followed; deleting it removes its routes.
        kube.kubectl("apply", "-f", "-",
                     input=objects.split("---\n")[2].replace("subset: v1", "subset: v2"))
        wait_until(lambda: backend("/page") == "c", 20, "the changed VirtualService")
        kube.kubectl("delete", "virtualservice", "shop", "-n", ns)
        wait_until(lambda: backend("/page") == 404, 20, "the deleted VirtualService's routes gone")
    finally:
        for b in backends:
            b.stop()
        kube.kubectl("delete", "-f", str(ISTIO_CRDS), "--wait=false", check=False)
