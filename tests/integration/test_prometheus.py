"""A real Prometheus (Debian's package) scraping `osprey up` end to end.

Prometheus starts from the scrape configuration `osprey up` writes
(DATA_DIR/prometheus.yml, intervals shortened for the test) and finds the
platform and every ready replica through the API's HTTP service discovery,
as replicas come and go. Then every panel of the Grafana dashboard in
deploy/grafana/ is asked of that Prometheus through its HTTP query API and
must return data: traffic, errors, gateway latency, replicas, the activator's
queue and wait, cold starts, and the models' own series from the replicas.
"""

import json
import math
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

import harness
from platform_harness import Platform, example_models, isvc_yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "osprey-dashboard.json"
IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
PROMETHEUS = shutil.which("prometheus")

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed "
                                "(scripts/deps.sh installs it)")


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("prometheus") / "home",
                 extra_args=["--autoscale-tick-ms", "200", "--stable-window-s", "2",
                             "--scale-to-zero-grace-s", "1"]).start()
    yield p
    p.stop_everything()


@pytest.fixture(scope="module")
def prometheus(platform, tmp_path_factory):
    """Prometheus on the configuration osprey up wrote, scraping every second."""
    work = tmp_path_factory.mktemp("prometheus-server")
    written = platform.data_dir / "prometheus.yml"
    harness.wait_until(written.exists, 10, "osprey up writes prometheus.yml")
    config = yaml.safe_load(written.read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    for job in config["scrape_configs"]:
        for sd in job["http_sd_configs"]:
            assert sd["url"] == f"{platform.api}/osprey/v1/prometheus/targets", sd
            sd["refresh_interval"] = "1s"
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = harness.free_port()
    log = open(work / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={work / 'prometheus.yml'}",
         f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address={harness.HOST}:{port}",
         "--web.enable-lifecycle", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{harness.HOST}:{port}"

    def ready():
        if proc.poll() is not None:
            raise AssertionError((work / "prometheus.log").read_text())
        try:
            return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    harness.wait_until(ready, 30, "Prometheus ready")
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def targets(prom):
    active = requests.get(f"{prom}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    return [(t["labels"].get("osprey_role"), t["labels"].get("revision"), t["health"])
            for t in active]


def query(prom, expr):
    r = requests.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10)
    assert r.status_code == 200, (expr, r.text)
    body = r.json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def has_data(prom, expr):
    return any(not math.isnan(float(s["value"][1])) for s in query(prom, expr))


def ready_replicas(platform, isvc):
    return sum(r["status"].get("readyReplicas", 0) for r in platform.revisions(isvc))


def send(platform, name, n):
    for _ in range(n):
        r = platform.predict_v1(name, IRIS_ROWS)
        assert r.status_code == 200, r.text


def test_discovery_scrapes_and_every_dashboard_panel_has_data(platform, prometheus):
    model_dir = example_models() / "xgboost-iris"
    platform.apply_text(isvc_yaml("steady", "xgboost", model_dir))
    platform.apply_text(isvc_yaml("sleepy", "xgboost", model_dir,
                                  extra_predictor="\n    minReplicas: 0"))
    # The platform and steady's replica are found and scraped.
    harness.wait_until(
        lambda: {("platform", None, "up"), ("replica", "steady-predictor-00001", "up")}
        <= set(targets(prometheus)), 30, "the platform and steady's replica scraped")
    # Sleepy scales to zero: its replica leaves the targets.
    harness.wait_until(lambda: ready_replicas(platform, "sleepy") == 0, 30, "sleepy at zero")
    harness.wait_until(
        lambda: all(rev != "sleepy-predictor-00001" for _, rev, _ in targets(prometheus)), 30,
        "sleepy's replica gone from the targets")
    # The gateway's zero series for sleepy are scraped before its cold start.
    harness.wait_until(
        lambda: query(prometheus,
                      'osprey_gateway_cold_start_duration_seconds_count{inferenceservice="sleepy"}'),
        30, "sleepy's cold start series scraped at 0")

    # A cold start (with a second request held behind it), then steady traffic.
    held = threading.Thread(target=send, args=(platform, "sleepy", 1))
    first = threading.Thread(target=send, args=(platform, "sleepy", 1))
    first.start()
    held.start()
    first.join()
    held.join()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        send(platform, "steady", 5)
        send(platform, "sleepy", 5)
    assert platform.predict_v1("steady", [[1.0, 2.0]]).status_code == 400  # an error to count
    harness.wait_until(
        lambda: ("replica", "sleepy-predictor-00001", "up") in targets(prometheus), 30,
        "sleepy's new replica found and scraped")
    harness.wait_until(
        lambda: has_data(prometheus, 'osprey_gateway_cold_start_duration_seconds_count'
                                     '{inferenceservice="sleepy"} > 0'),
        30, "the cold start counted")
    cold = query(prometheus, 'osprey_gateway_cold_start_duration_seconds_sum'
                             '{inferenceservice="sleepy"}')
    assert 0 < float(cold[0]["value"][1]) < 30, cold

    # Every panel's every query returns data (template variables: all; the
    # rate window long enough to hold the whole test).
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = (target["expr"].replace("$namespace", ".*").replace("$inferenceservice", ".*")
                    .replace("$__rate_interval", "5m"))
            exprs.append((panel["title"], expr))
    assert len(exprs) >= 14
    missing = []
    # The last scrapes after the traffic have to land first: wait for all.
    try:
        harness.wait_until(lambda: all(has_data(prometheus, e) for _, e in exprs), 30,
                           "every dashboard query to return data")
    except AssertionError:
        missing = [(title, e) for title, e in exprs if not has_data(prometheus, e)]
    assert not missing, missing
    # The series carry the service's labels, from the gateway and (through
    # discovery) from the replicas.
    by_service = query(prometheus, 'sum by (inferenceservice) '
                                   '(osprey_inference_requests_total{outcome="success"})')
    assert {s["metric"]["inferenceservice"] for s in by_service} >= {"steady", "sleepy"}
    harness.wait_until(
        lambda: has_data(prometheus, 'osprey_gateway_requests_total{inferenceservice="steady",'
                                     'code_class="4xx"} >= 1'), 30, "the 400 answer counted")


def test_a_deleted_service_leaves_the_targets(platform, prometheus):
    model_dir = example_models() / "xgboost-iris"
    platform.apply_text(isvc_yaml("brief", "xgboost", model_dir))
    harness.wait_until(lambda: ("replica", "brief-predictor-00001", "up") in targets(prometheus),
                       30, "brief's replica scraped")
    platform.cli("delete", "isvc", "brief")
    harness.wait_until(
        lambda: all(rev != "brief-predictor-00001" for _, rev, _ in targets(prometheus)), 30,
        "brief's replica gone from the targets")


def test_the_platform_metrics_pass_promtool(platform):
    text = requests.get(f"{platform.api}/metrics", timeout=5).text
    assert "osprey_revision_ready_replicas{" in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed with prometheus"
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
