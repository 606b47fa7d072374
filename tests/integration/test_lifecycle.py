"""Process lifecycle: startup modes of `osprey serve`, and graceful shutdown on
SIGTERM (stop accepting, finish in-flight requests, exit 0 within the grace
period)."""

import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from harness import (
    KSERVE_E2E_INSTANCES,
    connection_refused,
    RawConnection,
    assert_close,
    output_array,
    raw_request,
    v2_json_request,
    wait_until,
)

MODEL = "xgb-iris-softprob"
JSON = {"Content-Type": "application/json"}
ROWS = 20000


def big_rows(fixtures):
    """20000 iris rows written with short decimals, and xgboost's answers for them."""
    X = np.round(np.tile(fixtures.inputs(MODEL).astype(np.float64), (ROWS // 150 + 1, 1))[:ROWS], 4)
    return X, fixtures.oracle(MODEL, X.astype(np.float32))


def infer_bytes(X, request_id):
    body = json.dumps(v2_json_request(X, request_id=request_id)).encode()
    return raw_request("POST", f"/v2/models/{MODEL}/infer", body, JSON), len(body)


def warm_connection(server):
    """A keep-alive connection that has already had one answer: the server has
    accepted it, so it is not left in a listen queue when SIGTERM arrives."""
    conn = RawConnection(server)
    r = conn.request("GET", "/v2/health/live")
    assert r.status == 200, r.status
    return conn


def round_trip(server):
    """One more full request after the in-flight ones were written, so the
    server has had every chance to start reading them."""
    with RawConnection(server, timeout=10) as c:
        assert c.request("GET", "/v2/health/live").status == 200


def check_answer(resp, request_id, want):
    assert resp.status == 200, f"{request_id}: HTTP {resp.status} {resp.body[:300]!r}"
    body = resp.json()
    assert body["id"] == request_id
    assert_close(output_array(body["outputs"][0]), want, request_id)


def drain_server(osprey, fixtures, label, grace):
    args = [
        "--model-dir", fixtures.model_dir(MODEL),
        "--http-threads", "4",
        "--grace-period-seconds", grace,
        "--max-request-bytes", 64 << 20,
    ]
    return osprey(args, label)


def test_sigterm_drains_in_flight_requests(osprey, fixtures):
    grace = 10
    server = drain_server(osprey, fixtures, "drain-partial", grace)
    X, want = big_rows(fixtures)

    # Four large requests, each with half its body sent: in flight for sure.
    pending = []
    for i in range(4):
        data, body_len = infer_bytes(X, f"drain-{i}")
        split = len(data) - body_len // 2
        conn = warm_connection(server)
        conn.send(data[:split])
        pending.append((conn, data[split:], f"drain-{i}"))
    round_trip(server)

    t0 = time.monotonic()
    server.send_signal(signal.SIGTERM)
    wait_until(lambda: connection_refused(server.host, server.port), 5, "new connections to be refused after SIGTERM")

    def finish(item):
        conn, rest, rid = item
        try:
            conn.send(rest)
            return rid, conn.read()
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=len(pending)) as pool:
        answers = list(pool.map(finish, pending))
    for rid, resp in answers:
        check_answer(resp, rid, want)

    rc = server.wait(timeout=max(0.5, t0 + grace - time.monotonic()))
    server.mark_exited()
    assert rc is not None, f"osprey still running {grace}s after SIGTERM"
    assert rc == 0, f"osprey exited with status {rc} after SIGTERM"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, server.port), timeout=2)


def test_sigterm_during_large_requests_from_threads(osprey, fixtures):
    grace = 10
    server = drain_server(osprey, fixtures, "drain-threads", grace)
    X, want = big_rows(fixtures)
    n = 6
    sent = threading.Barrier(n + 1, timeout=30)

    def client(i):
        rid = f"thread-{i}"
        data, _ = infer_bytes(X, rid)
        with warm_connection(server) as conn:
            conn.send(data)
            sent.wait()
            return rid, conn.read()

    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(client, i) for i in range(n)]
        sent.wait()  # every request is on the wire
        round_trip(server)
        t0 = time.monotonic()
        server.send_signal(signal.SIGTERM)
        answers = [f.result(timeout=60) for f in futures]
    for rid, resp in answers:
        check_answer(resp, rid, want)
    rc = server.wait(timeout=max(0.5, t0 + grace - time.monotonic()))
    server.mark_exited()
    assert rc == 0, f"osprey exit status {rc} (None: still running {grace}s after SIGTERM)"


def test_sigterm_when_idle_exits_zero(osprey, fixtures):
    grace = 10
    server = drain_server(osprey, fixtures, "idle-exit", grace)
    round_trip(server)
    t0 = time.monotonic()
    server.send_signal(signal.SIGTERM)
    rc = server.wait(timeout=grace)
    server.mark_exited()
    assert rc == 0, f"exit status {rc} (None: still running after {grace}s)"
    assert time.monotonic() - t0 < grace


def test_grace_period_bounds_shutdown(osprey, fixtures):
    """A request that never completes cannot hold the process past the grace period."""
    grace = 1
    server = drain_server(osprey, fixtures, "grace-expiry", grace)
    data, body_len = infer_bytes(np.ones((2, 4)), "stuck")
    conn = warm_connection(server)
    try:
        conn.send(data[: len(data) - body_len // 2])
        round_trip(server)
        t0 = time.monotonic()
        server.send_signal(signal.SIGTERM)
        rc = server.wait(timeout=grace + 5)
        server.mark_exited()
        assert rc is not None, f"still running {time.monotonic() - t0:.1f}s after SIGTERM with grace {grace}s"
    finally:
        conn.close()


# -- startup modes -------------------------------------------------------------


def test_model_dir_name_defaults_to_directory(osprey, fixtures):
    model = "xgb-iris-softmax"
    server = osprey(["--model-dir", fixtures.model_dir(model)], "model-dir")
    assert server.get("/v1/models").json() == {"models": [model]}
    r = server.post(f"/v1/models/{model}:predict", json={"instances": fixtures.inputs(model).tolist()})
    assert r.status_code == 200, r.text
    assert_close(r.json()["predictions"], fixtures.predictions(model))
    assert server.get("/v2/health/ready").json() == {"ready": True}


def test_model_dir_with_name_format_and_one_thread(osprey, fixtures):
    args = [
        "--model-dir", fixtures.model_dir("xgb-iris-softmax"),
        "--model-name", "iris",
        "--model-format", "xgboost",
        "--http-threads", "1",
    ]
    server = osprey(args, "model-name")
    assert server.get("/v1/models").json() == {"models": ["iris"]}
    assert server.get("/v1/models/iris").json() == {"name": "iris", "ready": True}
    r = server.post("/v1/models/iris:predict", json={"instances": KSERVE_E2E_INSTANCES})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == [1, 1]
    meta = server.get("/v2/models/iris").json()
    assert meta["name"] == "iris" and meta["platform"] == "xgboost"
    assert server.get("/v2/models/xgb-iris-softmax").status_code == 404


def test_one_http_thread_serves_many_clients(osprey, fixtures):
    model = "xgb-iris-binary"
    server = osprey(["--model-dir", fixtures.model_dir(model), "--http-threads", "1"], "one-thread")
    X, want = fixtures.inputs(model), fixtures.predictions(model)

    def one(i):
        rows = slice(i % 100, i % 100 + 5)
        r = server.post(f"/v2/models/{model}/infer", json=v2_json_request(X[rows], request_id=str(i)))
        assert r.status_code == 200, r.text
        assert_close(output_array(r.json()["outputs"][0]), want[rows])
        return r.json()["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(one, range(40))) == [str(i) for i in range(40)]
