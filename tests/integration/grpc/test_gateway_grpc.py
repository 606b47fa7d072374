"""gRPC through the gateway of `osprey up` (tritonclient.grpc): calls routed
by :authority like HTTP by Host, falling back to the model name in the
request; health, metadata and inference reach the revision's replica; a
revision at zero is woken by a gRPC call; unroutable calls fail with
NOT_FOUND naming what was asked.

A predictor's own container running KServe's model server (the kserve SDK)
gets the replica's HTTP and gRPC ports, two replicas side by side, and
serves gRPC through the gateway, with or without an h2c port declared.

Runs in its own process: OSPREY_GRPC_SUITE=gateway (tests/run_integration.sh).
"""


import numpy as np
import pytest
import tritonclient.grpc as tgrpc
from tritonclient.utils import InferenceServerException

import harness
from platform_harness import VENV_BIN, Platform, example_models, isvc_yaml

ROWS = np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]], dtype=np.float32)


@pytest.fixture(scope="module")
def model_dir():
    return example_models() / "xgboost-iris"


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory, model_dir):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("gateway-grpc") / "home",
                 extra_args=["--autoscale-tick-ms", "200", "--stable-window-s", "2",
                             "--scale-to-zero-grace-s", "1"]).start()
    p.apply_text(isvc_yaml("grpc-iris", "xgboost", model_dir))
    yield p
    p.stop_everything()


def client(platform, authority=None):
    args = [("grpc.default_authority", authority)] if authority else None
    return tgrpc.InferenceServerClient(url=f"127.0.0.1:{platform.grpc_port}", channel_args=args)


def infer(c, model):
    inp = tgrpc.InferInput("input-0", list(ROWS.shape), "FP32")
    inp.set_data_from_numpy(ROWS)
    return c.infer(model, [inp], client_timeout=30).as_numpy("output-0")


def test_routed_by_authority(platform):
    c = client(platform, platform.host("grpc-iris"))
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("grpc-iris")
    meta = c.get_model_metadata("grpc-iris")
    assert meta.name == "grpc-iris" and meta.inputs[0].datatype == "FP32"
    np.testing.assert_array_equal(infer(c, "grpc-iris"), [1.0, 1.0])


def test_routed_by_model_name(platform):
    c = client(platform)  # :authority is 127.0.0.1:port: no host matches
    np.testing.assert_array_equal(infer(c, "grpc-iris"), [1.0, 1.0])
    assert c.is_model_ready("grpc-iris")
    with pytest.raises(InferenceServerException) as e:
        infer(c, "no-such-model")
    assert "StatusCode.NOT_FOUND" in str(e.value.status()) and "no-such-model" in str(e.value)
    with pytest.raises(InferenceServerException) as e:
        c.is_server_live()  # no model in the request, no host: nowhere to go
    assert "NOT_FOUND" in str(e.value.status())


def test_scale_from_zero_on_a_grpc_call(platform, model_dir):
    platform.apply_text(isvc_yaml("grpc-sleepy", "xgboost", model_dir,
                                  extra_predictor="\n    minReplicas: 0"))

    def at_zero():
        return sum(r["status"]["replicas"] for r in platform.revisions("grpc-sleepy")) == 0

    harness.wait_until(at_zero, 30, "scale to zero")
    c = client(platform, platform.host("grpc-sleepy"))
    np.testing.assert_array_equal(infer(c, "grpc-sleepy"), [1.0, 1.0])
    import requests
    text = requests.get(f"{platform.api}/metrics").text
    assert ('osprey_gateway_requests_total{namespace="default",inferenceservice="grpc-sleepy",'
            'component="predictor",revision="grpc-sleepy-predictor-00001",code_class="2xx"} 1'
            ) in text, text


def health_check(platform, service, authority=None):
    """grpc.health.v1.Health/Check with a hand-encoded HealthCheckRequest."""
    import grpc

    options = [("grpc.default_authority", authority)] if authority else []
    request = b"" if not service else b"\x0a" + bytes([len(service)]) + service.encode()
    with grpc.insecure_channel(f"127.0.0.1:{platform.grpc_port}", options=options) as channel:
        call = channel.unary_unary("/grpc.health.v1.Health/Check")
        return call(request, timeout=10)


def test_gateway_answers_its_own_health(platform):
    import grpc

    serving = b"\x08\x01"  # HealthCheckResponse{status: SERVING}
    assert health_check(platform, "") == serving
    assert health_check(platform, "inference.GRPCInferenceService") == serving
    with pytest.raises(grpc.RpcError) as e:
        health_check(platform, "no.such.Service")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "no.such.Service" in e.value.details()
    # Routed to an InferenceService by :authority, the replica's own health answers.
    assert health_check(platform, "", platform.host("grpc-iris")) == serving


def test_model_name_in_the_args_names_the_served_model(platform, model_dir):
    """`--model_name` in the predictor's args names the served model over gRPC too
    (its REST half is in test_compat.py)."""
    platform.apply_text(isvc_yaml("grpc-named", "xgboost", model_dir,
                                  extra_model="\n      args: [\"--model_name=flowers\"]"))
    c = client(platform, platform.host("grpc-named"))
    assert c.is_model_ready("flowers")
    np.testing.assert_array_equal(infer(c, "flowers"), [1.0, 1.0])
    with pytest.raises(InferenceServerException) as e:
        infer(c, "grpc-named")
    assert "grpc-named" in str(e.value)
    # Without its :authority, the call finds the service by the served name.
    np.testing.assert_array_equal(infer(client(platform), "flowers"), [1.0, 1.0])


# A KServe custom predictor, unchanged: kserve.Model and ModelServer from the
# kserve SDK, its ports from its flags (8080 and 8081 unless told).
DOUBLER = """
import argparse
import kserve
import numpy as np
from kserve import InferOutput, InferResponse, Model, ModelServer


class Doubler(Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    def predict(self, payload, headers=None):
        if isinstance(payload, dict):
            return {"predictions": [[2 * v for v in row] for row in payload["instances"]]}
        x = payload.inputs[0].as_numpy()
        out = InferOutput("output-0", list(x.shape), "FP32")
        out.set_data_from_numpy((2 * x).astype(np.float32))
        return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    args, _ = parser.parse_known_args()
    ModelServer().start([Doubler(args.model_name)])
"""


@pytest.mark.parametrize("ports", ["", "\n        ports: [{name: h2c, containerPort: 8081, protocol: TCP}]"],
                         ids=["flags", "h2c-port"])
def test_kserve_model_server_in_a_custom_container(platform, tmp_path, ports):
    name = "doubler-h2c" if ports else "doubler"
    script = tmp_path / "model.py"
    script.write_text(DOUBLER)
    platform.apply_text(f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {name}
spec:
  predictor:
    minReplicas: 2
    containers:
      - name: kserve-container
        image: example.com/doubler:1
        command: [{VENV_BIN / "python"}, {script}]
        args: [--model_name, {name}]{ports}
""")
    revs = platform.revisions(name)
    harness.wait_until(lambda: platform.revisions(name)[0]["status"]["readyReplicas"] == 2, 60,
                       "two replicas ready")
    c = client(platform, platform.host(name))
    for _ in range(4):  # both replicas answer
        np.testing.assert_array_equal(infer(c, name), 2 * ROWS)
    import requests

    r = requests.post(f"{platform.gateway}/v1/models/{name}:predict",
                      json={"instances": [[1.0, 2.0]]}, headers={"Host": platform.host(name)},
                      timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [[2.0, 4.0]]}
    assert len(revs) == 1


def test_a_triton_repository_over_grpc(platform, tmp_path):
    """KServe's triton format: each model of the repository by its own name,
    over gRPC through the gateway; no version asked: the highest."""
    torch = pytest.importorskip("torch")
    nets = {}
    for version in ("1", "2"):
        torch.manual_seed(int(version))
        nets[version] = torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()
        (tmp_path / "linear" / version).mkdir(parents=True)
        torch.jit.script(nets[version]).save(str(tmp_path / "linear" / version / "model.pt"))
    (tmp_path / "linear" / "config.pbtxt").write_text("""
platform: "pytorch_libtorch"
max_batch_size: 4
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]
version_policy: { latest { num_versions: 2 } }
""")
    platform.apply_text(isvc_yaml("grpc-triton", "triton", tmp_path))
    c = client(platform, platform.host("grpc-triton"))
    meta = c.get_model_metadata("linear")
    assert list(meta.versions) == ["1", "2"] and meta.platform == "pytorch_libtorch"
    for version in ("", "1"):
        inp = tgrpc.InferInput("INPUT__0", list(ROWS.shape), "FP32")
        inp.set_data_from_numpy(ROWS)
        r = c.infer("linear", [inp], model_version=version, client_timeout=30)
        served = version or "2"
        assert r.get_response().model_version == served
        with torch.no_grad():
            want = nets[served](torch.from_numpy(ROWS)).numpy()
        np.testing.assert_allclose(r.as_numpy("OUTPUT__0"), want, rtol=1e-5, atol=1e-6)


def test_torchserve_archives_over_grpc_through_the_gateway(platform, tmp_path):
    """KServe's gRPC V2 torchserve shape (protocolVersion grpc-v2, an h2c
    port): the store's models by their own names through the gateway; an
    image as BYTES reaches its handler, the built-in image_classifier's
    labels come back as JSON text."""
    import json

    import torchserve_models as ts_models

    store = ts_models.make_store(tmp_path / "store", models=("mnist", "tiny"))
    platform.apply_text(f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: ts-grpc
spec:
  predictor:
    model:
      modelFormat:
        name: pytorch
      protocolVersion: grpc-v2
      storageUri: file://{store}
      ports:
        - containerPort: 8081
          name: h2c
          protocol: TCP
""")
    c = client(platform, platform.host("ts-grpc"))
    try:
        assert c.is_model_ready("mnist") and c.is_model_ready("tiny")
        assert c.get_model_metadata("tiny").platform == "pytorch_torchserve"
        png = ts_models.digit_png(1)
        image = tgrpc.InferInput("input-0", [1], "BYTES")
        image.set_data_from_numpy(np.array([png], dtype=object))
        got = c.infer("mnist", [image], client_timeout=30).as_numpy("input-0")
        assert got.tolist() == ts_models.mnist_reference([png])
        png = ts_models.color_png(2)
        image = tgrpc.InferInput("image", [1], "BYTES")
        image.set_data_from_numpy(np.array([png], dtype=object))
        (text,) = c.infer("tiny", [image], client_timeout=30).as_numpy("image")
        got = json.loads(text)
        want = ts_models.tiny_reference([png])[0]
        assert list(got) == list(want)
        np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=1e-5)
    finally:
        c.close()
