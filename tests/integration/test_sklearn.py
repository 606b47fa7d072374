"""scikit-learn models in Osprey's Python workers, checked against the model's
own predict in the test: SVC, LogisticRegression, RandomForest (predict, and
predict_proba with PREDICT_PROBA=true as KServe's sklearnserver), a
ColumnTransformer pipeline on mixed types (V1 records and V2 text rows),
KServe's sklearn e2e case, a worker killed mid-service (replaced, nothing else
fails), a pickle that cannot load, and an exception raised by the model."""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from harness import assert_error, v2_binary_request, v2_json_request, wait_until

KSERVE_E2E = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]


def iris():
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


def mixed_frame():
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, n).astype(float),
        "income": rng.normal(50, 15, n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
        "plan": rng.choice(["basic", "pro"], n),
    })
    y = ((frame["income"] > 50) & (frame["city"] != "nice")).astype(int)
    return frame, y


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC

    repo = tmp_path_factory.mktemp("sklearn-repo")
    X, y = iris()
    models = {
        "svc": SVC(gamma="scale", probability=True, random_state=0).fit(X, y),
        "logistic": LogisticRegression(max_iter=500).fit(X, y),
        "forest": RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y),
    }
    frame, target = mixed_frame()
    models["mixed"] = Pipeline([
        ("columns", ColumnTransformer([
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"])])),
        ("model", LogisticRegression(max_iter=500))]).fit(frame, target)
    files = {"svc": "model.joblib", "logistic": "model.pkl", "forest": "model.pickle",
             "mixed": "model.joblib"}
    for name, model in models.items():
        (repo / name).mkdir()
        joblib.dump(model, repo / name / files[name])
    return repo, models


@pytest.fixture(scope="module")
def server(launcher, trained):
    repo, _ = trained
    with launcher.serve(["--model-repository", repo], label="sklearn") as s:
        yield s


@pytest.fixture(scope="module")
def proba_server(launcher, trained):
    repo, _ = trained
    with launcher.serve(["--model-repository", repo], label="sklearn-proba",
                        env={"PREDICT_PROBA": "true"}) as s:
        yield s


def test_kserve_sklearn_e2e_case(server):
    r = server.post("/v1/models/svc:predict", json={"instances": KSERVE_E2E})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == [1, 1]
    r = server.post("/v2/models/svc/infer", json=v2_json_request(np.array(KSERVE_E2E),
                                                                 datatype="FP64"))
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [1, 1]


@pytest.mark.parametrize("name", ["svc", "logistic", "forest"])
def test_predict_matches_the_model(server, trained, name):
    _, models = trained
    X, _ = iris()
    r = server.post(f"/v2/models/{name}/infer", json=v2_json_request(X, datatype="FP64"))
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["datatype"] == "INT64"
    assert out["data"] == models[name].predict(X).tolist()


@pytest.mark.parametrize("name", ["svc", "logistic", "forest"])
def test_predict_proba_when_configured(proba_server, trained, name):
    _, models = trained
    X, _ = iris()
    r = proba_server.post(f"/v2/models/{name}/infer", json=v2_json_request(X[::10], datatype="FP64"))
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["shape"] == [len(X[::10]), 3]
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(out["shape"]),
                               models[name].predict_proba(X[::10]), rtol=1e-12, atol=1e-12)


def test_column_transformer_pipeline_on_mixed_types(server, trained):
    _, models = trained
    frame, _ = mixed_frame()
    rows = frame.head(12)
    want = models["mixed"].predict(rows).tolist()
    records = [{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in row.items()}
               for row in rows.to_dict(orient="records")]
    r = server.post("/v1/models/mixed:predict", json={"instances": records})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == want
    lists = [[row["age"], row["income"], row["city"], row["plan"]] for row in records]
    r = server.post("/v1/models/mixed:predict", json={"instances": lists})
    assert r.json()["predictions"] == want
    meta = server.get("/v2/models/mixed").json()
    assert meta["inputs"][0]["datatype"] == "BYTES"
    r = server.post("/v2/models/mixed/infer", json={"inputs": [{
        "name": "input-0", "shape": [len(lists), 4], "datatype": "BYTES",
        "data": [str(v) for row in lists for v in row]}]})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == want


def test_concurrent_requests_all_answered(server, trained):
    _, models = trained
    X, _ = iris()
    start = threading.Barrier(16)

    def post(i):
        with requests.Session() as s:
            start.wait(timeout=10)
            return s.post(server.url("/v2/models/forest/infer"), timeout=30,
                          json=v2_json_request(X[i:i + 3], datatype="FP64"))

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(16)))
    for i, r in enumerate(answers):
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == models["forest"].predict(X[i:i + 3]).tolist()


def test_exception_in_the_model_is_a_500_with_its_type(server):
    X = np.array([[1.0, np.nan, 3.0, 4.0]])
    body, headers = v2_binary_request(X, "FP64")
    r = requests.post(server.url("/v2/models/svc/infer"), data=body, headers=headers)
    assert_error(r, 500, "ValueError", "NaN")
    assert server.post("/v1/models/svc:predict", json={"instances": KSERVE_E2E}).status_code == 200


def worker_pids(server):
    out = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_killed_worker_is_replaced(launcher, trained):
    repo, _ = trained
    with launcher.serve(["--model-dir", repo / "svc", "--model-name", "svc", "--python-workers", "1",
                         "--no-grpc"], label="sklearn-crash") as s:
        pids = wait_until(lambda: worker_pids(s), 10, "a Python worker")
        os.kill(pids[0], signal.SIGKILL)
        r = s.post("/v1/models/svc:predict", json={"instances": KSERVE_E2E})
        # The request that meets the dead worker fails and says why; the next
        # ones are answered by its replacement.
        assert_error(r, 500, "killed by signal 9")
        wait_until(lambda: s.post("/v1/models/svc:predict",
                                  json={"instances": KSERVE_E2E}).status_code == 200,
                   30, "a replacement worker")
        assert set(worker_pids(s)).isdisjoint(pids), (worker_pids(s), pids)


def test_pickle_that_cannot_load_names_the_module(launcher, tmp_path):
    module_dir = tmp_path / "modules"
    module_dir.mkdir()
    (module_dir / "gone_module.py").write_text("class Model:\n    def predict(self, X):\n"
                                               "        return X\n")
    (tmp_path / "repo" / "gone").mkdir(parents=True)
    script = textwrap.dedent(f"""
        import sys, pickle
        sys.path.insert(0, {str(module_dir)!r})
        import gone_module
        pickle.dump(gone_module.Model(), open({str(tmp_path / 'repo' / 'gone' / 'model.pkl')!r}, 'wb'))
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    with launcher.serve(["--model-repository", tmp_path / "repo", "--no-grpc"], label="sklearn-bad",
                        ready=False) as s:
        index = wait_until(lambda: s.repository_index().get("gone", {}).get("reason"), 30,
                           "the load failure")
        assert "No module named 'gone_module'" in index
