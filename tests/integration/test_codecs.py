"""Request codecs as KServe's sklearnserver, xgbserver and lgbserver (and
MLServer's codecs) decode them, through `osprey up` with KServe's YAML:

- V1 instances in pandas' shapes: a list of records, a column dictionary
  ({column: [values]}), pandas' to_dict() ({column: {index: value}}), several
  instances concatenated; columns placed by the model's feature names
  whatever order they come in.
- V2 `parameters.content_type: "pd"` (one input per column, mixed datatypes,
  BYTES among them) through the kserve SDK's REST client; an input's
  `content_type: "base64"` and `"str"`.
- Answers shaped as KServe's servers shape them, equal to the framework's own
  predict on the same DataFrame; errors naming the column at fault.
"""

import base64

import numpy as np
import pandas as pd
import pytest
import requests
from kserve import InferInput

import harness
from platform_harness import Platform, isvc_yaml

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def mixed_frame(n=60):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, n).astype(float),
        "income": rng.normal(50, 15, n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
        "plan": rng.choice(["basic", "pro"], n),
    })
    y = ((frame["income"] > 50) & (frame["city"] != "nice")).astype(int)
    return frame, y


def iris_frame():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return pd.DataFrame(X, columns=FEATURES), y


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """An sklearn pipeline on mixed types, a LightGBM model with feature
    names; the xgboost fixture with feature names comes from the fixtures."""
    import joblib
    import lightgbm as lgb
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    root = tmp_path_factory.mktemp("codec-models")
    frame, target = mixed_frame(200)
    mixed = Pipeline([
        ("columns", ColumnTransformer([
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"])])),
        ("model", LogisticRegression(max_iter=500))]).fit(frame, target)
    (root / "mixed").mkdir()
    joblib.dump(mixed, root / "mixed" / "model.joblib")

    X, y = iris_frame()
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1,
                         "num_leaves": 7}, lgb.Dataset(X, label=y), num_boost_round=8)
    (root / "lgb").mkdir()
    booster.save_model(str(root / "lgb" / "model.txt"))
    return {"root": root, "mixed": mixed, "lgb": booster}


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory, models, fixtures):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("codecs") / "home").start()
    p.apply_text(isvc_yaml("mixed", "sklearn", models["root"] / "mixed"))
    p.apply_text(isvc_yaml("flowers-lgb", "lightgbm", models["root"] / "lgb"))
    p.apply_text(isvc_yaml("flowers-xgb", "xgboost", fixtures.model_dir("xgb-iris-named")))
    yield p
    p.stop_everything()


def v1(platform, name, instances):
    return requests.post(f"{platform.gateway}/v1/models/{name}:predict",
                         json={"instances": instances}, headers={"Host": platform.host(name)},
                         timeout=harness.HTTP_TIMEOUT_S)


def jsonable(frame):
    """The frame's values as JSON takes them (numpy scalars to Python)."""
    return frame.astype(object).where(frame.notna(), None)


def pandas_shapes(frame):
    """Every V1 shape KServe's servers hand to pandas, each meaning `frame`."""
    f = jsonable(frame)
    half = len(f) // 2
    shuffled = list(reversed(f.columns))
    return {
        "records": [f.to_dict(orient="records")],
        "records-shuffled-columns": [f[shuffled].to_dict(orient="records")],
        "column-lists": [f.to_dict(orient="list")],
        "to_dict": [f.reset_index(drop=True).to_dict()],
        "two-instances": [f.iloc[:half].to_dict(orient="list"),
                          f.iloc[half:][shuffled].to_dict(orient="list")],
    }


@pytest.mark.parametrize("shape", ["records", "records-shuffled-columns", "column-lists",
                                   "to_dict", "two-instances"])
def test_v1_pandas_shapes_on_an_sklearn_pipeline(platform, models, shape):
    frame, _ = mixed_frame(15)
    want = models["mixed"].predict(frame).tolist()
    r = v1(platform, "mixed", pandas_shapes(frame)[shape])
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": want}


@pytest.mark.parametrize("shape", ["records", "records-shuffled-columns", "column-lists",
                                   "to_dict", "two-instances"])
def test_v1_pandas_shapes_on_named_tree_models(platform, models, fixtures, shape):
    X, _ = iris_frame()
    rows = X.iloc[::15]
    lgb_want = models["lgb"].predict(rows)
    r = v1(platform, "flowers-lgb", pandas_shapes(rows)[shape])
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], lgb_want, rtol=1e-6, atol=1e-7)

    import xgboost as xgb

    booster = xgb.Booster(model_file=str(fixtures.model_dir("xgb-iris-named") / "model.json"))
    xgb_want = booster.predict(xgb.DMatrix(rows.astype(np.float32)))
    r = v1(platform, "flowers-xgb", pandas_shapes(rows)[shape])
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], xgb_want, rtol=1e-6, atol=1e-7)


def test_v1_list_rows_are_unchanged(platform, models):
    X, _ = iris_frame()
    r = v1(platform, "flowers-lgb", X.iloc[:3].values.tolist())
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], models["lgb"].predict(X.iloc[:3]),
                               rtol=1e-6, atol=1e-7)


def test_v1_errors_name_the_column(platform):
    r = v1(platform, "flowers-xgb", [{"sepal_length": [1, 2], "petal": [3, 4]}])
    assert r.status_code == 400, r.text
    assert "unknown feature 'petal'" in r.text
    r = v1(platform, "flowers-xgb", [{"sepal_length": [1, 2], "sepal_width": [3]}])
    assert r.status_code == 400, r.text
    assert "column 'sepal_width' has 1 values, not 2" in r.text
    # Other requests are unaffected.
    assert v1(platform, "flowers-xgb", [[5.1, 3.5, 1.4, 0.2]]).status_code == 200


def column_inputs(frame, text_columns=()):
    inputs = []
    for col in frame.columns:
        if col in text_columns or frame[col].dtype == object:
            inp = InferInput(col, [len(frame)], "BYTES")
            inp.set_data_from_numpy(frame[col].astype(str).to_numpy(dtype=object))
        else:
            inp = InferInput(col, [len(frame)], "FP64")
            inp.set_data_from_numpy(frame[col].to_numpy(dtype=np.float64))
        inputs.append(inp)
    return inputs


def test_v2_pd_request_of_mixed_columns(platform, models):
    frame, _ = mixed_frame(20)
    want = models["mixed"].predict(frame).tolist()
    # The columns in another order than the pipeline was fitted on.
    shuffled = frame[["plan", "income", "city", "age"]]
    res = platform.rest_infer("mixed", column_inputs(shuffled), {"content_type": "pd"})
    assert res.outputs[0].as_numpy().tolist() == want


def test_v2_pd_request_on_named_tree_models(platform, models, fixtures):
    X, _ = iris_frame()
    rows = X.iloc[::10]
    # Numbers sent as text in one column: a pandas frame read from CSV.
    inputs = column_inputs(rows[list(reversed(FEATURES))], text_columns=("sepal_width",))
    res = platform.rest_infer("flowers-lgb", inputs, {"content_type": "pd"})
    np.testing.assert_allclose(res.outputs[0].as_numpy(), models["lgb"].predict(rows),
                               rtol=1e-6, atol=1e-7)
    res = platform.rest_infer("flowers-xgb", inputs, {"content_type": "pd"})
    assert res.outputs[0].as_numpy().shape == (len(rows), 3)


def test_v2_pd_errors(platform):
    frame = pd.DataFrame({"sepal_length": [1.0], "petals": [2.0]})
    body = {"parameters": {"content_type": "pd"},
            "inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": frame[c].tolist()}
                       for c in frame.columns]}
    r = requests.post(f"{platform.gateway}/v2/models/flowers-xgb/infer", json=body,
                      headers={"Host": platform.host("flowers-xgb")}, timeout=harness.HTTP_TIMEOUT_S)
    assert r.status_code == 400, r.text
    assert "input 'petals' is not a feature of model 'flowers-xgb'" in r.json()["error"]
    body["inputs"] = [{"name": "sepal_length", "shape": [2], "datatype": "BYTES",
                       "data": ["1.5", "wide"]}]
    r = requests.post(f"{platform.gateway}/v2/models/flowers-xgb/infer", json=body,
                      headers={"Host": platform.host("flowers-xgb")}, timeout=harness.HTTP_TIMEOUT_S)
    assert r.status_code == 400, r.text
    assert "input 'sepal_length' row 1: 'wide' is not a number" in r.json()["error"]


def test_v2_base64_and_str_inputs(platform, models):
    frame, _ = mixed_frame(8)
    want = models["mixed"].predict(frame).tolist()
    cells = jsonable(frame).values.tolist()
    encoded = [base64.b64encode(str(v).encode()).decode() for row in cells for v in row]
    body = {"inputs": [{"name": "input-0", "shape": [len(frame), 4], "datatype": "BYTES",
                        "parameters": {"content_type": "base64"}, "data": encoded}]}
    headers = {"Host": platform.host("mixed")}
    r = requests.post(f"{platform.gateway}/v2/models/mixed/infer", json=body, headers=headers,
                      timeout=harness.HTTP_TIMEOUT_S)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == want
    body["inputs"][0]["data"][3] = "%%%"
    r = requests.post(f"{platform.gateway}/v2/models/mixed/infer", json=body, headers=headers,
                      timeout=harness.HTTP_TIMEOUT_S)
    assert r.status_code == 400, r.text
    assert "input 'input-0' element 3: not Base64" in r.json()["error"]
    body["inputs"][0]["parameters"]["content_type"] = "str"
    body["inputs"][0]["data"] = [str(v) for row in cells for v in row]
    r = requests.post(f"{platform.gateway}/v2/models/mixed/infer", json=body, headers=headers,
                      timeout=harness.HTTP_TIMEOUT_S)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == want
