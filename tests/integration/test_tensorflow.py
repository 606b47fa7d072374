"""TensorFlow SavedModels in Osprey's Python workers, answered as TF Serving:
the seed's `mnist`-style layout (numeric version directories), V1 row form
("instances") and columnar form ("inputs"), signature_name, {"b64": ...}
values, several inputs and outputs, and V2 tensors; checked against the
model's own signatures in the test."""

import base64

import numpy as np
import pytest

from harness import assert_error

tf = pytest.importorskip("tensorflow")


class Linear(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3) / 10)
        self.b = tf.Variable(np.ones(3, dtype=np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x):
        return {"scores": tf.matmul(x, self.w) + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([None], tf.float32, name="weight")])
    def lengths(self, text, weight):
        n = tf.strings.length(text)
        return {"length": n, "weighted": tf.cast(n, tf.float32) * weight}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    repo = tmp_path_factory.mktemp("tf-repo")
    module = Linear()
    tf.saved_model.save(module, str(repo / "mnist" / "1"),
                        signatures={"serving_default": module.serve, "lengths": module.lengths})
    return repo, module


@pytest.fixture(scope="module")
def server(launcher, trained):
    repo, _ = trained
    with launcher.serve(["--model-repository", repo, "--no-grpc"], label="tensorflow") as s:
        yield s


def scores(module, X):
    return module.serve(tf.constant(X, dtype=tf.float32))["scores"].numpy()


def test_row_form(server, trained):
    _, module = trained
    X = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    r = server.post("/v1/models/mnist:predict", json={"instances": X.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], scores(module, X), rtol=1e-6)


def test_columnar_form(server, trained):
    _, module = trained
    X = np.ones((2, 4), dtype=np.float32)
    r = server.post("/v1/models/mnist:predict", json={"inputs": {"x": X.tolist()}})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["outputs"], scores(module, X), rtol=1e-6)


def test_signature_name_b64_and_several_outputs(server):
    hello = base64.b64encode(b"hello").decode()
    r = server.post("/v1/models/mnist:predict", json={
        "signature_name": "lengths",
        "instances": [{"text": {"b64": hello}, "weight": 2.0}, {"text": "ab", "weight": 1.0}]})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == [{"length": 5, "weighted": 10.0},
                                       {"length": 2, "weighted": 2.0}]
    r = server.post("/v1/models/mnist:predict", json={
        "signature_name": "lengths", "inputs": {"text": ["abc"], "weight": [0.5]}})
    assert r.json()["outputs"] == {"length": [3], "weighted": [1.5]}


def test_v2_tensors_and_metadata(server, trained):
    _, module = trained
    meta = server.get("/v2/models/mnist").json()
    assert meta["platform"] == "tensorflow_savedmodel"
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    r = server.post("/v2/models/mnist/infer", json={"inputs": [
        {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["outputs"][0]["data"],
                               scores(module, np.array([[1, 2, 3, 4]]))[0], rtol=1e-6)


def test_unknown_signature_names_the_ones_there(server):
    r = server.post("/v1/models/mnist:predict", json={"signature_name": "nope", "instances": [[1, 2, 3, 4]]})
    assert_error(r, 500, "signature 'nope' not found", "serving_default")
