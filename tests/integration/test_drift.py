"""Drift and outlier detection end to end through `osprey up`.

An XGBoost model trained here on four features (three continuous, one
categorical) is applied with serving.osprey.dev/drift-* annotations and a
reference .npy of its training distribution. Through the gateway:
- in-distribution traffic: windows tested, no drift;
- shifted traffic (a continuous feature moved, the categorical mix changed):
  the replica reports drift (its /drift state and /metrics), the service gets
  a DriftDetected event and `osprey describe isvc` a Drift section;
- every tested window's p-values equal scipy.stats.ks_2samp (default mode)
  and chi2_contingency on the same rows within 1e-6, and the same decisions
  (Bonferroni); the test reconstructs each window from the rows it sent, in
  order, one request at a time;
- in-distribution traffic again: DriftEnded;
- an obvious outlier answers with x-osprey-outlier-score above the
  detector's threshold, an ordinary row below it;
- the annotations are part of the revision: changing the window rolls out a
  new revision whose replica runs with it; a reference path relative to the
  manifest is made absolute, as a storageUri is.
"""

import json

import numpy as np
import pytest
import requests

import harness
from platform_harness import Platform

stats = pytest.importorskip("scipy.stats")
xgb = pytest.importorskip("xgboost")

NAME = "drifty"
WINDOW = 200
ROWS_PER_REQUEST = 50
FEATURES = 4
CATEGORICAL = 3
P_VALUE = 0.05


def make_rows(rng, n, shift=0.0, mix=(0.5, 0.3, 0.2)):
    x = np.empty((n, FEATURES))
    x[:, 0] = rng.normal(shift, 1.0, n)
    x[:, 1] = rng.normal(5.0, 2.0, n)
    x[:, 2] = rng.uniform(0.0, 10.0, n)
    x[:, 3] = rng.choice(3, n, p=mix)
    # The server reads V1 instances into FP32 tensors: keep values float32-exact.
    return x.astype(np.float32).astype(np.float64)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    rng = np.random.default_rng(20261203)
    reference = make_rows(rng, 2000)
    y = (reference[:, 0] + reference[:, 3] > 1.0).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                        xgb.DMatrix(reference.astype(np.float32), label=y), num_boost_round=5)
    model_dir = root / "model"
    model_dir.mkdir()
    booster.save_model(str(model_dir / "model.json"))
    np.save(root / "reference.npy", reference)
    return {"dir": model_dir, "reference_path": root / "reference.npy", "reference": reference,
            "rng": rng}


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("drift-platform") / "home").start()
    yield p
    p.stop_everything()


def isvc(model, window=WINDOW):
    return f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: {NAME}
  annotations:
    serving.osprey.dev/drift-reference: "{model['reference_path']}"
    serving.osprey.dev/drift-window: "{window}"
    serving.osprey.dev/drift-categorical: "{CATEGORICAL}"
    serving.osprey.dev/outlier-header: "true"
spec:
  predictor:
    model:
      modelFormat:
        name: xgboost
      storageUri: {model['dir']}
"""


class Client:
    """Sends rows through the gateway one request at a time, keeping their order."""

    def __init__(self, platform):
        self.p = platform
        self.sent = []

    def predict(self, rows):
        r = requests.post(f"{self.p.gateway}/v1/models/{NAME}:predict",
                          json={"instances": rows.tolist()},
                          headers={"Host": self.p.host(NAME)}, timeout=harness.HTTP_TIMEOUT_S)
        assert r.status_code == 200, r.text
        self.sent.extend(rows)
        return r

    def send(self, rows):
        for i in range(0, len(rows), ROWS_PER_REQUEST):
            self.predict(rows[i:i + ROWS_PER_REQUEST])

    def state(self):
        r = requests.get(f"{self.p.gateway}/v2/models/{NAME}/drift",
                         headers={"Host": self.p.host(NAME)}, timeout=harness.HTTP_TIMEOUT_S)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_windows(self, n):
        harness.wait_until(lambda: self.state()["windows_tested"] >= n, 30,
                           f"{n} windows tested")
        return self.state()


def events(platform, reason):
    r = requests.get(f"{platform.api}/osprey/v1/namespaces/default/events",
                     headers=platform.auth, timeout=10)
    return [e for e in r.json()["items"] if e.get("object") == NAME and e.get("reason") == reason]


def platform_drift(platform):
    r = requests.get(f"{platform.api}/osprey/v1/namespaces/default/inferenceservices/{NAME}/drift",
                     headers=platform.auth, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def scipy_window(reference, window):
    """p-values of one window as Osprey defines them: KS (scipy's default mode)
    per continuous feature, chi-squared on the category counts (union of the
    categories seen) for the categorical one."""
    p = []
    for f in range(FEATURES):
        if f == CATEGORICAL:
            cats = np.union1d(np.unique(reference[:, f]), np.unique(window[:, f]))
            table = np.vstack([[np.sum(reference[:, f] == c) for c in cats],
                               [np.sum(window[:, f] == c) for c in cats]])
            p.append(stats.chi2_contingency(table)[1])
        else:
            p.append(stats.ks_2samp(reference[:, f], window[:, f]).pvalue)
    return np.array(p)


def check_windows(model, client, state):
    """Every window the replica kept: its rows are the ones sent, in order."""
    sent = np.array(client.sent)
    decisions = []
    for w in state["windows"]:
        rows = sent[w["first_row"]:w["first_row"] + WINDOW]
        assert len(rows) == WINDOW
        expected = scipy_window(model["reference"], rows)
        np.testing.assert_allclose(w["p_values"], expected, rtol=0, atol=1e-6)
        drift = bool(expected.min() < P_VALUE / FEATURES)
        assert w["drift"] == drift, (w, expected)
        decisions.append(drift)
    return decisions


def test_drift_detected_and_ended(platform, model):
    platform.apply_text(isvc(model))
    client = Client(platform)
    rng = model["rng"]

    client.send(make_rows(rng, 2 * WINDOW))
    state = client.wait_windows(2)
    assert state["ready"] and state["reference_rows"] == 2000 and state["features"] == FEATURES
    assert check_windows(model, client, state) == [False, False]
    assert state["drift"] is False
    assert state["rows_dropped"] == 0

    client.send(make_rows(rng, 2 * WINDOW, shift=1.0, mix=(0.2, 0.3, 0.5)))
    state = client.wait_windows(4)
    assert check_windows(model, client, state) == [False, False, True, True]
    assert state["drift"] is True

    harness.wait_until(lambda: events(platform, "DriftDetected"), 30, "a DriftDetected event")
    [event] = events(platform, "DriftDetected")
    assert event["type"] == "Warning" and f"{NAME}-predictor-00001" in event["message"]
    harness.wait_until(lambda: platform_drift(platform).get("drift") is True, 30,
                       "the platform to read the drift")
    described = platform.cli("describe", "isvc", NAME).stdout
    assert "Drift:" in described and "Drifting" in described, described
    assert "2000 rows, 4 features (categorical: 3)" in described, described

    # The replica's own metrics.
    [rev] = platform.revisions(NAME)
    port = rev["status"]["replicaStatuses"][0]["port"]
    metrics = requests.get(f"http://{harness.HOST}:{port}/metrics", timeout=10).text
    assert f'osprey_drift_detected{{model="{NAME}"}} 1' in metrics
    assert f'osprey_drift_windows_total{{model="{NAME}"}} 4' in metrics
    assert f'osprey_drift_windows_drifted_total{{model="{NAME}"}} 2' in metrics
    assert f'osprey_drift_rows_dropped_total{{model="{NAME}"}} 0' in metrics
    for f in range(FEATURES):
        assert f'osprey_drift_p_value{{model="{NAME}",feature="{f}"}}' in metrics
    assert f'osprey_outlier_score_count{{model="{NAME}"}} {4 * WINDOW}' in metrics

    client.send(make_rows(rng, WINDOW))
    state = client.wait_windows(5)
    assert check_windows(model, client, state)[-1] is False
    harness.wait_until(lambda: events(platform, "DriftEnded"), 30, "a DriftEnded event")
    harness.wait_until(lambda: platform_drift(platform).get("drift") is False, 30,
                       "the platform to read the end of the drift")
    assert "No drift" in platform.cli("describe", "isvc", NAME).stdout

    # Outlier scores on the answer.
    threshold = state["outlier_threshold"]
    far = client.predict(np.array([[40.0, 5.0, 5.0, 1.0]]))
    near = client.predict(np.array([[0.0, 5.0, 5.0, 1.0]]))
    assert float(far.headers["x-osprey-outlier-score"]) > threshold
    assert float(near.headers["x-osprey-outlier-score"]) < threshold
    assert client.state()["outliers_total"] >= 1


def test_annotations_are_part_of_the_revision(platform, model):
    # Runs after the test above (same service): a new window rolls out. The
    # reference is given relative to the manifest, as a storageUri may be.
    manifest = model["reference_path"].parent / "drifty.yaml"
    manifest.write_text(isvc(model, window=100).replace(str(model["reference_path"]),
                                                        model["reference_path"].name))
    platform.apply(manifest)
    harness.wait_until(lambda: len(platform.revisions(NAME)) == 2, 30, "a second revision")
    client = Client(platform)
    harness.wait_until(lambda: client.state()["window"] == 100, 60,
                       "the new revision's replica to serve")
    assert client.state()["reference_rows"] == 2000
    annotations = platform.isvc(NAME)["metadata"]["annotations"]
    assert annotations["serving.osprey.dev/drift-reference"] == str(model["reference_path"])
    # Settings without a reference are refused by nobody and do nothing:
    # a service without the annotations has no detector.
    r = requests.get(f"{platform.api}/osprey/v1/namespaces/default/inferenceservices/none/drift",
                     headers=platform.auth, timeout=10)
    assert r.status_code == 404


def test_rows_with_nan_are_served_and_left_out_of_the_tests(platform, model):
    # Runs after the tests above (same service). XGBoost takes NaN as a
    # missing value: the request is answered; the detector counts the row and
    # keeps testing windows.
    client = Client(platform)
    before = client.state()
    r = requests.post(f"{platform.gateway}/v1/models/{NAME}:predict",
                      data='{"instances": [[NaN, 5.0, 1.0, 0], [0.5, Infinity, 2.0, 1]]}',
                      headers={"Host": platform.host(NAME), "Content-Type": "application/json"},
                      timeout=harness.HTTP_TIMEOUT_S)
    assert r.status_code == 200, r.text
    harness.wait_until(lambda: client.state()["rows_not_finite"] == before["rows_not_finite"] + 2,
                       10, "two rows counted as not finite")
    client.send(make_rows(model["rng"], before["window"]))
    client.wait_windows(before["windows_tested"] + 1)


def test_a_reference_of_another_width_fails_the_revision(platform, model):
    wide = model["reference_path"].parent / "wide.npy"
    np.save(wide, np.hstack([model["reference"], model["reference"][:, :1]]))
    platform.apply_text(isvc(model).replace(f"name: {NAME}", "name: too-wide")
                        .replace(str(model["reference_path"]), str(wide)), wait=False)

    def failed():
        revs = platform.revisions("too-wide")
        return revs and revs[0]["status"].get("phase") == "Failed" and revs[0]["status"].get("message")

    harness.wait_until(failed, 30, "the revision fails naming the widths")
    message = platform.revisions("too-wide")[0]["status"]["message"]
    assert "--drift-reference has 5 features per row; model too-wide takes 4" in message, message
