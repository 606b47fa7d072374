"""Dynamic batching on `osprey serve` (--max-batch-size, --max-queue-delay-us,
--preferred-batch-sizes): concurrent requests are merged into one execution
(visible in /metrics), every caller gets exactly its own rows back, requests
that cannot join run alone, a bad request fails alone, and requests still
queued at SIGTERM are answered."""

import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness import assert_close, assert_error, output_array, v2_json_request, wait_until

MODEL = "xgb-iris-softprob"
CLIENTS = 24


def scrape(server):
    samples = {}
    for fam in text_string_to_metric_families(server.get("/metrics").text):
        for s in fam.samples:
            if s.labels.get("model") == MODEL:
                samples[s.name + (f"{{{s.labels['outcome']}}}" if "outcome" in s.labels else "")] = s.value
    return samples


def batching_server(launcher, fixtures, label, *flags):
    return launcher.serve(["--model-dir", fixtures.model_dir(MODEL), "--model-name", MODEL,
                           "--http-threads", "4", *flags], label=label)


def concurrent_posts(server, bodies):
    """Posts every body at once (threads released together); returns responses in order."""
    start = threading.Barrier(len(bodies))

    def post(body):
        with requests.Session() as s:
            start.wait(timeout=10)
            return s.post(server.url(f"/v2/models/{MODEL}/infer"), json=body, timeout=30)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


@pytest.fixture(scope="module")
def server(launcher, fixtures):
    # A long delay with a batch limit the clients fill: batches run when full.
    with batching_server(launcher, fixtures, "batching", "--max-batch-size", "32",
                         "--max-queue-delay-us", "200000") as s:
        yield s


def test_concurrent_requests_are_merged_and_answered_by_rows(server, fixtures):
    X = fixtures.inputs(MODEL)
    # Client i sends rows i .. i+k (1 to 3 rows), with its own id.
    parts = [X[i:i + 1 + i % 3] for i in range(CLIENTS)]
    before = scrape(server)
    answers = concurrent_posts(server, [v2_json_request(p, request_id=f"c{i}")
                                        for i, p in enumerate(parts)])
    for i, (part, r) in enumerate(zip(parts, answers)):
        assert r.status_code == 200, f"client {i}: {r.status_code} {r.text[:300]}"
        body = r.json()
        assert body["id"] == f"c{i}"
        assert body["outputs"][0]["shape"] == [len(part), 3]
        assert_close(output_array(body["outputs"][0]), fixtures.oracle(MODEL, part), f"client {i}")
    after = scrape(server)
    requests_done = after["osprey_inference_requests_total{success}"] - before.get(
        "osprey_inference_requests_total{success}", 0)
    executions = after["osprey_inference_executions_total"] - before.get(
        "osprey_inference_executions_total", 0)
    batched = after["osprey_inference_batched_requests_total"] - before.get(
        "osprey_inference_batched_requests_total", 0)
    assert requests_done == CLIENTS
    assert executions < CLIENTS, f"{CLIENTS} requests ran in {executions} executions"
    assert batched >= 2


def test_bad_request_fails_alone(server, fixtures):
    X = fixtures.inputs(MODEL)
    bodies = [v2_json_request(X[i:i + 2]) for i in range(8)]
    bodies[3] = v2_json_request(X[:2, :3])  # 3 features: rejected before it can join
    answers = concurrent_posts(server, bodies)
    assert_error(answers[3], 400, "input-0", "[2,3]")
    for i, r in enumerate(answers):
        if i != 3:
            assert r.status_code == 200, f"request {i}: {r.text[:300]}"
            assert_close(output_array(r.json()["outputs"][0]), fixtures.oracle(MODEL, X[i:i + 2]))


def test_other_datatypes_are_answered_too(server, fixtures):
    """FP64 and FP32 requests have different batch keys: never merged with each
    other, all answered correctly (each joins its own kind)."""
    X = fixtures.inputs(MODEL)
    bodies = [v2_json_request(X[i:i + 2], datatype="FP64" if i % 2 else "FP32")
              for i in range(12)]
    for i, r in enumerate(concurrent_posts(server, bodies)):
        assert r.status_code == 200, f"request {i}: {r.text[:300]}"
        assert_close(output_array(r.json()["outputs"][0]), fixtures.oracle(MODEL, X[i:i + 2]))


def test_v1_requests_are_batched_too(server, fixtures):
    X = fixtures.inputs(MODEL)
    start = threading.Barrier(8)

    def predict(i):
        start.wait(timeout=10)
        return requests.post(server.url(f"/v1/models/{MODEL}:predict"),
                             json={"instances": X[i:i + 2].tolist()}, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(predict, range(8)))
    for i, r in enumerate(answers):
        assert r.status_code == 200, r.text
        assert_close(np.asarray(r.json()["predictions"]), fixtures.oracle(MODEL, X[i:i + 2]))


def test_no_delay_batches_only_the_backlog(launcher, fixtures):
    """--max-queue-delay-us 0: a lone request runs at once (no waiting)."""
    with batching_server(launcher, fixtures, "batching-nodelay", "--max-batch-size", "32") as s:
        X = fixtures.inputs(MODEL)
        r = s.post(f"/v2/models/{MODEL}/infer", json=v2_json_request(X[:2]), timeout=5)
        assert r.status_code == 200
        assert_close(output_array(r.json()["outputs"][0]), fixtures.oracle(MODEL, X[:2]))
        for i, r in enumerate(concurrent_posts(s, [v2_json_request(X[i:i + 1]) for i in range(16)])):
            assert r.status_code == 200
            assert_close(output_array(r.json()["outputs"][0]), fixtures.oracle(MODEL, X[i:i + 1]))


def test_queued_request_is_answered_at_sigterm(launcher, fixtures):
    """A request waiting for a batch when SIGTERM arrives still gets its answer."""
    with batching_server(launcher, fixtures, "batching-drain", "--max-batch-size", "32",
                         "--max-queue-delay-us", "1500000") as s:
        X = fixtures.inputs(MODEL)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(requests.post, s.url(f"/v2/models/{MODEL}/infer"),
                                  json=v2_json_request(X[:2]), timeout=30)
            wait_until(lambda: scrape(s).get("osprey_inference_pending_requests", 0) >= 1, 10,
                       "the request to be queued")
            s.send_signal(signal.SIGTERM)
            r = pending.result(timeout=30)
        assert r.status_code == 200, r.text
        assert_close(output_array(r.json()["outputs"][0]), fixtures.oracle(MODEL, X[:2]))
        assert s.wait(timeout=30) == 0
        s.mark_exited()


@pytest.mark.parametrize("flags,message", [
    (["--preferred-batch-sizes", "4"], "needs --max-batch-size"),
    (["--max-batch-size", "8", "--preferred-batch-sizes", "16"], "--preferred-batch-sizes"),
    (["--max-batch-size", "-1"], "--max-batch-size"),
    (["--max-batch-size", "8", "--batch-executors", "0"], "--batch-executors"),
])
def test_bad_batching_flags_are_refused(osprey_bin, fixtures, flags, message):
    done = subprocess.run([str(osprey_bin), "serve", "--model-dir", str(fixtures.model_dir(MODEL)),
                           *flags], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr
