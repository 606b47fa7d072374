"""PMML models on Osprey's native evaluator: scikit-learn pipelines exported by
a real exporter (nyoka), checked against scikit-learn's own predictions where
the exported PMML means the same thing, and against a JVM evaluator (PMML4S through
pypmml) for all of them; answers shaped as KServe's pmmlserver gives them (V1
records, one V2 tensor per result column); categorical fields, invalid values
and unsupported models."""

import shutil
import warnings

import numpy as np
import pytest
import requests

from harness import assert_error

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]

# KServe's pmmlserver example: a decision tree on iris whose answer is a record
# {"Species": ..., "Probability_setosa": ..., ..., "Node_Id": ...}.
KSERVE_TREE = """<?xml version="1.0"?>
<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">
 <Header description="iris decision tree"/>
 <DataDictionary>
  <DataField name="Sepal.Length" optype="continuous" dataType="double"/>
  <DataField name="Sepal.Width" optype="continuous" dataType="double"/>
  <DataField name="Petal.Length" optype="continuous" dataType="double"/>
  <DataField name="Petal.Width" optype="continuous" dataType="double"/>
  <DataField name="Species" optype="categorical" dataType="string">
   <Value value="setosa"/><Value value="versicolor"/><Value value="virginica"/>
  </DataField>
 </DataDictionary>
 <TreeModel functionName="classification" splitCharacteristic="binarySplit">
  <MiningSchema>
   <MiningField name="Species" usageType="target"/>
   <MiningField name="Sepal.Length"/><MiningField name="Sepal.Width"/>
   <MiningField name="Petal.Length"/><MiningField name="Petal.Width"/>
  </MiningSchema>
  <Output>
   <OutputField name="Probability_setosa" optype="continuous" dataType="double" feature="probability" value="setosa"/>
   <OutputField name="Probability_versicolor" optype="continuous" dataType="double" feature="probability" value="versicolor"/>
   <OutputField name="Probability_virginica" optype="continuous" dataType="double" feature="probability" value="virginica"/>
   <OutputField name="Node_Id" optype="categorical" dataType="string" feature="entityId"/>
  </Output>
  <Node id="1"><True/>
   <Node id="2" score="setosa"><SimplePredicate field="Petal.Length" operator="lessThan" value="2.45"/>
    <ScoreDistribution value="setosa" recordCount="50"/><ScoreDistribution value="versicolor" recordCount="0"/>
    <ScoreDistribution value="virginica" recordCount="0"/></Node>
   <Node id="3"><SimplePredicate field="Petal.Length" operator="greaterOrEqual" value="2.45"/>
    <Node id="6" score="versicolor"><SimplePredicate field="Petal.Width" operator="lessThan" value="1.75"/>
     <ScoreDistribution value="setosa" recordCount="0"/><ScoreDistribution value="versicolor" recordCount="49"/>
     <ScoreDistribution value="virginica" recordCount="5"/></Node>
    <Node id="7" score="virginica"><SimplePredicate field="Petal.Width" operator="greaterOrEqual" value="1.75"/>
     <ScoreDistribution value="setosa" recordCount="0"/><ScoreDistribution value="versicolor" recordCount="1"/>
     <ScoreDistribution value="virginica" recordCount="45"/></Node>
   </Node>
  </Node>
 </TreeModel>
</PMML>
"""

# Mixed field types: a categorical string field and a numeric one.
GOLF = """<PMML version="4.4">
 <Header/>
 <DataDictionary>
  <DataField name="outlook" optype="categorical" dataType="string">
   <Value value="sunny"/><Value value="overcast"/><Value value="rain"/></DataField>
  <DataField name="humidity" optype="continuous" dataType="double"/>
  <DataField name="play" optype="categorical" dataType="string"><Value value="yes"/><Value value="no"/></DataField>
 </DataDictionary>
 <TreeModel functionName="classification" noTrueChildStrategy="returnLastPrediction">
  <MiningSchema><MiningField name="outlook"/><MiningField name="humidity" missingValueReplacement="70"/>
   <MiningField name="play" usageType="target"/></MiningSchema>
  <Node id="root" score="yes"><True/>
   <Node id="sunny-humid" score="no"><CompoundPredicate booleanOperator="and">
     <SimplePredicate field="outlook" operator="equal" value="sunny"/>
     <SimplePredicate field="humidity" operator="greaterThan" value="75"/></CompoundPredicate></Node>
   <Node id="rain" score="no"><SimplePredicate field="outlook" operator="equal" value="rain"/></Node>
  </Node>
 </TreeModel>
</PMML>
"""


def classifiers():
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    return {
        "pmml-tree": [("model", DecisionTreeClassifier(max_depth=4, random_state=0))],
        "pmml-gbc": [("model", GradientBoostingClassifier(n_estimators=10, max_depth=2,
                                                          random_state=0))],
        "pmml-forest": [("model", RandomForestClassifier(n_estimators=10, max_depth=4,
                                                         random_state=0))],
        "pmml-logistic": [("scaler", StandardScaler()),
                          ("model", LogisticRegression(max_iter=500))],
    }


def regressors():
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.tree import DecisionTreeRegressor

    return {
        "pmml-linreg": [("model", LinearRegression())],
        "pmml-treereg": [("model", DecisionTreeRegressor(max_depth=4, random_state=0))],
        "pmml-gbr": [("model", GradientBoostingRegressor(n_estimators=10, max_depth=2,
                                                         random_state=0))],
        "pmml-rfr": [("model", RandomForestRegressor(n_estimators=5, max_depth=3,
                                                     random_state=0))],
    }


# nyoka writes these as PMML that means what scikit-learn computes.
SAME_AS_SKLEARN = {"pmml-tree", "pmml-gbc", "pmml-linreg", "pmml-treereg", "pmml-gbr",
                   "pmml-rfr"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from nyoka import skl_to_pmml
    from sklearn.datasets import load_iris
    from sklearn.pipeline import Pipeline

    repo = tmp_path_factory.mktemp("pmml-repo")
    X, y = load_iris(return_X_y=True)
    species = np.array(SPECIES)[y]
    target = X[:, 0] * 2 + X[:, 1]
    pipelines = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for group, labels, target_name in ((classifiers(), species, "species"),
                                           (regressors(), target, "y")):
            for name, steps in group.items():
                p = Pipeline(steps).fit(X, labels)
                (repo / name).mkdir()
                skl_to_pmml(p, IRIS, target_name, str(repo / name / "model.pmml"))
                pipelines[name] = p
    for name, text in (("kserve-iris", KSERVE_TREE), ("golf", GOLF)):
        (repo / name).mkdir()
        (repo / name / "model.pmml").write_text(text)
    return repo, pipelines, X


@pytest.fixture(scope="module")
def server(launcher, trained):
    repo, _, _ = trained
    with launcher.serve(["--model-repository", repo], label="pmml") as s:
        yield s


def v2(server, name, X, datatype="FP64"):
    X = np.asarray(X)
    data = X.ravel().tolist()
    r = server.post(f"/v2/models/{name}/infer", json={"inputs": [
        {"name": "input-0", "shape": list(X.shape), "datatype": datatype, "data": data}]})
    assert r.status_code == 200, r.text
    return {o["name"]: o for o in r.json()["outputs"]}


@pytest.mark.parametrize("name", sorted(SAME_AS_SKLEARN))
def test_matches_scikit_learn(server, trained, name):
    _, pipelines, X = trained
    p = pipelines[name]
    outs = v2(server, name, X)
    if name in classifiers():
        assert outs["species"]["datatype"] == "BYTES"
        assert outs["species"]["data"] == p.predict(X).tolist()
        proba = np.array([outs[f"probability_{c}"]["data"] for c in SPECIES]).T
        np.testing.assert_allclose(proba, p.predict_proba(X), rtol=0, atol=1e-12)
    else:
        assert outs["y"]["datatype"] == "FP64"
        np.testing.assert_allclose(outs["y"]["data"], p.predict(X), rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def pmml4s():
    """pypmml: PMML4S, a JVM evaluator, the reference for PMML semantics."""
    if shutil.which("java") is None:
        pytest.skip("no java on this machine for the PMML4S reference")
    from pypmml import Model

    return Model


@pytest.mark.parametrize("name", sorted(set(classifiers()) | set(regressors())))
def test_matches_pmml4s(server, trained, pmml4s, name):
    repo, _, X = trained
    reference = pmml4s.fromFile(str(repo / name / "model.pmml"))
    outs = v2(server, name, X)
    for i, row in enumerate(X.tolist()):
        want = reference.predict(dict(zip(IRIS, row)))
        for column, value in want.items():
            got = outs[column]["data"][i]
            if isinstance(value, str):
                assert got == value, (name, i, column)
            else:
                assert abs(got - value) <= 1e-12, (name, i, column, got, value)


def test_kserve_record_answer(server):
    r = server.post("/v1/models/kserve-iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [{"Species": "setosa", "Probability_setosa": 1.0,
                                         "Probability_versicolor": 0.0,
                                         "Probability_virginica": 0.0, "Node_Id": "2"}]}
    r = server.post("/v1/models/kserve-iris:predict", json={"instances": [
        {"Sepal.Length": 6.0, "Sepal.Width": 3.0, "Petal.Length": 5.0, "Petal.Width": 2.0}]})
    assert r.json()["predictions"][0]["Species"] == "virginica"
    assert r.json()["predictions"][0]["Probability_virginica"] == pytest.approx(45 / 46)


def test_metadata(server):
    meta = server.get("/v2/models/kserve-iris").json()
    assert meta["platform"] == "pmml"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == [
        "Species", "Probability_setosa", "Probability_versicolor", "Probability_virginica",
        "Node_Id"]
    assert meta["outputs"][0]["datatype"] == "BYTES"
    assert server.get("/v2/models/golf").json()["inputs"][0]["datatype"] == "BYTES"


def test_categorical_fields_v1_and_v2(server):
    rows = [["sunny", 80], ["sunny", 60], ["rain", 10], ["overcast", 99], ["sunny", None]]
    r = server.post("/v1/models/golf:predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    # humidity missing -> replaced by 70 -> not humid
    assert [p["play"] for p in r.json()["predictions"]] == ["no", "yes", "no", "yes", "yes"]
    r = server.post("/v1/models/golf:predict",
                    json={"instances": [{"outlook": "sunny", "humidity": 90}]})
    assert r.json()["predictions"] == [{"play": "no"}]
    outs = v2(server, "golf", [["sunny", "80"], ["overcast", "1"]], datatype="BYTES")
    assert outs["play"]["data"] == ["no", "yes"]


def test_invalid_value_names_the_field(server):
    r = server.post("/v1/models/golf:predict", json={"instances": [["snowing", 10]]})
    assert_error(r, 400, "outlook", "invalid value 'snowing'")
    r = server.post("/v1/models/golf:predict", json={"instances": [["sunny", 10]]})
    assert r.status_code == 200


def test_unsupported_model_is_refused_with_the_element(launcher, tmp_path):
    (tmp_path / "nn").mkdir()
    (tmp_path / "nn" / "model.pmml").write_text(
        '<PMML version="4.4"><DataDictionary><DataField name="x" optype="continuous" '
        'dataType="double"/></DataDictionary><NeuralNetwork functionName="regression"/></PMML>')
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "model.pmml").write_text(GOLF)
    with launcher.serve(["--model-repository", tmp_path], label="pmml-bad",
                        ready_models=["ok"]) as s:
        index = s.repository_index()
        assert index["nn"]["state"] == "UNAVAILABLE"
        assert "NeuralNetwork is not supported" in index["nn"]["reason"]
