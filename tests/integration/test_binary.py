"""The binary tensor data extension (REST): binary inputs of every numeric
datatype, binary outputs decoded by hand, and malformed binary bodies."""

import json
import struct

import numpy as np
import pytest

from harness import (
    INPUT_NAME,
    NP_DTYPES,
    OUTPUT_NAME,
    assert_close,
    assert_error,
    binary_body,
    check_still_serving,
    decode_response,
    output_array,
    v2_binary_request,
    v2_json_request,
)

SOFTPROB = "xgb-iris-softprob"
BINARY = "xgb-iris-binary"
INT_ROWS = [[6, 3, 5, 2], [5, 3, 1, 0], [7, 3, 6, 2], [4, 2, 1, 0]]
SIGNED_ROWS = INT_ROWS + [[-1, 0, -3, 1]]
BOOL_ROWS = [[True, False, True, True], [False, False, False, False], [True, True, True, True]]


@pytest.fixture(scope="module")
def server(launcher, fixtures, tmp_path_factory):
    repo = fixtures.make_repository(tmp_path_factory.mktemp("binary-repo"))
    args = ["--model-repository", repo, "--max-request-bytes", 64 << 20]
    with launcher.serve(args, label="binary") as s:
        yield s


def rows_for(datatype, fixtures):
    if datatype == "BOOL":
        return np.asarray(BOOL_ROWS)
    if datatype.startswith("INT"):
        return np.asarray(SIGNED_ROWS)
    if datatype.startswith("UINT"):
        return np.asarray(INT_ROWS)
    return fixtures.inputs(SOFTPROB)


def post_binary(server, model, body, headers):
    return server.post(f"/v2/models/{model}/infer", data=body, headers=headers)


@pytest.mark.parametrize("datatype", list(NP_DTYPES))
def test_binary_input_every_numeric_datatype(server, fixtures, datatype):
    X = rows_for(datatype, fixtures).astype(NP_DTYPES[datatype])
    body, headers = v2_binary_request(X, datatype, request_id=f"bin-{datatype}")
    r = post_binary(server, SOFTPROB, body, headers)
    assert r.status_code == 200, r.text[:500]
    ans = r.json()  # JSON output: no binary output was asked for
    assert ans["id"] == f"bin-{datatype}"
    out = ans["outputs"][0]
    assert out["name"] == OUTPUT_NAME and out["datatype"] == "FP32"
    assert_close(output_array(out), fixtures.oracle(SOFTPROB, X.astype(np.float32)), datatype)


def unpack_fp32(raw: bytes):
    assert len(raw) % 4 == 0
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def check_binary_output(r, want):
    assert r.status_code == 200, r.text[:500]
    assert r.headers.get("Content-Type", "").startswith("application/octet-stream")
    hlen = int(r.headers["Inference-Header-Content-Length"])
    header = json.loads(r.content[:hlen])
    out = header["outputs"][0]
    assert out["name"] == OUTPUT_NAME and out["datatype"] == "FP32"
    assert out["shape"] == list(want.shape)
    assert "data" not in out
    size = out["parameters"]["binary_data_size"]
    assert size == want.size * 4
    assert len(r.content) == hlen + size
    values = unpack_fp32(r.content[hlen : hlen + size])
    assert_close(np.asarray(values).reshape(want.shape), want, "binary output")
    return header


def test_binary_output_per_output_parameter(server, fixtures):
    X = fixtures.inputs(BINARY)
    req = v2_json_request(
        X, request_id="b1", outputs=[{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}]
    )
    r = server.post(f"/v2/models/{BINARY}/infer", json=req)
    header = check_binary_output(r, fixtures.predictions(BINARY))
    assert header["id"] == "b1"
    assert header["model_name"] == BINARY


def test_binary_data_output_request_parameter(server, fixtures):
    X = fixtures.inputs(SOFTPROB)
    req = v2_json_request(X, parameters={"binary_data_output": True})
    r = server.post(f"/v2/models/{SOFTPROB}/infer", json=req)
    check_binary_output(r, fixtures.predictions(SOFTPROB))


def test_binary_in_binary_out(server, fixtures):
    X = fixtures.inputs(SOFTPROB)
    body, headers = v2_binary_request(
        X, "FP32", outputs=[{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}]
    )
    r = post_binary(server, SOFTPROB, body, headers)
    check_binary_output(r, fixtures.predictions(SOFTPROB))
    decoded = decode_response(r)
    assert_close(decoded.outputs[OUTPUT_NAME], fixtures.predictions(SOFTPROB))


def test_binary_data_false_stays_json(server, fixtures):
    X = fixtures.inputs(BINARY)[:9]
    body, headers = v2_binary_request(
        X, "FP32", outputs=[{"name": OUTPUT_NAME, "parameters": {"binary_data": False}}]
    )
    r = post_binary(server, BINARY, body, headers)
    assert r.status_code == 200, r.text[:500]
    assert "Inference-Header-Content-Length" not in r.headers
    assert_close(output_array(r.json()["outputs"][0]), fixtures.predictions(BINARY)[:9])


def test_header_name_is_case_insensitive(server, fixtures):
    X = fixtures.inputs(BINARY)[:4]
    body, headers = v2_binary_request(X, "FP32")
    headers = {k.lower(): v for k, v in headers.items()}
    r = post_binary(server, BINARY, body, headers)
    assert r.status_code == 200, r.text[:500]
    assert_close(output_array(r.json()["outputs"][0]), fixtures.predictions(BINARY)[:4])


def test_header_length_covering_whole_body(server, fixtures):
    """Inference-Header-Content-Length equal to the body: plain JSON, no binary part."""
    X = fixtures.inputs(BINARY)[:4]
    body, headers = binary_body(v2_json_request(X), [])
    r = post_binary(server, BINARY, body, headers)
    assert r.status_code == 200, r.text[:500]
    assert_close(output_array(r.json()["outputs"][0]), fixtures.predictions(BINARY)[:4])


def test_large_binary_request(server, fixtures):
    X = np.tile(fixtures.inputs(SOFTPROB), (130, 1))[:20000]
    want = np.tile(fixtures.predictions(SOFTPROB), (130, 1))[:20000]
    body, headers = v2_binary_request(X, "FP32", parameters={"binary_data_output": True})
    r = post_binary(server, SOFTPROB, body, headers)
    check_binary_output(r, want)


# -- malformed binary requests: 400, and the server keeps serving ------------


def fp32_header(rows, size=None, shape=None):
    raw_size = rows * 4 * 4 if size is None else size
    return {
        "inputs": [
            {
                "name": INPUT_NAME,
                "shape": shape or [rows, 4],
                "datatype": "FP32",
                "parameters": {"binary_data_size": raw_size},
            }
        ]
    }


def raw_rows(rows):
    return np.ones((rows, 4), dtype="<f4").tobytes()


def bad_size_exceeds_body():
    return binary_body(fp32_header(2, size=64), [raw_rows(2)])  # says 64, has 32


def bad_trailing_bytes():
    return binary_body(fp32_header(2), [raw_rows(2) + b"\0\0\0\0"])


def bad_size_disagrees_with_shape():
    # 3 rows of bytes, declared consistently in binary_data_size, but shape says 2 rows
    return binary_body(fp32_header(2, size=48), [raw_rows(3)])


def bad_size_not_multiple_of_element():
    return binary_body(fp32_header(2, size=30), [raw_rows(2)[:30]])


def bad_header_length_exceeds_body():
    body, headers = binary_body(fp32_header(2), [raw_rows(2)])
    headers["Inference-Header-Content-Length"] = str(len(body) + 10)
    return body, headers


def bad_header_length_not_a_number():
    body, headers = binary_body(fp32_header(2), [raw_rows(2)])
    headers["Inference-Header-Content-Length"] = "twelve"
    return body, headers


def bad_header_length_cuts_json():
    body, headers = binary_body(fp32_header(2), [raw_rows(2)])
    headers["Inference-Header-Content-Length"] = str(int(headers["Inference-Header-Content-Length"]) - 5)
    return body, headers


def bad_binary_size_without_header():
    body, headers = binary_body(fp32_header(2), [])
    del headers["Inference-Header-Content-Length"]
    return body, {"Content-Type": "application/json"}


def bad_negative_size():
    return binary_body(fp32_header(2, size=-32), [raw_rows(2)])


BAD_BINARY = [
    bad_size_exceeds_body,
    bad_trailing_bytes,
    bad_size_disagrees_with_shape,
    bad_size_not_multiple_of_element,
    bad_header_length_exceeds_body,
    bad_header_length_not_a_number,
    bad_header_length_cuts_json,
    bad_binary_size_without_header,
    bad_negative_size,
]


@pytest.mark.parametrize("make", BAD_BINARY, ids=lambda f: f.__name__[4:])
def test_malformed_binary_is_400(server, fixtures, make):
    body, headers = make()
    r = post_binary(server, "xgb-iris-softmax", body, headers)
    assert_error(r, 400)
    check_still_serving(server, fixtures)
