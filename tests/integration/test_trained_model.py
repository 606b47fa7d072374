"""TrainedModels (KServe's serving.kserve.io/v1alpha1) through `osprey up`:
models placed onto a running multi-model InferenceService (a predictor of
the model form without a storageUri), as KServe's multi-model serving docs
apply them:

- the service is Ready with no model; each TrainedModel is fetched by the
  storage initializer into the service's repository and loaded by its
  replicas; `osprey get trainedmodels` prints NAME URL READY AGE; each model
  answers V1 and V2 at /v1/models/{name} and /v2/models/{name} on the
  service's host, with its own predictions;
- a changed storageUri places the new model (the answers change); deleting a
  TrainedModel unloads it and leaves the others serving;
- KServe's conditions say why one cannot be placed: an unsupported
  framework, a missing service, a single-model service, memory past the
  predictor's limit, a storageUri that does not fetch (each checked by type
  and message);
- a TrainedModel without its required fields is refused at apply, naming
  the field.
"""

import numpy as np
import pytest
import requests

import harness
from platform_harness import Platform, isvc_yaml

xgb = pytest.importorskip("xgboost")

ROWS = np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]], dtype=np.float32)
DEADLINE_S = 60

MMS = """apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: mms
spec:
  predictor:
    model:
      modelFormat: {name: xgboost}
      resources:
        limits: {memory: 256Mi}
"""


def tm_yaml(name, isvc, uri, framework="xgboost", memory="64Mi"):
    return f"""apiVersion: serving.kserve.io/v1alpha1
kind: TrainedModel
metadata:
  name: {name}
spec:
  inferenceService: {isvc}
  model:
    storageUri: {uri}
    framework: {framework}
    memory: {memory}
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tm-models")
    out = {}
    for i in range(3):
        rng = np.random.default_rng(i)
        X = rng.normal(size=(100, 4)).astype(np.float32) * 2 + 4
        y = rng.integers(0, 3, size=100)
        booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3,
                             "seed": i}, xgb.DMatrix(X, label=y), num_boost_round=6)
        (root / f"m{i}").mkdir()
        booster.save_model(str(root / f"m{i}" / "model.json"))
        out[i] = (root / f"m{i}", booster.predict(xgb.DMatrix(ROWS)))
    return out


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("trained") / "home").start()
    p.apply_text(MMS)
    yield p
    p.stop_everything()


def tm(platform, name):
    return platform.get_json("trainedmodels", name)


def conditions(platform, name):
    return {c["type"]: c for c in tm(platform, name)["status"].get("conditions", [])}


def wait_ready(platform, name):
    harness.wait_until(lambda: conditions(platform, name).get("Ready", {}).get("status") == "True",
                       DEADLINE_S, f"trainedmodel {name} Ready")


def v1(platform, name):
    return requests.post(f"{platform.gateway}/v1/models/{name}:predict",
                         json={"instances": ROWS.tolist()},
                         headers={"Host": platform.host("mms")}, timeout=harness.HTTP_TIMEOUT_S)


def v2(platform, name):
    return requests.post(f"{platform.gateway}/v2/models/{name}/infer",
                         json=harness.v2_json_request(ROWS),
                         headers={"Host": platform.host("mms")}, timeout=harness.HTTP_TIMEOUT_S)


def test_the_multi_model_service_is_ready_with_no_model(platform):
    assert platform.condition("mms")["status"] == "True"
    assert v1(platform, "nothing-here").status_code in (404, 503)


def test_trained_models_are_placed_and_answer(platform, models):
    platform.apply_text(tm_yaml("model1", "mms", models[0][0]) + "---\n" +
                        tm_yaml("model2", "mms", f"file://{models[1][0]}"), wait=False)
    service_url = platform.isvc("mms")["status"]["url"]
    for name in ("model1", "model2"):
        wait_ready(platform, name)
        status = tm(platform, name)["status"]
        assert status["url"] == f"{service_url}/v1/models/{name}"
        assert all(c["status"] == "True" for c in status["conditions"]), status
    for name, i in (("model1", 0), ("model2", 1)):
        r = v1(platform, name)
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["predictions"], models[i][1], rtol=1e-5, atol=1e-6)
        r = v2(platform, name)
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        np.testing.assert_allclose(np.reshape(out["data"], out["shape"]), models[i][1],
                                   rtol=1e-5, atol=1e-6)
    # Each replica's model cache accounts a model at its declared spec.model.memory.
    revision = [r for r in platform.revisions("mms")][0]
    for replica in revision["status"]["replicaStatuses"]:
        text = requests.get(f"http://127.0.0.1:{replica['port']}/metrics", timeout=10).text
        assert f'osprey_model_resident_bytes{{model="model1"}} {64 << 20}' in text, text[-1500:]
    table = platform.cli("get", "trainedmodels").stdout
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "URL", "READY", "AGE"], table
    assert any(line.split()[:3] == ["model1", f"{service_url}/v1/models/model1", "True"]
               for line in lines[1:]), table


def test_a_changed_model_is_placed_again_and_a_deleted_one_unloaded(platform, models):
    platform.apply_text(tm_yaml("model3", "mms", models[0][0]), wait=False)
    wait_ready(platform, "model3")
    np.testing.assert_allclose(v1(platform, "model3").json()["predictions"], models[0][1],
                               rtol=1e-5, atol=1e-6)
    platform.apply_text(tm_yaml("model3", "mms", models[2][0]), wait=False)

    def answers_the_new_model():
        r = v1(platform, "model3")
        return r.status_code == 200 and np.allclose(r.json()["predictions"], models[2][1],
                                                    rtol=1e-5, atol=1e-6)

    harness.wait_until(answers_the_new_model, DEADLINE_S, "model3 answers with the new model")
    wait_ready(platform, "model3")
    placed = platform.data_dir / "models" / "default" / "mms" / "model3"
    assert placed.is_dir()
    platform.cli("delete", "trainedmodel", "model3")
    harness.wait_until(lambda: v1(platform, "model3").status_code != 200, DEADLINE_S,
                       "model3 no longer answers")
    assert v1(platform, "model3").status_code in (404, 503)
    assert v1(platform, "model1").status_code == 200
    # Unloaded from every replica (their caches no longer hold it) and its
    # files gone from the service's repository (no request loads it again).
    revision = platform.revisions("mms")[0]

    def unloaded():
        return all('osprey_model_resident_bytes{model="model3"}' not in requests.get(
            f"http://127.0.0.1:{r['port']}/metrics", timeout=10).text
            for r in revision["status"]["replicaStatuses"])

    harness.wait_until(unloaded, DEADLINE_S, "model3 unloaded from every replica")
    harness.wait_until(lambda: not placed.exists(), DEADLINE_S, "model3's files removed")


def test_conditions_say_why_a_model_cannot_be_placed(platform, models, tmp_path):
    platform.apply_text(isvc_yaml("single", "xgboost", models[0][0]))
    cases = {
        "wrong-framework": (tm_yaml("wrong-framework", "mms", models[0][0], framework="sklearn"),
                            "FrameworkSupported", "framework sklearn is not supported"),
        "no-service": (tm_yaml("no-service", "absent", models[0][0]),
                       "InferenceServiceReady", "InferenceService absent does not exist"),
        "single-model": (tm_yaml("single-model", "single", models[0][0]),
                         "IsMMSPredictor", "is not multi-model"),
        "too-big": (tm_yaml("too-big", "mms", models[0][0], memory="1Gi"),
                    "MemoryResourceAvailable", "memory limit is 268435456 bytes"),
        "bad-uri": (tm_yaml("bad-uri", "mms", tmp_path / "missing"), "Ready", "missing"),
    }
    platform.apply_text("---\n".join(c[0] for c in cases.values()), wait=False)
    for name, (_, ctype, words) in cases.items():
        def says():
            c = conditions(platform, name).get(ctype, {})
            return c.get("status") == "False" and words in c.get("message", "")

        harness.wait_until(says, DEADLINE_S, f"{name}: {ctype} False saying '{words}'")
        assert conditions(platform, name)["Ready"]["status"] == "False"
    # The memory the too-big one asks for counts against the others' too: its
    # deletion frees it, and nothing placed before was harmed.
    platform.cli("delete", "trainedmodel", "too-big")
    assert v1(platform, "model1").status_code == 200


def test_required_fields_are_named_at_apply(platform, models):
    text = tm_yaml("no-memory", "mms", models[0][0]).replace("    memory: 64Mi\n", "")
    r = platform.apply_text(text, wait=False, check=False)
    assert r.returncode != 0
    assert "spec.model.memory: required" in r.stderr, r.stderr
    r = platform.apply_text(tm_yaml("bad-memory", "mms", models[0][0], memory="lots"),
                            wait=False, check=False)
    assert r.returncode != 0 and "spec.model.memory" in r.stderr, r.stderr


def test_python_runtime_models_too(platform):
    """A multi-model sklearn service: its TrainedModels run in Python workers."""
    joblib = pytest.importorskip("joblib")
    from sklearn.linear_model import LogisticRegression

    # Room for two Python workers with scikit-learn (~100 MB each) in the budget.
    platform.apply_text(MMS.replace("name: mms", "name: mms-sk").replace("xgboost", "sklearn")
                        .replace("256Mi", "1Gi"))
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 4)) * 2 + 4
    y = rng.integers(0, 3, size=60)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    model_dir = platform.data_dir.parent / "sk-model"
    model_dir.mkdir()
    joblib.dump(clf, model_dir / "model.joblib")
    platform.apply_text(tm_yaml("flowers", "mms-sk", model_dir, framework="sklearn"), wait=False)
    wait_ready(platform, "flowers")
    r = requests.post(f"{platform.gateway}/v1/models/flowers:predict",
                      json={"instances": ROWS.tolist()},
                      headers={"Host": platform.host("mms-sk")}, timeout=harness.HTTP_TIMEOUT_S)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == clf.predict(ROWS.astype(np.float64)).tolist()
