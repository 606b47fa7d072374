"""MLflow models (a directory with an MLmodel file) through `osprey up` with
KServe's YAML (`modelFormat: mlflow`, `protocolVersion: v2`), served as
MLServer's MLflow runtime serves them:

- flavors sklearn (cloudpickle), xgboost, lightgbm and python_function (a
  custom PythonModel), each written by the `mlflow` package in the test's
  setup;
- V2 metadata from the model's signature: one [-1, 1] input per column with
  MLServer's datatypes and content types, tensor specs as declared, the
  request content type as the model's parameters;
- V2 requests decoded by content type (pd for column signatures, np for a
  tensor signature; the signature's when the request names none), through the
  kserve SDK's REST client and plain JSON; answers named as MLServer names
  them (output-1 for an array, a DataFrame's columns);
- V1 bodies as MLflow's scoring server reads them;
- every answer equal to mlflow.pyfunc.load_model(...).predict(df); requests
  that do not fit the signature get 400 naming the problem;
- the worker's signature, input and answer codecs as tables.
"""

import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
import requests

import harness
from platform_harness import Platform, isvc_yaml

mlflow = pytest.importorskip("mlflow")
from kserve import InferInput  # noqa: E402

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

# A python_function model from code: the label and a score per row, as a DataFrame.
PYFUNC_CODE = textwrap.dedent('''
    import mlflow
    import pandas as pd


    class Scorer(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            scale = (params or {}).get("scale", 1.0)
            score = (model_input["petal_length"] * 2 + model_input["sepal_width"]) * scale
            label = [f"{c}-{'big' if s > 8 else 'small'}"
                     for c, s in zip(model_input["city"], score)]
            return pd.DataFrame({"score": score, "label": label})


    mlflow.models.set_model(Scorer())
''')

# A python_function model of one tensor (tensor signature): row sums, float32.
TENSOR_CODE = textwrap.dedent('''
    import mlflow
    import numpy as np


    class RowSums(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return np.asarray(model_input, dtype=np.float32).sum(axis=1)


    mlflow.models.set_model(RowSums())
''')


def iris():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return pd.DataFrame(X, columns=FEATURES), y


def with_city(frame):
    cities = np.array(["paris", "lyon", "nice"])
    return frame.assign(city=cities[np.arange(len(frame)) % 3])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import lightgbm as lgb
    import xgboost as xgb
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    warnings.filterwarnings("ignore", module="mlflow")
    root = tmp_path_factory.mktemp("mlflow-models")
    X, y = iris()
    sk = LogisticRegression(max_iter=500).fit(X, y)
    mlflow.sklearn.save_model(sk, root / "sklearn", serialization_format="cloudpickle",
                              signature=infer_signature(X, sk.predict(X)), pip_requirements=[])
    xg = xgb.XGBClassifier(n_estimators=6, max_depth=3).fit(X, y)
    mlflow.xgboost.save_model(xg, root / "xgboost", signature=infer_signature(X, xg.predict(X)),
                              pip_requirements=[])
    lg = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1, "num_leaves": 7},
                   lgb.Dataset(X, label=y), num_boost_round=6)
    mlflow.lightgbm.save_model(lg, root / "lightgbm", signature=infer_signature(X, lg.predict(X)),
                               pip_requirements=[])
    (root / "scorer.py").write_text(PYFUNC_CODE)
    frame = with_city(X)
    mlflow.pyfunc.save_model(root / "pyfunc", python_model=str(root / "scorer.py"),
                             input_example=(frame.head(3), {"scale": 1.0}),
                             pip_requirements=[])
    (root / "rowsums.py").write_text(TENSOR_CODE)
    tensor = X.to_numpy(dtype=np.float32)
    mlflow.pyfunc.save_model(root / "tensor", python_model=str(root / "rowsums.py"),
                             input_example=tensor[:3], pip_requirements=[])
    return root


FLAVORS = ["sklearn", "xgboost", "lightgbm"]


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory, models):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("mlflow") / "home").start()
    # One apply: the five servers start together.
    p.apply_text("---\n".join(
        isvc_yaml(f"mlf-{name}", "mlflow", models / name,
                  extra_model="\n      protocolVersion: v2")
        for name in FLAVORS + ["pyfunc", "tensor"]))
    yield p
    p.stop_everything()


def reference(models, name, data, params=None):
    """MLflow's own answer: the pyfunc model's predict."""
    return mlflow.pyfunc.load_model(str(models / name)).predict(data, params=params)


def call(platform, method, name, path, **kw):
    return requests.request(method, f"{platform.gateway}{path}",
                            headers={"Host": platform.host(f"mlf-{name}")},
                            timeout=harness.HTTP_TIMEOUT_S, **kw)


def column_inputs(frame):
    inputs = []
    for col in frame.columns:
        if frame[col].dtype == object:
            inp = InferInput(col, [len(frame), 1], "BYTES")
            inp.set_data_from_numpy(frame[col].to_numpy(dtype=object).reshape(-1, 1))
        else:
            inp = InferInput(col, [len(frame), 1], "FP64")
            inp.set_data_from_numpy(frame[col].to_numpy(dtype=np.float64).reshape(-1, 1))
        inputs.append(inp)
    return inputs


@pytest.mark.parametrize("name", FLAVORS)
def test_metadata_from_a_column_signature(platform, name):
    meta = call(platform, "GET", name, f"/v2/models/mlf-{name}").json()
    assert meta["platform"] == "mlflow"
    assert meta["parameters"] == {"content_type": "pd"}
    assert meta["inputs"] == [{"name": f, "datatype": "FP64", "shape": [-1, 1],
                               "parameters": {"content_type": "np"}} for f in FEATURES]
    out = meta["outputs"]
    assert [o["name"] for o in out] == ["output-0"]
    assert out[0]["datatype"] == ("FP64" if name == "lightgbm" else "INT64")


def test_metadata_of_string_columns_and_tensors(platform):
    meta = call(platform, "GET", "pyfunc", "/v2/models/mlf-pyfunc").json()
    assert meta["inputs"][-1] == {"name": "city", "datatype": "BYTES", "shape": [-1, 1],
                                  "parameters": {"content_type": "str"}}
    assert meta["parameters"] == {"content_type": "pd"}
    meta = call(platform, "GET", "tensor", "/v2/models/mlf-tensor").json()
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4],
                               "parameters": {"content_type": "np"}}]
    assert meta["parameters"] == {"content_type": "np"}


@pytest.mark.parametrize("name", FLAVORS)
def test_v2_pd_request_equals_mlflow_predict(platform, models, name):
    X, _ = iris()
    rows = X.iloc[::10]
    want = reference(models, name, rows)
    # The columns in another order than the signature's: placed by name.
    res = platform.rest_infer(f"mlf-{name}", column_inputs(rows[FEATURES[::-1]]),
                              {"content_type": "pd"})
    assert [o.name for o in res.outputs] == ["output-1"]
    got = res.outputs[0].as_numpy()
    np.testing.assert_allclose(got.reshape(np.shape(want)) if want.ndim > 1 else got.ravel(),
                               want, rtol=1e-6, atol=1e-7)


def test_v2_request_without_content_type_reads_the_signature(platform, models):
    X, _ = iris()
    rows = X.iloc[[0, 60, 120]]
    body = {"inputs": [{"name": f, "datatype": "FP64", "shape": [3, 1],
                        "data": rows[f].tolist()} for f in FEATURES]}
    r = call(platform, "POST", "sklearn", "/v2/models/mlf-sklearn/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["outputs"][0]["name"] == "output-1"
    assert out["outputs"][0]["shape"] == [3, 1]
    assert out["outputs"][0]["data"] == reference(models, "sklearn", rows).tolist()


def test_pyfunc_dataframe_answer_and_params(platform, models):
    X, _ = iris()
    frame = with_city(X.iloc[::15].reset_index(drop=True))
    want = reference(models, "pyfunc", frame)
    res = platform.rest_infer("mlf-pyfunc", column_inputs(frame), {"content_type": "pd"})
    assert [o.name for o in res.outputs] == ["score", "label"]
    np.testing.assert_allclose(res.outputs[0].as_numpy().ravel(), want["score"], rtol=1e-12)
    assert [v.decode() if isinstance(v, bytes) else v
            for v in res.outputs[1].as_numpy().ravel()] == want["label"].tolist()
    # Request parameters other than the content type reach predict(params=...).
    body = {"parameters": {"content_type": "pd", "scale": 0.5},
            "inputs": [{"name": c, "datatype": "BYTES" if c == "city" else "FP64",
                        "shape": [len(frame)], "data": frame[c].tolist()} for c in frame.columns]}
    r = call(platform, "POST", "pyfunc", "/v2/models/mlf-pyfunc/infer", json=body)
    assert r.status_code == 200, r.text
    scaled = reference(models, "pyfunc", frame, params={"scale": 0.5})
    assert not np.allclose(scaled["score"], want["score"])
    got = {o["name"]: o for o in r.json()["outputs"]}
    np.testing.assert_allclose(got["score"]["data"], scaled["score"], rtol=1e-12)
    assert got["label"]["data"] == scaled["label"].tolist()
    assert r.json()["parameters"] == {"content_type": "pd"}


def test_tensor_signature_takes_one_np_tensor(platform, models):
    X, _ = iris()
    batch = X.to_numpy(dtype=np.float32)[:5]
    inp = InferInput("input-0", list(batch.shape), "FP32")
    inp.set_data_from_numpy(batch)
    res = platform.rest_infer("mlf-tensor", [inp])
    assert res.outputs[0].name == "output-1"
    np.testing.assert_array_equal(res.outputs[0].as_numpy().ravel(),
                                  reference(models, "tensor", batch))


def test_v1_bodies_as_mlflow_scoring_server_reads_them(platform, models):
    X, _ = iris()
    rows = X.iloc[[5, 55, 105]]
    want = reference(models, "xgboost", rows).tolist()
    for body in ({"instances": rows.to_dict(orient="records")},
                 {"dataframe_split": rows.to_dict(orient="split")},
                 {"dataframe_records": rows.to_dict(orient="records")}):
        r = call(platform, "POST", "xgboost", "/v1/models/mlf-xgboost:predict", json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json() == {"predictions": want}


def test_requests_that_do_not_fit_the_signature(platform):
    X, _ = iris()
    rows = X.iloc[:2]
    body = {"inputs": [{"name": f, "datatype": "FP64", "shape": [2, 1], "data": rows[f].tolist()}
                       for f in FEATURES[:2]]}
    r = call(platform, "POST", "sklearn", "/v2/models/mlf-sklearn/infer", json=body)
    assert r.status_code == 400, r.text
    assert "petal_length" in r.text and "petal_width" in r.text, r.text
    body["parameters"] = {"content_type": "csv"}
    r = call(platform, "POST", "sklearn", "/v2/models/mlf-sklearn/infer", json=body)
    assert r.status_code == 400, r.text
    assert "unknown content type 'csv'" in r.text
    r = call(platform, "POST", "sklearn", "/v1/models/mlf-sklearn:predict", json={"rows": []})
    assert r.status_code == 400, r.text
    # The model still answers.
    r = call(platform, "POST", "sklearn", "/v1/models/mlf-sklearn:predict",
             json={"instances": rows.to_dict(orient="records")})
    assert r.status_code == 200, r.text


# ---- the worker's codecs, as pure functions (tables) ----

@pytest.fixture(scope="module")
def worker():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "osprey_worker", harness.REPO_ROOT / "python" / "osprey_worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_signature_types_become_metadata(worker):
    from mlflow.types.schema import Array, ColSpec, DataType, Schema, TensorSpec

    schema = Schema([ColSpec(DataType.long, "n"), ColSpec(DataType.integer, "i"),
                     ColSpec(DataType.float, "f"), ColSpec(DataType.boolean, "b"),
                     ColSpec(DataType.string, "s"), ColSpec(DataType.binary, "raw"),
                     ColSpec(DataType.datetime, "when"), ColSpec(Array(DataType.long), "tags")])
    got = [(s["name"], s["datatype"], s["shape"], s["parameters"]["content_type"])
           for s in worker.mlflow_specs(schema, "input-")]
    assert got == [("n", "INT64", [-1, 1], "np"), ("i", "INT32", [-1, 1], "np"),
                   ("f", "FP32", [-1, 1], "np"), ("b", "BOOL", [-1, 1], "np"),
                   ("s", "BYTES", [-1, 1], "str"), ("raw", "BYTES", [-1, 1], "base64"),
                   ("when", "BYTES", [-1, 1], "datetime"), ("tags", "BYTES", [-1, 1], "pd_json")]
    # Unnamed ones are named by position.
    unnamed = Schema([ColSpec(DataType.double), ColSpec(DataType.string)])
    assert [s["name"] for s in worker.mlflow_specs(unnamed, "input-")] == ["input-0", "input-1"]
    tensors = Schema([TensorSpec(np.dtype(np.uint8), (-1, 3, 8, 8), "image"),
                      TensorSpec(np.dtype(np.int64), (-1,), "ids")])
    assert [(s["name"], s["datatype"], s["shape"], s["parameters"]["content_type"])
            for s in worker.mlflow_specs(tensors, "output-")] == [
        ("image", "UINT8", [-1, 3, 8, 8], "np"), ("ids", "INT64", [-1], "np")]
    unnamed = Schema([TensorSpec(np.dtype(np.float32), (-1, 4))])
    assert [s["name"] for s in worker.mlflow_specs(unnamed, "output-")] == ["output-0"]


def test_inputs_decode_by_content_type(worker):
    import datetime

    text = np.array([["aGk="], ["eA=="]], dtype=object)
    assert worker.decode_mlflow_input(text, "str") == ["aGk=", "eA=="]
    assert worker.decode_mlflow_input(text, "base64") == [b"hi", b"x"]
    assert worker.decode_mlflow_input(np.array(["not base64!"], dtype=object),
                                      "base64") == [b"not base64!"]
    assert worker.decode_mlflow_input(np.array(["2024-05-01T10:00:00"], dtype=object),
                                      "datetime") == [datetime.datetime(2024, 5, 1, 10)]
    assert worker.decode_mlflow_input(np.array(['{"a": [1]}'], dtype=object),
                                      "pd_json") == [{"a": [1]}]
    numbers = np.arange(3.0)
    assert worker.decode_mlflow_input(numbers, "np") is numbers
    for bad, content_type in (("yesterday", "datetime"), ("{", "pd_json"), ("x", "csv")):
        with pytest.raises(worker.BadRequest):
            worker.decode_mlflow_input(np.array([bad], dtype=object), content_type)


def test_answers_encode_by_what_predict_returned(worker):
    def shape(outputs):
        return {k: (v.shape, outputs.output_parameters.get(k)) for k, v in outputs.items()}

    array = worker.MlflowModel.encode(np.array([1, 2, 3]))
    assert shape(array) == {"output-1": ((3, 1), {"content_type": "np"})}
    assert array.parameters == {"content_type": "np"}
    frame = worker.MlflowModel.encode(pd.DataFrame({"p": [0.5, 0.7], "s": ["a", "b"],
                                                    "o": [{"k": 1}, [2]]}))
    assert shape(frame) == {"p": ((2, 1), None), "s": ((2, 1), {"content_type": "str"}),
                            "o": ((2, 1), {"content_type": "pd_json"})}
    assert frame["o"].ravel().tolist() == ['{"k": 1}', "[2]"]
    named = worker.MlflowModel.encode({"a": np.zeros((2, 3)), "b": np.ones(2)})
    assert shape(named) == {"a": ((2, 3), {"content_type": "np"}),
                            "b": ((2, 1), {"content_type": "np"})}
    assert named.parameters == {"content_type": "dict"}
    assert shape(worker.MlflowModel.encode(["x", "y"])) == {
        "output-1": ((2, 1), {"content_type": "str"})}
    assert shape(worker.MlflowModel.encode(pd.Series([1.0, 2.0]))) == {
        "output-1": ((2, 1), {"content_type": "np"})}
