"""Paddle inference models (*.pdmodel + *.pdiparams) in Osprey's Python
workers, loaded and called as KServe's paddleserver does (paddle.inference,
float32 inputs), checked against the Paddle layer's own forward."""

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from paddle.static import InputSpec

    paddle.seed(0)
    layer = paddle.nn.Sequential(paddle.nn.Linear(4, 8), paddle.nn.ReLU(), paddle.nn.Linear(8, 3))
    layer.eval()
    repo = tmp_path_factory.mktemp("paddle-repo")
    (repo / "iris").mkdir()
    paddle.jit.save(layer, str(repo / "iris" / "model"),
                    input_spec=[InputSpec([None, 4], "float32", name="x")])
    return repo, layer


@pytest.fixture(scope="module")
def server(launcher, trained):
    repo, _ = trained
    with launcher.serve(["--model-repository", repo, "--no-grpc"], label="paddle") as s:
        yield s


def forward(layer, X):
    return layer(paddle.to_tensor(np.asarray(X, dtype=np.float32))).numpy()


def test_v1_and_v2_match_the_layer(server, trained):
    _, layer = trained
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    r = server.post("/v1/models/iris:predict", json={"instances": X.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], forward(layer, X), rtol=1e-5, atol=1e-6)
    meta = server.get("/v2/models/iris").json()
    assert meta["platform"] == "paddle"
    name = meta["inputs"][0]["name"]
    r = server.post("/v2/models/iris/infer", json={"inputs": [
        {"name": name, "shape": [5, 4], "datatype": "FP64", "data": X.astype(float).ravel().tolist()}]})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(out["shape"]), forward(layer, X),
                               rtol=1e-5, atol=1e-6)
