"""gRPC through the gateway of `osprey up` (tritonclient.grpc): calls routed
by :authority like HTTP by Host, falling back to the model name in the
request; health, metadata and inference reach the revision's replica; a
revision at zero is woken by a gRPC call; unroutable calls fail with
NOT_FOUND naming what was asked.

Runs in its own process: OSPREY_GRPC_SUITE=gateway (tests/run_integration.sh).
"""


import numpy as np
import pytest
import tritonclient.grpc as tgrpc
from tritonclient.utils import InferenceServerException

import harness
from platform_harness import Platform, example_models, isvc_yaml

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
