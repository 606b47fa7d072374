"""`osprey operator` end to end, against the real control plane (conftest.py).

The operator runs as a local process with the test's kubeconfig, as it would
from a laptop against a cluster. The Deployments it makes are run by the real
kube-controller-manager and kube-scheduler; their pods by the test node
(kubelet.py), which runs `osprey storage pull` and `osprey serve` from the
build as the pods' processes. Models are the trained fixtures
(tests/fixtures/train_iris.py), fetched through file:// storage URIs.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from kubeenv import REPO_ROOT, wait_until
from osprey_process import OSPREY, OspreyProcess, free_port

TRAINER = REPO_ROOT / "tests" / "fixtures" / "train_iris.py"
FIXTURES = Path(os.environ.get("OSPREY_FIXTURES") or REPO_ROOT / "build" / "fixtures").resolve()
ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"
READY_TIMEOUT_S = 90.0


class Operator(OspreyProcess):
    """One `osprey operator` process with the test's kubeconfig."""

    def __init__(self, kube, dir, *args, kubeconfig=None):
        port = free_port()
        super().__init__("operator", dir, port,
                         ["--kubeconfig", kubeconfig or kube.kubeconfig, "--health-address",
                          "127.0.0.1", "--health-port", port, "--log-level", "debug", *args])


@pytest.fixture(scope="module")
def fixtures():
    proc = subprocess.run([sys.executable, str(TRAINER), str(FIXTURES)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return FIXTURES


@pytest.fixture
def operator(kube, crds, tmp_path):
    ops = []

    def start(*args):
        op = Operator(kube, tmp_path, *args)
        ops.append(op)
        return op

    start.all = ops
    yield start
    for op in ops:
        op.stop()


def isvc(name, model_dir, *, fmt="xgboost", canary=None, annotations=None):
    predictor = {"model": {"modelFormat": {"name": fmt}, "storageUri": f"file://{model_dir}"}}
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    meta = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": meta, "spec": {"predictor": predictor}}


def apply(kube, ns, obj):
    kube.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(obj))


def get_isvc(kube, ns, name):
    return kube.api.get_or_none(f"{ISVC_PATH.format(ns=ns)}/{name}")


def condition(obj, ctype):
    for c in ((obj or {}).get("status") or {}).get("conditions", []):
        if c["type"] == ctype:
            return c
    return {}


def traffic(obj):
    pred = (((obj or {}).get("status") or {}).get("components") or {}).get("predictor") or {}
    return {t["revisionName"]: t["percent"] for t in pred.get("traffic", [])}


def wait_ready(kube, ns, name, timeout=READY_TIMEOUT_S):
    wait_until(lambda: condition(get_isvc(kube, ns, name), "Ready").get("status") == "True",
               timeout, f"InferenceService {ns}/{name} to be Ready")
    return get_isvc(kube, ns, name)


def deployment(kube, ns, name):
    return kube.api.get_or_none(f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")


def ready_pod_ips(kube, kube_node, ns, revision):
    pods = kube.api.get(f"/api/v1/namespaces/{ns}/pods",
                        {"labelSelector": f"serving.knative.dev/revision={revision}"})["items"]
    ips = []
    for p in pods:
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p.get("status", {}).get("conditions", []))
        if ready and not p["metadata"].get("deletionTimestamp"):
            ips.append(p["status"]["podIP"])
    return ips


def predict(ip, name, rows):
    r = requests.post(f"http://{ip}:8080/v1/models/{name}:predict",
                      json={"instances": rows}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


def expected(model):
    return json.loads((FIXTURES / "expected" / f"{model}.json").read_text())


def test_isvc_runs_as_a_revision_deployment_and_turns_ready(kube, kube_node, namespace,
                                                            operator, fixtures):
    # The replicas trace as the operator is told (sampled off here: no collector).
    op = operator("--otlp-endpoint", "http://127.0.0.1:9", "--trace-sampler", "always_off")
    model = "xgb-iris-softmax"
    apply(kube, namespace, isvc("iris", fixtures / "models" / model))
    dep_name = "iris-predictor-00001-deployment"
    wait_until(lambda: deployment(kube, namespace, dep_name), 30, f"Deployment {dep_name}")
    dep = deployment(kube, namespace, dep_name)
    labels = dep["metadata"]["labels"]
    assert labels["serving.kserve.io/inferenceservice"] == "iris"
    assert labels["serving.knative.dev/revision"] == "iris-predictor-00001"
    assert labels["component"] == "predictor"
    owner = dep["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("InferenceService", "iris", True)
    pod = dep["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["name"] == "storage-initializer"
    assert pod["initContainers"][0]["args"][:3] == ["storage", "pull",
                                                    f"file://{fixtures / 'models' / model}"]
    assert pod["containers"][0]["name"] == "kserve-container"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:9", env
    assert env["OTEL_TRACES_SAMPLER"] == "always_off", env
    assert env["OTEL_SERVICE_NAME"] == "iris-predictor", env
    assert f"k8s.namespace.name={namespace}" in env["OTEL_RESOURCE_ATTRIBUTES"], env
    managers = {m["manager"] for m in dep["metadata"]["managedFields"]}
    assert "osprey" in managers
    # The Service is applied after the Deployment, by the same reconcile.
    svc_path = f"/api/v1/namespaces/{namespace}/services/iris-predictor-00001"
    wait_until(lambda: kube.api.get_or_none(svc_path), 30, "Service iris-predictor-00001")
    svc = kube.api.get(svc_path)
    assert svc["spec"]["selector"] == {"serving.knative.dev/revision": "iris-predictor-00001"}

    obj = wait_ready(kube, namespace, "iris")
    status = obj["status"]
    assert status["url"] == f"http://iris-{namespace}.example.com"
    assert status["components"]["predictor"]["latestReadyRevision"] == "iris-predictor-00001"
    assert traffic(obj) == {"iris-predictor-00001": 100}
    assert status["modelStatus"]["states"]["activeModelState"] == "Loaded"
    assert status["observedGeneration"] == obj["metadata"]["generation"]

    # kubectl prints KServe's columns.
    out = kube.kubectl("get", "isvc", "-n", namespace).stdout.splitlines()
    assert out[0].split() == ["NAME", "URL", "READY", "PREV", "LATEST", "PREVROLLEDOUTREVISION",
                              "LATESTREADYREVISION", "AGE"]
    row = out[1].split()
    assert row[:4] == ["iris", f"http://iris-{namespace}.example.com", "True", "100"]
    assert "iris-predictor-00001" in row

    # The pod answers what xgboost predicts.
    ips = ready_pod_ips(kube, kube_node, namespace, "iris-predictor-00001")
    assert len(ips) == 1
    want = expected(model)
    got = predict(ips[0], "iris", want["inputs"])
    assert [float(v) for v in got] == [float(v) for v in want["predictions"]]

    events = kube.api.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "iris"}
    assert {"RevisionCreated", "InferenceServiceReady"} <= reasons, reasons
    assert op.metrics()["osprey_operator_reconcile_errors_total"] == 0, op.tail()


def test_canary_splits_status_then_promotes(kube, kube_node, namespace, operator, fixtures):
    operator()
    apply(kube, namespace, isvc("flower", fixtures / "models" / "xgb-iris-softmax"))
    wait_ready(kube, namespace, "flower")
    # A new model at 10%: a second revision; the first keeps 90% once it is ready.
    apply(kube, namespace, isvc("flower", fixtures / "models" / "xgb-iris-softprob", canary=10))
    wait_until(lambda: traffic(get_isvc(kube, namespace, "flower")) ==
               {"flower-predictor-00001": 90, "flower-predictor-00002": 10},
               READY_TIMEOUT_S, "a 90/10 split")
    obj = get_isvc(kube, namespace, "flower")
    pred = obj["status"]["components"]["predictor"]
    tags = {t["revisionName"]: t.get("tag") for t in pred["traffic"]}
    assert tags == {"flower-predictor-00001": "prev", "flower-predictor-00002": "latest"}
    assert pred["latestRolledoutRevision"] == "flower-predictor-00001"
    row = kube.kubectl("get", "isvc", "flower", "-n", namespace).stdout.splitlines()[1].split()
    assert row[3:5] == ["90", "10"], row
    # Each revision serves its own model.
    ip2 = ready_pod_ips(kube, kube_node, namespace, "flower-predictor-00002")[0]
    want = expected("xgb-iris-softprob")
    got = predict(ip2, "flower", want["inputs"][:2])
    assert len(got[0]) == 3  # class probabilities: the softprob model

    # Promotion: without the canary percent the latest takes everything and
    # the previous revision is scaled to zero (kept, as Knative keeps it).
    apply(kube, namespace, isvc("flower", fixtures / "models" / "xgb-iris-softprob"))
    wait_until(lambda: traffic(get_isvc(kube, namespace, "flower")) ==
               {"flower-predictor-00002": 100}, READY_TIMEOUT_S, "promotion to 00002")
    wait_until(lambda: deployment(kube, namespace, "flower-predictor-00001-deployment")
               ["spec"]["replicas"] == 0, 30, "00001 scaled to zero")
    # No third revision: only traffic changed.
    assert deployment(kube, namespace, "flower-predictor-00003-deployment") is None


def test_delete_garbage_collects_everything(kube, kube_node, namespace, operator, fixtures):
    operator()
    apply(kube, namespace, isvc("gone", fixtures / "models" / "xgb-iris-softmax"))
    wait_ready(kube, namespace, "gone")
    kube.kubectl("delete", "isvc", "gone", "-n", namespace)
    sel = {"labelSelector": "serving.kserve.io/inferenceservice=gone"}
    wait_until(lambda: not kube.api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments", sel)
               ["items"] and not kube.api.get(f"/api/v1/namespaces/{namespace}/services", sel)
               ["items"] and not kube.api.get(f"/api/v1/namespaces/{namespace}/pods", sel)["items"],
               60, "the garbage collector to delete the Deployment, Service and pods")
    wait_until(lambda: not [p for p in kube_node.processes(namespace)], 30,
               "the node to stop the pod's processes")


def test_a_spec_no_runtime_serves_fails_with_the_reason(kube, namespace, operator, fixtures):
    operator()
    apply(kube, namespace, isvc("odd", fixtures / "models" / "xgb-iris-softmax", fmt="caffe"))
    wait_until(lambda: condition(get_isvc(kube, namespace, "odd"), "Ready").get("status") == "False",
               30, "Ready False")
    obj = get_isvc(kube, namespace, "odd")
    assert obj["status"]["modelStatus"]["transitionStatus"] in ("InvalidSpec", "BlockedByFailedLoad")
    assert "caffe" in json.dumps(obj["status"])
    assert deployment(kube, namespace, "odd-predictor-00001-deployment") is None


def test_a_failed_download_is_reported(kube, kube_node, namespace, operator, fixtures):
    operator()
    apply(kube, namespace, isvc("nomodel", fixtures / "models" / "does-not-exist"))

    def failure():
        obj = get_isvc(kube, namespace, "nomodel")
        info = (((obj or {}).get("status") or {}).get("modelStatus") or {}).get("lastFailureInfo")
        return info
    wait_until(failure, 60, "lastFailureInfo")
    info = failure()
    assert info["reason"] == "StorageFailed", info
    assert "does-not-exist" in info["message"], info
    assert condition(get_isvc(kube, namespace, "nomodel"), "Ready")["status"] != "True"


def test_restart_resumes_without_writes(kube, kube_node, namespace, operator, fixtures):
    first = operator("--namespace", namespace)
    for name in ("a", "b", "c"):
        apply(kube, namespace, isvc(name, fixtures / "models" / "xgb-iris-softmax"))
    for name in ("a", "b", "c"):
        wait_ready(kube, namespace, name)
    first.stop()
    second = operator("--namespace", namespace)
    wait_until(lambda: second.get("/readyz") == 200, 20, "the second operator's informers")
    wait_until(lambda: second.metrics()["osprey_operator_reconciles_total"] >= 3, 20,
               "the second operator to look at every InferenceService")
    # Give the workers a moment to act on anything they found, then count.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        time.sleep(0.1)
    m = second.metrics()
    assert m["osprey_operator_api_writes_total"] == 0, second.tail()
    assert m["osprey_operator_applies_total"] == 0


def test_two_operators_elect_one_leader(kube, kube_node, namespace, operator, fixtures):
    args = ("--leader-elect", "--lease-namespace", namespace, "--lease-duration-s", "2")
    a = operator(*args)
    wait_until(lambda: a.metrics()["osprey_operator_leader"] == 1, 20, "a to lead")
    b = operator(*args)
    time.sleep(0)  # b starts standing by
    wait_until(lambda: b.get("/healthz") == 200, 10, "b's health endpoint")
    assert b.metrics()["osprey_operator_leader"] == 0
    apply(kube, namespace, isvc("led", fixtures / "models" / "xgb-iris-softmax"))
    wait_ready(kube, namespace, "led")
    assert b.metrics()["osprey_operator_reconciles_total"] == 0
    # The leader dies without giving the lease up: b takes over once it expires.
    a.stop(signal.SIGKILL)
    started = time.monotonic()
    wait_until(lambda: b.metrics()["osprey_operator_leader"] == 1, 10, "b to take over")
    assert time.monotonic() - started < 5
    apply(kube, namespace, isvc("after", fixtures / "models" / "xgb-iris-softmax"))
    wait_ready(kube, namespace, "after")


def test_claim_annotated_takes_only_annotated_services(kube, kube_node, namespace, operator,
                                                       fixtures):
    """Beside KServe's controller: with --claim=annotated, Osprey acts only on
    the InferenceServices given to it, and never writes to the others."""
    operator("--namespace", namespace, "--claim", "annotated")
    model = fixtures / "models" / "xgb-iris-softmax"
    apply(kube, namespace, isvc("theirs", model))
    apply(kube, namespace, isvc("ours", model,
                                annotations={"serving.osprey.dev/controller": "osprey"}))
    wait_ready(kube, namespace, "ours")
    theirs = get_isvc(kube, namespace, "theirs")
    assert "status" not in theirs or not theirs["status"], theirs.get("status")
    managers = {m["manager"] for m in theirs["metadata"].get("managedFields", [])}
    assert "osprey" not in managers
    assert deployment(kube, namespace, "theirs-predictor-00001-deployment") is None


def test_operator_service_account_can_do_its_work_and_no_more(kube, kube_node, namespace,
                                                              operator, fixtures, tmp_path,
                                                              knative_crd):
    """The operator under the RBAC of deploy/kubernetes: its service account's
    token, least privilege (Knative Services included)."""
    deploy = REPO_ROOT / "deploy" / "kubernetes"
    kube.kubectl("apply", "-f", deploy / "namespace.yaml", "-f", deploy / "rbac-operator.yaml")
    token = kube.kubectl("create", "token", "osprey-operator", "-n", "osprey-system",
                         "--duration=1h").stdout.strip()
    config = tmp_path / "operator.kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {"server": kube.server,
                                               "certificate-authority": str(kube.pki / "ca.crt")}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}]}))
    op = Operator(kube, tmp_path, "--namespace", namespace, "--leader-elect",
                  "--lease-namespace", "osprey-system", "--lease-name", f"osprey-{namespace}",
                  kubeconfig=config)
    operator.all.append(op)
    apply(kube, namespace, isvc("rbac", fixtures / "models" / "xgb-iris-softmax"))
    wait_ready(kube, namespace, "rbac")
    # A Knative Service: its revision's Deployment made, its status written.
    apply(kube, namespace, {
        "apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "kn"},
        "spec": {"template": {"spec": {"containers": [{"image": "x", "command": ["true"]}]}}}})
    ksvc_path = f"/apis/serving.knative.dev/v1/namespaces/{namespace}/services/kn"
    wait_until(lambda: ((kube.api.get(ksvc_path).get("status") or {})
                        .get("latestCreatedRevisionName")) == "kn-00001", 30,
               "the Knative Service's status")
    assert deployment(kube, namespace, "kn-00001-deployment") is not None
    # Its in-cluster name leads to the gateway (status.address).
    wait_until(lambda: kube.api.get_or_none(f"/api/v1/namespaces/{namespace}/services/kn"), 30,
               "the Knative Service's address Service")
    address = kube.api.get(f"/api/v1/namespaces/{namespace}/services/kn")["spec"]
    assert (address["type"], address["externalName"]) == \
        ("ExternalName", "osprey-gateway.osprey-system.svc.cluster.local")
    assert op.metrics()["osprey_operator_reconcile_errors_total"] == 0, op.tail()
    # What it may not do is refused.
    headers = {"Authorization": f"Bearer {token}"}
    ca = str(kube.pki / "ca.crt")
    for method, path, body in [
        ("POST", f"/api/v1/namespaces/{namespace}/secrets",
         {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
        ("POST", ISVC_PATH.format(ns=namespace), isvc("x", "/m")),
        ("DELETE", f"/api/v1/namespaces/{namespace}/pods/any", None),
        ("GET", f"/api/v1/namespaces/{namespace}/secrets", None),
    ]:
        r = requests.request(method, kube.server + path, json=body, headers=headers, verify=ca,
                             timeout=10)
        assert r.status_code == 403, (method, path, r.status_code, r.text)


def restart_apiserver(kube):
    """Kills the API server and starts it again on the same port and data."""
    pid = int((kube.dir / "apiserver.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().split()[2] == "Z", 10, "the API server to die")
    proc = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "k8s-testenv.sh"), "start",
                           str(kube.dir)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_operator_survives_an_api_server_restart(kube, kube_node, namespace, operator, fixtures):
    op = operator("--namespace", namespace)
    model = fixtures / "models" / "xgb-iris-softmax"
    apply(kube, namespace, isvc("before", model))
    wait_ready(kube, namespace, "before")
    restart_apiserver(kube)
    # Its watches come back by themselves and it acts on what changes next.
    apply(kube, namespace, isvc("after-restart", model))
    wait_ready(kube, namespace, "after-restart")
    assert op.proc.poll() is None, op.tail()


def test_deploy_kustomization_is_accepted(kube, crds):
    """`kubectl apply -k deploy/kubernetes` (after its CRDs, as the README
    says): every object passes the real API server's validation and
    admission (a server-side dry run: no operator or gateway pods here, the
    tests run their own)."""
    # A dry run creates nothing, so the namespace the rest goes in is made first.
    kube.kubectl("apply", "-f", REPO_ROOT / "deploy" / "kubernetes" / "namespace.yaml")
    out = kube.kubectl("apply", "-k", REPO_ROOT / "deploy" / "kubernetes",
                       "--dry-run=server").stdout
    for kind_name in ("deployment.apps/osprey-operator", "deployment.apps/osprey-gateway",
                      "service/osprey-gateway", "clusterrole.rbac.authorization.k8s.io/osprey-operator",
                      "clusterservingruntime.serving.kserve.io/kserve-sklearnserver"):
        assert kind_name in out, out


def test_clusterservingruntimes_print_kserves_columns(kube, crds):
    out = kube.kubectl("get", "clusterservingruntimes").stdout.splitlines()
    assert out[0].split() == ["NAME", "DISABLED", "MODELTYPE", "CONTAINERS", "AGE"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    # DISABLED is empty: the built-in runtimes leave spec.disabled unset, as KServe's do.
    assert rows["kserve-sklearnserver"][1:3] == ["sklearn", "kserve-container"], rows
    assert "kserve-xgbserver" in rows and "kserve-tritonserver" in rows
