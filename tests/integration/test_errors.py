"""Bad requests get the right status and a {"error": "..."} body naming what is
wrong, and the server answers good requests correctly right after each."""

import json
import subprocess

import pytest
import requests

from harness import (
    INPUT_NAME,
    RawConnection,
    assert_error,
    check_still_serving,
    raw_request,
)

MODEL = "xgb-iris-softmax"
INFER = f"/v2/models/{MODEL}/infer"
PREDICT = f"/v1/models/{MODEL}:predict"
LIMIT = 1 << 20  # --max-request-bytes for this module


@pytest.fixture(scope="module")
def server(launcher, fixtures, tmp_path_factory):
    repo = fixtures.make_repository(tmp_path_factory.mktemp("errors-repo"))
    args = ["--model-repository", repo, "--max-request-bytes", LIMIT]
    with launcher.serve(args, label="errors") as s:
        yield s


def tensor(**over):
    t = {"name": INPUT_NAME, "shape": [2, 4], "datatype": "FP32", "data": [1.0] * 8}
    t.update(over)
    return {k: v for k, v in t.items() if v is not None}


def v2(**over):
    return {"inputs": [tensor(**over)]}


JSON = {"Content-Type": "application/json"}

# (id, method, path, body: dict|str|bytes|None, status, fragments the error must contain)
CASES = [
    ("v2-bad-json", "POST", INFER, '{"inputs": [', 400, []),
    ("v2-not-json", "POST", INFER, "this is not json", 400, []),
    ("v2-empty-body", "POST", INFER, "", 400, []),
    ("v2-array-body", "POST", INFER, "[1, 2, 3]", 400, []),
    ("v2-missing-inputs", "POST", INFER, {"id": "x"}, 400, ["inputs"]),
    ("v2-inputs-not-list", "POST", INFER, {"inputs": {"name": INPUT_NAME}}, 400, ["inputs"]),
    ("v2-missing-datatype", "POST", INFER, v2(datatype=None), 400, ["datatype"]),
    ("v2-missing-shape", "POST", INFER, v2(shape=None), 400, ["shape"]),
    ("v2-missing-data", "POST", INFER, v2(data=None), 400, ["data"]),
    ("v2-unknown-datatype", "POST", INFER, v2(datatype="FLOAT32"), 400, ["FLOAT32"]),
    ("v2-bytes-datatype", "POST", INFER,
     v2(datatype="BYTES", shape=[1, 4], data=["a", "b", "c", "d"]), 400, [INPUT_NAME, "BYTES"]),
    ("v2-too-few-elements", "POST", INFER, v2(data=[1.0] * 7), 400, ["8", "7"]),
    ("v2-too-many-elements", "POST", INFER, v2(shape=[1, 4], data=[1.0] * 5), 400, ["4", "5"]),
    ("v2-nested-ragged", "POST", INFER, v2(data=[[1, 2, 3, 4], [1, 2, 3]]), 400, []),
    ("v2-wrong-feature-count", "POST", INFER, v2(shape=[2, 3], data=[1.0] * 6), 400, []),
    ("v2-negative-dimension", "POST", INFER, v2(shape=[-1, 4]), 400, []),
    ("v2-string-in-fp32", "POST", INFER, v2(data=[1.0] * 7 + ["x"]), 400, []),
    ("v2-null-in-fp32", "POST", INFER, v2(data=[1.0] * 7 + [None]), 400, []),
    ("v2-shape-not-ints", "POST", INFER, v2(shape=["two", 4]), 400, ["shape"]),
    ("v2-wrong-input-name-type", "POST", INFER, v2(name=7), 400, []),
    # A shape far larger than the data must not make the server reserve for it.
    ("v2-huge-shape-small-data", "POST", INFER, v2(shape=[10**12], data=[1.0]), 400,
     ["1000000000000", "1"]),
    ("v2-huge-shape-overflow", "POST", INFER, v2(shape=[2**61, 2**61], data=[1.0]), 400, ["shape"]),
    # Deep nesting: the parser is iterative and the walkers stop at 64 levels.
    ("v2-deeply-nested-data", "POST", INFER,
     '{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":' + "[" * 100 + "1" + "]" * 100
     + "}]}", 400, ["nested deeper than 64"]),
    ("v2-nesting-bomb", "POST", INFER, "[" * 1_000_000, 400, ["invalid JSON"]),
    ("v1-nesting-bomb", "POST", PREDICT, '{"instances":' + "[" * 1_000_000, 400, ["invalid JSON"]),
    ("v1-deeply-nested-row", "POST", PREDICT,
     '{"instances":[' + "[" * 100 + "1" + "]" * 100 + "]}", 400, ["nested deeper than 64"]),
    ("v1-bad-json", "POST", PREDICT, '{"instances": [[1,2', 400, []),
    ("v1-missing-instances", "POST", PREDICT, {"rows": [[1, 2, 3, 4]]}, 400, ["instances"]),
    ("v1-instances-not-list", "POST", PREDICT, {"instances": 5}, 400, ["instances"]),
    ("v1-ragged-rows", "POST", PREDICT, {"instances": [[1, 2, 3, 4], [1, 2]]}, 400, []),
    ("v1-wrong-row-length", "POST", PREDICT, {"instances": [[1, 2, 3]]}, 400, []),
    ("v1-string-value", "POST", PREDICT, {"instances": [[1, 2, "x", 4]]}, 400, []),
    ("v2-unknown-model", "POST", "/v2/models/no-such-model/infer", v2(), 404, ["no-such-model"]),
    ("v1-unknown-model", "POST", "/v1/models/no-such-model:predict",
     {"instances": [[1, 2, 3, 4]]}, 404, ["no-such-model"]),
    ("v2-unknown-model-metadata", "GET", "/v2/models/no-such-model", None, 404, ["no-such-model"]),
    ("v1-unknown-model-status", "GET", "/v1/models/no-such-model", None, 404, ["no-such-model"]),
    ("unknown-route", "GET", "/no/such/route", None, 404, []),
    ("unknown-v2-route", "GET", "/v2/no-such-thing", None, 404, []),
    ("unknown-model-subroute", "POST", f"/v2/models/{MODEL}/no-such-verb", v2(), 404, []),
]


def send(server, method, path, body):
    if body is None:
        return server.get(path) if method == "GET" else server.post(path)
    if isinstance(body, (dict, list)):
        return server.post(path, json=body)
    return server.post(path, data=body.encode() if isinstance(body, str) else body, headers=JSON)


@pytest.mark.parametrize(
    "case_id,method,path,body,status,fragments", CASES, ids=[c[0] for c in CASES]
)
def test_bad_request(server, fixtures, case_id, method, path, body, status, fragments):
    r = send(server, method, path, body)
    assert_error(r, status, *fragments)
    check_still_serving(server, fixtures)


def test_wrong_method_on_infer(server, fixtures):
    r = server.get(INFER)
    assert r.status_code in (404, 405), r.status_code
    check_still_serving(server, fixtures)


def test_body_over_limit_announced_in_headers_is_413(server, fixtures):
    """A Content-Length over --max-request-bytes is refused before the body is read."""
    with RawConnection(server) as conn:
        conn.send(raw_request("POST", INFER, b"", JSON, content_length=LIMIT * 2))
        r = conn.read()
    assert_error(r, 413)
    check_still_serving(server, fixtures)


def test_body_over_limit_is_413(server, fixtures):
    """A plain client posting a body just over the limit sees a 413 answer."""
    padding = " " * (LIMIT + 1024 - len(json.dumps(v2())))
    body = json.dumps(v2())[:-1] + padding + "}"
    assert len(body) > LIMIT
    try:
        r = server.post(INFER, data=body.encode(), headers=JSON)
    except requests.ConnectionError as e:
        pytest.fail(
            "the connection was reset before the client could read a 413: the server "
            f"closed it without draining the unread body ({e})"
        )
    assert_error(r, 413)
    check_still_serving(server, fixtures)


def test_body_under_limit_is_served(server, fixtures):
    padding = " " * (LIMIT - 4096)
    body = json.dumps(v2())[:-1] + padding + "}"
    assert len(body) < LIMIT
    r = server.post(INFER, data=body.encode(), headers=JSON)
    assert r.status_code == 200, r.text[:300]


def test_garbage_request_line(server, fixtures):
    """Bytes that are not HTTP get a 400 or a closed connection, nothing worse."""
    with RawConnection(server, timeout=10) as conn:
        conn.send(b"\x16\x03\x01\x02\x00garbage that is not http\r\n\r\n")
        try:
            r = conn.read()
            assert r.status == 400, r.status
        except ConnectionError:
            pass  # closing the connection is an acceptable answer
    check_still_serving(server, fixtures)


def test_client_disconnect_mid_body(server, fixtures):
    """A client that promises a body and hangs up halfway does not hurt anyone."""
    with RawConnection(server) as conn:
        conn.send(raw_request("POST", INFER, b'{"inputs": [', JSON, content_length=5000))
    check_still_serving(server, fixtures)


@pytest.mark.parametrize("path", [f"/v2/models/{MODEL}", "/v2/health/ready", f"/v2/models/{MODEL}/infer"])
def test_head_answers_like_get_without_the_body(server, path):
    """HEAD is GET without the body (same status and Content-Length): the next
    answer on the same connection starts right after the head, so a kept-alive
    client stays in step."""
    with RawConnection(server) as conn:
        got = conn.request("GET", path)
        head = conn.request("HEAD", path)
        assert head.status == got.status, (head, got)
        assert head.body == b""
        assert int(head.headers["content-length"]) == len(got.body) > 0
        after = conn.request("GET", "/v2/health/live")  # read from the same stream
        assert after.status == 200 and after.json() == {"live": True}


@pytest.mark.parametrize("flags,message", [
    (["--http-port", "70000"], "--http-port must be an integer from 0 to 65535, got '70000'"),
    (["--grpc-port=grpc"], "--grpc-port must be an integer from 0 to 65535, got 'grpc'"),
    (["--http-threads", "0"], "--http-threads must be an integer from 1 to 1024, got '0'"),
    (["--grace-period-seconds", "-1"], "--grace-period-seconds must be a non-negative number"),
    (["--no-grpc=perhaps"], "--no-grpc takes true or false, got 'perhaps'"),
    (["--no-such-flag"], "unknown flag --no-such-flag"),
])
def test_bad_serve_flags_name_the_flag_and_the_range(osprey_bin, tmp_path, flags, message):
    done = subprocess.run([str(osprey_bin), "serve", "--model-dir", str(tmp_path), *flags],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr, done.stderr
    assert "usage: osprey serve" in done.stderr


def test_serve_help_lists_every_flag_in_one_format(osprey_bin):
    done = subprocess.run([str(osprey_bin), "serve", "--help"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: osprey serve")
    for line in ("  --http-port PORT ", "  --model-dir DIR ", "  --no-grpc "):
        assert line in done.stdout, done.stdout


@pytest.mark.parametrize("flags,message", [
    (["--http-port", "-1"], "--http-port must be an integer from 0 to 65535, got '-1'"),
    (["--gateway-threads", "0"], "--gateway-threads must be an integer from 1 to 1024"),
    (["--stable-window-s", "soon"], "--stable-window-s must be a non-negative number of seconds"),
    (["--autoscale-tick-ms", "0"], "--autoscale-tick-ms must be above 0, got '0'"),
])
def test_bad_up_flags_name_the_flag_and_the_range(osprey_bin, tmp_path, flags, message):
    done = subprocess.run([str(osprey_bin), "up", "--data-dir", str(tmp_path), *flags],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr, done.stderr
