"""The whole platform on Kubernetes: `osprey operator` and `osprey gateway`
against the real control plane, pods run by the test node (conftest.py).

Requests go through the gateway as clients' would through the cluster's
ingress: by the InferenceService's host. What they answer is compared with
`osprey up` serving the same manifests on this machine.
"""

import json
import subprocess
import sys

import pytest
import requests
import yaml

from kubeenv import REPO_ROOT, wait_until
from osprey_process import OSPREY, OspreyProcess, free_port
from test_operator import (FIXTURES, Operator, apply, deployment, get_isvc, isvc, traffic,
                           wait_ready)

sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))
import platform_harness  # noqa: E402

EXAMPLES = REPO_ROOT / "examples"
EXAMPLE_MODELS = REPO_ROOT / "build" / "examples"
ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6], [5.1, 3.5, 1.4, 0.2]]


class Gateway(OspreyProcess):
    """One `osprey gateway` process routing one namespace."""

    def __init__(self, kube, dir, namespace, *args):
        port = free_port()
        super().__init__("gateway", dir, port,
                         ["--kubeconfig", kube.kubeconfig, "--namespace", namespace, "--address",
                          "127.0.0.1", "--http-port", port, "--no-grpc", "--threads", "2", *args],
                         ready_path="/readyz", timeout=30)

    def predict(self, name, namespace, rows, timeout=30):
        return requests.post(f"http://127.0.0.1:{self.port}/v1/models/{name}:predict",
                             headers={"Host": f"{name}-{namespace}.example.com"},
                             json={"instances": rows}, timeout=timeout)


@pytest.fixture(scope="module")
def models():
    for script, root in ((REPO_ROOT / "tests" / "fixtures" / "train_iris.py", FIXTURES),
                         (EXAMPLES / "train_example.py", EXAMPLE_MODELS)):
        proc = subprocess.run([sys.executable, str(script), str(root)], capture_output=True,
                              text=True, timeout=300, cwd=REPO_ROOT)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def platform(kube, kube_node, crds, namespace, tmp_path, models):
    """The operator and the gateway for the test's namespace."""
    started = []

    def start(*gateway_args):
        gw = Gateway(kube, tmp_path, namespace, *gateway_args)
        started.append(gw)
        # Transformers reach their predictor through this gateway.
        op = Operator(kube, tmp_path, "--namespace", namespace, "--gateway-address",
                      f"127.0.0.1:{gw.port}")
        started.append(op)
        return op, gw

    yield start
    for p in started:
        p.stop()


def example(name):
    """An example manifest with its storageUri (relative to examples/) as a file:// URI."""
    doc = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    model = doc["spec"]["predictor"]["model"]
    model["storageUri"] = "file://" + str((EXAMPLES / model["storageUri"]).resolve())
    return doc


@pytest.mark.parametrize("name", ["xgboost-iris", "sklearn-iris"])
def test_example_answers_through_the_gateway_as_osprey_up_does(kube, namespace, platform,
                                                               tmp_path, name):
    _, gw = platform()
    apply(kube, namespace, example(name))
    wait_ready(kube, namespace, name)
    dep = deployment(kube, namespace, f"{name}-predictor-00001-deployment")
    assert dep is not None
    svc = kube.api.get(f"/api/v1/namespaces/{namespace}/services/{name}-predictor-00001")
    assert svc["spec"]["ports"][0]["port"] == 80
    r = None

    def answered():
        nonlocal r
        r = gw.predict(name, namespace, ROWS)
        return r.status_code == 200
    wait_until(answered, 30, f"{name} to answer through the gateway")
    in_cluster = r.json()

    up = platform_harness.Platform(OSPREY, tmp_path / "up").start()
    try:
        up.apply(EXAMPLES / f"{name}.yaml")
        local = requests.post(f"{up.gateway}/v1/models/{name}:predict",
                              headers={"Host": f"{name}-default.example.com"},
                              json={"instances": ROWS}, timeout=30)
        assert local.status_code == 200, local.text
    finally:
        up.stop_everything()
    assert in_cluster == local.json()


def test_canary_splits_through_the_gateway(kube, namespace, platform):
    _, gw = platform()
    models = FIXTURES / "models"
    apply(kube, namespace, isvc("split", models / "xgb-iris-softmax"))
    wait_ready(kube, namespace, "split")
    apply(kube, namespace, isvc("split", models / "xgb-iris-softprob", canary=10))
    wait_until(lambda: traffic(get_isvc(kube, namespace, "split")) ==
               {"split-predictor-00001": 90, "split-predictor-00002": 10}, 90, "a 90/10 split")

    def both_routed():
        # The gateway has both revisions' endpoints once a few requests reach each.
        seen = set()
        for _ in range(40):
            r = gw.predict("split", namespace, ROWS[:1])
            if r.status_code == 200:
                seen.add(isinstance(r.json()["predictions"][0], list))
        return seen == {True, False}
    wait_until(both_routed, 30, "the gateway to route to both revisions")

    counts = {"softmax": 0, "softprob": 0}
    failures = []
    session = requests.Session()
    for _ in range(2000):
        r = session.post(f"http://127.0.0.1:{gw.port}/v1/models/split:predict",
                         headers={"Host": f"split-{namespace}.example.com"},
                         json={"instances": ROWS[:1]}, timeout=30)
        if r.status_code != 200:
            failures.append((r.status_code, r.text[:200]))
            continue
        counts["softprob" if isinstance(r.json()["predictions"][0], list) else "softmax"] += 1
    assert failures == [], failures[:5]
    share = counts["softprob"] / 2000
    assert abs(share - 0.10) <= 0.01, counts


def test_scale_to_zero_and_back_on_the_first_request(kube, namespace, platform):
    _, gw = platform("--autoscale", "--autoscale-tick-ms", "200", "--stable-window-s", "2",
                     "--scale-to-zero-grace-s", "1")
    obj = isvc("sleepy", FIXTURES / "models" / "xgb-iris-softmax")
    obj["spec"]["predictor"]["minReplicas"] = 0
    apply(kube, namespace, obj)
    wait_ready(kube, namespace, "sleepy")
    dep = "sleepy-predictor-00001-deployment"
    wait_until(lambda: gw.predict("sleepy", namespace, ROWS).status_code == 200, 30,
               "a first answer")
    # Idle: the gateway's KPA takes it to zero; the pods go.
    wait_until(lambda: deployment(kube, namespace, dep)["spec"]["replicas"] == 0, 60,
               "scale to zero")
    sel = {"labelSelector": "serving.knative.dev/revision=sleepy-predictor-00001"}
    wait_until(lambda: not kube.api.get(f"/api/v1/namespaces/{namespace}/pods", sel)["items"],
               60, "its pods to go")
    assert get_isvc(kube, namespace, "sleepy")["status"]["conditions"][-1]["status"] == "True"
    # The first request waits in the gateway while a pod starts, then is answered.
    r = gw.predict("sleepy", namespace, ROWS, timeout=90)
    assert r.status_code == 200, (r.status_code, r.text, gw.tail())
    assert deployment(kube, namespace, dep)["spec"]["replicas"] >= 1


# A transformer as a container of the user's: it takes KServe's arguments
# (--model_name, --predictor_host, --http_port), listens on its pod's
# address (the test node's pods share one network namespace), turns
# {"rows": ...} into V1 instances for the predictor, and its class indexes
# into names.
TRANSFORMER = r"""
import argparse, json, os, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
p = argparse.ArgumentParser()
p.add_argument("--model_name"); p.add_argument("--predictor_host"); p.add_argument("--http_port", type=int)
args, _ = p.parse_known_args()
NAMES = ["setosa", "versicolor", "virginica"]
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == f"/v1/models/{args.model_name}" else 404)
        self.end_headers()
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        req = urllib.request.Request(
            f"http://{args.predictor_host}/v1/models/{args.model_name}:predict",
            data=json.dumps({"instances": body["rows"]}).encode(),
            headers={"Content-Type": "application/json",
                     "x-request-id": self.headers.get("x-request-id", "")})
        with urllib.request.urlopen(req, timeout=30) as r:
            predictions = json.loads(r.read())["predictions"]
        out = json.dumps({"predictions": [NAMES[int(c)] for c in predictions],
                          "via": args.predictor_host}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
ThreadingHTTPServer((os.environ["POD_IP"], args.http_port), H).serve_forever()
"""


def test_a_transformer_reaches_its_predictor_through_the_gateway(kube, namespace, platform,
                                                                 tmp_path):
    """The service's host reaches the transformer, whose --predictor_host is
    the gateway's path to the predictor; each component has its own
    Deployment, condition and status."""
    _, gw = platform()
    script = tmp_path / "transformer.py"
    script.write_text(TRANSFORMER)
    obj = isvc("tx", FIXTURES / "models" / "xgb-iris-softmax")
    obj["spec"]["transformer"] = {"containers": [{
        "name": "kserve-container", "image": "example.com/iris-transformer:1",
        "command": [sys.executable, str(script)],
        "readinessProbe": {"httpGet": {"path": "/v1/models/tx", "port": 8080},
                           "periodSeconds": 1}}]}
    apply(kube, namespace, obj)
    got = wait_ready(kube, namespace, "tx")
    conditions = {c["type"]: c["status"] for c in got["status"]["conditions"]}
    assert conditions["TransformerReady"] == "True" and conditions["PredictorReady"] == "True"
    comp = got["status"]["components"]["transformer"]
    assert comp["latestReadyRevision"] == "tx-transformer-00001"
    assert comp["url"] == f"http://tx-transformer-{namespace}.example.com"
    dep = deployment(kube, namespace, "tx-transformer-00001-deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    via = f"127.0.0.1:{gw.port}/serving/{namespace}/tx-predictor"
    assert args[args.index("--predictor_host") + 1] == via, args
    assert deployment(kube, namespace, "tx-predictor-00001-deployment") is not None

    answer = None

    def answered():
        nonlocal answer
        answer = requests.post(f"http://127.0.0.1:{gw.port}/v1/models/tx:predict",
                               headers={"Host": f"tx-{namespace}.example.com"},
                               json={"rows": ROWS}, timeout=30)
        return answer.status_code == 200
    wait_until(answered, 30, "the transformer to answer through the gateway")
    direct = requests.post(f"http://127.0.0.1:{gw.port}/v1/models/tx:predict",
                           headers={"Host": f"tx-predictor-{namespace}.example.com"},
                           json={"instances": ROWS}, timeout=30)
    assert direct.status_code == 200, direct.text
    names = ["setosa", "versicolor", "virginica"]
    assert answer.json() == {"predictions": [names[int(c)] for c in direct.json()["predictions"]],
                             "via": via}
    assert answer.headers["x-osprey-revision"] == "tx-transformer-00001"


# Knative's helloworld-go as a small server: "Hello {TARGET}!" on GET /, on
# $PORT at the pod's address (the test node's pods share one network
# namespace; a real pod would bind 0.0.0.0).
HELLO = r"""
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("Hello %s!\n" % os.environ.get("TARGET", "World")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((os.environ["OSPREY_TEST_POD_IP"], int(os.environ["PORT"])),
                                Handler).serve_forever()
"""


def helloworld(script, target, traffic=None, config_map=None):
    """The helloworld-go Knative Service as its sample has it, a command added
    (the test node runs commands, not images); TARGET from `config_map`
    (envFrom) when given."""
    container = {"image": "gcr.io/knative-samples/helloworld-go",
                 "command": [sys.executable, str(script)]}
    if config_map:
        container["envFrom"] = [{"configMapRef": {"name": config_map}}]
    else:
        container["env"] = [{"name": "TARGET", "value": target}]
    spec = {"template": {"spec": {"containers": [container]}}}
    if traffic is not None:
        spec["traffic"] = traffic
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "helloworld-go"}, "spec": spec}


def get_ksvc(kube, ns, name):
    return kube.api.get_or_none(f"/apis/serving.knative.dev/v1/namespaces/{ns}/services/{name}")


def test_a_knative_service_serves_scales_to_zero_and_rolls_out(kube, namespace, knative_crd,
                                                               platform, tmp_path):
    """Knative's first example on the cluster: the operator runs its revision
    as a Deployment and writes Knative's status; the gateway routes its host,
    scales it to zero and back; a new template rolls out 90/10 by revisionName
    with a tag."""
    op, gw = platform("--autoscale", "--autoscale-tick-ms", "200", "--stable-window-s", "2",
                      "--scale-to-zero-grace-s", "1")
    script = tmp_path / "hello.py"
    script.write_text(HELLO)
    apply(kube, namespace, helloworld(script, "Go Sample v1"))

    def ready(name):
        svc = get_ksvc(kube, namespace, "helloworld-go") or {}
        conds = {c["type"]: c["status"] for c in (svc.get("status") or {}).get("conditions", [])}
        return conds.get("Ready") == "True" and \
            svc["status"].get("latestReadyRevisionName") == name
    wait_until(lambda: ready("helloworld-go-00001"), 90, "helloworld-go to be Ready")
    svc = get_ksvc(kube, namespace, "helloworld-go")
    status = svc["status"]
    assert status["url"] == f"http://helloworld-go.{namespace}.example.com"
    assert status["address"]["url"] == \
        f"http://helloworld-go.{namespace}.svc.cluster.local"
    assert status["latestCreatedRevisionName"] == "helloworld-go-00001"
    assert status["traffic"] == [{"latestRevision": True, "percent": 100,
                                  "revisionName": "helloworld-go-00001"}]
    assert status["observedGeneration"] == svc["metadata"]["generation"]
    dep = deployment(kube, namespace, "helloworld-go-00001-deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "user-container"
    assert {"name": "PORT", "value": "8080"} in container["env"]
    assert dep["metadata"]["ownerReferences"][0]["kind"] == "Service"
    # kubectl prints the CRD's columns.
    out = kube.kubectl("get", "ksvc", "-n", namespace).stdout
    assert "helloworld-go-00001" in out and "True" in out, out

    host = {"Host": f"helloworld-go.{namespace}.example.com"}
    url = f"http://127.0.0.1:{gw.port}/"
    wait_until(lambda: requests.get(url, headers=host, timeout=30).text == "Hello Go Sample v1!\n",
               30, "helloworld-go to answer through the gateway")
    inside = requests.get(url, headers={"Host": f"helloworld-go.{namespace}.svc.cluster.local"},
                          timeout=30)
    assert inside.text == "Hello Go Sample v1!\n"

    # Idle: to zero, and back on the next request.
    wait_until(lambda: deployment(kube, namespace,
                                  "helloworld-go-00001-deployment")["spec"]["replicas"] == 0,
               60, "scale to zero")
    sel = {"labelSelector": "serving.knative.dev/revision=helloworld-go-00001"}
    wait_until(lambda: not kube.api.get(f"/api/v1/namespaces/{namespace}/pods", sel)["items"],
               60, "its pods to go")
    r = requests.get(url, headers=host, timeout=90)
    assert r.text == "Hello Go Sample v1!\n", (r.status_code, r.text, gw.tail())

    # A new template: 90% stays on the first revision, 10% to the new one,
    # which is also reachable by its tag. Its TARGET comes from a ConfigMap
    # (envFrom: the container's fields reach the pod as written).
    kube.api.post(f"/api/v1/namespaces/{namespace}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hello-v2"},
        "data": {"TARGET": "Go Sample v2"}})
    apply(kube, namespace, helloworld(script, None, config_map="hello-v2", traffic=[
        {"revisionName": "helloworld-go-00001", "percent": 90},
        {"latestRevision": True, "percent": 10, "tag": "candidate"}]))
    wait_until(lambda: ready("helloworld-go-00002"), 90, "the second revision to be Ready")
    status = get_ksvc(kube, namespace, "helloworld-go")["status"]
    assert status["traffic"] == [
        {"latestRevision": False, "percent": 90, "revisionName": "helloworld-go-00001"},
        {"latestRevision": True, "percent": 10, "revisionName": "helloworld-go-00002",
         "tag": "candidate", "url": f"http://candidate-helloworld-go.{namespace}.example.com"}]
    tag = {"Host": f"candidate-helloworld-go.{namespace}.example.com"}
    wait_until(lambda: requests.get(url, headers=tag, timeout=30).text == "Hello Go Sample v2!\n",
               30, "the tag's host to reach the new revision")
    session = requests.Session()
    counts = {}
    for _ in range(2000):
        r = session.get(url, headers=host, timeout=30)
        counts[r.text] = counts.get(r.text, 0) + 1
    assert set(counts) == {"Hello Go Sample v1!\n", "Hello Go Sample v2!\n"}, counts
    assert abs(counts["Hello Go Sample v2!\n"] / 2000 - 0.10) <= 0.01, counts
    assert op.metrics()["osprey_operator_reconcile_errors_total"] == 0, op.tail()
