"""The memory-aware model cache of `osprey serve` (--model-memory-budget): 50
XGBoost models in a repository, a budget that fits about 10 of them, and a
Zipf mix of V1 and V2 requests from several threads:

- every request is answered, and answered right (each model's own
  predictions, as xgboost computes them), though most models are evicted
  and loaded again many times;
- the models held never pass the budget by more than one model (a busy model
  is never evicted; the rest are), and the budget's series are on /metrics:
  loads, evictions, hits and misses (the hit ratio is printed), the bytes in
  use and per model;
- an evicted model shows as UNAVAILABLE in the repository index with the
  reason, and the server stays ready;
- a model larger than the whole budget is refused with ResourceExhausted's
  reason; a budget that is not a size is refused at the start.
"""

import re
import subprocess
import threading

import numpy as np
import pytest
import requests

import harness

xgb = pytest.importorskip("xgboost")

N_MODELS = 50
FITS = 10
ROWS = np.array([[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6], [5.1, 3.5, 1.4, 0.2]],
                dtype=np.float32)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """50 small multi-class XGBoost models, each trained on other data."""
    root = tmp_path_factory.mktemp("cache-repo")
    expected = {}
    for i in range(N_MODELS):
        rng = np.random.default_rng(i)
        X = rng.normal(size=(120, 4)).astype(np.float32) * 2 + 4
        y = rng.integers(0, 3, size=120)
        booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3,
                             "seed": i}, xgb.DMatrix(X, label=y), num_boost_round=8)
        name = f"m{i:02d}"
        (root / name).mkdir()
        booster.save_model(str(root / name / "model.json"))
        expected[name] = booster.predict(xgb.DMatrix(ROWS))
    return root, expected


def metrics(server):
    text = server.get("/metrics").text
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(osprey_model_\w+)(\{[^}]*\})? (\S+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def predict(server, name, i):
    if i % 2:  # V1
        r = server.post(f"/v1/models/{name}:predict", json={"instances": ROWS.tolist()})
        return r, (np.asarray(r.json()["predictions"]) if r.status_code == 200 else None)
    r = server.post(f"/v2/models/{name}/infer", json=harness.v2_json_request(ROWS))
    if r.status_code != 200:
        return r, None
    out = r.json()["outputs"][0]
    return r, np.asarray(out["data"]).reshape(out["shape"])


@pytest.fixture(scope="module")
def sizes(launcher, repo):
    """Each model's resident bytes, measured by a server with room for all."""
    root, _ = repo
    with launcher.serve(["--model-repository", root, "--no-load-on-start",
                         "--model-memory-budget", "4Gi"], label="cache-sizes") as s:
        for i in range(N_MODELS):
            r, _ = predict(s, f"m{i:02d}", i)
            assert r.status_code == 200, r.text
        m = metrics(s)
    got = {n: m[f'osprey_model_resident_bytes{{model="{n}"}}'] for n in
           (f"m{i:02d}" for i in range(N_MODELS))}
    assert all(v > 0 for v in got.values()), got
    assert m["osprey_model_cache_evictions_total"] == 0
    return got


def test_zipf_mix_through_a_budget_that_fits_ten(launcher, repo, sizes):
    root, expected = repo
    budget = int(sum(sorted(sizes.values())[-FITS:]) * 1.05)
    with launcher.serve(["--model-repository", root, "--no-load-on-start",
                         "--model-memory-budget", str(budget)], label="cache-zipf") as s:
        rng = np.random.default_rng(7)
        ranks = np.arange(1, N_MODELS + 1)
        weights = 1.0 / ranks ** 1.1
        order = rng.permutation(N_MODELS)  # which model has which rank
        picks = order[rng.choice(N_MODELS, size=1200, p=weights / weights.sum())]
        failures, wrong, peak = [], [], [0.0]
        lock = threading.Lock()

        def client(part):
            for j, k in enumerate(part):
                name = f"m{k:02d}"
                r, got = predict(s, name, j)
                with lock:
                    if r.status_code != 200:
                        failures.append((name, r.status_code, r.text[:200]))
                    elif not np.allclose(got, expected[name], rtol=1e-5, atol=1e-6):
                        wrong.append(name)

        def watch(stop):
            while not stop.is_set():
                used = metrics(s).get("osprey_model_cache_used_bytes", 0)
                peak[0] = max(peak[0], used)
                stop.wait(0.05)

        stop = threading.Event()
        watcher = threading.Thread(target=watch, args=(stop,))
        watcher.start()
        threads = [threading.Thread(target=client, args=(picks[t::6],)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        watcher.join()
        assert failures == [], failures[:5]
        assert wrong == [], wrong[:5]
        m = metrics(s)
        hits = m['osprey_model_cache_requests_total{result="hit"}']
        misses = m['osprey_model_cache_requests_total{result="miss"}']
        print(f"\nmodel cache: {hits:.0f} hits, {misses:.0f} misses, hit ratio "
              f"{hits / (hits + misses):.3f}, {m['osprey_model_cache_loads_total']:.0f} loads, "
              f"{m['osprey_model_cache_evictions_total']:.0f} evictions, budget {budget} bytes, "
              f"peak {peak[0]:.0f} bytes in use")
        assert hits + misses == len(picks)
        assert misses >= N_MODELS - FITS  # every model was asked for, most did not fit
        # Only what fits stays loaded (the rest of the loads were evicted),
        # and the per-model series add up to the bytes in use.
        resident = {k: v for k, v in m.items() if k.startswith("osprey_model_resident_bytes")}
        assert 1 <= len(resident) < N_MODELS // 3
        assert (m["osprey_model_cache_loads_total"] - m["osprey_model_cache_evictions_total"]
                == len(resident))
        assert sum(resident.values()) == m["osprey_model_cache_used_bytes"] <= budget
        assert peak[0] <= budget + max(sizes.values())
        # Evicted models are UNAVAILABLE with the reason; the server stays ready.
        index = s.repository_index()
        evicted = [e for e in index.values() if e["reason"] == "evicted to fit the memory budget"]
        assert evicted and all(e["state"] == "UNAVAILABLE" for e in evicted)
        assert s.get("/v2/health/ready").status_code == 200


def test_a_model_larger_than_the_budget_is_refused(launcher, repo, sizes):
    root, _ = repo
    budget = int(min(sizes.values()) // 4)
    with launcher.serve(["--model-repository", root, "--no-load-on-start",
                         "--model-memory-budget", str(budget)], label="cache-tiny") as s:
        r = s.post("/v2/models/m00/infer", json=harness.v2_json_request(ROWS))
        assert r.status_code == 503, r.text
        assert "more than the memory budget" in r.json()["error"], r.text
        # Other requests still work as well as they can: the same answer, no crash.
        r = s.post("/v1/models/m01:predict", json={"instances": ROWS.tolist()})
        assert r.status_code == 503 and "more than the memory budget" in r.json()["error"]
        assert s.get("/v2/health/live").status_code == 200


def test_a_budget_that_is_not_a_size_is_refused(osprey_bin, repo):
    root, _ = repo
    r = subprocess.run([str(osprey_bin), "serve", "--model-repository", str(root),
                        "--model-memory-budget", "lots"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2
    assert "--model-memory-budget" in r.stderr and "not a byte size" in r.stderr, r.stderr
