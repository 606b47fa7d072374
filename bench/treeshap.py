"""TreeSHAP: Osprey's explainers against xgboost's and lightgbm's own
contribution predictors, same run, one thread each, pinned to the server CPU.

Models (synthetic rows, 28 features, 10% missing values in two of them):
  xgboost   binary:logistic, 200 trees of depth 6 (hist)
  lightgbm  binary, 200 trees of up to 63 leaves, one categorical feature
            (the model of bench/lgbm_bench.py)

Engines on the same rows:
  osprey               Osprey's explainer in-process (bench/treeshap_bench.cc:
                       the XGBoost and LightGBM backends' TreeSHAP, what
                       :explain runs after decoding the request)
  xgboost / lightgbm   the frameworks' C APIs: XGDMatrixCreateFromMat +
                       XGBoosterPredictFromDMatrix type 2 (pred_contribs), LGBM_BoosterPredictForMat
                       C_API_PREDICT_CONTRIB, nthread=1 / num_threads=1
  ... (Python)         Booster.predict(pred_contribs=True) /
                       predict(pred_contrib=True) from Python, one thread

The bench binary checks first that Osprey's contributions equal the
framework's (1e-5 relative, 1e-6 floor). Each measurement runs BENCH_RUNS
times (default 3); medians. Goal (issue 16): Osprey faster than both
frameworks at batch 1 and at batch 1000. Output: build/bench/treeshap_results.{md,json}.
"""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402

ROOT = common.ROOT
OUT = common.OUT_DIR
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10")) / 5  # per engine and batch
FEATURES = 28
ROWS = 4000
BENCH_BIN = Path(os.environ.get("OSPREY_TREESHAP_BENCH",
                                ROOT / "build/release/bench/osprey_treeshap_bench"))


def rows(rng, n):
    import numpy as np

    X = rng.normal(size=(n, FEATURES))
    X[:, 5] = rng.integers(0, 20, size=n)
    X[rng.random(n) < 0.1, 0] = np.nan
    X[rng.random(n) < 0.1, 1] = np.nan
    return X


def train(directory: Path):
    import lightgbm as lgb
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rows(rng, 20000)
    logit = X[:, 2] - X[:, 3] * X[:, 4] + np.nan_to_num(X[:, 0]) + (X[:, 5] % 4 == 1)
    y = (logit + rng.normal(size=len(X)) > 0).astype(float)
    booster = xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6,
                         "nthread": 1, "seed": 0}, xgb.DMatrix(X, label=y), num_boost_round=200)
    xgb_model = directory / "xgb.json"
    booster.save_model(str(xgb_model))
    params = {"objective": "binary", "num_leaves": 63, "verbose": -1, "num_threads": 1,
              "seed": 0}
    lgb_booster = lgb.train(params, lgb.Dataset(X, label=y, categorical_feature=[5]),
                            num_boost_round=200)
    lgb_model = directory / "lgb.txt"
    lgb_booster.save_model(str(lgb_model))
    probe = rows(rng, ROWS)
    (directory / "rows.f32").write_bytes(np.ascontiguousarray(probe, dtype="<f4").tobytes())
    (directory / "rows.f64").write_bytes(np.ascontiguousarray(probe, dtype="<f8").tobytes())
    return xgb_model, lgb_model, probe


def native_run(directory: Path, xgb_model: Path, lgb_model: Path) -> dict:
    import lightgbm

    lib = Path(lightgbm.__file__).parent / "lib" / "lib_lightgbm.so"
    out = {}
    for framework, args in (
            ("xgboost", [str(xgb_model), str(directory / "rows.f32"), str(FEATURES),
                         str(SECONDS)]),
            ("lightgbm", [str(lgb_model), str(directory / "rows.f64"), str(FEATURES), str(lib),
                          str(SECONDS)])):
        cmd = common.pinned(common.CFG.server_cpu, [str(BENCH_BIN), framework, *args])
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS * 20 + 120)
        if done.returncode != 0:
            raise common.BenchError(
                f"osprey_treeshap_bench {framework} failed ({done.returncode}): {done.stderr}")
        for r in map(json.loads, done.stdout.splitlines()):
            engine = f"osprey ({framework} model)" if r["engine"] == "osprey" else r["engine"]
            out[(engine, r["batch"])] = r["rows_per_s"]
    return out


def python_run(xgb_model: Path, lgb_model: Path, probe) -> dict:
    """The frameworks' contribution predictors from Python, one thread."""
    import lightgbm as lgb
    import xgboost as xgb

    os.sched_setaffinity(0, {int(common.CFG.server_cpu.split(",")[0])})
    xb = xgb.Booster(model_file=str(xgb_model))
    xb.set_param({"nthread": 1})
    lb = lgb.Booster(model_file=str(lgb_model))
    calls = {
        "xgboost (Python)": lambda X: xb.predict(xgb.DMatrix(X, nthread=1), pred_contribs=True),
        "lightgbm (Python)": lambda X: lb.predict(X, pred_contrib=True, num_threads=1),
    }
    out = {}
    for engine, call in calls.items():
        for batch in (1, 1000):
            slots = len(probe) // batch
            chunks = [probe[i * batch:(i + 1) * batch] for i in range(slots)]
            for chunk in chunks[:5]:
                call(chunk)
            n, start = 0, time.perf_counter()
            deadline = start + SECONDS
            while True:
                call(chunks[n % slots])
                n += 1
                now = time.perf_counter()
                if now >= deadline:
                    break
            out[(engine, batch)] = n * batch / (now - start)
    return out


def main() -> int:
    if not BENCH_BIN.exists():
        print(f"treeshap bench: {BENCH_BIN} not built (cmake --build build/release)",
              file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    work = OUT / "treeshap"
    work.mkdir(exist_ok=True)
    xgb_model, lgb_model, probe = train(work)
    runs = []
    for i in range(RUNS):
        r = native_run(work, xgb_model, lgb_model)
        r.update(python_run(xgb_model, lgb_model, probe))
        runs.append(r)
        common.log(f"treeshap run {i + 1}/{RUNS} done")
    keys = sorted(runs[0], key=lambda k: (k[1], k[0]))
    median = {k: statistics.median(r[k] for r in runs) for k in keys}

    lines = ["| Engine | batch | rows/s | us per row |", "|---|---:|---:|---:|"]
    for engine, batch in keys:
        rate = median[(engine, batch)]
        lines.append(f"| {engine} | {batch} | {rate:,.0f} | {1e6 / rate:.2f} |")
    lines += ["", "| Goal | Target | Measured | Result |", "|---|---|---:|---|"]
    goals = {}
    for framework in ("xgboost", "lightgbm"):
        for batch in (1, 1000):
            ours = median[(f"osprey ({framework} model)", batch)]
            for ref in (framework, f"{framework} (Python)"):
                ratio = ours / median[(ref, batch)]
                goals[f"{ref}@{batch}"] = ratio
                lines.append(f"| batch {batch}: Osprey vs {ref} contributions, 1 thread | > 1x | "
                             f"{ratio:.2f}x | {'PASS' if ratio > 1 else 'FAIL'} |")
    table = "\n".join(lines)
    print(table)
    (OUT / "treeshap_results.md").write_text(table + "\n")
    (OUT / "treeshap_results.json").write_text(json.dumps(
        {"runs": [{f"{k[0]}@{k[1]}": v for k, v in r.items()} for r in runs],
         "goals": goals}, indent=1) + "\n")
    return 0 if all(v > 1 for v in goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
