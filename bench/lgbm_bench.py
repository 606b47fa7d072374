"""LightGBM: Osprey's native evaluator against the lightgbm package, same run.

Model: binary classifier, 28 features (one categorical, 10% missing values in
two), 200 trees of up to 63 leaves, trained with lightgbm 4.5.0 on synthetic
rows. Three engines on the same rows, one thread each, pinned to the server CPU:

  osprey                     Osprey's evaluator in-process (bench/lgbm_bench.cc)
  lightgbm                   LightGBM's C API predict (LGBM_BoosterPredictForMat)
  lightgbm-single-row-fast   its fastest one-row path (batch 1 only)
  lightgbm (Python)          Booster.predict(num_threads=1): what KServe's lgbserver calls

The Python call overhead is reported apart: Python predict minus the C API's
cost for the same batch. Each measurement runs BENCH_RUNS times; medians.

Goal (issue: native backends): Osprey faster than lightgbm's predict at batch 1
and at batch 1000. Output: build/bench/lgbm_results.{md,json}.
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
BENCH_BIN = Path(os.environ.get("OSPREY_LGBM_BENCH",
                                ROOT / "build/release/bench/osprey_lgbm_bench"))


def train(directory: Path):
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, FEATURES))
    X[:, 5] = rng.integers(0, 20, size=len(X))
    X[rng.random(len(X)) < 0.1, 0] = np.nan
    X[rng.random(len(X)) < 0.1, 1] = np.nan
    logit = X[:, 2] - X[:, 3] * X[:, 4] + np.nan_to_num(X[:, 0]) + (X[:, 5] % 4 == 1)
    y = (logit + rng.normal(size=len(X)) > 0).astype(float)
    params = {"objective": "binary", "num_leaves": 63, "verbose": -1, "num_threads": 1,
              "seed": 0}
    booster = lgb.train(params, lgb.Dataset(X, label=y, categorical_feature=[5]),
                        num_boost_round=200)
    model = directory / "model.txt"
    booster.save_model(str(model))
    rows = rng.normal(size=(4000, FEATURES))
    rows[:, 5] = rng.integers(0, 25, size=len(rows))
    rows[rng.random(len(rows)) < 0.1, 0] = np.nan
    rows_path = directory / "rows.f64"
    rows_path.write_bytes(np.ascontiguousarray(rows, dtype="<f8").tobytes())
    return model, rows, rows_path


def native_run(model: Path, rows_path: Path) -> dict:
    import lightgbm

    lib = Path(lightgbm.__file__).parent / "lib" / "lib_lightgbm.so"
    cmd = common.pinned(common.CFG.server_cpu, [str(BENCH_BIN), str(model), str(rows_path),
                                                str(FEATURES), str(lib), str(SECONDS)])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS * 20 + 60)
    if done.returncode != 0:
        raise common.BenchError(f"osprey_lgbm_bench failed ({done.returncode}): {done.stderr}")
    return {(r["engine"], r["batch"]): r["rows_per_s"]
            for r in map(json.loads, done.stdout.splitlines())}


def python_run(model: Path, rows) -> dict:
    """Booster.predict from Python, one thread, on the server CPU."""
    import lightgbm as lgb

    os.sched_setaffinity(0, {int(common.CFG.server_cpu.split(",")[0])})
    booster = lgb.Booster(model_file=str(model))
    out = {}
    for batch in (1, 1000):
        slots = len(rows) // batch
        chunks = [rows[i * batch:(i + 1) * batch] for i in range(slots)]
        for chunk in chunks[:20]:
            booster.predict(chunk, num_threads=1)
        calls, start = 0, time.perf_counter()
        deadline = start + SECONDS
        while True:
            booster.predict(chunks[calls % slots], num_threads=1)
            calls += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        out[("lightgbm (Python)", batch)] = calls * batch / (now - start)
    return out


def main() -> int:
    if not BENCH_BIN.exists():
        print(f"lgbm bench: {BENCH_BIN} not built (cmake --build build/release)", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    work = OUT / "lgbm"
    work.mkdir(exist_ok=True)
    model, rows, rows_path = train(work)
    runs = []
    for i in range(RUNS):
        r = native_run(model, rows_path)
        r.update(python_run(model, rows))
        runs.append(r)
        common.log(f"lgbm run {i + 1}/{RUNS} done")
    keys = sorted(runs[0], key=lambda k: (k[1], k[0]))
    median = {k: statistics.median(r[k] for r in runs) for k in keys}

    lines = ["| Engine | batch | rows/s | us per call |", "|---|---:|---:|---:|"]
    for engine, batch in keys:
        rate = median[(engine, batch)]
        lines.append(f"| {engine} | {batch} | {rate:,.0f} | {batch / rate * 1e6:.2f} |")
    lines += ["", "| Goal | Target | Measured | Result |", "|---|---|---:|---|"]
    results = {}
    for batch in (1, 1000):
        ours = median[("osprey", batch)]
        c_api = median[("lightgbm", batch)]
        py = median[("lightgbm (Python)", batch)]
        best = max(c_api, median.get(("lightgbm-single-row-fast", batch), 0))
        overhead_us = (batch / py - batch / c_api) * 1e6
        results[batch] = {"osprey_vs_python": ours / py, "osprey_vs_c_api": ours / best,
                          "python_overhead_us": overhead_us}
        lines.append(f"| batch {batch}: Osprey vs lightgbm predict (Python) | > 1x rows/s | "
                     f"{ours / py:.2f}x | {'PASS' if ours > py else 'FAIL'} |")
        lines.append(f"| batch {batch}: Osprey vs lightgbm C API (best path), 1 thread | > 1x | "
                     f"{ours / best:.2f}x | {'PASS' if ours > best else 'FAIL'} |")
        lines.append(f"| batch {batch}: lightgbm's Python call overhead | reported | "
                     f"{overhead_us:.1f} us/call | |")
    table = "\n".join(lines)
    print(table)
    (OUT / "lgbm_results.md").write_text(table + "\n")
    (OUT / "lgbm_results.json").write_text(json.dumps(
        {"runs": [{f"{k[0]}@{k[1]}": v for k, v in r.items()} for r in runs],
         "goals": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
