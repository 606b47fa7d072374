"""The local platform end to end: `osprey up`, KServe YAML applied with the
real CLI, revisions run as replica processes, calls through the gateway.

What could fail here: runtime selection, the storage initializer, the
supervisor's health checks and restarts, status and conditions as KServe
reports them, the store across restarts, the API's token check.
"""

import http.server
import os
import signal
import stat
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

import harness
from platform_harness import (EXAMPLES, Platform, custom_server_yaml, example_models, isvc_yaml,
                              READY_TIMEOUT_S)

IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]  # both class 1 (KServe's e2e)


@pytest.fixture(scope="module")
def examples_dir():
    return example_models()


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory, examples_dir):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("platform") / "home").start()
    yield p
    p.stop_everything()


class ModelFiles(http.server.SimpleHTTPRequestHandler):
    """Serves a directory and counts GETs (to prove the cache holds)."""
    hits = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        ModelFiles.hits.append(self.path)
        super().do_GET()


@pytest.fixture(scope="module")
def http_models(tmp_path_factory, examples_dir):
    root = tmp_path_factory.mktemp("http-models")
    with tarfile.open(root / "xgb-iris.tar.gz", "w:gz") as tar:
        tar.add(examples_dir / "xgboost-iris" / "model.json", arcname="model.json")
    handler = lambda *a, **kw: ModelFiles(*a, directory=str(root), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer((harness.HOST, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{harness.HOST}:{server.server_address[1]}"
    server.shutdown()


def test_builtin_cluster_runtimes_listed_as_kubectl_does(platform):
    out = platform.cli("get", "clusterservingruntimes").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "DISABLED", "MODELTYPE", "CONTAINERS", "AGE"]
    names = {line.split()[0] for line in lines[1:]}
    for name in ("kserve-lgbserver", "kserve-mlserver", "kserve-paddleserver",
                 "kserve-pmmlserver", "kserve-sklearnserver", "kserve-tensorflow-serving",
                 "kserve-torchserve", "kserve-tritonserver", "kserve-xgbserver"):
        assert name in names, out
    row = next(line for line in lines if line.startswith("kserve-xgbserver "))
    assert row.split()[1:3] == ["xgboost", "kserve-container"], row


def test_xgboost_example_ready_and_served_through_the_gateway(platform):
    out = platform.apply(EXAMPLES / "xgboost-iris.yaml").stdout
    assert "inferenceservice.serving.kserve.io/xgboost-iris created" in out
    assert "condition met" in out
    isvc = platform.isvc("xgboost-iris")
    st = isvc["status"]
    assert st["url"] == f"http://xgboost-iris-default.example.com:{platform.gateway_port}"
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds == {"IngressReady": "True", "LatestDeploymentReady": "True",
                     "PredictorReady": "True", "Ready": "True"}
    pred = st["components"]["predictor"]
    assert pred["latestCreatedRevision"] == "xgboost-iris-predictor-00001"
    assert pred["latestReadyRevision"] == "xgboost-iris-predictor-00001"
    assert pred["traffic"] == [{"latestRevision": True, "percent": 100,
                                "revisionName": "xgboost-iris-predictor-00001"}]
    assert st["modelStatus"]["states"] == {"activeModelState": "Loaded",
                                           "targetModelState": "Loaded"}
    assert st["modelStatus"]["transitionStatus"] == "UpToDate"
    # By Host, as KServe's URL is called; by path, as a plain client would.
    for by_host in (True, False):
        r = platform.predict_v1("xgboost-iris", IRIS_ROWS, by_host=by_host)
        assert r.status_code == 200, r.text
        assert r.json() == {"predictions": [1.0, 1.0]}
    # V2 through the gateway too.
    r = requests.post(f"{platform.gateway}/v2/models/xgboost-iris/infer",
                      headers={"Host": platform.host("xgboost-iris")},
                      json={"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                                        "data": IRIS_ROWS}]})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [1.0, 1.0]
    # `get isvc` prints KServe's columns.
    lines = platform.cli("get", "isvc").stdout.splitlines()
    assert lines[0].split() == ["NAME", "URL", "READY", "PREV", "LATEST",
                                "PREVROLLEDOUTREVISION", "LATESTREADYREVISION", "AGE"]
    row = next(line for line in lines if line.startswith("xgboost-iris "))
    cells = row.split()
    assert cells[1:5] == [st["url"], "True", "100", "xgboost-iris-predictor-00001"], row
    # Applying the same file again changes nothing.
    out = platform.apply(EXAMPLES / "xgboost-iris.yaml").stdout
    assert "xgboost-iris unchanged" in out
    assert len(platform.revisions("xgboost-iris")) == 1


def test_native_replica_answers_over_its_link(platform):
    """An `osprey serve` replica is reached over its link (one multiplexed
    socket per gateway loop): the binary extension, large bodies, HEAD and
    many concurrent calls of different sizes all come back whole, each answer
    to its own request."""
    platform.apply(EXAMPLES / "xgboost-iris.yaml")
    [replica] = platform.revisions("xgboost-iris")[0]["status"]["replicaStatuses"]
    argv = Path(f"/proc/{replica['pid']}/cmdline").read_bytes().split(b"\0")
    link = argv[argv.index(b"--link-socket") + 1].decode()
    assert stat.S_ISSOCK(os.stat(link).st_mode), link
    url = f"{platform.gateway}/v2/models/xgboost-iris"
    host = {"Host": platform.host("xgboost-iris")}
    # Binary in and out: Inference-Header-Content-Length comes back.
    body, headers = harness.v2_binary_request(np.array(IRIS_ROWS * 500), "FP32",
                                              parameters={"binary_data_output": True})
    r = requests.post(f"{url}/infer", data=body, headers={**headers, **host}, timeout=30)
    assert "inference-header-content-length" in r.headers, r.headers
    decoded = harness.decode_response(r)
    [out] = decoded.outputs.values()
    assert out.shape == (1000,) and (out == 1.0).all()
    # A large JSON body (about 1 MB of rows).
    rows = IRIS_ROWS * 20000
    r = platform.predict_v1("xgboost-iris", rows)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["predictions"] == [1.0] * len(rows)
    # HEAD: the same status and length as GET, no body.
    got = requests.get(url, headers=host, timeout=30)
    head = requests.head(url, headers=host, timeout=30)
    assert got.status_code == head.status_code == 200
    assert head.headers["content-length"] == str(len(got.content)) and head.content == b""

    # Concurrent calls of different sizes share the links; each gets its own.
    def call(i):
        n = 1 + i % 37
        with requests.Session() as s:
            r = s.post(f"{platform.gateway}/v1/models/xgboost-iris:predict", headers=host,
                       json={"instances": IRIS_ROWS[:1] * n}, timeout=30)
        return n, r.status_code, r.json().get("predictions")

    with ThreadPoolExecutor(16) as pool:
        for n, status, predictions in pool.map(call, range(400)):
            assert status == 200
            assert predictions == [1.0] * n


def test_sklearn_example_in_the_python_runtime(platform):
    platform.apply(EXAMPLES / "sklearn-iris.yaml")
    rev = platform.revisions("sklearn-iris")[-1]
    assert rev["spec"]["runtime"] == "kserve-sklearnserver"
    r = platform.predict_v1("sklearn-iris", IRIS_ROWS)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1, 1]}


def test_custom_container_runs_the_users_kserve_model(platform):
    platform.apply(EXAMPLES / "custom-model.yaml")
    r = platform.predict_v1("custom-model", [[1, 2], [3, 5]])
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [{"sum": 3, "max": 2}, {"sum": 8, "max": 5}]}
    logs = platform.cli("logs", "custom-model").stdout
    assert logs.strip(), "the replica's output reaches `osprey logs`"


@pytest.mark.parametrize("probe", ["httpGet: {path: /healthz, port: 8080}",
                                   "tcpSocket: {port: 8080}"])
def test_custom_container_readiness_probe_is_used(platform, tmp_path, probe):
    """A custom server that answers only its own health path (404 on KServe's
    model route) is Ready through its readinessProbe; without one it is never."""
    kind = probe.split(":")[0].lower()
    model = tmp_path / kind
    model.mkdir()
    (model / "health-path").write_text("/healthz")
    name = f"probed-{kind}"
    yaml = custom_server_yaml(name, model).replace(
        "        command:", f"        readinessProbe: {{{probe}}}\n        command:")
    platform.apply_text(yaml)
    harness.wait_until(lambda: platform.condition(name).get("status") == "True", READY_TIMEOUT_S,
                       f"{name} Ready through its readinessProbe")
    r = requests.post(f"{platform.gateway}/v1/models/{name}:predict", json={"instances": [[1]]},
                      headers={"Host": platform.host(name)}, timeout=10)
    assert r.status_code == 200 and r.json() == {"predictions": [1]}, r.text
    platform.cli("delete", "isvc", name)


def test_custom_container_without_probe_waits_for_the_model_route(platform, tmp_path):
    """The same server without a readinessProbe is checked on KServe's model
    route, where it answers 404: it runs but never becomes ready; adding the
    probe makes a revision that does."""
    model = tmp_path / "unprobed"
    model.mkdir()
    (model / "health-path").write_text("/healthz")
    platform.apply_text(custom_server_yaml("unprobed", model), wait=False)

    def replica_port():
        revs = platform.revisions("unprobed")
        reps = revs[0]["status"]["replicaStatuses"] if revs else []
        return reps[0]["port"] if reps and reps[0]["port"] else None

    harness.wait_until(replica_port, 30, "the replica to be started")
    port = replica_port()

    def answers(path):
        try:
            return requests.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code
        except requests.ConnectionError:
            return None

    harness.wait_until(lambda: answers("/healthz") == 200, 30, "the server to listen")
    assert answers("/v1/models/unprobed") == 404
    assert platform.revisions("unprobed")[0]["status"]["readyReplicas"] == 0
    assert platform.condition("unprobed").get("status") != "True"
    platform.apply_text(custom_server_yaml("unprobed", model).replace(
        "        command:", "        readinessProbe: {httpGet: {path: /healthz, port: 8080}}\n"
                           "        command:"))
    assert platform.condition("unprobed")["status"] == "True"
    platform.cli("delete", "isvc", "unprobed")


def test_http_tarball_model_unpacked_and_cached(platform, http_models):
    ModelFiles.hits.clear()
    platform.apply_text(isvc_yaml("tarball", "xgboost", f"{http_models}/xgb-iris.tar.gz"))
    assert ModelFiles.hits == ["/xgb-iris.tar.gz"]
    r = platform.predict_v1("tarball", IRIS_ROWS)
    assert r.json() == {"predictions": [1.0, 1.0]}
    # Another InferenceService of the same URI: served from the cache.
    platform.apply_text(isvc_yaml("tarball-two", "xgboost", f"{http_models}/xgb-iris.tar.gz"))
    assert ModelFiles.hits == ["/xgb-iris.tar.gz"]
    described = platform.cli("describe", "isvc", "tarball").stdout
    assert "tarball-predictor-00001" in described and "ModelFetched" in described, described


def test_failed_revision_reports_why_and_previous_keeps_serving(platform, tmp_path,
                                                                examples_dir):
    good = examples_dir / "xgboost-iris"
    platform.apply_text(isvc_yaml("rollout", "xgboost", good))
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "model.json").write_text("{ this is not an xgboost model")
    out = platform.apply_text(isvc_yaml("rollout", "xgboost", bad), check=False)
    assert out.returncode != 0
    assert "ModelLoadFailed" in out.stderr, out.stderr
    st = platform.isvc("rollout")["status"]
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ModelLoadFailed"
    info = st["modelStatus"]["lastFailureInfo"]
    assert info["reason"] == "ModelLoadFailed"
    assert "model.json" in info["message"] or "xgboost" in info["message"].lower(), info
    assert st["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad"
    pred = st["components"]["predictor"]
    assert pred["latestCreatedRevision"] == "rollout-predictor-00002"
    assert pred["latestReadyRevision"] == "rollout-predictor-00001"
    # Revision 1 keeps every request.
    for _ in range(20):
        r = platform.predict_v1("rollout", IRIS_ROWS)
        assert r.status_code == 200 and r.json() == {"predictions": [1.0, 1.0]}
    phases = {r["metadata"]["name"]: r["status"]["phase"] for r in platform.revisions("rollout")}
    assert phases == {"rollout-predictor-00001": "Ready", "rollout-predictor-00002": "Failed"}
    # A fixed spec rolls forward, and the previous revision is remembered.
    platform.apply_text(isvc_yaml("rollout", "xgboost", good, extra_predictor="\n    minReplicas: 1\n    timeout: 30"))
    pred = platform.isvc("rollout")["status"]["components"]["predictor"]
    assert pred["latestReadyRevision"] == "rollout-predictor-00003"
    assert pred["previousRolledoutRevision"] == "rollout-predictor-00001"
    harness.wait_until(
        lambda: {r["metadata"]["name"]: r["status"]["replicas"]
                 for r in platform.revisions("rollout")}
        == {"rollout-predictor-00001": 0, "rollout-predictor-00002": 0,
            "rollout-predictor-00003": 1},
        READY_TIMEOUT_S, "old revisions to be scaled to zero")


def test_killed_replica_is_restarted(platform, examples_dir):
    platform.apply_text(isvc_yaml("healing", "xgboost", examples_dir / "xgboost-iris"))
    rev = platform.revisions("healing")[0]
    pid = rev["status"]["replicaStatuses"][0]["pid"]
    os.kill(pid, signal.SIGKILL)

    def healed():
        reps = platform.revisions("healing")[0]["status"]["replicaStatuses"]
        return (len(reps) == 1 and reps[0]["state"] == "Ready" and reps[0]["pid"] != pid
                and reps[0]["restarts"] == 1)

    harness.wait_until(healed, READY_TIMEOUT_S, "the killed replica to be replaced")
    reps = platform.revisions("healing")[0]["status"]["replicaStatuses"]
    assert reps[0]["lastExit"] == "killed by signal 9"
    harness.wait_until(lambda: platform.condition("healing")["status"] == "True", 10,
                       "Ready again")
    assert platform.predict_v1("healing", IRIS_ROWS).json() == {"predictions": [1.0, 1.0]}


def test_validation_errors_name_the_field(platform):
    cases = [
        ("""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: nofmt
spec:
  predictor:
    model:
      storageUri: /tmp/x
""", "spec.predictor.model.modelFormat.name"),
        ("""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: twoforms
spec:
  predictor:
    sklearn:
      storageUri: /tmp/x
    model:
      modelFormat: {name: sklearn}
""", "spec.predictor"),
        ("""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: badreplicas
spec:
  predictor:
    minReplicas: two
    model:
      modelFormat: {name: sklearn}
""", "spec.predictor.minReplicas"),
        ("""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: bad: [yaml
""", "line"),
    ]
    for text, fragment in cases:
        r = platform.apply_text(text, wait=False, check=False)
        assert r.returncode == 1, r.stdout
        assert fragment in r.stderr, (fragment, r.stderr)
    # Nothing of it was stored.
    names = platform.cli("get", "isvc", "-o", "name").stdout
    assert "nofmt" not in names and "twoforms" not in names


def test_image_this_machine_cannot_run_is_an_observed_failure(platform):
    # The spec is valid KServe (it would run on a cluster); this machine has no
    # command for the image: the revision fails as Kubernetes reports an image
    # it cannot pull, and the InferenceService is blocked, not invalid.
    r = platform.apply_text("""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: elsewhere
  annotations:
    serving.kserve.io/enable-tag-routing: "true"
spec:
  predictor:
    containers:
      - name: kserve-container
        image: registry.example.com/team/model:2
""", check=False)
    assert r.returncode == 1 and "RuntimeNotRecognized" in r.stderr, r.stderr
    st = platform.isvc("elsewhere")["status"]
    cond = platform.condition("elsewhere", "PredictorReady")
    assert cond["status"] == "False" and cond["reason"] == "RuntimeNotRecognized", cond
    assert "registry.example.com/team/model:2" in cond["message"], cond
    assert st["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad", st
    assert st["modelStatus"]["lastFailureInfo"]["reason"] == "RuntimeNotRecognized", st
    rev = platform.get_json("revisions", "elsewhere-predictor-00001")
    assert rev["status"]["phase"] == "Failed", rev["status"]
    assert rev["status"]["replicas"] == 0, rev["status"]
    # It takes no route (no latest- host even with tag routing): a request
    # is answered at once that no revision is ready, not held in the
    # activator queue for one that will never start.
    started = time.monotonic()
    answer = requests.post(f"{platform.gateway}/v1/models/elsewhere:predict", json={},
                           headers={"Host": "latest-elsewhere-default.example.com"}, timeout=10)
    assert answer.status_code == 503 and "no ready revision" in answer.text, answer.text
    assert time.monotonic() - started < 2
    assert platform.get_json("podautoscalers")["items"] == [] or all(
        i["metadata"]["name"] != "elsewhere-predictor-00001"
        for i in platform.get_json("podautoscalers")["items"])
    # In KServe's terms, the revision keeps the container as written.
    assert rev["spec"]["container"]["image"] == "registry.example.com/team/model:2", rev["spec"]
    platform.cli("delete", "isvc", "elsewhere")


def test_unknown_format_and_runtime_conflicts_show_in_status(platform, examples_dir):
    r = platform.apply_text(isvc_yaml("trt", "tensorrt", "/tmp/none"), check=False)
    assert r.returncode == 1 and "NoSupportingRuntime" in r.stderr, r.stderr
    assert "GPU" in platform.condition("trt")["message"]
    # An explicit runtime that does not list the format.
    r = platform.apply_text(isvc_yaml("mismatch", "sklearn", examples_dir / "sklearn-iris",
                                      extra_model="\n      runtime: kserve-xgbserver"),
                            check=False)
    assert r.returncode == 1, r.stdout
    cond = platform.condition("mismatch", "PredictorReady")
    assert cond["status"] == "False"
    assert "kserve-xgbserver" in cond["message"] and "sklearn" in cond["message"], cond


def test_namespaces_and_user_serving_runtime(platform, examples_dir):
    runtime = """apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata:
  name: team-xgb
  namespace: team
spec:
  supportedModelFormats:
    - name: xgboost
      autoSelect: true
      priority: 5
  containers:
    - name: kserve-container
      image: kserve/xgbserver:latest
      args: ["--model_name={{.Name}}", "--model_dir=/mnt/models", "--http_port=8080"]
---
"""
    text = runtime + isvc_yaml("iris", "xgboost", examples_dir / "xgboost-iris",
                               namespace="team")
    out = platform.apply_text(text).stdout
    assert "servingruntime.serving.kserve.io/team-xgb created" in out
    rev = platform.revisions("iris", namespace="team")[0]
    assert rev["spec"]["runtime"] == "team-xgb"  # namespace runtime with priority wins
    st = platform.isvc("iris", namespace="team")["status"]
    assert st["url"] == f"http://iris-team.example.com:{platform.gateway_port}"
    r = platform.predict_v1("iris", IRIS_ROWS, namespace="team")
    assert r.json() == {"predictions": [1.0, 1.0]}
    table = platform.cli("get", "servingruntimes", "-n", "team").stdout
    assert table.splitlines()[1].split()[:3] == ["team-xgb", "xgboost", "kserve-container"]
    # -o yaml prints the object back as YAML.
    y = platform.cli("get", "isvc", "iris", "-n", "team", "-o", "yaml").stdout
    assert "kind: InferenceService" in y and "name: iris" in y


def test_delete_stops_replicas_and_unroutes(platform, examples_dir):
    platform.apply_text(isvc_yaml("doomed", "xgboost", examples_dir / "xgboost-iris"))
    pid = platform.revisions("doomed")[0]["status"]["replicaStatuses"][0]["pid"]
    out = platform.cli("delete", "isvc", "doomed").stdout
    assert 'inferenceservice.serving.kserve.io "doomed" deleted' in out
    harness.wait_until(lambda: not Path(f"/proc/{pid}").exists(), 30, "the replica to stop")
    r = platform.predict_v1("doomed", IRIS_ROWS)
    assert r.status_code == 404
    assert "doomed" in r.json()["error"]
    r = platform.cli("get", "isvc", "doomed", check=False)
    assert r.returncode == 1 and "not found" in r.stderr


def test_api_refuses_changes_without_the_token(platform):
    token_file = platform.data_dir / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    body = isvc_yaml("sneaky", "xgboost", "/tmp/none")
    r = requests.post(f"{platform.api}/osprey/v1/apply", data=body)
    assert r.status_code == 401 and "token" in r.json()["error"]
    r = requests.post(f"{platform.api}/osprey/v1/apply", data=body,
                      headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = requests.delete(
        f"{platform.api}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/x")
    assert r.status_code == 401
    # Reads need the token too (a Kubernetes Status under /apis); nothing was created.
    r = requests.get(f"{platform.api}/apis/serving.kserve.io/v1beta1/inferenceservices")
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized", r.text
    r = requests.get(f"{platform.api}/osprey/v1/namespaces/default/events")
    assert r.status_code == 401
    r = requests.get(f"{platform.api}/apis/serving.kserve.io/v1beta1/inferenceservices",
                     headers=platform.auth)
    assert r.status_code == 200 and r.json()["kind"] == "InferenceServiceList"
    assert "sneaky" not in r.text
    # Health and Prometheus' endpoints stay open.
    assert requests.get(f"{platform.api}/healthz").status_code == 200
    assert requests.get(f"{platform.api}/metrics").status_code == 200


def test_restart_keeps_everything(osprey_bin, tmp_path, examples_dir, http_models):
    p = Platform(osprey_bin, tmp_path / "home").start()
    try:
        ModelFiles.hits.clear()
        p.apply_text(isvc_yaml("survivor", "xgboost", f"{http_models}/xgb-iris.tar.gz"))
        assert ModelFiles.hits == ["/xgb-iris.tar.gz"]
        before = p.isvc("survivor")
        pid = p.revisions("survivor")[0]["status"]["replicaStatuses"][0]["pid"]
        p.kill9()  # no chance to clean up
        assert Path(f"/proc/{pid}").exists(), "replicas outlive the control plane"
        p2 = Platform(osprey_bin, tmp_path / "home")
        p2.gateway_port = p.gateway_port  # same URL as before
        p2.start()
        p = p2
        harness.wait_until(lambda: p.condition("survivor").get("status") == "True", 30,
                           "the InferenceService to be Ready after the restart")
        after = p.isvc("survivor")
        assert after["metadata"]["creationTimestamp"] == before["metadata"]["creationTimestamp"]
        assert after["metadata"]["generation"] == before["metadata"]["generation"]
        rev = p.revisions("survivor")
        assert [r["metadata"]["name"] for r in rev] == ["survivor-predictor-00001"]
        reps = rev[0]["status"]["replicaStatuses"]
        assert [r["pid"] for r in reps] == [pid] and reps[0]["adopted"], reps
        assert p.predict_v1("survivor", IRIS_ROWS).json() == {"predictions": [1.0, 1.0]}
        assert ModelFiles.hits == ["/xgb-iris.tar.gz"], "no second download"
        # A graceful stop stops the replicas; the next start brings them back.
        p.stop()
        harness.wait_until(lambda: not Path(f"/proc/{pid}").exists(), 30, "replica stopped")
        p3 = Platform(osprey_bin, tmp_path / "home")
        p3.start()
        p = p3
        harness.wait_until(lambda: p.condition("survivor").get("status") == "True",
                           READY_TIMEOUT_S, "Ready after a graceful restart")
        assert p.predict_v1("survivor", IRIS_ROWS).json() == {"predictions": [1.0, 1.0]}
        assert ModelFiles.hits == ["/xgb-iris.tar.gz"], "no second download"
    finally:
        p.stop_everything()


@pytest.fixture(scope="module")
def s3_gateway(tmp_path_factory, examples_dir):
    from test_storage import VERSITYGW, VersityGw

    if not VERSITYGW.is_file():
        pytest.skip(f"versitygw not installed at {VERSITYGW} (scripts/deps.sh installs it)")
    base = tmp_path_factory.mktemp("platform-s3")
    (base / "root").mkdir()
    gw = VersityGw(base / "root", base / "versitygw.log")
    try:
        client = gw.client()
        gw.wait_ready(client)
        client.create_bucket(Bucket="models")
        client.put_object(Bucket="models", Key="xgboost/iris/model.json",
                          Body=(examples_dir / "xgboost-iris" / "model.json").read_bytes())
        yield gw
    finally:
        gw.stop()


def test_s3_model_with_kserve_credentials(osprey_bin, tmp_path, s3_gateway):
    env = {"AWS_ENDPOINT_URL": s3_gateway.endpoint, "AWS_ACCESS_KEY_ID": s3_gateway.access_key,
           "AWS_SECRET_ACCESS_KEY": s3_gateway.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
           "S3_USE_HTTPS": "0"}
    p = Platform(osprey_bin, tmp_path / "home", env=env).start()
    try:
        p.apply_text(isvc_yaml("from-s3", "xgboost", "s3://models/xgboost/iris"))
        assert p.predict_v1("from-s3", IRIS_ROWS).json() == {"predictions": [1.0, 1.0]}
    finally:
        p.stop_everything()
    # Wrong credentials: the revision fails on storage, naming the signature.
    env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
    p = Platform(osprey_bin, tmp_path / "home-bad", env=env).start()
    try:
        r = p.apply_text(isvc_yaml("from-s3", "xgboost", "s3://models/xgboost/iris"),
                         check=False)
        assert r.returncode == 1
        info = p.isvc("from-s3")["status"]["modelStatus"]["lastFailureInfo"]
        assert info["reason"] == "StorageFailed"
        assert "signature" in info["message"].lower(), info
    finally:
        p.stop_everything()
