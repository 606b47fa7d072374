"""TorchScript models through libtorch, checked against torch's own forward on
the same inputs (Debian's python3-torch, the same 1.13 as the libtorch the
server links): Triton's config.pbtxt (names, datatypes, dims, max_batch_size,
dynamic_batching), the documented default without one, several inputs and a
tuple of outputs, errors raised inside the model, and files that are not
TorchScript."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from harness import assert_error, decode_infer_response, v2_binary_request, v2_json_request

torch = pytest.importorskip("torch")

MLP_CONFIG = """
name: "mlp"
platform: "pytorch_libtorch"
max_batch_size: 64
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: 200000 }
"""

MULTI_CONFIG = """
input [ { name: "x" data_type: TYPE_FP32 dims: [ -1, 3 ] },
        { name: "offset" data_type: TYPE_INT64 dims: [ -1 ] } ]
output [ { name: "shifted" data_type: TYPE_FP32 dims: [ -1, 3 ] },
         { name: "total" data_type: TYPE_INT64 dims: [ 1 ] } ]
"""


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                               torch.nn.ReLU(), torch.nn.Linear(64, 3)).eval()


class Multi(torch.nn.Module):
    def forward(self, x, offset):
        if bool((x < -100).any()):
            raise ValueError("x holds values below -100")
        shifted = x * 2 + offset.unsqueeze(1).to(torch.float32)
        return shifted, offset.sum().reshape(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    repo = tmp_path_factory.mktemp("torch-repo")
    net = mlp()
    scripted = torch.jit.script(net)
    for name, config in (("mlp", MLP_CONFIG), ("mlp-default", None)):
        (repo / name).mkdir()
        scripted.save(str(repo / name / "model.pt"))
        if config:
            (repo / name / "config.pbtxt").write_text(config)
    (repo / "multi").mkdir()
    torch.jit.script(Multi()).save(str(repo / "multi" / "model.pt"))
    (repo / "multi" / "config.pbtxt").write_text(MULTI_CONFIG)
    return repo, net


@pytest.fixture(scope="module")
def server(launcher, models):
    repo, _ = models
    with launcher.serve(["--model-repository", repo, "--http-threads", "4"], label="torch") as s:
        yield s


def forward(net, X):
    with torch.no_grad():
        return net(torch.from_numpy(np.asarray(X, dtype=np.float32))).numpy()


def test_mlp_matches_torch_forward(server, models):
    _, net = models
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    r = server.post("/v2/models/mlp/infer", json=v2_json_request(X, name="INPUT__0"))
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["name"] == "OUTPUT__0" and out["datatype"] == "FP32" and out["shape"] == [5, 3]
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(5, 3), forward(net, X),
                               rtol=1e-5, atol=1e-6)


def test_metadata_comes_from_config(server):
    meta = server.get("/v2/models/mlp").json()
    assert meta["platform"] == "pytorch_libtorch"
    assert meta["inputs"] == [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "OUTPUT__0", "datatype": "FP32", "shape": [-1, 3]}]


def test_concurrent_requests_are_batched_and_split_back(server, models):
    _, net = models
    rng = np.random.default_rng(1)
    parts = [rng.normal(size=(1 + i % 3, 4)).astype(np.float32) for i in range(16)]
    start = threading.Barrier(len(parts))

    def post(X):
        with requests.Session() as s:
            start.wait(timeout=10)
            return s.post(server.url("/v2/models/mlp/infer"), timeout=30,
                          json=v2_json_request(X, name="INPUT__0"))

    def executions():
        text = server.get("/metrics").text
        for line in text.splitlines():
            if line.startswith('osprey_inference_executions_total{model="mlp"}'):
                return float(line.split()[-1])
        return 0.0

    before = executions()
    with ThreadPoolExecutor(len(parts)) as pool:
        answers = list(pool.map(post, parts))
    for X, r in zip(parts, answers):
        assert r.status_code == 200, r.text
        got = np.asarray(r.json()["outputs"][0]["data"]).reshape(len(X), 3)
        np.testing.assert_allclose(got, forward(net, X), rtol=1e-5, atol=1e-6)
    assert executions() - before < len(parts)


def test_default_tensors_without_config(server, models):
    _, net = models
    X = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
    r = server.post("/v2/models/mlp-default/infer", json=v2_json_request(X))
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["name"] == "output-0"
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(3, 3), forward(net, X), rtol=1e-5,
                               atol=1e-6)
    # A shape the model cannot take fails inside torch, with torch's reason.
    r = server.post("/v2/models/mlp-default/infer", json=v2_json_request(np.ones((2, 5))))
    assert_error(r, 400, "mat1 and mat2 shapes cannot be multiplied")


def test_several_inputs_and_a_tuple_of_outputs(server):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    offset = np.array([10, 20], dtype=np.int64)
    r = server.post("/v2/models/multi/infer", json={"inputs": [
        {"name": "offset", "shape": [2], "datatype": "INT64", "data": offset.tolist()},
        {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": x.ravel().tolist()}]})
    assert r.status_code == 200, r.text
    outs = {o["name"]: o for o in r.json()["outputs"]}
    assert outs["shifted"]["shape"] == [2, 3]
    np.testing.assert_array_equal(np.asarray(outs["shifted"]["data"]).reshape(2, 3),
                                  x * 2 + offset[:, None])
    assert outs["total"]["datatype"] == "INT64" and outs["total"]["data"] == [30]


def test_binary_input_at_any_offset(server, models):
    """Binary tensors start wherever the JSON header ends, aligned or not."""
    _, net = models
    X = np.random.default_rng(3).normal(size=(2, 4)).astype(np.float32)
    for pad in range(4):
        body, headers = v2_binary_request(X, "FP32", name="INPUT__0", request_id="x" * pad)
        r = requests.post(server.url("/v2/models/mlp/infer"), data=body, headers=headers)
        got = decode_infer_response(r.status_code, r.headers, r.content).outputs["OUTPUT__0"]
        np.testing.assert_allclose(got, forward(net, X), rtol=1e-5, atol=1e-6)


def test_error_raised_in_model_fails_that_request_only(server):
    bad = {"inputs": [
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [-500, 0, 0]},
        {"name": "offset", "shape": [1], "datatype": "INT64", "data": [1]}]}
    r = server.post("/v2/models/multi/infer", json=bad)
    assert_error(r, 400, "x holds values below -100")
    r = server.post("/v2/models/mlp/infer", json=v2_json_request(np.ones((1, 4)), name="INPUT__0"))
    assert r.status_code == 200


def test_wrong_datatype_is_refused(server):
    r = server.post("/v2/models/mlp/infer",
                    json=v2_json_request(np.ones((1, 4)), datatype="FP64", name="INPUT__0"))
    assert_error(r, 400, "INPUT__0", "FP64", "FP32")


def test_not_torchscript_reports_why(launcher, tmp_path):
    eager = tmp_path / "eager"
    eager.mkdir()
    torch.save(mlp(), str(eager / "model.pt"))  # a pickled eager model, not TorchScript
    ok = tmp_path / "ok"
    ok.mkdir()
    torch.jit.script(mlp()).save(str(ok / "model.pt"))
    with launcher.serve(["--model-repository", tmp_path], label="torch-bad",
                        ready_models=["ok"]) as s:
        index = s.repository_index()
        assert index["eager"]["state"] == "UNAVAILABLE"
        assert "cannot load TorchScript model" in index["eager"]["reason"]
        assert index["ok"]["state"] == "READY"


