"""The kserve SDK's InferenceGRPCClient (asyncio) against Osprey's gRPC port:
readiness and liveness, inference with typed contents
(set_data_from_numpy(binary_data=False)) and with raw_input_contents, KServe's
e2e case checked the way KServe's own test checks it, every fixture model,
every typed input datatype, requested outputs and parameters, concurrent
calls, and the status codes of failures.

Runs in its own process: OSPREY_GRPC_SUITE=kserve (tests/run_integration.sh).
"""

import asyncio

import grpc
import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.infer_type import RequestedOutput

from grpc_common import (
    KSERVE_E2E_ANSWER,
    RPC_TIMEOUT_S,
    SOFTMAX,
    SOFTPROB,
    TYPED_DATATYPES,
    datatype_rows,
)
from harness import (
    INPUT_NAME,
    KSERVE_E2E_INSTANCES,
    MODEL_NAMES,
    NP_DTYPES,
    OUTPUT_NAME,
    assert_close,
)


def run(server, body):
    """Runs body(client) on a fresh client inside its own event loop."""

    async def main():
        # No retries, so a failure's status code is the server's own.
        client = InferenceGRPCClient(
            server.grpc_target,
            timeout=RPC_TIMEOUT_S,
            channel_args=[
                ("grpc.max_send_message_length", -1),
                ("grpc.max_receive_message_length", -1),
                ("grpc.enable_retries", 0),
            ],
        )
        async with client:
            return await body(client)

    return asyncio.run(main())


def request(model, X, datatype="FP32", binary=False, request_id=None, **kw):
    X = np.ascontiguousarray(X)
    inp = InferInput(INPUT_NAME, list(X.shape), datatype)
    inp.set_data_from_numpy(X, binary_data=binary)
    return InferRequest(model_name=model, infer_inputs=[inp], request_id=request_id, **kw)


async def expect_rpc_error(awaitable, code, *fragments):
    try:
        await awaitable
    except grpc.aio.AioRpcError as e:
        assert e.code() == code, (e.code(), e.details())
        for frag in fragments:
            assert frag in e.details(), f"{e.details()!r} should mention {frag!r}"
        return e.details()
    raise AssertionError(f"expected {code}, the call succeeded")


def test_liveness_and_readiness(server):
    async def body(c):
        assert await c.is_server_live() is True
        assert await c.is_server_ready() is True
        for model in MODEL_NAMES:
            assert await c.is_model_ready(model) is True, model
        await expect_rpc_error(c.is_model_ready("no-such-model"), grpc.StatusCode.NOT_FOUND, "no-such-model")

    run(server, body)


def test_kserve_e2e_typed(server):
    """KServe's gRPC e2e test sends typed FP32 contents and asserts that
    fp32_contents equals [1.0, 1.0]: the answer must be typed, not raw."""
    X = np.array(KSERVE_E2E_INSTANCES, dtype=np.float32)

    async def body(c):
        return await c.infer(request(SOFTMAX, X, request_id="kserve-e2e"))

    res = run(server, body)
    assert res.id == "kserve-e2e"
    assert res.model_name == SOFTMAX and res.model_version == "1"
    out = res.outputs[0]
    assert (out.name, out.datatype, out.shape) == (OUTPUT_NAME, "FP32", [2])
    assert out._raw_data is None, "typed request answered with raw_output_contents"
    assert out.data == KSERVE_E2E_ANSWER
    assert out.as_numpy().tolist() == KSERVE_E2E_ANSWER


def test_kserve_e2e_raw(server):
    X = np.array(KSERVE_E2E_INSTANCES, dtype=np.float32)

    async def body(c):
        return await c.infer(request(SOFTMAX, X, binary=True, request_id="kserve-e2e-raw"))

    res = run(server, body)
    assert res.id == "kserve-e2e-raw"
    out = res.outputs[0]
    assert out._raw_data is not None, "raw request answered with typed contents"
    assert out.data == []
    assert out.as_numpy().dtype == np.float32
    assert out.as_numpy().tolist() == KSERVE_E2E_ANSWER


@pytest.mark.parametrize("binary", [False, True], ids=["typed", "raw"])
def test_every_model_matches_xgboost(server, fixtures, binary):
    async def body(c):
        reqs = [request(m, fixtures.inputs(m), binary=binary, request_id=m) for m in MODEL_NAMES]
        return await asyncio.gather(*(c.infer(r) for r in reqs))

    for model, res in zip(MODEL_NAMES, run(server, body)):
        assert res.id == model
        want = fixtures.predictions(model)
        got = res.outputs[0].as_numpy()
        assert list(got.shape) == list(want.shape), model
        assert_close(got, want, model)


@pytest.mark.parametrize("datatype", TYPED_DATATYPES)
def test_typed_input_datatypes(server, fixtures, datatype):
    typed, as_f32 = datatype_rows(fixtures, SOFTPROB, datatype)
    assert typed.dtype == NP_DTYPES[datatype]

    async def body(c):
        return await c.infer(request(SOFTPROB, typed, datatype=datatype))

    res = run(server, body)
    out = res.outputs[0]
    assert out._raw_data is None and out.datatype == "FP32"
    assert_close(out.as_numpy(), fixtures.oracle(SOFTPROB, as_f32), datatype)


def test_fp16_raw_input(server, fixtures):
    typed, as_f32 = datatype_rows(fixtures, SOFTPROB, "FP16")

    async def body(c):
        return await c.infer(request(SOFTPROB, typed, datatype="FP16", binary=True))

    res = run(server, body)
    assert_close(res.outputs[0].as_numpy(), fixtures.oracle(SOFTPROB, as_f32), "FP16")


def test_requested_output_and_parameters(server, fixtures):
    X = fixtures.inputs(SOFTPROB)[:6]

    async def body(c):
        return await c.infer(
            request(
                SOFTPROB,
                X,
                request_id="with-params",
                parameters={"tag": "x", "rows": 6, "flag": False},
                request_outputs=[RequestedOutput(OUTPUT_NAME)],
            )
        )

    res = run(server, body)
    assert res.id == "with-params"
    assert [o.name for o in res.outputs] == [OUTPUT_NAME]
    assert_close(res.outputs[0].as_numpy(), fixtures.predictions(SOFTPROB)[:6])


def test_concurrent_calls(server, fixtures):
    X = fixtures.inputs(SOFTMAX)
    want = fixtures.predictions(SOFTMAX)
    n = 30

    async def body(c):
        reqs = [
            request(SOFTMAX, X[i * 5 : i * 5 + 5], binary=bool(i % 2), request_id=f"c{i}")
            for i in range(n)
        ]
        return await asyncio.gather(*(c.infer(r) for r in reqs))

    for i, res in enumerate(run(server, body)):
        assert res.id == f"c{i}"
        assert_close(res.outputs[0].as_numpy(), want[i * 5 : i * 5 + 5], f"c{i}")


def test_failures(server, fixtures):
    async def body(c):
        await expect_rpc_error(
            c.infer(request("no-such-model", np.ones((1, 4), np.float32))),
            grpc.StatusCode.NOT_FOUND,
            "no-such-model",
        )
        await expect_rpc_error(
            c.infer(request(SOFTMAX, np.ones((2, 3), np.float32))),
            grpc.StatusCode.INVALID_ARGUMENT,
            INPUT_NAME,
            "[2,3]",
        )
        # Still serving, on the same channel.
        res = await c.infer(request(SOFTMAX, fixtures.inputs(SOFTMAX)[:5]))
        assert_close(res.outputs[0].as_numpy(), fixtures.predictions(SOFTMAX)[:5])

    run(server, body)


def test_pd_content_type_columns_by_feature_name(server, fixtures):
    """parameters.content_type "pd" (an InferParameter over gRPC): one input per
    column, in any order and of mixed datatypes, as KServe's servers read a
    DataFrame; placed by the model's feature names."""
    name = "xgb-iris-named"
    features = fixtures.expected(name)["feature_names"]
    X = fixtures.inputs(name)[:6]
    inputs = []
    for j in reversed(range(len(features))):
        col = X[:, j]
        if j == 1:  # numbers as text, as a frame read from CSV has them
            inp = InferInput(features[j], [len(col)], "BYTES")
            inp.set_data_from_numpy(np.array([repr(float(v)) for v in col], dtype=object))
        else:
            inp = InferInput(features[j], [len(col)], "FP64")
            inp.set_data_from_numpy(col.astype(np.float64))
        inputs.append(inp)

    async def body(c):
        return await c.infer(InferRequest(model_name=name, infer_inputs=inputs,
                                          parameters={"content_type": "pd"}))

    res = run(server, body)
    assert_close(res.outputs[0].as_numpy(), fixtures.predictions(name)[:6])

    inputs[0] = InferInput("petals", [6], "FP64")
    inputs[0].set_data_from_numpy(np.zeros(6))

    async def bad(c):
        await expect_rpc_error(
            c.infer(InferRequest(model_name=name, infer_inputs=inputs,
                                 parameters={"content_type": "pd"})),
            grpc.StatusCode.INVALID_ARGUMENT, "input 'petals' is not a feature")

    run(server, bad)
