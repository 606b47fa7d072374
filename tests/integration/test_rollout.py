"""Safe rollout through the gateway, under continuous load: KServe's
canaryTrafficPercent walked step by step, the observed split within one
percentage point of the configured one over 10k requests at each step, tag
hosts reaching their revision, a failing revision never taking traffic, and
not one failed request across all the transitions.
"""

import shutil
import time

import pytest
import requests

import harness
from platform_harness import Load, Platform, custom_server_yaml, example_models

IRIS_ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
WINDOW = 10_000


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = example_models()
    base = tmp_path_factory.mktemp("versions")
    dirs = {}
    for v in ("v1", "v2", "v3"):  # the same model under three URIs: three specs
        (base / v).mkdir()
        shutil.copy(root / "xgboost-iris" / "model.json", base / v / "model.json")
        dirs[v] = base / v
    (base / "broken").mkdir()
    (base / "broken" / "model.json").write_text("{ not a model")
    dirs["broken"] = base / "broken"
    return dirs


@pytest.fixture(scope="module")
def platform(osprey_bin, tmp_path_factory):
    p = Platform(osprey_bin, tmp_path_factory.mktemp("rollout") / "home").start()
    yield p
    p.stop_everything()


def manifest(uri, canary=None):
    canary_line = f"\n    canaryTrafficPercent: {canary}" if canary is not None else ""
    return f"""apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: canary
  annotations:
    serving.kserve.io/enable-tag-routing: "true"
spec:
  predictor:{canary_line}
    model:
      modelFormat:
        name: xgboost
      storageUri: {uri}
"""


def rev(n):
    return f"canary-predictor-{n:05d}"


def traffic(platform):
    t = platform.isvc("canary")["status"]["components"]["predictor"]["traffic"]
    return {e["revisionName"]: e["percent"] for e in t}


def check_split(load, want):
    """The next WINDOW answers split as `want` ({revision: percent}) within 1 pp."""
    got = load.window(WINDOW)
    for revision, percent in want.items():
        observed = 100.0 * got.get(revision, 0) / WINDOW
        assert abs(observed - percent) <= 1.0, (revision, observed, percent, got)
    assert set(got) <= {r for r, p in want.items() if p > 0}, got


def test_canary_rollout_table_under_load(platform, models):
    platform.apply_text(manifest(models["v1"]))
    host = platform.host("canary")
    load = Load(platform.gateway_port, host, "/v1/models/canary:predict",
                {"instances": IRIS_ROWS}).start()
    try:
        # 1: v1 takes everything.
        check_split(load, {rev(1): 100})
        # 2: v2 with canaryTrafficPercent 10.
        platform.apply_text(manifest(models["v2"], 10))
        assert traffic(platform) == {rev(2): 10, rev(1): 90}
        check_split(load, {rev(2): 10, rev(1): 90})
        row = next(l for l in platform.cli("get", "isvc").stdout.splitlines()
                   if l.startswith("canary "))
        assert row.split()[3:5] == ["90", "10"], row  # PREV and LATEST percents
        # The predictor reads as the Knative Service KServe makes for it.
        ksvc = platform.get_json("ksvc", "canary-predictor")
        assert ksvc["metadata"]["labels"]["serving.kserve.io/inferenceservice"] == "canary"
        assert ksvc["status"]["latestCreatedRevisionName"] == rev(2)
        assert [(t["revisionName"], t["percent"], t.get("tag")) for t in
                ksvc["status"]["traffic"]] == [(rev(2), 10, "latest"), (rev(1), 90, "prev")], \
            ksvc["status"]["traffic"]
        rows = [l.split() for l in platform.cli("get", "ksvc").stdout.splitlines()]
        mine = [r for r in rows if r[0] == "canary-predictor"]
        assert mine and mine[0][2:4] == [rev(2), rev(2)] and mine[0][4] == "True", rows
        # Tag routing: latest- and prev- hosts reach their revision directly.
        for tag, want in (("latest", rev(2)), ("prev", rev(1))):
            r = requests.post(f"{platform.gateway}/v1/models/canary:predict",
                              json={"instances": IRIS_ROWS}, headers={"Host": f"{tag}-{host}"})
            assert r.status_code == 200 and r.headers["x-osprey-revision"] == want, (tag, r.text)
        # 3: canaryTrafficPercent 0 rolls back; v2 stays deployed.
        platform.apply_text(manifest(models["v2"], 0))
        assert traffic(platform) == {rev(2): 0, rev(1): 100}
        check_split(load, {rev(1): 100})
        revs = {r["metadata"]["name"]: r for r in platform.revisions("canary")}
        assert revs[rev(2)]["status"]["readyReplicas"] == 1
        # 4: canaryTrafficPercent 30.
        platform.apply_text(manifest(models["v2"], 30))
        assert traffic(platform) == {rev(2): 30, rev(1): 70}
        check_split(load, {rev(2): 30, rev(1): 70})
        # 5: the field removed: v2 is promoted and becomes the rolled-out revision.
        platform.apply_text(manifest(models["v2"]))
        assert traffic(platform) == {rev(2): 100}
        pred = platform.isvc("canary")["status"]["components"]["predictor"]
        assert pred["latestRolledoutRevision"] == rev(2)
        assert pred["previousRolledoutRevision"] == rev(1)
        check_split(load, {rev(2): 100})
        # 6: v3 with canaryTrafficPercent 20 against v2.
        platform.apply_text(manifest(models["v3"], 20))
        assert traffic(platform) == {rev(3): 20, rev(2): 80}
        check_split(load, {rev(3): 20, rev(2): 80})
        # A failing revision never gets traffic, even as a canary.
        out = platform.apply_text(manifest(models["broken"], 50), check=False)
        assert out.returncode != 0 and "ModelLoadFailed" in out.stderr, out.stderr
        assert traffic(platform) == {rev(2): 100}
        check_split(load, {rev(2): 100})
    finally:
        total, failures = load.stop()
    assert total >= 7 * WINDOW
    assert failures == [], failures[:5]
    # v1 was retired along the way: no replica left.
    revs = {r["metadata"]["name"]: r for r in platform.revisions("canary")}
    assert revs[rev(1)]["status"]["replicas"] == 0
    assert revs[rev(1)]["status"]["phase"] == "Retired"


def test_shadow_traffic_reaches_the_latest_revision_without_moving_traffic(platform, models):
    def shadow(uri, canary=None, mirror=None):
        text = manifest(uri, canary).replace("name: canary", "name: shadow")
        if mirror is not None:
            text = text.replace("  annotations:\n",
                                f'  annotations:\n    serving.osprey.dev/mirror-percent: "{mirror}"\n')
        return text

    platform.apply_text(shadow(models["v1"]))
    platform.apply_text(shadow(models["v2"], canary=0, mirror=100))
    host = platform.host("shadow")
    for _ in range(200):
        r = requests.post(f"{platform.gateway}/v1/models/shadow:predict",
                          json={"instances": IRIS_ROWS}, headers={"Host": host})
        assert r.status_code == 200
        assert r.headers["x-osprey-revision"] == "shadow-predictor-00001"

    def mirrored():
        text = requests.get(f"{platform.api}/metrics").text
        line = ('osprey_gateway_requests_total{namespace="default",inferenceservice="shadow",'
                'component="predictor",revision="shadow-predictor-00002",code_class="2xx"} ')
        return any(l.startswith(line) and int(l[len(line):]) == 200 for l in text.splitlines())

    harness.wait_until(mirrored, 10, "200 shadow copies answered by revision 2")


def test_answers_of_every_framing_pass_through(platform, tmp_path):
    """Content-Length answers on kept-alive HTTP/1.1 connections, chunked
    answers, HTTP/1.0 answers that close the connection, and HEAD: the body
    and the replica's own headers arrive, re-framed by length."""
    model = tmp_path / "framing"
    model.mkdir()
    platform.apply_text(custom_server_yaml("framing", model))
    url = f"{platform.gateway}/v1/models/framing"
    headers = {"Host": platform.host("framing")}
    kept_conns = set()
    with requests.Session() as s:
        for _ in range(3):
            for suffix, framing in ((":predict", None), ("/http11", "http11"),
                                    ("/chunked", "chunked")):
                r = s.post(url + suffix, json={"instances": [[1]]}, headers=headers, timeout=10)
                assert r.status_code == 200, (suffix, r.text)
                assert r.json() == {"predictions": [1]}, suffix
                assert r.headers.get("x-answer-framing") == framing, r.headers
                assert "transfer-encoding" not in r.headers, r.headers
                assert r.headers["content-length"] == str(len(r.content))
                assert r.headers["x-osprey-revision"] == "framing-predictor-00001"
                assert "server" not in r.headers  # the replica's Server line is dropped
                if framing:
                    kept_conns.add(r.headers["x-conn"])
        r = s.head(url + "/http11", headers=headers, timeout=10)
        assert r.status_code == 200 and r.content == b""
    # One client connection, one gateway loop: its HTTP/1.1 answers all came
    # over one kept-alive replica connection.
    assert len(kept_conns) == 1, kept_conns
    # Broken answers are a 502 naming the revision; the gateway goes on.
    for broken in ("/hugelength", "/badheader"):
        r = requests.post(url + broken, json={"instances": [[1]]}, headers=headers, timeout=10)
        assert r.status_code == 502, (broken, r.status_code, r.text)
        assert "framing-predictor-00001" in r.json()["error"], r.text
        assert "transfer-encoding" not in r.headers
    r = requests.post(url + ":predict", json={"instances": [[1]]}, headers=headers, timeout=10)
    assert r.status_code == 200 and r.json() == {"predictions": [1]}
    platform.cli("delete", "isvc", "framing")


def test_route_timeout_answers_504_and_is_never_retried(platform, tmp_path):
    model = tmp_path / "slow"
    model.mkdir()
    (model / "delay").write_text("3")
    platform.apply_text(custom_server_yaml("slow", model, "\n    timeout: 1\n    minReplicas: 2"))
    t0 = time.monotonic()
    r = requests.post(f"{platform.gateway}/v1/models/slow:predict", json={"instances": [[1]]},
                      headers={"Host": platform.host("slow")}, timeout=30)
    waited = time.monotonic() - t0
    assert r.status_code == 504, r.text
    assert "slow-predictor-00001" in r.json()["error"]
    assert 0.9 <= waited < 2.5, waited
    time.sleep(0.5)  # a retry, if there were one, would have reached the other replica by now
    assert (model / "posts.log").read_text().count("post") == 1
    platform.cli("delete", "isvc", "slow")
