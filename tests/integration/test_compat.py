"""KServe behaviours its users rely on, through `osprey up` with KServe's YAML.

- A storageUri that names one file: the storage initializer puts that file
  alone into the model directory (file://, a bare path; remote schemes are
  covered in test_storage.py).
- A replica that cannot start (its program missing) or dies before it is
  ready surfaces as the revision's failure, with the reason, within seconds.
- `--model_name` in the predictor's args names the served model, as KServe's
  servers take it (over gRPC: grpc/test_gateway_grpc.py).
- The runtimes a current KServe installs, kserve-predictiveserver among them.
"""

import shutil
from pathlib import Path

import pytest
import requests

import harness
from platform_harness import Platform, example_models, isvc_yaml

IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
FAILURE_DEADLINE_S = 15


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("compat") / "home").start()
    yield p
    p.stop_everything()


def revision(platform, name):
    items = platform.revisions(name)
    assert len(items) == 1, items
    return items[0]


@pytest.mark.parametrize("fmt,file,scheme", [
    ("sklearn", "sklearn-iris/model.joblib", "file://"),
    ("xgboost", "xgboost-iris/model.json", ""),
])
def test_a_storage_uri_naming_one_file(platform, tmp_path, fmt, file, scheme):
    # The file sits beside others that are not the model: only it is served.
    src = example_models() / file
    shutil.copy(src, tmp_path / src.name)
    (tmp_path / "notes.txt").write_text("not a model")
    name = f"one-file-{fmt}"
    platform.apply_text(isvc_yaml(name, fmt, f"{scheme}{tmp_path / src.name}"))
    r = platform.predict_v1(name, IRIS_ROWS)
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 2
    model_dir = Path(revision(platform, name)["status"]["modelDir"])
    assert sorted(p.name for p in model_dir.iterdir()) == [src.name]


def test_a_replica_that_cannot_start_fails_its_revision_with_the_reason(platform, tmp_path):
    platform.apply_text(f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: no-program
spec:
  predictor:
    containers:
      - name: kserve-container
        image: example.com/no-program:1
        command: ["osprey-test-no-such-program"]
""", wait=False)

    def failed():
        status = revision(platform, "no-program")["status"]
        return status.get("phase") == "Failed" and "spawn failed" in status.get("message", "")

    harness.wait_until(failed, FAILURE_DEADLINE_S, "the revision Failed with the spawn error")
    cond = platform.condition("no-program")
    assert cond["status"] == "False", cond
    assert "osprey-test-no-such-program" in cond.get("message", ""), cond


def test_a_replica_that_dies_before_ready_fails_its_revision(platform, tmp_path):
    (tmp_path / "model.json").write_text("this is not an xgboost model")
    platform.apply_text(isvc_yaml("bad-model", "xgboost", tmp_path / "model.json"), wait=False)

    def failed():
        status = revision(platform, "bad-model")["status"]
        return status.get("phase") == "Failed" and status.get("message")

    harness.wait_until(failed, FAILURE_DEADLINE_S, "the revision Failed with the load error")
    message = revision(platform, "bad-model")["status"]["message"]
    assert "model.json" in message or "xgboost" in message.lower(), message


def test_model_name_in_the_args_names_the_served_model(platform):
    model_dir = example_models() / "xgboost-iris"
    platform.apply_text(isvc_yaml("named", "xgboost", model_dir,
                                  extra_model="\n      args: [\"--model_name=flowers\"]"))
    host = {"Host": platform.host("named")}
    r = requests.post(f"{platform.gateway}/v1/models/flowers:predict",
                      json={"instances": IRIS_ROWS}, headers=host, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [1.0, 1.0]}
    r = requests.post(f"{platform.gateway}/v1/models/named:predict",
                      json={"instances": IRIS_ROWS}, headers=host, timeout=10)
    assert r.status_code == 404, r.text
    # No Host of the service: the gateway finds the route by the served name.
    r = requests.post(f"{platform.gateway}/v1/models/flowers:predict",
                      json={"instances": IRIS_ROWS}, timeout=10)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("fmt,model", [("sklearn", "sklearn-iris"), ("xgboost", "xgboost-iris")])
def test_the_predictive_server_runtime(platform, fmt, model):
    name = f"predictive-{fmt}"
    platform.apply_text(isvc_yaml(name, fmt, example_models() / model,
                                  extra_model="\n      runtime: kserve-predictiveserver"))
    assert revision(platform, name)["spec"]["runtime"] == "kserve-predictiveserver"
    r = platform.predict_v1(name, IRIS_ROWS)
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 2
    listed = platform.cli("get", "clusterservingruntimes").stdout
    assert "kserve-predictiveserver" in listed, listed


def test_predictor_env_and_workers_reach_the_model_server(platform, tmp_path):
    """The model's env (sklearnserver's PREDICT_PROBA) reaches the model, and
    KServe's --workers becomes the model's worker processes."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model_dir = tmp_path / "logistic"
    model_dir.mkdir()
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), model_dir / "model.joblib")
    platform.apply_text(isvc_yaml("proba", "sklearn", model_dir, extra_model=(
        "\n      env: [{name: PREDICT_PROBA, value: \"true\"}]"
        "\n      args: [\"--workers=3\"]")))
    r = platform.predict_v1("proba", IRIS_ROWS)
    assert r.status_code == 200, r.text
    rows = r.json()["predictions"]
    assert len(rows) == 2 and all(len(p) == 3 and abs(sum(p) - 1) < 1e-6 for p in rows), rows
    argv = revision(platform, "proba")["status"]["local"]["command"]
    assert argv[argv.index("--python-workers") + 1] == "3", argv

    # The replica runs three worker processes of the model.
    def workers():
        (pid,) = [r["pid"] for r in revision(platform, "proba")["status"]["replicaStatuses"]]
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sum("osprey_worker.py" in Path(f"/proc/{c}/cmdline").read_text()
                   for c in children if Path(f"/proc/{c}").exists())

    harness.wait_until(lambda: workers() == 3, 30, "three Python workers")


def test_every_runtime_a_current_kserve_installs(platform):
    """KServe v0.17's ClusterServingRuntimes are all known by name; a predictor
    with a workerSpec goes to the multi-node runtime, whose format is refused
    here with the reason."""
    listed = platform.cli("get", "clusterservingruntimes").stdout
    for name in ("kserve-huggingfaceserver", "kserve-huggingfaceserver-multinode",
                 "kserve-lgbserver", "kserve-mlserver", "kserve-paddleserver",
                 "kserve-pmmlserver", "kserve-predictiveserver", "kserve-sklearnserver",
                 "kserve-tensorflow-serving", "kserve-torchserve", "kserve-tritonserver",
                 "kserve-xgbserver"):
        assert name in listed, (name, listed)
    platform.apply_text("""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: llm
spec:
  predictor:
    workerSpec: {pipelineParallelSize: 2, tensorParallelSize: 1}
    model:
      modelFormat: {name: huggingface}
      storageUri: hf://meta-llama/Llama-3.1-8B
""", wait=False)

    def refused():
        c = platform.condition("llm")
        return c and c.get("status") == "False" and c.get("message")

    harness.wait_until(refused, FAILURE_DEADLINE_S, "the multi-node predictor refused")
    c = platform.condition("llm")
    assert "huggingface" in c["message"], c
    assert revision(platform, "llm")["spec"]["runtime"] == "kserve-huggingfaceserver-multinode"
