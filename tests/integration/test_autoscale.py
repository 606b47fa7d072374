"""Autoscaling through the gateway: scale from zero on the first request with
nothing lost, scale up under a burst and back down to zero after the grace
period, the activator's queue deadline, a replica killed under load, and the
gateway's metrics and access log. Windows are short (--stable-window-s 2,
--scale-to-zero-grace-s 1, a decision every 200 ms) so the suite stays quick.
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

import harness
from platform_harness import Load, Platform, custom_server_yaml, example_models, isvc_yaml

IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
STABLE_WINDOW_S = 2
GRACE_S = 1


@pytest.fixture(scope="module")
def model_dir():
    return example_models() / "xgboost-iris"


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("autoscale") / "home",
                 extra_args=["--autoscale-tick-ms", "200", "--stable-window-s",
                             str(STABLE_WINDOW_S), "--scale-to-zero-grace-s", str(GRACE_S),
                             "--queue-deadline-s", "3"]).start()
    yield p
    p.stop_everything()


def kpa(platform, name):
    items = platform.get_json("kpa")["items"]
    return next(i for i in items if i["metadata"]["name"] == name)["status"]


def replica_count(platform, isvc):
    return sum(r["status"]["replicas"] for r in platform.revisions(isvc))


def ready_count(platform, isvc):
    return sum(r["status"]["readyReplicas"] for r in platform.revisions(isvc))


def test_scale_to_zero_and_back_on_the_first_request(platform, model_dir):
    platform.apply_text(isvc_yaml("sleepy", "xgboost", model_dir,
                                  extra_predictor="\n    minReplicas: 0"))
    harness.wait_until(lambda: replica_count(platform, "sleepy") == 0,
                       STABLE_WINDOW_S + GRACE_S + 20, "scale to zero after the grace period")
    status = kpa(platform, "sleepy-predictor-00001")
    assert status["desiredScale"] == 0 and status["reason"] == "NoTraffic", status
    table = platform.cli("get", "kpa").stdout.splitlines()
    assert table[0].split() == ["NAME", "DESIREDSCALE", "ACTUALSCALE", "READY", "REASON"]
    assert any(l.split() == ["sleepy-predictor-00001", "0", "0", "False", "NoTraffic"]
               for l in table), table
    # Still Ready: a revision at zero takes requests through the activator.
    assert platform.condition("sleepy")["status"] == "True"
    # The first request waits for a replica and succeeds; so do those sent with it.
    t0 = time.monotonic()
    r = platform.predict_v1("sleepy", IRIS_ROWS)
    cold = time.monotonic() - t0
    assert r.status_code == 200 and r.json() == {"predictions": [1.0, 1.0]}, r.text
    assert cold < 5, f"cold start took {cold:.2f}s"
    events = platform.cli("describe", "isvc", "sleepy").stdout
    assert "ScaledToZero" in events, events


def burst_to_three(platform, model_dir, name, min_replicas):
    """Applies an xgboost InferenceService scaled on 100 requests/s per replica
    (up to 3) and sends it thousands until three replicas are ready; returns
    the running load."""
    platform.apply_text(isvc_yaml(
        name, "xgboost", model_dir,
        extra_predictor=f"\n    minReplicas: {min_replicas}\n    maxReplicas: 3"
                        "\n    scaleMetric: rps\n    scaleTarget: 100"))
    load = Load(platform.gateway_port, platform.host(name), f"/v1/models/{name}:predict",
                {"instances": IRIS_ROWS}, threads=6).start()
    try:
        harness.wait_until(lambda: ready_count(platform, name) == 3, 30,
                           "three ready replicas under the burst")
    except BaseException:
        load.stop()
        raise
    return load


def test_burst_scales_up_then_down_to_zero(platform, model_dir):
    load = burst_to_three(platform, model_dir, "bursty", min_replicas=0)
    try:
        assert kpa(platform, "bursty-predictor-00001")["desiredScale"] == 3  # maxReplicas
        load.window(2000)  # served by the three
    finally:
        total, failures = load.stop()
    assert failures == [], failures[:5]
    harness.wait_until(lambda: replica_count(platform, "bursty") == 0,
                       STABLE_WINDOW_S + GRACE_S + 30, "back to zero once the burst is over")
    described = platform.cli("describe", "isvc", "bursty").stdout
    assert "Scaled" in described and "ScaledToZero" in described, described


def test_requests_held_past_the_queue_deadline_get_503(platform, tmp_path):
    # A custom predictor that is ready once, then (at zero) never again: the
    # activator holds its requests, and answers 503 once the deadline passes.
    model = tmp_path / "flaky"
    model.mkdir()
    (model / "require-marker").write_text("")
    (model / "ready-marker").write_text("")
    platform.apply_text(custom_server_yaml("flaky", model, "\n    minReplicas: 0"))
    assert platform.predict_v1("flaky", IRIS_ROWS).status_code == 200
    (model / "ready-marker").unlink()
    harness.wait_until(lambda: replica_count(platform, "flaky") == 0,
                       STABLE_WINDOW_S + GRACE_S + 20, "scale to zero")
    t0 = time.monotonic()
    r = platform.predict_v1("flaky", IRIS_ROWS)
    waited = time.monotonic() - t0
    assert r.status_code == 503, r.text
    assert r.headers.get("Retry-After") == "1"
    assert "flaky-predictor-00001" in r.json()["error"]
    assert 2.5 <= waited < 10, waited  # --queue-deadline-s 3
    platform.cli("delete", "isvc", "flaky")


def test_killed_replica_under_load_costs_at_most_its_in_flight(platform, model_dir):
    platform.apply_text(isvc_yaml("sturdy", "xgboost", model_dir,
                                  extra_predictor="\n    minReplicas: 2"))
    harness.wait_until(lambda: ready_count(platform, "sturdy") == 2, 30, "two replicas")
    threads = 4
    load = Load(platform.gateway_port, platform.host("sturdy"), "/v1/models/sturdy:predict",
                {"instances": IRIS_ROWS}, threads=threads).start()
    try:
        load.window(1000)
        pid = platform.revisions("sturdy")[0]["status"]["replicaStatuses"][0]["pid"]
        os.kill(pid, signal.SIGKILL)
        load.window(3000)  # the other replica carries on
        harness.wait_until(lambda: ready_count(platform, "sturdy") == 2, 30, "replaced")
        load.window(1000)
    finally:
        total, failures = load.stop()
    # Only requests in flight on the killed replica may fail: at most one per client.
    assert len(failures) <= threads, failures


def test_gateway_metrics_and_access_log(platform, model_dir):
    platform.apply_text(isvc_yaml("metered", "xgboost", model_dir))
    for _ in range(5):
        assert platform.predict_v1("metered", IRIS_ROWS).status_code == 200
    r = requests.post(f"{platform.gateway}/v1/models/metered:predict", data=b"{bad json",
                      headers={"Host": platform.host("metered"), "x-request-id": "trace-me-42"})
    assert r.status_code == 400
    assert r.headers["x-request-id"] == "trace-me-42"
    text = requests.get(f"{platform.api}/metrics").text
    labels = ('namespace="default",inferenceservice="metered",component="predictor",'
              'revision="metered-predictor-00001"')
    assert f'osprey_gateway_requests_total{{{labels},code_class="2xx"}} 5' in text, text
    assert f'osprey_gateway_requests_total{{{labels},code_class="4xx"}} 1' in text
    assert f'osprey_gateway_request_duration_seconds_count{{{labels}}} 6' in text
    assert "osprey_gateway_queue_depth" in text and "osprey_gateway_concurrency" in text
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if os.path.exists(promtool):
        check = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                               capture_output=True)
        assert check.returncode == 0, check.stdout + check.stderr

    def logged():
        log = (platform.data_dir / "access.log").read_text()
        return "trace-me-42" in log and " 400 " in log
    harness.wait_until(logged, 5, "the access log line of the traced request")


def test_container_concurrency_is_a_hard_limit_with_queueing(platform, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    model = tmp_path / "single"
    model.mkdir()
    (model / "delay").write_text("0.3")
    platform.apply_text(custom_server_yaml(
        "single", model, "\n    containerConcurrency: 1\n    minReplicas: 1\n    maxReplicas: 1"))

    def call(_):
        return requests.post(f"{platform.gateway}/v1/models/single:predict",
                             json={"instances": [[1]]}, headers={"Host": platform.host("single")},
                             timeout=30).status_code

    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(call, range(4)))
    elapsed = time.monotonic() - t0
    assert codes == [200] * 4  # queued at the gateway, not refused
    posts = (model / "posts.log").read_text().split()
    assert posts.count("post") == 4
    assert set(posts) - {"post"} == {"1"}, posts  # never two at once on the replica
    assert elapsed >= 4 * 0.3 - 0.05, elapsed
    platform.cli("delete", "isvc", "single")


def test_a_revision_keeps_its_own_container_concurrency(platform, tmp_path):
    """containerConcurrency belongs to the revision, as in Knative: with a new
    revision that drops the limit held at 0% (canaryTrafficPercent 0), the
    old revision, which takes all requests, still takes one at a time."""
    from concurrent.futures import ThreadPoolExecutor

    model = tmp_path / "limited"
    model.mkdir()
    (model / "delay").write_text("0.3")
    platform.apply_text(custom_server_yaml(
        "limited", model, "\n    containerConcurrency: 1\n    minReplicas: 1\n    maxReplicas: 1"))
    platform.apply_text(custom_server_yaml(
        "limited", model, "\n    canaryTrafficPercent: 0\n    minReplicas: 1\n    maxReplicas: 1"))
    harness.wait_until(
        lambda: [r["status"]["readyReplicas"] for r in platform.revisions("limited")] == [1, 1],
        30, "both revisions ready")
    (model / "posts.log").unlink(missing_ok=True)

    def call(_):
        r = requests.post(f"{platform.gateway}/v1/models/limited:predict",
                          json={"instances": [[1]]}, headers={"Host": platform.host("limited")},
                          timeout=30)
        return r.status_code, r.headers.get("x-osprey-revision")

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(call, range(4)))
    assert answers == [(200, "limited-predictor-00001")] * 4, answers
    posts = (model / "posts.log").read_text().split()
    assert posts.count("post") == 4
    assert set(posts) - {"post"} == {"1"}, posts  # still never two at once
    platform.cli("delete", "isvc", "limited")


def test_restart_keeps_the_scale_it_found(osprey_bin, tmp_path, model_dir):
    """kill -9 of osprey up while a revision runs three replicas: the next
    start re-adopts all three and keeps them until its autoscaler decides from
    its own measurements (here: never, ticks 10 minutes apart). A restart
    alone stops no replica."""
    args = ["--autoscale-tick-ms", "200", "--stable-window-s", str(STABLE_WINDOW_S),
            "--scale-to-zero-grace-s", str(GRACE_S)]
    p = Platform(osprey_bin, tmp_path / "home", extra_args=args).start()
    try:
        burst_to_three(p, model_dir, "kept", min_replicas=1).stop()
        pids = sorted(r["pid"] for r in p.revisions("kept")[0]["status"]["replicaStatuses"])
        assert len(pids) == 3, pids
        p.kill9()
        p2 = Platform(osprey_bin, tmp_path / "home",
                      extra_args=["--autoscale-tick-ms", "600000"])
        p2.gateway_port = p.gateway_port
        p = p2.start()
        harness.wait_until(lambda: p.condition("kept").get("status") == "True", 30,
                           "Ready after the restart")
        status = kpa(p, "kept-predictor-00001")
        assert status["desiredScale"] == 3 and status["reason"] == "Initial", status
        reps = p.revisions("kept")[0]["status"]["replicaStatuses"]
        assert sorted(r["pid"] for r in reps) == pids and all(r["adopted"] for r in reps), reps
        assert all(Path(f"/proc/{pid}").exists() for pid in pids)
        assert p.predict_v1("kept", IRIS_ROWS).json() == {"predictions": [1.0, 1.0]}
    finally:
        p.stop_everything()
