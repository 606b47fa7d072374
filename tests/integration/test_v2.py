"""V2 / Open Inference Protocol REST data plane: health, metadata, inference,
datatypes, concurrency, keep-alive and pipelining."""

import http.client
import json
import random
import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from harness import (
    INPUT_NAME,
    KSERVE_E2E_INSTANCES,
    MODEL_NAMES,
    OUTPUT_NAME,
    RawConnection,
    assert_close,
    assert_error,
    output_array,
    raw_request,
    v2_json_request,
)

# Small integer-valued iris rows that fit every integer type.
INT_ROWS = [[6, 3, 5, 2], [5, 3, 1, 0], [7, 3, 6, 2], [4, 2, 1, 0]]
SIGNED_ROWS = INT_ROWS + [[-1, 0, -3, 1]]


@pytest.fixture(scope="module")
def server(launcher, fixtures, tmp_path_factory):
    repo = fixtures.make_repository(tmp_path_factory.mktemp("v2-repo"))
    args = ["--model-repository", repo, "--http-threads", "4", "--max-request-bytes", 64 << 20]
    with launcher.serve(args, label="v2") as s:
        yield s


def infer(server, model, body, path=None):
    r = server.post(path or f"/v2/models/{model}/infer", json=body)
    assert r.status_code == 200, f"{r.status_code}: {r.text[:500]}"
    return r.json()


def check_infer_answer(body, model, want, request_id=None):
    assert body["model_name"] == model
    if request_id is not None:
        assert body["id"] == request_id
    assert len(body["outputs"]) == 1
    out = body["outputs"][0]
    assert out["name"] == OUTPUT_NAME
    assert out["datatype"] == "FP32"
    assert out["shape"] == list(want.shape)
    assert_close(output_array(out), want, f"{model} output-0")


# -- health and metadata ---------------------------------------------------


def test_live(server):
    r = server.get("/v2/health/live")
    assert r.status_code == 200
    assert r.json() == {"live": True}


def test_ready(server):
    r = server.get("/v2/health/ready")
    assert r.status_code == 200
    assert r.json() == {"ready": True}


def test_server_metadata(server):
    r = server.get("/v2")
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "osprey"
    assert isinstance(body["version"], str) and body["version"]
    assert {"binary_tensor_data", "model_repository"} <= set(body["extensions"])


@pytest.mark.parametrize("model", MODEL_NAMES)
@pytest.mark.parametrize("versioned", [False, True], ids=["plain", "versions-1"])
def test_model_metadata(server, fixtures, model, versioned):
    path = f"/v2/models/{model}" + ("/versions/1" if versioned else "")
    r = server.get(path)
    assert r.status_code == 200, r.text
    body = r.json()
    exp = fixtures.expected(model)
    assert body["name"] == model
    assert body["platform"] == "xgboost"
    assert isinstance(body["versions"], list) and all(isinstance(v, str) for v in body["versions"])
    assert body["inputs"] == [
        {"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, exp["num_features"]]}
    ]
    out_shape = [-1] if exp["objective"] != "multi:softprob" else [-1, exp["num_classes"]]
    assert body["outputs"] == [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": out_shape}]


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_model_ready(server, model):
    for path in (f"/v2/models/{model}/ready", f"/v2/models/{model}/versions/1/ready"):
        r = server.get(path)
        assert r.status_code == 200, (path, r.text)
        assert r.json() == {"name": model, "ready": True}


def test_unknown_model_metadata_and_ready_are_404(server):
    assert_error(server.get("/v2/models/no-such-model"), 404)
    assert_error(server.get("/v2/models/no-such-model/ready"), 404)


# -- inference -------------------------------------------------------------


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_infer_matches_xgboost(server, fixtures, model):
    X = fixtures.inputs(model)
    body = infer(server, model, v2_json_request(X, request_id=f"probe-{model}"))
    check_infer_answer(body, model, fixtures.predictions(model), f"probe-{model}")


def test_infer_versioned_route(server, fixtures):
    model = "xgb-iris-binary"
    X = fixtures.inputs(model)[:20]
    body = infer(server, model, v2_json_request(X), path=f"/v2/models/{model}/versions/1/infer")
    check_infer_answer(body, model, fixtures.predictions(model)[:20])


def test_kserve_e2e_iris_softmax(server):
    """KServe's own XGBoost e2e case over V2: output-0 is [1.0, 1.0]."""
    req = {
        "inputs": [
            {
                "name": INPUT_NAME,
                "shape": [2, 4],
                "datatype": "FP32",
                "data": KSERVE_E2E_INSTANCES,
            }
        ]
    }
    body = infer(server, "xgb-iris-softmax", req)
    out = body["outputs"][0]
    assert out["name"] == OUTPUT_NAME
    assert out["shape"] == [2]
    assert out["data"] == [1.0, 1.0]


@pytest.mark.parametrize("model", ["xgb-iris-softprob", "xgb-regression"])
def test_nested_and_flat_data_agree(server, fixtures, model):
    X = fixtures.inputs(model)[:12]
    want = fixtures.predictions(model)[:12]
    flat = infer(server, model, v2_json_request(X, nested=False))
    nested = infer(server, model, v2_json_request(X, nested=True))
    check_infer_answer(flat, model, want)
    check_infer_answer(nested, model, want)


@pytest.mark.parametrize(
    "request_id", ["abc", "9f1c2d3e-0000-4000-8000-1234567890ab", "quote\"and\\slash", "grüße-✓"]
)
def test_id_is_echoed(server, fixtures, request_id):
    X = fixtures.inputs("xgb-iris-softmax")[:2]
    body = infer(server, "xgb-iris-softmax", v2_json_request(X, request_id=request_id))
    assert body["id"] == request_id


def test_request_parameters_are_accepted(server, fixtures):
    X = fixtures.inputs("xgb-iris-softmax")[:3]
    req = v2_json_request(X, parameters={"content_type": "np", "priority": 1, "flag": True})
    body = infer(server, "xgb-iris-softmax", req)
    check_infer_answer(body, "xgb-iris-softmax", fixtures.predictions("xgb-iris-softmax")[:3])


def test_requested_output(server, fixtures):
    model = "xgb-iris-softprob"
    X = fixtures.inputs(model)[:5]
    want = fixtures.predictions(model)[:5]
    body = infer(server, model, v2_json_request(X, outputs=[{"name": OUTPUT_NAME}]))
    check_infer_answer(body, model, want)
    body = infer(
        server,
        model,
        v2_json_request(X, outputs=[{"name": OUTPUT_NAME, "parameters": {"binary_data": False}}]),
    )
    check_infer_answer(body, model, want)


def test_unknown_requested_output_is_400(server, fixtures):
    X = fixtures.inputs("xgb-iris-softprob")[:2]
    r = server.post(
        "/v2/models/xgb-iris-softprob/infer",
        json=v2_json_request(X, outputs=[{"name": "no-such-output"}]),
    )
    assert_error(r, 400, "no-such-output")


@pytest.mark.parametrize(
    "datatype", ["INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"]
)
def test_integer_datatypes_as_json(server, fixtures, datatype):
    rows = SIGNED_ROWS if datatype.startswith("INT") else INT_ROWS
    X = np.asarray(rows)
    body = infer(server, "xgb-iris-softprob", v2_json_request(X, datatype=datatype))
    check_infer_answer(body, "xgb-iris-softprob", fixtures.oracle("xgb-iris-softprob", X))


def test_fp64_as_json(server, fixtures):
    model = "xgb-regression"
    # float64 values that are not float32-exact: the server rounds them to float32
    rng = np.random.default_rng(7)
    X = rng.normal(0.0, 0.05, size=(16, fixtures.num_features(model)))
    body = infer(server, model, v2_json_request(X, datatype="FP64"))
    check_infer_answer(body, model, fixtures.oracle(model, X.astype(np.float32)))


@pytest.mark.parametrize("model", ["xgb-iris-binary", "xgb-regression"])
def test_bool_as_json(server, fixtures, model):
    # false is the value 0.0, never "missing": the regression model tells them apart
    rng = np.random.default_rng(3)
    X = rng.random((24, fixtures.num_features(model))) < 0.5
    X[0, :] = False
    X[1, :] = True
    body = infer(server, model, v2_json_request(X, datatype="BOOL"))
    check_infer_answer(body, model, fixtures.oracle(model, X.astype(np.float32)))


def test_large_request(server, fixtures):
    model = "xgb-iris-softprob"
    reps = 20000 // len(fixtures.inputs(model)) + 1
    X = np.tile(fixtures.inputs(model), (reps, 1))[:20000]
    want = np.tile(fixtures.predictions(model), (reps, 1))[:20000]
    body = infer(server, model, v2_json_request(X, request_id="big"))
    check_infer_answer(body, model, want, "big")


# -- connections -------------------------------------------------------------


def test_concurrent_requests_from_16_threads(server, fixtures):
    """16 client threads, each on its own keep-alive connection, mixing models,
    V1 and V2 and batch sizes; every answer must be the framework's."""

    def worker(seed):
        rnd = random.Random(seed)
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        try:
            for i in range(12):
                model = rnd.choice(MODEL_NAMES)
                X = fixtures.inputs(model)
                want = fixtures.predictions(model)
                n = rnd.randint(1, len(X))
                start = rnd.randint(0, len(X) - n)
                rows, expect = X[start : start + n], want[start : start + n]
                rid = f"t{seed}-{i}"
                if rnd.random() < 0.5:
                    payload = v2_json_request(rows, request_id=rid)
                    conn.request("POST", f"/v2/models/{model}/infer", json.dumps(payload),
                                 {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                    assert resp.status == 200, data[:300]
                    body = json.loads(data)
                    assert body["id"] == rid
                    assert_close(output_array(body["outputs"][0]), expect, rid)
                else:
                    payload = {"instances": rows.tolist()}
                    conn.request("POST", f"/v1/models/{model}:predict", json.dumps(payload),
                                 {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                    assert resp.status == 200, data[:300]
                    assert_close(json.loads(data)["predictions"], expect, rid)
        finally:
            conn.close()
        return seed

    with ThreadPoolExecutor(max_workers=16) as pool:
        done = list(pool.map(worker, range(16)))
    assert done == list(range(16))


def test_keep_alive_many_requests_on_one_connection(server, fixtures):
    model = "xgb-iris-binary"
    X = fixtures.inputs(model)
    want = fixtures.predictions(model)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        local = conn.sock.getsockname()
        for i in range(200):
            row = i % len(X)
            payload = json.dumps(v2_json_request(X[row : row + 1], request_id=str(i)))
            conn.request("POST", f"/v2/models/{model}/infer", payload,
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, data[:300]
            assert (resp.getheader("Connection") or "").lower() != "close", f"server closed after {i + 1}"
            body = json.loads(data)
            assert body["id"] == str(i)
            assert_close(output_array(body["outputs"][0]), want[row : row + 1])
            assert conn.sock is not None and conn.sock.getsockname() == local, "connection was replaced"
    finally:
        conn.close()


def test_http_pipelining(server, fixtures):
    """Three requests written back-to-back on one socket get three answers, in order."""
    model = "xgb-iris-softmax"
    X = fixtures.inputs(model)
    want = fixtures.predictions(model)
    first = json.dumps(v2_json_request(X[:3], request_id="first"))
    second = json.dumps(v2_json_request(X[100:104], request_id="second"))
    data = (
        raw_request("POST", f"/v2/models/{model}/infer", first, {"Content-Type": "application/json"})
        + raw_request("POST", f"/v2/models/{model}/infer", second, {"Content-Type": "application/json"})
        + raw_request("GET", "/v2/health/live")
    )
    with RawConnection(server) as conn:
        conn.send(data)
        r1, r2, r3 = conn.read(), conn.read(), conn.read()
    assert (r1.status, r2.status, r3.status) == (200, 200, 200)
    b1, b2 = r1.json(), r2.json()
    assert b1["id"] == "first" and b2["id"] == "second"
    assert_close(output_array(b1["outputs"][0]), want[:3])
    assert_close(output_array(b2["outputs"][0]), want[100:104])
    assert r3.json() == {"live": True}


def test_rows_are_independent_of_batch(server, fixtures):
    """Each row's answer is the same alone and inside a batch."""
    model = "xgb-regression"
    X = fixtures.inputs(model)[:8]
    batch = output_array(infer(server, model, v2_json_request(X))["outputs"][0])
    single = [output_array(infer(server, model, v2_json_request(X[i : i + 1]))["outputs"][0])[0]
              for i in range(len(X))]
    assert_close(single, batch)


def test_json_answers_are_application_json(server, fixtures):
    X = fixtures.inputs("xgb-iris-softmax")[:2]
    for r in (
        server.get("/v2"),
        server.get("/v2/models/xgb-iris-softmax"),
        server.post("/v2/models/xgb-iris-softmax/infer", json=v2_json_request(X)),
        server.post("/v2/models/no-such-model/infer", json=v2_json_request(X)),
    ):
        assert r.headers.get("Content-Type", "").startswith("application/json"), (r.url, r.headers)


def test_x_request_id_is_echoed(server, fixtures):
    X = fixtures.inputs("xgb-iris-softmax")[:2]
    r = server.post(
        "/v2/models/xgb-iris-softmax/infer",
        json=v2_json_request(X),
        headers={"x-request-id": "trace-123"},
    )
    assert r.status_code == 200
    assert r.headers.get("x-request-id") == "trace-123"


def test_expect_100_continue(server, fixtures):
    """A client that asks to wait for "100 Continue" before sending the body
    (curl does for large bodies) gets it at once, then its answer."""
    model = "xgb-iris-softmax"
    X = fixtures.inputs(model)
    body = json.dumps(v2_json_request(X[:5], request_id="expect")).encode()
    head = (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    with RawConnection(server) as conn:
        conn.send(head)
        interim = conn.fp.readline()
        assert interim.startswith(b"HTTP/1.1 100"), interim
        assert conn.fp.readline() == b"\r\n"
        conn.send(body)
        r = conn.read()
    assert r.status == 200
    assert r.json()["id"] == "expect"
    assert_close(output_array(r.json()["outputs"][0]), fixtures.predictions(model)[:5])
