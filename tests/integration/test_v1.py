"""V1 (TensorFlow-Serving style) REST data plane against all fixture models."""

import numpy as np
import pytest

from harness import KSERVE_E2E_INSTANCES, MODEL_NAMES, assert_close, assert_error

NAMED = "xgb-iris-named"


@pytest.fixture(scope="module")
def server(launcher, fixtures, tmp_path_factory):
    repo = fixtures.make_repository(tmp_path_factory.mktemp("v1-repo"))
    with launcher.serve(["--model-repository", repo], label="v1") as s:
        yield s


def test_root_is_alive(server):
    r = server.get("/")
    assert r.status_code == 200
    assert r.json() == {"status": "alive"}


def test_list_models(server):
    r = server.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert sorted(body["models"]) == sorted(MODEL_NAMES)


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_model_status(server, model):
    r = server.get(f"/v1/models/{model}")
    assert r.status_code == 200
    assert r.json() == {"name": model, "ready": True}


def test_unknown_model_status_is_404(server):
    assert_error(server.get("/v1/models/no-such-model"), 404)


def test_no_instances_predict_nothing(server):
    r = server.post("/v1/models/xgb-iris-softmax:predict", json={"instances": []})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": []}


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_predict_matches_xgboost(server, fixtures, model):
    X = fixtures.inputs(model)
    want = fixtures.predictions(model)
    r = server.post(f"/v1/models/{model}:predict", json={"instances": X.tolist()})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == len(X)
    if want.ndim == 2:
        # multi:softprob: one list of class probabilities per row
        assert all(isinstance(p, list) and len(p) == want.shape[1] for p in preds)
    else:
        assert all(isinstance(p, (int, float)) for p in preds)
    assert_close(preds, want, f"{model} V1 predictions")


def test_kserve_e2e_iris_softmax(server):
    """KServe's own XGBoost e2e case: both iris rows are class 1."""
    r = server.post(
        "/v1/models/xgb-iris-softmax:predict", json={"instances": KSERVE_E2E_INSTANCES}
    )
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == [1, 1]


def test_inputs_key_is_accepted(server, fixtures):
    model = "xgb-iris-binary"
    X = fixtures.inputs(model)[:10]
    r = server.post(f"/v1/models/{model}:predict", json={"inputs": X.tolist()})
    assert r.status_code == 200, r.text
    assert_close(r.json()["predictions"], fixtures.predictions(model)[:10])


def test_single_row(server, fixtures):
    model = "xgb-regression"
    X = fixtures.inputs(model)[3:4]
    r = server.post(f"/v1/models/{model}:predict", json={"instances": X.tolist()})
    assert r.status_code == 200, r.text
    assert_close(r.json()["predictions"], fixtures.predictions(model)[3:4])


def test_integer_instances(server, fixtures):
    rows = [[6, 3, 5, 2], [5, 3, 1, 0], [7, 3, 6, 2]]
    r = server.post("/v1/models/xgb-iris-softprob:predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    assert_close(r.json()["predictions"], fixtures.oracle("xgb-iris-softprob", rows))


def test_named_features_as_dicts(server, fixtures):
    """Rows given as {feature: value} are placed by the model's feature names,
    whatever the key order in the request."""
    exp = fixtures.expected(NAMED)
    names = exp["feature_names"]
    X = fixtures.inputs(NAMED)
    rows = [{n: float(v) for n, v in reversed(list(zip(names, row)))} for row in X]
    r = server.post(f"/v1/models/{NAMED}:predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    assert_close(r.json()["predictions"], fixtures.predictions(NAMED), "named-feature rows")


def test_named_model_takes_positional_rows(server, fixtures):
    X = fixtures.inputs(NAMED)
    r = server.post(f"/v1/models/{NAMED}:predict", json={"instances": X.tolist()})
    assert r.status_code == 200, r.text
    assert_close(r.json()["predictions"], fixtures.predictions(NAMED))


def test_named_features_missing_one(server, fixtures):
    """A feature left out of a dict row is either refused (400 naming it) or
    treated as XGBoost's missing value (NaN); nothing else."""
    names = fixtures.expected(NAMED)["feature_names"]
    row = {n: 1.0 for n in names if n != "petal_width"}
    r = server.post(f"/v1/models/{NAMED}:predict", json={"instances": [row]})
    if r.status_code == 200:
        want = fixtures.oracle(NAMED, [[1.0, 1.0, 1.0, np.nan]])
        assert_close(r.json()["predictions"], want, "missing feature read as NaN")
    else:
        assert_error(r, 400, "petal_width")


def test_named_features_unknown_one_is_400(server, fixtures):
    names = fixtures.expected(NAMED)["feature_names"]
    row = {n: 1.0 for n in names}
    row["no_such_feature"] = 2.0
    r = server.post(f"/v1/models/{NAMED}:predict", json={"instances": [row]})
    assert_error(r, 400, "no_such_feature")


def test_records_on_a_model_without_feature_names_are_positional(server):
    """As KServe's xgbserver builds a DMatrix from the DataFrame: columns in the
    order their names first appear."""
    rows = [dict(zip("abcd", row)) for row in KSERVE_E2E_INSTANCES]
    r = server.post("/v1/models/xgb-iris-softmax:predict", json={"instances": [rows]})
    assert r.status_code == 200, r.text
    want = server.post("/v1/models/xgb-iris-softmax:predict",
                       json={"instances": KSERVE_E2E_INSTANCES}).json()
    assert r.json() == want
    r = server.post("/v1/models/xgb-iris-softmax:predict",
                    json={"instances": [{"a": [1.0], "b": [2.0], "c": [3.0]}]})
    assert_error(r, 400, "has 3 values", "expects 4")


def test_explain_answers_contributions_per_row(server):
    # Built-in TreeSHAP (test_explain.py checks the values against xgboost).
    r = server.post(
        "/v1/models/xgb-iris-softmax:explain", json={"instances": KSERVE_E2E_INSTANCES}
    )
    assert r.status_code == 200, r.text
    explanations = r.json()["explanations"]
    assert len(explanations) == len(KSERVE_E2E_INSTANCES)
    for e in explanations:  # three classes, four features each
        assert len(e["bias"]) == 3 and [len(c) for c in e["contributions"]] == [4, 4, 4]


def test_predict_unknown_model_is_404(server):
    r = server.post("/v1/models/no-such-model:predict", json={"instances": [[1, 2, 3, 4]]})
    assert_error(r, 404, "no-such-model")


def test_probabilities_are_probabilities(server, fixtures):
    r = server.post(
        "/v1/models/xgb-iris-softprob:predict",
        json={"instances": fixtures.inputs("xgb-iris-softprob").tolist()},
    )
    p = np.asarray(r.json()["predictions"])
    assert np.all(p >= 0) and np.all(p <= 1)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
