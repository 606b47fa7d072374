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
        op = Operator(kube, tmp_path, "--namespace", namespace)
        started.append(op)
        gw = Gateway(kube, tmp_path, namespace, *gateway_args)
        started.append(gw)
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
