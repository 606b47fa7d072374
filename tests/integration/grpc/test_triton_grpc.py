"""tritonclient.grpc against Osprey's gRPC port: health, server and model
metadata, inference with every numeric input datatype (tritonclient always
sends raw_input_contents; the server converts to the model's FP32), requested
outputs, id echo, KServe's e2e case, every fixture model, async_infer and the
asyncio client, repository index/load/unload, status codes of failures, and
16 concurrent client threads.

Runs in its own process: OSPREY_GRPC_SUITE=triton (tests/run_integration.sh).
"""

import asyncio
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.grpc.aio as tgrpc_aio
from tritonclient.utils import InferenceServerException

from grpc_common import (
    KSERVE_E2E_ANSWER,
    RPC_TIMEOUT_S,
    SOFTMAX,
    SOFTPROB,
    datatype_rows,
    wait_grpc_ready,
)
from harness import (
    INPUT_NAME,
    KSERVE_E2E_INSTANCES,
    MODEL_NAMES,
    NP_DTYPES,
    OUTPUT_NAME,
    assert_close,
)


@pytest.fixture
def client(server):
    c = tgrpc.InferenceServerClient(url=server.grpc_target)
    yield c
    c.close()


def make_input(X, datatype):
    X = np.ascontiguousarray(X)
    inp = tgrpc.InferInput(INPUT_NAME, list(X.shape), datatype)
    inp.set_data_from_numpy(X)
    return inp


def fp32_input(X):
    return make_input(np.asarray(X, dtype=np.float32), "FP32")


def expect_error(code, *fragments):
    """Context manager: an InferenceServerException with that gRPC status."""
    return _ExpectError(code, fragments)


class _ExpectError:
    def __init__(self, code, fragments):
        self.code = code
        self.fragments = fragments
        self.message = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        assert exc_type is not None, f"expected {self.code}, the call succeeded"
        if not issubclass(exc_type, InferenceServerException):
            return False
        assert exc.status() == f"StatusCode.{self.code}", (exc.status(), exc.message())
        self.message = exc.message()
        for frag in self.fragments:
            assert frag in self.message, f"{self.message!r} should mention {frag!r}"
        return True


def check_still_serving(client, fixtures):
    X = fixtures.inputs(SOFTMAX)[:9]
    result = client.infer(SOFTMAX, [fp32_input(X)], request_id="probe", client_timeout=RPC_TIMEOUT_S)
    assert result.get_response().id == "probe"
    assert_close(result.as_numpy(OUTPUT_NAME), fixtures.predictions(SOFTMAX)[:9], "after a failure")


# -- health and metadata -------------------------------------------------------


def test_health(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    for model in MODEL_NAMES:
        assert client.is_model_ready(model), model
        assert client.is_model_ready(model, model_version="1"), model
    with expect_error("NOT_FOUND", "no-such-model"):
        client.is_model_ready("no-such-model")
    with expect_error("NOT_FOUND", "'7'"):
        client.is_model_ready(SOFTMAX, model_version="7")


def test_server_metadata_matches_rest(client, server):
    md = client.get_server_metadata()
    rest = server.get("/v2").json()
    assert md.name == "osprey" == rest["name"]
    assert md.version == rest["version"] and md.version
    assert list(md.extensions) == rest["extensions"]
    assert "model_repository" in md.extensions


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_model_metadata(client, server, fixtures, model):
    md = client.get_model_metadata(model)
    versioned = client.get_model_metadata(model, model_version="1")
    assert md == versioned
    assert md.name == model
    assert list(md.versions) == ["1"]
    assert md.platform
    assert [(t.name, t.datatype, list(t.shape)) for t in md.inputs] == [
        (INPUT_NAME, "FP32", [-1, fixtures.num_features(model)])
    ]
    assert [t.name for t in md.outputs] == [OUTPUT_NAME]
    assert md.outputs[0].datatype == "FP32"
    assert md.outputs[0].shape[0] == -1
    # The same answer as REST, field for field.
    rest = server.get(f"/v2/models/{model}").json()
    as_json = client.get_model_metadata(model, as_json=True)
    for tensor in as_json["inputs"] + as_json["outputs"]:
        tensor["shape"] = [int(d) for d in tensor["shape"]]  # int64 travels as strings in JSON
    assert as_json == rest


def test_model_metadata_unknown(client):
    with expect_error("NOT_FOUND", "no-such-model"):
        client.get_model_metadata("no-such-model")
    with expect_error("NOT_FOUND", "'3'"):
        client.get_model_metadata(SOFTMAX, model_version="3")


# -- inference -----------------------------------------------------------------


@pytest.mark.parametrize("datatype", list(NP_DTYPES))
def test_infer_every_input_datatype(client, fixtures, datatype):
    typed, as_f32 = datatype_rows(fixtures, SOFTPROB, datatype)
    assert typed.dtype == NP_DTYPES[datatype]
    result = client.infer(SOFTPROB, [make_input(typed, datatype)], request_id=f"dt-{datatype}")
    response = result.get_response()
    assert response.id == f"dt-{datatype}"
    assert response.model_name == SOFTPROB and response.model_version == "1"
    out = response.outputs[0]
    assert (out.name, out.datatype, list(out.shape)) == (OUTPUT_NAME, "FP32", [len(typed), 3])
    # Raw inputs are answered with raw outputs.
    assert len(response.raw_output_contents) == 1
    assert len(response.raw_output_contents[0]) == len(typed) * 3 * 4
    assert_close(result.as_numpy(OUTPUT_NAME), fixtures.oracle(SOFTPROB, as_f32), datatype)


def test_kserve_e2e_case(client):
    X = np.array(KSERVE_E2E_INSTANCES, dtype=np.float32)
    result = client.infer(SOFTMAX, [fp32_input(X)])
    got = result.as_numpy(OUTPUT_NAME)
    assert got.dtype == np.float32
    assert got.tolist() == KSERVE_E2E_ANSWER


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_model_matches_xgboost(client, fixtures, model):
    X = fixtures.inputs(model)
    want = fixtures.predictions(model)
    result = client.infer(model, [fp32_input(X)], outputs=[tgrpc.InferRequestedOutput(OUTPUT_NAME)])
    got = result.as_numpy(OUTPUT_NAME)
    assert list(got.shape) == list(want.shape)
    assert_close(got, want, model)


def test_requested_output_and_id(client, fixtures):
    X = fixtures.inputs(SOFTPROB)[:5]
    result = client.infer(
        SOFTPROB,
        [fp32_input(X)],
        request_id="triton-req-42",
        outputs=[tgrpc.InferRequestedOutput(OUTPUT_NAME)],
        parameters={"note": "kept", "count": 3, "flag": True},
    )
    response = result.get_response()
    assert response.id == "triton-req-42"
    assert [o.name for o in response.outputs] == [OUTPUT_NAME]
    assert_close(result.as_numpy(OUTPUT_NAME), fixtures.predictions(SOFTPROB)[:5])
    # No id asked: none echoed.
    assert client.infer(SOFTPROB, [fp32_input(X)]).get_response().id == ""
    with expect_error("INVALID_ARGUMENT", "no-such-output"):
        client.infer(SOFTPROB, [fp32_input(X)], outputs=[tgrpc.InferRequestedOutput("no-such-output")])


def test_versioned_infer(client, fixtures):
    X = fixtures.inputs(SOFTMAX)[:4]
    result = client.infer(SOFTMAX, [fp32_input(X)], model_version="1")
    assert_close(result.as_numpy(OUTPUT_NAME), fixtures.predictions(SOFTMAX)[:4])
    with expect_error("NOT_FOUND", SOFTMAX, "'2'"):
        client.infer(SOFTMAX, [fp32_input(X)], model_version="2")


def test_async_infer_callbacks(client, fixtures):
    X = fixtures.inputs(SOFTPROB)
    want = fixtures.predictions(SOFTPROB)
    answers = queue.Queue()
    n = 12
    for i in range(n):
        rows = slice(i * 10, i * 10 + 10 + i)
        client.async_infer(
            SOFTPROB,
            [fp32_input(X[rows])],
            callback=lambda result, error, rows=rows: answers.put((rows, result, error)),
            request_id=f"async-{i}",
            client_timeout=RPC_TIMEOUT_S,
        )
    for _ in range(n):
        rows, result, error = answers.get(timeout=RPC_TIMEOUT_S)
        assert error is None, error
        assert result.get_response().id == f"async-{(rows.start // 10)}"
        assert_close(result.as_numpy(OUTPUT_NAME), want[rows], f"async rows {rows}")


def test_asyncio_client(server, fixtures):
    X = fixtures.inputs(SOFTMAX)
    want = fixtures.predictions(SOFTMAX)

    async def main():
        async with tgrpc_aio.InferenceServerClient(url=server.grpc_target) as c:
            assert await c.is_server_ready()
            calls = []
            for i in range(15):
                inp = tgrpc_aio.InferInput(INPUT_NAME, [10, 4], "FP32")
                inp.set_data_from_numpy(X[i * 10 : i * 10 + 10])
                calls.append(c.infer(SOFTMAX, [inp], request_id=f"aio-{i}", client_timeout=RPC_TIMEOUT_S))
            return await asyncio.gather(*calls)

    results = asyncio.run(main())
    for i, result in enumerate(results):
        assert result.get_response().id == f"aio-{i}"
        assert_close(result.as_numpy(OUTPUT_NAME), want[i * 10 : i * 10 + 10], f"aio-{i}")


def test_concurrent_threads(server, fixtures):
    X = fixtures.inputs(SOFTPROB)
    want = fixtures.predictions(SOFTPROB)
    threads, per_thread = 16, 10
    start = threading.Barrier(threads, timeout=RPC_TIMEOUT_S)

    def worker(t):
        c = tgrpc.InferenceServerClient(url=server.grpc_target)
        try:
            start.wait()
            bad = []
            for k in range(per_thread):
                lo = (t * 7 + k * 3) % 140
                rows = slice(lo, lo + 1 + (t + k) % 10)
                rid = f"t{t}-{k}"
                result = c.infer(SOFTPROB, [fp32_input(X[rows])], request_id=rid, client_timeout=RPC_TIMEOUT_S)
                got = result.as_numpy(OUTPUT_NAME)
                if result.get_response().id != rid or not np.allclose(got, want[rows], rtol=1e-6, atol=1e-6):
                    bad.append((rid, rows))
            return bad
        finally:
            c.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        bad = [b for r in pool.map(worker, range(threads)) for b in r]
    assert not bad, f"wrong answers under concurrency: {bad[:5]}"


# -- repository ----------------------------------------------------------------


def test_repository_index(client):
    index = client.get_model_repository_index()
    entries = {m.name: m for m in index.models}
    assert set(entries) == set(MODEL_NAMES)
    for m in entries.values():
        assert (m.version, m.state, m.reason) == ("1", "READY", "")


def test_repository_unload_and_load(osprey, fixtures, tmp_path):
    model = "xgb-iris-binary"
    repo = fixtures.make_repository(tmp_path / "repo", names=[model, SOFTMAX])
    server = osprey(["--model-repository", repo], label="triton-repo")
    wait_grpc_ready(server)
    c = tgrpc.InferenceServerClient(url=server.grpc_target)
    try:
        X = fixtures.inputs(model)[:20]
        c.unload_model(model)
        assert not c.is_model_ready(model)
        # Unloaded models stay in the index, UNAVAILABLE, and answer UNAVAILABLE.
        entry = {m.name: m for m in c.get_model_repository_index().models}[model]
        assert (entry.state, entry.reason) == ("UNAVAILABLE", "unloaded")
        with expect_error("UNAVAILABLE", model, "not ready"):
            c.infer(model, [fp32_input(X)])
        with expect_error("NOT_FOUND", model, "not loaded"):
            c.unload_model(model)
        c.load_model(model)
        assert c.is_model_ready(model)
        assert_close(c.infer(model, [fp32_input(X)]).as_numpy(OUTPUT_NAME), fixtures.predictions(model)[:20])
        with expect_error("NOT_FOUND", "no-such-model"):
            c.load_model("no-such-model")
        with expect_error("NOT_FOUND", "no-such-model"):
            c.unload_model("no-such-model")
        # The other model was served throughout.
        check_still_serving(c, fixtures)
    finally:
        c.close()


def test_torchserve_archives_over_grpc(osprey, tmp_path):
    """KServe's torchserve layout over V2 gRPC (the kservev2 envelope): a raw
    PNG as a BYTES element reaches the handler as the image's bytes; a
    numeric input comes back as the handler's answer, named after it."""
    ts_models = pytest.importorskip("torchserve_models")
    pytest.importorskip("ts.torch_handler.image_classifier")
    store = ts_models.make_store(tmp_path / "store", models=("mnist", "sums"))
    server = osprey(["--model-dir", store, "--model-format", "pytorch"], label="torchserve-grpc")
    wait_grpc_ready(server)
    c = tgrpc.InferenceServerClient(url=server.grpc_target)
    try:
        pngs = [ts_models.digit_png(seed) for seed in range(2)]
        for png in pngs:
            image = tgrpc.InferInput("input-0", [1], "BYTES")
            image.set_data_from_numpy(np.array([png], dtype=object))
            got = c.infer("mnist", [image]).as_numpy("input-0")
            assert got.tolist() == ts_models.mnist_reference([png])
        X = np.arange(6, dtype=np.float32).reshape(2, 3)
        x = tgrpc.InferInput("x", [2, 3], "FP32")
        x.set_data_from_numpy(X)
        np.testing.assert_array_equal(c.infer("sums", [x]).as_numpy("x"), X.sum(axis=1))
        assert c.get_model_metadata("sums").platform == "pytorch_torchserve"
    finally:
        c.close()


# -- failures ------------------------------------------------------------------


def test_unknown_model_is_not_found(client, fixtures):
    with expect_error("NOT_FOUND", "no-such-model"):
        client.infer("no-such-model", [fp32_input([[1.0, 2.0, 3.0, 4.0]])])
    check_still_serving(client, fixtures)


def test_bad_shape_is_invalid_argument(client, fixtures):
    with expect_error("INVALID_ARGUMENT", INPUT_NAME, "[-1,4]", "[2,3]"):
        client.infer(SOFTMAX, [fp32_input(np.ones((2, 3)))])
    with expect_error("INVALID_ARGUMENT", INPUT_NAME, "[8]"):
        client.infer(SOFTMAX, [fp32_input(np.ones(8))])
    check_still_serving(client, fixtures)


def test_wrong_datatype_for_model_is_invalid_argument(client, fixtures):
    inp = tgrpc.InferInput(INPUT_NAME, [2, 4], "BYTES")
    inp.set_data_from_numpy(np.array([[b"1"] * 4] * 2, dtype=np.object_))
    with expect_error("INVALID_ARGUMENT", INPUT_NAME, "BYTES"):
        client.infer(SOFTMAX, [inp])
    check_still_serving(client, fixtures)


def test_triton_only_methods_are_unimplemented(client, fixtures):
    with expect_error("UNIMPLEMENTED"):
        client.get_inference_statistics(SOFTMAX)
    with expect_error("UNIMPLEMENTED"):
        client.get_model_config(SOFTMAX)
    check_still_serving(client, fixtures)
