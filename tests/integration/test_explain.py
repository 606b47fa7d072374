"""Built-in explanations: `osprey serve` answers V1 `:explain` and V2 `/explain`
for XGBoost and LightGBM models with exact TreeSHAP contributions computed by
its own evaluators, checked against xgboost's predict(pred_contribs=True) and
lightgbm's predict(pred_contrib=True) on the same rows: missing values,
categorical splits, multi-class, every objective Osprey serves for both
frameworks; each row's contributions sum to the raw margin. Models without an
explainer keep answering 501, and bad input is a 400 naming the tensor."""

import json

import numpy as np
import pytest
import requests
import xgboost as xgb

from harness import assert_error, decode_infer_response, v2_binary_request, v2_json_request
from test_lightgbm import CAT as LGB_CAT
from test_lightgbm import FEATURES as LGB_FEATURES
from test_lightgbm import MODELS as LGB_MODELS
from test_lightgbm import dataset as lgb_dataset
from test_lightgbm import labels as lgb_labels
from test_lightgbm import probe_rows as lgb_probe_rows
from test_objectives import OBJECTIVES as XGB_OBJECTIVES

# xgboost computes in float32, lightgbm in double; Osprey in double.
RTOL = 1e-5
ATOL = 1e-6  # the floor for contributions near 0

XGB_FEATURES = 6
XGB_CAT = 2  # a categorical feature of the categorical models (codes 0..11)


def xgb_name(objective, method):
    return f"xgb-{objective.replace(':', '-')}-{method}"


def xgb_data(rng, n):
    X = rng.normal(size=(n, XGB_FEATURES)).astype(np.float32)
    X[rng.random(X.shape) < 0.15] = np.nan
    return X


def xgb_probe(rng, categorical=False):
    X = xgb_data(rng, 64)
    X[0] = np.nan
    X[1] = 0.0
    X[2] = [1e30, -1e30, 1e-30, -1e-30, 3e3, -3e3]
    if categorical:
        X[3:, XGB_CAT] = rng.integers(0, 12, size=61)
        X[3, XGB_CAT] = 42     # a category past every split's set
        X[4, XGB_CAT] = -1     # negative: not a category
        X[5, XGB_CAT] = 2.7    # truncated to 2
        X[6, XGB_CAT] = np.nan
        X[7, XGB_CAT] = 1e9
    return X


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Models of both frameworks in one repository, with their frameworks'
    contributions and raw margins on probe rows."""
    import lightgbm as lgb

    repo = tmp_path_factory.mktemp("explain")
    cases = {}  # name -> (probe rows, contributions, margins, framework)

    rng = np.random.default_rng(11)
    X = xgb_data(rng, 300)
    labels = {
        "binary": (rng.random(300) < 0.4).astype(np.float32),
        "count": rng.poisson(3, 300).astype(np.float32) + 0.5,
        "multi": rng.integers(0, 3, 300).astype(np.float32),
    }
    probe = xgb_probe(rng)
    for objective in XGB_OBJECTIVES:
        kind = ("multi" if objective.startswith("multi") else
                "binary" if objective.split(":")[1] in ("logistic", "logitraw", "hinge")
                or objective.startswith("rank") else "count")
        for method in ("exact", "hist"):
            params = {"objective": objective, "tree_method": method, "nthread": 1,
                      "max_depth": 5, "seed": 1}
            if kind == "multi":
                params["num_class"] = 3
            dtrain = xgb.DMatrix(X, label=labels[kind])
            if objective.startswith("rank"):
                dtrain.set_group([60] * 5)
            booster = xgb.train(params, dtrain, num_boost_round=12)
            name = xgb_name(objective, method)
            (repo / name).mkdir()
            booster.save_model(str(repo / name / "model.json"))
            d = xgb.DMatrix(probe)
            cases[name] = (probe, booster.predict(d, pred_contribs=True),
                           booster.predict(d, output_margin=True), "xgboost")

    # Categorical splits: one-hot (max_cat_to_onehot large) and partitions.
    Xc = xgb_data(rng, 400)
    Xc[:, XGB_CAT] = rng.integers(0, 12, size=400)
    yc = ((np.nan_to_num(Xc[:, 0]) + (Xc[:, XGB_CAT] % 3 == 0)) > 0.5).astype(np.float32)
    types = ["q"] * XGB_FEATURES
    types[XGB_CAT] = "c"
    probe_c = xgb_probe(rng, categorical=True)
    for name, onehot, objective in (("xgb-cat-partition", 1, "binary:logistic"),
                                    ("xgb-cat-onehot", 64, "binary:logistic"),
                                    ("xgb-cat-multi", 1, "multi:softprob")):
        params = {"objective": objective, "tree_method": "hist", "max_cat_to_onehot": onehot,
                  "max_depth": 4, "nthread": 1, "seed": 3}
        y = yc
        if objective.startswith("multi"):
            params["num_class"] = 3
            y = (np.nan_to_num(Xc[:, 1]) > 0).astype(np.float32) + (Xc[:, XGB_CAT] % 2 == 0)
        dtrain = xgb.DMatrix(Xc, label=y, feature_types=types, enable_categorical=True)
        booster = xgb.train(params, dtrain, num_boost_round=15)
        (repo / name).mkdir()
        booster.save_model(str(repo / name / "model.json"))
        d = xgb.DMatrix(probe_c, feature_types=types, enable_categorical=True)
        cases[name] = (probe_c, booster.predict(d, pred_contribs=True),
                       booster.predict(d, output_margin=True), "xgboost")

    # A model with no explainer (the dart booster): 501.
    booster = xgb.train({"booster": "dart", "nthread": 1, "max_depth": 3},
                        xgb.DMatrix(X, label=labels["count"]), num_boost_round=3)
    (repo / "xgb-dart").mkdir()
    booster.save_model(str(repo / "xgb-dart" / "model.json"))

    Xl, signal = lgb_dataset()
    lprobe = lgb_probe_rows()
    for name, (params, file_name) in LGB_MODELS.items():
        y = lgb_labels(params["objective"], signal, np.random.default_rng(1))
        full = {"verbose": -1, "num_threads": 1, "seed": 0, "num_leaves": 15,
                "min_data_in_leaf": 5, "cat_smooth": 1, "min_data_per_group": 5, **params}
        group = ([20] * (len(Xl) // 20)
                 if params["objective"] in ("lambdarank", "rank_xendcg") else None)
        ds = lgb.Dataset(Xl, label=y, group=group, feature_name=LGB_FEATURES,
                         categorical_feature=[LGB_CAT], free_raw_data=False)
        booster = lgb.train(full, ds, num_boost_round=25)
        (repo / name).mkdir()
        booster.save_model(str(repo / name / file_name))
        contrib = booster.predict(lprobe, pred_contrib=True)
        k = booster.num_model_per_iteration()
        if k > 1:  # lightgbm flattens [n, classes, features + 1]
            contrib = contrib.reshape(len(lprobe), k, len(LGB_FEATURES) + 1)
        cases[name] = (lprobe, contrib, booster.predict(lprobe, raw_score=True), "lightgbm")
    return repo, cases


@pytest.fixture(scope="module")
def server(launcher, trained):
    repo, _ = trained
    with launcher.serve(["--model-repository", repo, "--http-threads", "2"],
                        label="explain") as s:
        yield s


def names(framework):
    """Model names of a framework, known before training (for parametrize)."""
    if framework == "xgboost":
        return ([xgb_name(o, m) for o in XGB_OBJECTIVES for m in ("exact", "hist")] +
                ["xgb-cat-partition", "xgb-cat-onehot", "xgb-cat-multi"])
    return sorted(LGB_MODELS)


def assert_contributions(got, want, what):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


def v1_explain(server, name, X):
    # NaN travels as the bare NaN literal Python's json writes; Osprey reads it.
    r = server.post(f"/v1/models/{name}:explain", data=json.dumps({"instances": X.tolist()}))
    assert r.status_code == 200, r.text
    body = r.json()
    rows = []
    for e in body["explanations"]:
        c = np.asarray(e["contributions"], dtype=np.float64)
        b = np.asarray(e["bias"], dtype=np.float64)
        rows.append(np.concatenate([c, b[..., None]], axis=-1))
    return np.stack(rows), body


def margin_sum_check(contrib, margins, what):
    sums = np.asarray(contrib, dtype=np.float64).sum(axis=-1)
    margins = np.asarray(margins, dtype=np.float64).reshape(sums.shape)
    np.testing.assert_allclose(sums, margins, rtol=RTOL, atol=1e-5, err_msg=what)


@pytest.mark.parametrize("name", names("xgboost") + names("lightgbm"))
def test_v1_explain_matches_the_framework(server, trained, name):
    _, cases = trained
    X, want, margins, framework = cases[name]
    got, body = v1_explain(server, name, X)
    assert len(body["explanations"]) == len(X)
    assert_contributions(got, want, f"{name} V1 vs {framework}")
    # Each row's contributions sum to the raw margin (the framework's own).
    margin_sum_check(got, margins, f"{name}: sum of contributions vs raw margin")
    if framework == "lightgbm":
        assert body["feature_names"] == LGB_FEATURES


@pytest.mark.parametrize("name", ["xgb-binary-logistic-hist", "xgb-multi-softprob-exact",
                                  "xgb-cat-multi", "lgb-multiclass", "lgb-binary",
                                  "lgb-zero-missing"])
def test_v2_explain_matches_the_framework(server, trained, name):
    _, cases = trained
    X, want, _, framework = cases[name]
    datatype = "FP64" if framework == "lightgbm" else "FP32"
    # The JSON form, and the binary extension with a binary answer.
    r = server.post(f"/v2/models/{name}/explain",
                    data=json.dumps(v2_json_request(X, datatype, request_id="e1")))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == name and body["id"] == "e1"
    [out] = body["outputs"]
    assert out["name"] == "contributions"
    assert out["datatype"] == datatype
    assert out["shape"] == list(want.shape)
    assert_contributions(np.asarray(out["data"]).reshape(out["shape"]), want, f"{name} V2 JSON")

    payload, headers = v2_binary_request(
        X, datatype, outputs=[{"name": "contributions", "parameters": {"binary_data": True}}])
    r = requests.post(server.url(f"/v2/models/{name}/explain"), data=payload, headers=headers,
                      timeout=30)
    decoded = decode_infer_response(r.status_code, r.headers, r.content)
    assert_contributions(decoded.outputs["contributions"], want, f"{name} V2 binary")


def test_explain_of_one_row_and_of_no_row(server, trained):
    _, cases = trained
    X, want, _, _ = cases["xgb-reg-squarederror-hist"]
    got, _ = v1_explain(server, "xgb-reg-squarederror-hist", X[:1])
    assert_contributions(got, want[:1], "one row")
    r = server.post("/v2/models/lgb-regression/explain",
                    data=json.dumps(v2_json_request(np.zeros((0, 5)), "FP64")))
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["shape"] == [0, 6]


def test_bad_input_is_a_400_naming_the_tensor_and_the_shape(server):
    r = server.post("/v1/models/xgb-binary-logistic-hist:explain",
                    data=json.dumps({"instances": [[1.0, 2.0, 3.0]]}))
    assert_error(r, 400, "input-0", "3 values", "expects 6")
    r = server.post("/v1/models/lgb-binary:explain", data=json.dumps({"instances": [["a"] * 5]}))
    assert_error(r, 400, "string")
    r = server.post("/v2/models/lgb-binary/explain",
                    data=json.dumps(v2_json_request(np.zeros((2, 4)), "FP64")))
    assert_error(r, 400, "input-0", "[-1,5]", "[2,4]")
    r = server.post("/v2/models/lgb-binary/explain",
                    data=json.dumps(v2_json_request(np.zeros((1, 5)), "FP64",
                                                    outputs=[{"name": "output-0"}])))
    assert_error(r, 400, "output-0", "contributions")


def test_models_without_an_explainer_answer_501(server):
    row = json.dumps({"instances": [[1.0] * XGB_FEATURES]})
    assert_error(server.post("/v1/models/xgb-dart:explain", data=row), 501, "xgb-dart",
                 "no explainer")
    r = server.post("/v2/models/xgb-dart/explain",
                    data=json.dumps(v2_json_request(np.ones((1, XGB_FEATURES)))))
    assert_error(r, 501, "xgb-dart", "no explainer")
    # It still predicts.
    assert server.post("/v1/models/xgb-dart:predict", data=row).status_code == 200
    assert_error(server.post("/v1/models/nope:explain", data=row), 404, "nope")
    assert server.get("/v2/models/lgb-binary/explain").status_code == 405
