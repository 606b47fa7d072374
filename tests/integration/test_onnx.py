"""ONNX models in Osprey's Python workers (onnxruntime), checked against the
frameworks that exported them: a scikit-learn classifier (skl2onnx, label and
probabilities), a torch MLP (torch.onnx.export), a graph with two inputs and
two outputs built with onnx.helper; requested outputs, datatype errors and a
model whose outputs are not tensors."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from harness import assert_error


def iris():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return X.astype(np.float32), y


def two_in_two_out():
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 3])
    total = helper.make_tensor_value_info("sum", TensorProto.FLOAT, [None, 3])
    product = helper.make_tensor_value_info("product", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["sum"]),
                               helper.make_node("Mul", ["a", "b"], ["product"])],
                              "two", [a, b], [total, product])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import torch
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    repo = tmp_path_factory.mktemp("onnx-repo")
    X, y = iris()
    lr = LogisticRegression(max_iter=500).fit(X, y)
    (repo / "lr").mkdir()
    (repo / "lr" / "model.onnx").write_bytes(
        to_onnx(lr, X[:1], options={id(lr): {"zipmap": False}}).SerializeToString())
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
                              torch.nn.Linear(16, 3)).eval()
    (repo / "mlp").mkdir()
    torch.onnx.export(net, torch.zeros(1, 4), str(repo / "mlp" / "model.onnx"),
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    (repo / "two").mkdir()
    (repo / "two" / "model.onnx").write_bytes(two_in_two_out().SerializeToString())
    return repo, lr, net


@pytest.fixture(scope="module")
def server(launcher, trained):
    repo, _, _ = trained
    with launcher.serve(["--model-repository", repo], label="onnx") as s:
        yield s


def infer(server, name, inputs, outputs=None):
    body = {"inputs": [{"name": n, "shape": list(v.shape), "datatype": "FP32",
                        "data": v.ravel().tolist()} for n, v in inputs.items()]}
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    r = server.post(f"/v2/models/{name}/infer", json=body)
    assert r.status_code == 200, r.text
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in r.json()["outputs"]}


def test_sklearn_classifier(server, trained):
    _, lr, _ = trained
    X, _ = iris()
    out = infer(server, "lr", {"X": X})
    assert out["label"].tolist() == lr.predict(X).tolist()
    np.testing.assert_allclose(out["probabilities"], lr.predict_proba(X), atol=1e-5)
    meta = server.get("/v2/models/lr").json()
    assert meta["platform"] == "onnxruntime_onnx"
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]


def test_torch_mlp_and_v1(server, trained):
    import torch

    _, _, net = trained
    X, _ = iris()
    with torch.no_grad():
        want = net(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(infer(server, "mlp", {"x": X})["logits"], want, rtol=1e-5, atol=1e-5)
    r = server.post("/v1/models/mlp:predict", json={"instances": X[:2].tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], want[:2], rtol=1e-5, atol=1e-5)


def test_several_inputs_and_requested_outputs(server):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 2, dtype=np.float32)
    out = infer(server, "two", {"b": b, "a": a})
    np.testing.assert_array_equal(out["sum"], a + b)
    np.testing.assert_array_equal(out["product"], a * b)
    assert list(infer(server, "two", {"a": a, "b": b}, outputs=["product"])) == ["product"]


def test_concurrent_requests_merge_and_split(server, trained):
    _, lr, _ = trained
    X, _ = iris()
    start = threading.Barrier(12)

    def post(i):
        with requests.Session() as s:
            start.wait(timeout=10)
            return s.post(server.url("/v2/models/lr/infer"), timeout=30, json={"inputs": [
                {"name": "X", "shape": [2, 4], "datatype": "FP32",
                 "data": X[i:i + 2].ravel().tolist()}]})

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(post, range(12)))
    for i, r in enumerate(answers):
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == lr.predict(X[i:i + 2]).tolist()


def test_wrong_datatype_is_refused(server):
    r = server.post("/v2/models/mlp/infer", json={"inputs": [
        {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]})
    assert_error(r, 400, "FP32", "FP64")


def test_map_outputs_are_refused_at_load(launcher, tmp_path):
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    X, y = iris()
    (tmp_path / "zipmap").mkdir()
    (tmp_path / "zipmap" / "model.onnx").write_bytes(
        to_onnx(LogisticRegression(max_iter=500).fit(X, y), X[:1]).SerializeToString())
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "model.onnx").write_bytes(two_in_two_out().SerializeToString())
    with launcher.serve(["--model-repository", tmp_path, "--no-grpc"], label="onnx-bad",
                        ready_models=["two"]) as s:
        reason = s.repository_index()["zipmap"]["reason"]
        assert "output_probability" in reason and "zipmap=False" in reason
