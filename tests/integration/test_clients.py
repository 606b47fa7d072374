"""Existing clients against Osprey: tritonclient.http (JSON and binary tensors,
async requests, repository calls) and the kserve SDK: its InferenceRESTClient
for V1 and V2 (JSON and binary tensors), its V2 request/response types, and
the pydantic schemas its own server answers with.
"""

import asyncio
import json

import httpx
import numpy as np
import pytest
import requests
import tritonclient.http as triton
from kserve import InferInput as KInferInput
from kserve import InferRequest as KInferRequest
from kserve import InferenceRESTClient, RESTConfig
from kserve import InferResponse as KInferResponse
from kserve.protocol.rest import v2_datamodels as kserve_schema
from tritonclient.utils import InferenceServerException

from harness import (
    HTTP_TIMEOUT_S,
    INPUT_NAME,
    KSERVE_E2E_INSTANCES,
    MODEL_NAMES,
    OUTPUT_NAME,
    assert_close,
    v2_json_request,
)

SOFTMAX = "xgb-iris-softmax"
SOFTPROB = "xgb-iris-softprob"
INT_ROWS = [[6, 3, 5, 2], [5, 3, 1, 0], [7, 3, 6, 2], [4, 2, 1, 0]]


@pytest.fixture(scope="module")
def server(launcher, fixtures, tmp_path_factory):
    repo = fixtures.make_repository(tmp_path_factory.mktemp("clients-repo"))
    with launcher.serve(["--model-repository", repo], label="clients") as s:
        yield s


@pytest.fixture
def client(server):
    c = triton.InferenceServerClient(
        url=f"{server.host}:{server.port}", connection_timeout=HTTP_TIMEOUT_S, network_timeout=HTTP_TIMEOUT_S
    )
    yield c
    c.close()


def validate(schema, payload):
    if hasattr(schema, "model_validate"):
        return schema.model_validate(payload)
    return schema.parse_obj(payload)


# -- tritonclient.http ---------------------------------------------------------


def test_triton_health_and_metadata(client, fixtures):
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "osprey"
    assert "binary_tensor_data" in meta["extensions"]
    for model in MODEL_NAMES:
        assert client.is_model_ready(model)
        assert client.is_model_ready(model, model_version="1")
        md = client.get_model_metadata(model)
        assert md["name"] == model
        assert md["inputs"][0]["shape"] == [-1, fixtures.num_features(model)]
    assert not client.is_model_ready("no-such-model")


@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [False, True], ids=["json-out", "binary-out"])
def test_triton_infer(client, fixtures, binary_in, binary_out):
    X = fixtures.inputs(SOFTPROB)
    inp = triton.InferInput(INPUT_NAME, list(X.shape), "FP32")
    inp.set_data_from_numpy(X, binary_data=binary_in)
    out = triton.InferRequestedOutput(OUTPUT_NAME, binary_data=binary_out)
    result = client.infer(SOFTPROB, [inp], outputs=[out], request_id="triton-1")
    assert result.get_response()["id"] == "triton-1"
    assert result.get_response()["model_name"] == SOFTPROB
    got = result.as_numpy(OUTPUT_NAME)
    assert got.dtype == np.float32
    assert_close(got, fixtures.predictions(SOFTPROB))


def test_triton_default_outputs_come_back_binary(client, fixtures):
    """With no outputs named, tritonclient asks for binary_data_output."""
    X = fixtures.inputs(SOFTMAX)
    inp = triton.InferInput(INPUT_NAME, list(X.shape), "FP32")
    inp.set_data_from_numpy(X)
    result = client.infer(SOFTMAX, [inp])
    out = result.get_output(OUTPUT_NAME)
    assert out["parameters"]["binary_data_size"] == len(X) * 4
    assert_close(result.as_numpy(OUTPUT_NAME), fixtures.predictions(SOFTMAX))


def test_triton_versioned_infer(client, fixtures):
    X = fixtures.inputs(SOFTMAX)[:10]
    inp = triton.InferInput(INPUT_NAME, list(X.shape), "FP32")
    inp.set_data_from_numpy(X)
    result = client.infer(SOFTMAX, [inp], model_version="1")
    assert_close(result.as_numpy(OUTPUT_NAME), fixtures.predictions(SOFTMAX)[:10])


@pytest.mark.parametrize(
    "datatype,binary",
    [
        ("FP16", True),
        ("FP64", True),
        ("FP64", False),
        ("INT32", True),
        ("INT64", False),
        ("UINT8", True),
        ("UINT16", False),
        ("BOOL", True),
        ("BOOL", False),
    ],
)
def test_triton_input_datatypes(client, fixtures, datatype, binary):
    from tritonclient.utils import triton_to_np_dtype

    if datatype == "BOOL":
        X = np.array([[True, False, True, True], [False, False, False, False]])
    elif datatype.startswith(("INT", "UINT")):
        X = np.asarray(INT_ROWS, dtype=triton_to_np_dtype(datatype))
    else:
        X = fixtures.inputs(SOFTPROB).astype(triton_to_np_dtype(datatype))
    inp = triton.InferInput(INPUT_NAME, list(X.shape), datatype)
    inp.set_data_from_numpy(X, binary_data=binary)
    result = client.infer(SOFTPROB, [inp], outputs=[triton.InferRequestedOutput(OUTPUT_NAME)])
    assert_close(result.as_numpy(OUTPUT_NAME), fixtures.oracle(SOFTPROB, X.astype(np.float32)), datatype)


def test_triton_kserve_e2e_case(client):
    X = np.asarray(KSERVE_E2E_INSTANCES, dtype=np.float32)
    inp = triton.InferInput(INPUT_NAME, [2, 4], "FP32")
    inp.set_data_from_numpy(X, binary_data=False)
    result = client.infer(SOFTMAX, [inp], outputs=[triton.InferRequestedOutput(OUTPUT_NAME, binary_data=False)])
    assert result.as_numpy(OUTPUT_NAME).tolist() == [1.0, 1.0]


def test_triton_errors_carry_status(client):
    inp = triton.InferInput(INPUT_NAME, [1, 4], "FP32")
    inp.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    with pytest.raises(InferenceServerException) as err:
        client.infer("no-such-model", [inp])
    assert err.value.status() == "404"
    bad = triton.InferInput(INPUT_NAME, [1, 3], "FP32")
    bad.set_data_from_numpy(np.ones((1, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException) as err:
        client.infer(SOFTMAX, [bad])
    assert err.value.status() == "400"
    assert err.value.message()


def test_triton_async_infer(server, fixtures):
    c = triton.InferenceServerClient(url=f"{server.host}:{server.port}", concurrency=4)
    try:
        X, want = fixtures.inputs(SOFTPROB), fixtures.predictions(SOFTPROB)
        pending = []
        for i in range(16):
            rows = slice(i * 9, i * 9 + 9)
            inp = triton.InferInput(INPUT_NAME, [9, 4], "FP32")
            inp.set_data_from_numpy(X[rows])
            pending.append((rows, c.async_infer(SOFTPROB, [inp], request_id=str(i))))
        for i, (rows, req) in enumerate(pending):
            result = req.get_result(timeout=HTTP_TIMEOUT_S)
            assert result.get_response()["id"] == str(i)
            assert_close(result.as_numpy(OUTPUT_NAME), want[rows])
    finally:
        c.close()


def test_triton_repository_calls(osprey, fixtures, tmp_path):
    repo = fixtures.make_repository(tmp_path / "repo", [SOFTMAX, SOFTPROB])
    server = osprey(["--model-repository", repo], "clients-repo-calls")
    c = triton.InferenceServerClient(url=f"{server.host}:{server.port}")
    try:
        index = {e["name"]: e for e in c.get_model_repository_index()}
        assert {n: e["state"] for n, e in index.items()} == {SOFTMAX: "READY", SOFTPROB: "READY"}
        c.unload_model(SOFTMAX)
        assert not c.is_model_ready(SOFTMAX)
        assert c.is_model_ready(SOFTPROB)
        c.load_model(SOFTMAX)
        assert c.is_model_ready(SOFTMAX)
        inp = triton.InferInput(INPUT_NAME, [2, 4], "FP32")
        inp.set_data_from_numpy(np.asarray(KSERVE_E2E_INSTANCES, dtype=np.float32))
        assert c.infer(SOFTMAX, [inp]).as_numpy(OUTPUT_NAME).tolist() == [1.0, 1.0]
    finally:
        c.close()


# -- kserve SDK ------------------------------------------------------------------


def kserve_infer(server, request: KInferRequest) -> KInferResponse:
    body, json_length = request.to_rest()
    headers = {"Content-Type": "application/json"}
    if json_length:
        headers["Inference-Header-Content-Length"] = str(json_length)
    r = requests.post(server.url(f"/v2/models/{request.model_name}/infer"),
                      data=body if isinstance(body, bytes) else json.dumps(body),
                      headers=headers, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 200, r.text[:500]
    validate(kserve_schema.InferenceResponse, r.json())
    return KInferResponse.from_rest(r.json())


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_kserve_infer_request(server, fixtures, model):
    X = fixtures.inputs(model)
    inp = KInferInput(name=INPUT_NAME, shape=list(X.shape), datatype="FP32")
    inp.set_data_from_numpy(X, binary_data=False)
    resp = kserve_infer(server, KInferRequest(model_name=model, infer_inputs=[inp], request_id=f"k-{model}"))
    assert resp.id == f"k-{model}"
    out = resp.get_output_by_name(OUTPUT_NAME)
    assert out is not None and out.datatype == "FP32"
    assert_close(out.as_numpy(), fixtures.predictions(model))


def test_kserve_e2e_case_with_kserve_types(server):
    inp = KInferInput(name=INPUT_NAME, shape=[2, 4], datatype="FP32", data=KSERVE_E2E_INSTANCES)
    resp = kserve_infer(server, KInferRequest(model_name=SOFTMAX, infer_inputs=[inp], request_id="e2e"))
    assert resp.outputs[0].data == [1.0, 1.0]
    assert resp.outputs[0].as_numpy().tolist() == [1.0, 1.0]


def test_kserve_int64_input(server, fixtures):
    X = np.asarray(INT_ROWS, dtype=np.int64)
    inp = KInferInput(name=INPUT_NAME, shape=list(X.shape), datatype="INT64")
    inp.set_data_from_numpy(X, binary_data=False)
    resp = kserve_infer(server, KInferRequest(model_name=SOFTPROB, infer_inputs=[inp], request_id="i64"))
    assert_close(resp.outputs[0].as_numpy(), fixtures.oracle(SOFTPROB, X.astype(np.float32)))


def test_answers_match_kserve_schemas(server, fixtures):
    get = lambda path: requests.get(server.url(path), timeout=HTTP_TIMEOUT_S)  # noqa: E731
    validate(kserve_schema.ServerLiveResponse, get("/v2/health/live").json())
    validate(kserve_schema.ServerReadyResponse, get("/v2/health/ready").json())
    validate(kserve_schema.ServerMetadataResponse, get("/v2").json())
    validate(kserve_schema.ListModelsResponse, get("/v1/models").json())
    for model in MODEL_NAMES:
        md = validate(kserve_schema.ModelMetadataResponse, get(f"/v2/models/{model}").json())
        assert md.platform == "xgboost"
        ready = validate(kserve_schema.ModelReadyResponse, get(f"/v2/models/{model}/ready").json())
        assert ready.ready is True
    r = requests.post(
        server.url(f"/v2/models/{SOFTMAX}/infer"),
        json=v2_json_request(fixtures.inputs(SOFTMAX)[:3], request_id="schema"),
        timeout=HTTP_TIMEOUT_S,
    )
    validate(kserve_schema.InferenceResponse, r.json())
    validate(kserve_schema.InferenceRequest, v2_json_request(fixtures.inputs(SOFTMAX)[:3]))


# -- kserve SDK InferenceRESTClient ---------------------------------------------


def rest_client_call(protocol, call):
    """Runs `call(client)` on a fresh InferenceRESTClient speaking `protocol`."""

    async def run():
        client = InferenceRESTClient(RESTConfig(protocol=protocol, timeout=HTTP_TIMEOUT_S))
        try:
            return await call(client)
        finally:
            await client.close()

    return asyncio.run(run())


def test_kserve_rest_client_v1_e2e_case(server):
    """KServe's own e2e case through its SDK's V1 client: predictions [1, 1]."""
    result = rest_client_call("v1", lambda c: c.infer(
        server.base_url, {"instances": KSERVE_E2E_INSTANCES}, model_name=SOFTMAX))
    assert result["predictions"] == [1, 1]


def test_kserve_rest_client_v1_health(server):
    # The SDK's V1 client checks liveness only (GET /); readiness is a V2 call.
    assert rest_client_call("v1", lambda c: c.is_server_live(server.base_url)) is True


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_kserve_rest_client_v2(server, fixtures, model, binary):
    X = fixtures.inputs(model)
    inp = KInferInput(name=INPUT_NAME, shape=list(X.shape), datatype="FP32")
    inp.set_data_from_numpy(X, binary_data=binary)
    request = KInferRequest(model_name=model, infer_inputs=[inp], request_id=f"rc-{model}",
                            parameters={"binary_data_output": binary} if binary else None)
    resp = rest_client_call("v2", lambda c: c.infer(server.base_url, request, model_name=model))
    assert resp.id == f"rc-{model}"
    out = resp.get_output_by_name(OUTPUT_NAME)
    assert out is not None and out.datatype == "FP32"
    assert_close(out.as_numpy(), fixtures.predictions(model))


def test_kserve_rest_client_v2_health_and_errors(server):
    assert rest_client_call("v2", lambda c: c.is_server_live(server.base_url)) is True
    assert rest_client_call("v2", lambda c: c.is_server_ready(server.base_url)) is True
    assert rest_client_call("v2", lambda c: c.is_model_ready(server.base_url, SOFTPROB)) is True
    explained = rest_client_call("v1", lambda c: c.explain(server.base_url, SOFTMAX,
                                                           {"instances": KSERVE_E2E_INSTANCES}))
    assert len(explained["explanations"]) == len(KSERVE_E2E_INSTANCES)
    with pytest.raises(httpx.HTTPStatusError) as err:
        rest_client_call("v1", lambda c: c.infer(server.base_url, {"instances": [[1, 2]]},
                                                 model_name=SOFTMAX))
    assert err.value.response.status_code == 400
    assert "expects 4" in err.value.response.json()["error"]
