"""Paddle inference models (*.pdmodel + *.pdiparams) in Osprey's Python
workers, loaded and called as KServe's paddleserver does (paddle.inference),
checked against the Paddle layer's own forward; an image model (NCHW input)
through `osprey up` with KServe's YAML: metadata with the program's shapes,
V1 images nested and V2 [n, 3, H, W] tensors answered exactly as paddle's own
predictor answers."""

import numpy as np
import pytest
import requests

import harness
from platform_harness import Platform, isvc_yaml

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


# ---- an image model (NCHW input) through `osprey up` with KServe's YAML ----

class TinyConvNet(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)
        self.fc = paddle.nn.Linear(4 * 8 * 8, 5)

    def forward(self, image):
        return self.fc(paddle.flatten(paddle.nn.functional.relu(self.conv(image)), 1))


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    from paddle.static import InputSpec

    paddle.seed(1)
    layer = TinyConvNet()
    layer.eval()
    root = tmp_path_factory.mktemp("paddle-conv")
    paddle.jit.save(layer, str(root / "model"),
                    input_spec=[InputSpec([None, 3, 8, 8], "float32", name="image")])
    return root


def paddle_predict(model_dir, images):
    """Paddle's own answer: paddle.inference on the saved files."""
    from paddle import inference

    config = inference.Config(str(model_dir / "model.pdmodel"), str(model_dir / "model.pdiparams"))
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(1)
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    predictor.get_input_handle(predictor.get_input_names()[0]).copy_from_cpu(images)
    predictor.run()
    return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory, conv_model):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("paddle-up") / "home").start()
    p.apply_text(isvc_yaml("digits", "paddle", conv_model))
    yield p
    p.stop_everything()


def gateway_call(platform, method, path, **kw):
    return requests.request(method, f"{platform.gateway}{path}",
                            headers={"Host": platform.host("digits")},
                            timeout=harness.HTTP_TIMEOUT_S, **kw)


def test_nchw_metadata_declares_the_program_shapes(platform):
    meta = gateway_call(platform, "GET", "/v2/models/digits").json()
    assert meta["platform"] == "paddle"
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 3, 8, 8]}]
    assert [(o["datatype"], o["shape"]) for o in meta["outputs"]] == [("FP32", [-1, 5])]


def test_nchw_v1_and_v2_equal_paddle_own_answer(platform, conv_model):
    images = np.random.default_rng(2).normal(size=(3, 3, 8, 8)).astype(np.float32)
    want = paddle_predict(conv_model, images)
    # V1: each instance an image nested [3][8][8].
    r = gateway_call(platform, "POST", "/v1/models/digits:predict",
                     json={"instances": images.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(np.asarray(r.json()["predictions"], dtype=np.float32), want)
    # V2: one [n, 3, 8, 8] tensor, FP32 and (converted) FP64.
    for datatype, values in (("FP32", images), ("FP64", images.astype(np.float64))):
        r = gateway_call(platform, "POST", "/v2/models/digits/infer", json={"inputs": [
            {"name": "image", "shape": [3, 3, 8, 8], "datatype": datatype,
             "data": values.ravel().tolist()}]})
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        assert out["shape"] == [3, 5]
        np.testing.assert_array_equal(np.asarray(out["data"], dtype=np.float32).reshape(3, 5), want)


def test_nchw_wrong_shapes_are_refused(platform):
    flat = np.zeros((2, 192)).tolist()  # images flattened: not [3, 8, 8]
    r = gateway_call(platform, "POST", "/v1/models/digits:predict", json={"instances": flat})
    assert r.status_code == 400, r.text
    assert "expects shape [-1,3,8,8]" in r.text, r.text
    r = gateway_call(platform, "POST", "/v2/models/digits/infer", json={"inputs": [
        {"name": "image", "shape": [1, 3, 4, 4], "datatype": "FP32", "data": [0.0] * 48}]})
    assert r.status_code == 400, r.text
    assert "image" in r.text
    assert gateway_call(platform, "POST", "/v1/models/digits:predict",
                        json={"instances": np.zeros((1, 3, 8, 8)).tolist()}).status_code == 200
