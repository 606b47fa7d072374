"""A user's kserve.Model script (tests/fixtures/custom/model.py) served by
Osprey's Python workers unchanged: run as __main__, its ModelServer().start()
taken over; V1 bodies reach it as dicts through preprocess -> async predict ->
postprocess, V2 as kserve.InferRequest, :explain calls explain(), and an
exception it raises is a 500 naming its type."""

import shutil
from pathlib import Path

import pytest

from harness import assert_error

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "custom" / "model.py"


@pytest.fixture(scope="module")
def server(launcher, tmp_path_factory):
    repo = tmp_path_factory.mktemp("custom-repo")
    (repo / "doubler").mkdir()
    shutil.copy(FIXTURE, repo / "doubler" / "model.py")
    with launcher.serve(["--model-repository", repo, "--no-grpc"], label="custom") as s:
        yield s


def test_v1_runs_the_whole_pipeline(server):
    r = server.post("/v1/models/doubler:predict", json={"instances": [[1, 2], [3, 4]]})
    assert r.status_code == 200, r.text
    # preprocess adds 1, predict doubles, postprocess annotates
    assert r.json() == {"predictions": [[4.0, 6.0], [8.0, 10.0]], "note": "postprocessed"}


def test_headers_reach_the_model(server):
    r = server.post("/v1/models/doubler:predict", json={"instances": [[1, 2]]},
                    headers={"X-Tenant": "acme"})
    assert r.status_code == 200, r.text
    assert r.json()["tenant"] == "acme"


def test_explain(server):
    r = server.post("/v1/models/doubler:explain", json={"instances": [[1, 2]]})
    assert r.status_code == 200, r.text
    assert r.json()["explanation"] == "1 rows, factor 2.0"


def test_v2_arrives_as_infer_request(server):
    r = server.post("/v2/models/doubler/infer", json={"inputs": [
        {"name": "x", "shape": [2], "datatype": "FP32", "data": [1.5, 2.5]}]})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["name"] == "doubled" and out["data"] == [3.0, 5.0]
    assert server.get("/v2/models/doubler").json()["platform"] == "custom"
    r = server.post("/v2/models/doubler/infer", headers={"X-Tenant": "acme"}, json={"inputs": [
        {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]})
    assert r.status_code == 200, r.text
    assert {o["name"]: o["data"] for o in r.json()["outputs"]}["tenant"] == ["acme"]


def test_exception_in_user_code(server):
    r = server.post("/v1/models/doubler:predict", json={"instances": [[-5, 1]]})
    assert_error(r, 500, "ValueError", "negative values are not allowed")
    r = server.post("/v1/models/doubler:predict", json={"instances": [[1, 1]]})
    assert r.status_code == 200
