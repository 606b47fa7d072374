"""The cost view of `osprey up`: per revision, replica-seconds, CPU-seconds,
memory (average, peak, now) and requests, over the recent window and in
total, from the replicas' own accounting (/proc: the model server and its
Python workers); `osprey cost`, `osprey top`, `osprey describe` and
/metrics show it; right-sizing advice when the settings do not fit the
traffic. The window is shortened to seconds (--cost-window-s) so that the
advice comes within the test.
"""

import re
import time

import pytest
import requests

import harness
from platform_harness import Platform, example_models, isvc_yaml

IRIS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
WINDOW_S = 6


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("cost") / "home",
                 extra_args=["--autoscale-tick-ms", "250", "--cost-window-s", str(WINDOW_S)]).start()
    models = example_models()
    p.apply_text(isvc_yaml("idle3", "xgboost", models / "xgboost-iris",
                           extra_predictor="\n    minReplicas: 3") + "---\n" +
                 isvc_yaml("busy", "xgboost", models / "xgboost-iris") + "---\n" +
                 isvc_yaml("pyworkers", "sklearn", models / "sklearn-iris"))
    yield p
    p.stop_everything()


def cost(platform, name):
    r = requests.get(f"{platform.api}/osprey/v1/namespaces/default/inferenceservices/{name}/cost",
                     headers=platform.auth, timeout=10)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    return items[0] if items else None


def test_usage_adds_up_per_revision(platform):
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 2:  # enough work for the CPU clock's 10 ms ticks
        assert platform.predict_v1("busy", IRIS).status_code == 200
        sent += 1

    def counted():
        c = cost(platform, "busy")
        return c is not None and c["total"]["requests"] >= sent and c

    c = harness.wait_until(counted, 30, "the busy service's requests in its cost")
    total = c["total"]
    assert c["revision"] == "busy-predictor-00001" and c["component"] == "predictor"
    assert total["requests"] == sent  # every answer counted once
    assert total["cpuSeconds"] > 0
    assert total["replicaSeconds"] > 0 and total["seconds"] > 0
    assert 1 << 20 < total["memoryAverageBytes"] <= total["memoryPeakBytes"] * (1 + 1e-9)
    assert total["cpuSecondsPer1000Requests"] == pytest.approx(
        total["cpuSeconds"] * 1000 / total["requests"])
    # The recent window is a part of the total.
    assert c["lastWindow"]["seconds"] <= total["seconds"]
    assert c["lastWindow"]["replicaSeconds"] <= total["replicaSeconds"]
    # Three replicas run three times the replica-seconds of one, in the same time.
    idle = cost(platform, "idle3")
    assert idle["current"]["replicas"] == 3
    assert idle["total"]["replicaSeconds"] / idle["total"]["seconds"] == pytest.approx(3, rel=0.2)


def test_python_workers_count_in_the_memory(platform):
    def both():
        a, b = cost(platform, "pyworkers"), cost(platform, "busy")
        return a and b and a["current"]["memoryBytes"] > 0 and (a, b)

    py, native = harness.wait_until(both, 30, "memory of both revisions")
    # Two Python workers with scikit-learn loaded weigh far more than the
    # native server alone.
    assert py["current"]["memoryBytes"] > native["current"]["memoryBytes"] + (40 << 20), (
        py["current"], native["current"])


def test_advice_for_idle_replicas_kept_by_min_replicas(platform):
    def advised():
        c = cost(platform, "idle3")
        return c and [a for a in c["advice"] if a["reason"] == "MinReplicasHigh"]

    advice = harness.wait_until(advised, WINDOW_S * 4, "advice on minReplicas 3")
    assert "minReplicas 3 looks high" in advice[0]["message"], advice
    assert "1 would hold this traffic" in advice[0]["message"], advice
    # An event says it too, once.
    events = platform.get_json("events")["items"]
    said = [e for e in events if e.get("reason") == "MinReplicasHigh" and e["object"] == "idle3"]
    assert len(said) == 1, said
    # The busy single replica gets none.
    assert cost(platform, "busy")["advice"] == []


def test_cli_cost_top_describe_and_metrics(platform):
    out = platform.cli("cost").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["INFERENCESERVICE", "REVISION", "WINDOW", "REPLICA-S", "CPU-S",
                                "MEM-AVG", "MEM-PEAK", "REQUESTS", "CPU-S/1K-REQ"], out
    rows = [line.split() for line in lines[1:] if line.startswith("busy ")]
    assert [r[2] for r in rows] == [f"{WINDOW_S}s", "total"], out
    one = platform.cli("cost", "busy").stdout
    assert "idle3" not in one and "busy-predictor-00001" in one
    top = platform.cli("top").stdout
    header = top.splitlines()[0].split()
    assert header == ["REVISION", "REPLICAS", "CPU(cores)", "MEMORY(bytes)", "REQUESTS/S"], top
    idle_row = [line.split() for line in top.splitlines() if line.startswith("idle3-")][0]
    assert idle_row[1] == "3" and idle_row[2].endswith("m") and idle_row[3].endswith("Mi")
    described = platform.cli("describe", "isvc", "busy").stdout
    assert "Cost:" in described and "busy-predictor-00001:" in described, described
    metrics = requests.get(f"{platform.api}/metrics", timeout=10).text
    m = re.search(r'^osprey_revision_cpu_seconds_total\{namespace="default",'
                  r'inferenceservice="busy",component="predictor",'
                  r'revision="busy-predictor-00001"\} (\S+)$', metrics, re.M)
    assert m and float(m.group(1)) > 0, metrics[-2000:]
    assert 'osprey_revision_memory_bytes{namespace="default",inferenceservice="idle3"' in metrics
    r = requests.get(f"{platform.api}/osprey/v1/namespaces/default/inferenceservices/nope/cost",
                     headers=platform.auth, timeout=10)
    assert r.status_code == 404 and "nope" in r.text


def test_totals_survive_a_restart(platform):
    before = cost(platform, "busy")["total"]
    assert before["requests"] > 0
    platform.stop()
    platform.start()

    def restored():
        c = cost(platform, "busy")
        return c is not None and c["total"]["requests"] >= before["requests"] and c

    after = harness.wait_until(restored, 60, "the busy service's totals after a restart")["total"]
    assert after["requests"] == before["requests"]
    # (as JSON numbers: equal within their printed precision)
    assert after["cpuSeconds"] >= before["cpuSeconds"] * (1 - 1e-9)
    assert after["replicaSeconds"] >= before["replicaSeconds"] * (1 - 1e-9)
