"""LightGBM models served by Osprey's native evaluator, checked against the real
lightgbm package's predict on the same rows: every objective family, numerical
splits with missing values (NaN and zero-as-missing), categorical splits,
random-forest averaging, raw scores, V1 and V2, and models given as model.txt
or as KServe's lgbserver names them (model.bst)."""

import numpy as np
import pytest
import requests

from harness import assert_error, decode_infer_response, v2_binary_request

ROWS = 400
FEATURES = ["f0", "f1", "f2", "cat", "f4"]
CAT = 3  # index of the categorical feature (integer codes 0..7)
# Osprey reproduces LightGBM's double arithmetic step for step, so answers are
# checked for equality (the requirement is 1e-6).
TOLERANCE = 0


def dataset(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(ROWS, len(FEATURES)))
    X[:, CAT] = rng.integers(0, 8, size=ROWS)
    X[rng.random(ROWS) < 0.1, 0] = np.nan      # missing values in f0
    X[rng.random(ROWS) < 0.2, 4] = 0.0         # zeros in f4 (zero_as_missing models)
    signal = X[:, 1] + 0.5 * np.nan_to_num(X[:, 0]) + (X[:, CAT] % 3 == 0) - 0.3 * X[:, 2]
    return X, signal


def labels(objective, signal, rng):
    if objective in ("binary", "cross_entropy", "cross_entropy_lambda"):
        return (signal > 0.3).astype(float)
    if objective in ("multiclass", "multiclassova"):
        return np.digitize(signal, [-0.5, 0.8])
    if objective in ("poisson", "tweedie"):
        return rng.poisson(np.exp(0.3 * signal))
    if objective == "gamma":
        return rng.gamma(2.0, np.exp(0.3 * signal))
    if objective in ("lambdarank", "rank_xendcg"):
        return np.clip(np.digitize(signal, [-1, 0, 1]), 0, 3)
    if objective == "mape":
        return 3 + signal + 0.1 * rng.normal(size=ROWS)
    return signal + 0.1 * rng.normal(size=ROWS)


# name -> (params, file name)
MODELS = {
    "lgb-regression": ({"objective": "regression"}, "model.bst"),
    "lgb-regression-sqrt": ({"objective": "regression", "reg_sqrt": True}, "model.txt"),
    "lgb-l1": ({"objective": "regression_l1"}, "model.txt"),
    "lgb-huber": ({"objective": "huber"}, "model.txt"),
    "lgb-fair": ({"objective": "fair"}, "model.txt"),
    "lgb-quantile": ({"objective": "quantile", "alpha": 0.8}, "model.txt"),
    "lgb-mape": ({"objective": "mape"}, "model.txt"),
    "lgb-poisson": ({"objective": "poisson"}, "model.txt"),
    "lgb-gamma": ({"objective": "gamma"}, "model.txt"),
    "lgb-tweedie": ({"objective": "tweedie"}, "model.txt"),
    "lgb-binary": ({"objective": "binary"}, "model.bst"),
    "lgb-xentropy": ({"objective": "cross_entropy"}, "model.txt"),
    "lgb-xentlambda": ({"objective": "cross_entropy_lambda"}, "model.txt"),
    "lgb-multiclass": ({"objective": "multiclass", "num_class": 3}, "model.bst"),
    "lgb-multiclassova": ({"objective": "multiclassova", "num_class": 3}, "model.txt"),
    "lgb-lambdarank": ({"objective": "lambdarank"}, "model.txt"),
    "lgb-xendcg": ({"objective": "rank_xendcg"}, "model.txt"),
    "lgb-zero-missing": ({"objective": "regression", "zero_as_missing": True}, "model.txt"),
    "lgb-rf": ({"objective": "binary", "boosting": "rf", "bagging_freq": 1,
                "bagging_fraction": 0.7, "feature_fraction": 0.8}, "model.txt"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import lightgbm as lgb

    repo = tmp_path_factory.mktemp("lgb-repo")
    X, signal = dataset()
    boosters = {}
    for name, (params, file_name) in MODELS.items():
        rng = np.random.default_rng(1)
        y = labels(params["objective"], signal, rng)
        full = {"verbose": -1, "num_threads": 1, "seed": 0, "num_leaves": 15,
                "min_data_in_leaf": 5, "cat_smooth": 1, "min_data_per_group": 5, **params}
        group = [20] * (ROWS // 20) if params["objective"] in ("lambdarank", "rank_xendcg") else None
        ds = lgb.Dataset(X, label=y, group=group, feature_name=FEATURES,
                         categorical_feature=[CAT], free_raw_data=False)
        booster = lgb.train(full, ds, num_boost_round=25)
        (repo / name).mkdir()
        booster.save_model(str(repo / name / file_name))
        boosters[name] = booster
    return repo, boosters


@pytest.fixture(scope="module")
def server(launcher, trained):
    repo, _ = trained
    with launcher.serve(["--model-repository", repo], label="lightgbm") as s:
        yield s


def probe_rows():
    """Fresh rows: missing values, zeros, unseen and negative categories, extremes."""
    X, _ = dataset(seed=7)
    X = X[:120].copy()
    X[0] = [np.nan, np.nan, np.nan, np.nan, np.nan]
    X[1] = [0.0, 0.0, 0.0, 0.0, 0.0]
    X[2, CAT] = 42      # category never seen
    X[3, CAT] = -1      # negative category
    X[4, CAT] = 2.7     # truncated to 2
    X[5] = [1e30, -1e30, 1e-40, 5, -1e-40]
    return X


def infer(server, name, X, parameters=None):
    body, headers = v2_binary_request(X, "FP64", parameters=parameters)
    r = requests.post(server.url(f"/v2/models/{name}/infer"), data=body, headers=headers, timeout=30)
    return decode_infer_response(r.status_code, r.headers, r.content).outputs["output-0"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_predictions_match_lightgbm(server, trained, name):
    _, boosters = trained
    X = probe_rows()
    want = boosters[name].predict(X)
    got = infer(server, name, X)
    assert got.dtype == np.float64
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE, err_msg=name)


@pytest.mark.parametrize("name", ["lgb-binary", "lgb-multiclass", "lgb-poisson", "lgb-rf"])
def test_raw_score(server, trained, name):
    _, boosters = trained
    X = probe_rows()
    got = infer(server, name, X, parameters={"raw_score": True})
    np.testing.assert_allclose(got, boosters[name].predict(X, raw_score=True), rtol=0,
                               atol=TOLERANCE)


def test_float32_rows_decide_as_lightgbm_does(server, trained):
    """FP32 inputs are widened to double exactly as lightgbm widens a float32 array."""
    _, boosters = trained
    X = probe_rows().astype(np.float32)
    X[5] = [1e30, -1e30, 0, 5, 0]
    body, headers = v2_binary_request(X, "FP32")
    r = requests.post(server.url("/v2/models/lgb-multiclass/infer"), data=body, headers=headers)
    got = decode_infer_response(r.status_code, r.headers, r.content).outputs["output-0"]
    np.testing.assert_allclose(got, boosters["lgb-multiclass"].predict(X), rtol=0, atol=TOLERANCE)


def test_v1_rows_and_named_columns(server, trained):
    _, boosters = trained
    X = np.nan_to_num(probe_rows()[6:12])
    want = boosters["lgb-binary"].predict(X)
    r = server.post("/v1/models/lgb-binary:predict", json={"instances": X.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], want, rtol=0, atol=TOLERANCE)
    rows = [dict(zip(FEATURES, map(float, row))) for row in X]
    r = server.post("/v1/models/lgb-binary:predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], want, rtol=0, atol=TOLERANCE)


def test_metadata(server):
    meta = server.get("/v2/models/lgb-multiclass").json()
    assert meta["platform"] == "lightgbm"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 5]}]
    assert meta["outputs"] == [{"name": "output-0", "datatype": "FP64", "shape": [-1, 3]}]
    meta = server.get("/v2/models/lgb-regression").json()
    assert meta["outputs"][0]["shape"] == [-1]


def test_wrong_feature_count_is_refused(server):
    r = server.post("/v2/models/lgb-binary/infer", json={
        "inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]})
    assert_error(r, 400, "input-0", "[1,3]")


def test_bad_model_file_reports_why(launcher, tmp_path):
    good = tmp_path / "ok"
    good.mkdir()
    (good / "model.txt").write_text("tree\nversion=v4\nmax_feature_idx=1\nobjective=regression\n\n"
                                    "Tree=0\nnum_leaves=1\nleaf_value=0.5\n\nend of trees\n")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.txt").write_text("tree\nversion=v4\nmax_feature_idx=1\nobjective=regression\n\n"
                                      "Tree=0\nnum_leaves=3\nsplit_feature=0 9\nthreshold=1 2\n"
                                      "decision_type=0 0\nleft_child=1 -1\nright_child=-2 -3\n"
                                      "leaf_value=1 2 3\n\nend of trees\n")
    with launcher.serve(["--model-repository", tmp_path], label="lgb-bad",
                        ready_models=["ok"]) as s:
        index = s.repository_index()
        assert index["ok"]["state"] == "READY"
        assert index["broken"]["state"] == "UNAVAILABLE"
        assert "feature 9" in index["broken"]["reason"]
        r = s.post("/v2/models/ok/infer", json={
            "inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]})
        assert r.json()["outputs"][0]["data"] == [0.5]
