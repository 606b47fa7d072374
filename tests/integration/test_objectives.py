"""Every XGBoost objective Osprey serves answers exactly as xgboost's own
predict: same float32 bits, with missing values, for models grown by the exact
and hist tree methods. Osprey evaluates supported gbtree models natively and
checks itself against libxgboost at load; this test checks the result from the
outside, and that objectives it does not evaluate natively still answer right
through libxgboost."""

import json

import numpy as np
import pytest
import xgboost as xgb

from harness import output_array, v2_json_request

OBJECTIVES = [
    "reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror", "reg:absoluteerror",
    "reg:logistic", "binary:logistic", "binary:logitraw", "binary:hinge",
    "count:poisson", "reg:gamma", "reg:tweedie", "rank:pairwise", "survival:cox",
    "multi:softmax", "multi:softprob",
]


def model_name(objective, method):
    return f"{objective.replace(':', '-')}-{method}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    X[rng.random(X.shape) < 0.15] = np.nan
    labels = {
        "binary": (rng.random(300) < 0.4).astype(np.float32),
        "count": rng.poisson(3, 300).astype(np.float32) + 0.5,
        "multi": rng.integers(0, 3, 300).astype(np.float32),
    }
    repo = tmp_path_factory.mktemp("objectives")
    probe = rng.normal(size=(64, 6)).astype(np.float32)
    probe[rng.random(probe.shape) < 0.2] = np.nan
    expected = {}
    for objective in OBJECTIVES:
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
            name = model_name(objective, method)
            (repo / name).mkdir()
            booster.save_model(str(repo / name / "model.ubj"))
            expected[name] = booster.predict(xgb.DMatrix(probe)).astype(np.float32)
    return repo, probe, expected


@pytest.fixture(scope="module")
def server(launcher, trained):
    repo, _, _ = trained
    with launcher.serve(["--model-repository", repo, "--http-threads", "2"],
                        label="objectives") as s:
        yield s


@pytest.mark.parametrize("method", ["exact", "hist"])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_objective_matches_xgboost_bit_for_bit(server, trained, objective, method):
    _, probe, expected = trained
    name = model_name(objective, method)
    # NaN travels as the bare NaN literal Python's json writes; Osprey accepts it.
    r = server.post(f"/v2/models/{name}/infer", data=json.dumps(v2_json_request(probe)))
    assert r.status_code == 200, r.text
    got = output_array(r.json()["outputs"][0]).astype(np.float32)
    want = expected[name]
    assert got.shape == want.shape
    assert np.array_equal(got, want), f"{name}: max diff {np.nanmax(np.abs(got - want))}"


def test_load_log_says_which_evaluator(server):
    log = server.log_text()
    assert "native evaluator (12 trees, reg:squarederror)" in log
    assert "survival-cox-exact': libxgboost predictor" in log
    assert "disagrees" not in log
