"""/metrics: Prometheus text that promtool accepts, KServe's request_predict_seconds,
and Osprey's per-model request counters and latency histograms."""

import math
import shutil
import subprocess
from collections import defaultdict

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import v2_json_request

MODELS = ["xgb-iris-softmax", "xgb-iris-binary"]
HISTOGRAMS_BY_MODEL = [
    "osprey_inference_request_duration_seconds",
    "osprey_inference_queue_duration_seconds",
    "osprey_inference_compute_duration_seconds",
]
REQUESTS = "osprey_inference_requests_total"
PREDICT = "request_predict_seconds"


@pytest.fixture(scope="module")
def server(launcher, fixtures, tmp_path_factory):
    repo = fixtures.make_repository(tmp_path_factory.mktemp("metrics-repo"), MODELS)
    with launcher.serve(["--model-repository", repo], label="metrics") as s:
        yield s


class Scrape:
    def __init__(self, text):
        self.text = text
        self.samples = defaultdict(float)
        self.families = {}
        for fam in text_string_to_metric_families(text):
            self.families[fam.name] = fam
            for s in fam.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def value(self, name, **labels):
        return self.samples.get((name, frozenset(labels.items())), 0.0)


def scrape(server) -> Scrape:
    r = server.get("/metrics")
    assert r.status_code == 200, r.text[:300]
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers.get("Content-Type")
    return Scrape(r.text)


def good_v2(server, fixtures, model, n=3):
    r = server.post(f"/v2/models/{model}/infer", json=v2_json_request(fixtures.inputs(model)[:n]))
    assert r.status_code == 200, r.text


def good_v1(server, fixtures, model, n=3):
    r = server.post(f"/v1/models/{model}:predict", json={"instances": fixtures.inputs(model)[:n].tolist()})
    assert r.status_code == 200, r.text


def bad_v2(server, model):
    req = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [1.0] * 7}]}
    r = server.post(f"/v2/models/{model}/infer", json=req)
    assert r.status_code == 400, r.text


def test_promtool_accepts_the_exposition(server, fixtures):
    for model in MODELS:
        good_v2(server, fixtures, model)
        good_v1(server, fixtures, model)
        bad_v2(server, model)
    text = scrape(server).text
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (
        f"promtool check metrics exited {proc.returncode}:\n{proc.stdout}{proc.stderr}\n"
        f"--- exposition ---\n{text[:4000]}"
    )


def test_success_counter_and_predict_histogram(server, fixtures):
    model = MODELS[0]
    before = scrape(server)
    for _ in range(5):
        good_v2(server, fixtures, model)
    for _ in range(3):
        good_v1(server, fixtures, model)
    after = scrape(server)
    delta = lambda name, **lb: after.value(name, **lb) - before.value(name, **lb)  # noqa: E731
    assert delta(REQUESTS, model=model, outcome="success") == 8
    assert delta(REQUESTS, model=model, outcome="failure") == 0
    assert delta(PREDICT + "_count", model_name=model) == 8
    assert delta(PREDICT + "_sum", model_name=model) > 0
    assert delta(PREDICT + "_bucket", model_name=model, le="+Inf") == 8
    # the other model saw nothing
    other = MODELS[1]
    assert delta(REQUESTS, model=other, outcome="success") == 0
    assert delta(PREDICT + "_count", model_name=other) == 0


def test_failure_counter(server, fixtures):
    model = MODELS[1]
    before = scrape(server)
    bad_v2(server, model)
    bad_v2(server, model)
    after = scrape(server)
    assert after.value(REQUESTS, model=model, outcome="failure") - before.value(
        REQUESTS, model=model, outcome="failure"
    ) == 2
    assert after.value(REQUESTS, model=model, outcome="success") == before.value(
        REQUESTS, model=model, outcome="success"
    )


@pytest.mark.parametrize("name", HISTOGRAMS_BY_MODEL)
def test_duration_histograms_by_model(server, fixtures, name):
    model = MODELS[0]
    before = scrape(server)
    for _ in range(4):
        good_v2(server, fixtures, model)
    after = scrape(server)
    fam = after.families.get(name)
    assert fam is not None, f"{name} missing from /metrics"
    assert fam.type == "histogram", fam.type
    count = after.value(name + "_count", model=model) - before.value(name + "_count", model=model)
    assert 1 <= count <= 4, f"{name}_count grew by {count} for 4 requests"
    assert after.value(name + "_sum", model=model) >= before.value(name + "_sum", model=model)


def test_histograms_are_consistent(server, fixtures):
    good_v2(server, fixtures, MODELS[0])
    s = scrape(server)
    names = [PREDICT] + HISTOGRAMS_BY_MODEL
    for name in names:
        fam = s.families.get(name)
        assert fam is not None, f"{name} missing"
        by_series = defaultdict(list)
        totals = {}
        for sample in fam.samples:
            labels = {k: v for k, v in sample.labels.items() if k != "le"}
            key = tuple(sorted(labels.items()))
            if sample.name.endswith("_bucket"):
                le = sample.labels["le"]
                by_series[key].append((math.inf if le == "+Inf" else float(le), sample.value))
            elif sample.name.endswith("_count"):
                totals[key] = sample.value
            elif sample.name.endswith("_sum"):
                assert sample.value >= 0, (name, labels)
        assert by_series, f"{name} has no buckets"
        for key, buckets in by_series.items():
            buckets.sort()
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), f"{name}{dict(key)} buckets not cumulative: {buckets}"
            assert buckets[-1][0] == math.inf, f"{name}{dict(key)} lacks le=+Inf"
            assert buckets[-1][1] == totals.get(key), f"{name}{dict(key)} +Inf != _count"
        label_names = {k for key in by_series for k, _ in key}
        assert ("model_name" if name == PREDICT else "model") in label_names, (name, label_names)


def test_counter_has_help_and_type(server):
    text = scrape(server).text
    assert f"# TYPE {REQUESTS[: -len('_total')]} counter" in text or f"# TYPE {REQUESTS} counter" in text
    assert f"# HELP {PREDICT} " in text
