"""Drift detection: Osprey's detector against alibi-detect's KSDrift, and the
cost of detection to a replica at saturation.

1. Per-window test time and decisions. A reference of 5,000 rows x 8
   continuous features and 40 windows of 500 rows (20 from the reference's
   distribution, 20 with one feature shifted by 0.05 to 0.4 standard
   deviations, so that some decisions are close). On the same windows:
     osprey     the detector a replica runs (bench/drift_bench.cc: rows in
                through Detector::Observe, the detector thread's own time per
                window), KS per feature with scipy's default ('auto' = exact)
                p-value, Bonferroni
     alibi      alibi_detect.cd.KSDrift(x_ref, p_val=0.05) (Bonferroni by
                default), cd.predict(window) timed per window; alibi-detect
                computes the KS p-value in scipy's 'asymp' mode
   Both pinned to the server CPU, one thread. Reported: the median per-window
   time of each (median of BENCH_RUNS runs), the ratio, how many decisions
   agree, and Osprey's p-values against scipy.stats.ks_2samp's (max abs
   difference; the tests require 1e-6).
2. Throughput at saturation with detection on vs off: `osprey serve
   --http-threads 1` with bench/run.py's iris model and V2 JSON request (wrk,
   32 connections, server and client on separate CPUs, BENCH_RUNS runs,
   medians), without and with --drift-reference (the iris data, window 500,
   --outlier-header). Goal: on/off >= 0.95.

Output: build/bench/drift_results.{md,json}.
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
OUT = common.OUT_DIR / "drift"
RUNS = common.CFG.runs
REF_ROWS, FEATURES, WINDOW, WINDOWS = 5000, 8, 500, 40
BENCH_BIN = Path(os.environ.get("OSPREY_DRIFT_BENCH",
                                ROOT / "build/release/bench/osprey_drift_bench"))
GOAL_THROUGHPUT = 0.95


def data():
    import numpy as np

    rng = np.random.default_rng(7)
    reference = rng.normal(size=(REF_ROWS, FEATURES))
    windows = []
    for i in range(WINDOWS):
        w = rng.normal(size=(WINDOW, FEATURES))
        if i >= WINDOWS // 2:
            w[:, i % FEATURES] += 0.05 + 0.35 * (i - WINDOWS // 2) / (WINDOWS // 2 - 1)
        windows.append(w)
    return reference, np.concatenate(windows)


def osprey_windows(ref_path, rows_path):
    cmd = common.pinned(common.CFG.server_cpu, [str(BENCH_BIN), str(ref_path), str(rows_path),
                                                str(WINDOW)])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout)["windows"]


ALIBI = r"""
import json, sys, time
sys.modules["tensorflow"] = None  # alibi-detect's numpy detectors; its TF extras need tfp
import numpy as np
from alibi_detect.cd import KSDrift
ref = np.load(sys.argv[1]); rows = np.load(sys.argv[2]); window = int(sys.argv[3])
cd = KSDrift(ref, p_val=0.05)
out = []
for i in range(len(rows) // window):
    w = rows[i * window:(i + 1) * window]
    start = time.perf_counter()
    pred = cd.predict(w)
    out.append({"seconds": time.perf_counter() - start, "drift": bool(pred["data"]["is_drift"]),
                "p_values": [float(p) for p in pred["data"]["p_val"]]})
print(json.dumps({"version": __import__("alibi_detect").__version__, "windows": out}))
"""


def alibi_windows(ref_path, rows_path):
    cmd = common.pinned(common.CFG.server_cpu, [common.CFG.python, "-c", ALIBI, str(ref_path),
                                                str(rows_path), str(WINDOW)])
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if out.returncode != 0:
        raise common.BenchError(f"alibi-detect: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def window_bench():
    import numpy as np
    from scipy import stats

    OUT.mkdir(parents=True, exist_ok=True)
    reference, rows = data()
    ref_path, rows_path = OUT / "reference.npy", OUT / "windows.npy"
    np.save(ref_path, reference)
    np.save(rows_path, rows)
    result = {"reference_rows": REF_ROWS, "features": FEATURES, "window": WINDOW,
              "windows": WINDOWS}
    osprey_runs, alibi_runs = [], []
    osprey, alibi = None, None
    for _ in range(RUNS):
        osprey = osprey_windows(ref_path, rows_path)
        osprey_runs.append(statistics.median(w["seconds"] for w in osprey))
        try:
            alibi = alibi_windows(ref_path, rows_path)
            alibi_runs.append(statistics.median(w["seconds"] for w in alibi["windows"]))
        except (common.BenchError, subprocess.TimeoutExpired, ValueError) as e:
            common.log(f"drift: alibi-detect not run: {e}")
    # Osprey's p-values against scipy's default mode on the same windows.
    worst = 0.0
    for i, w in enumerate(osprey):
        window = rows[i * WINDOW:(i + 1) * WINDOW]
        for f in range(FEATURES):
            p = stats.ks_2samp(reference[:, f], window[:, f]).pvalue
            worst = max(worst, abs(p - w["p_values"][f]))
    result["osprey_window_ms"] = statistics.median(osprey_runs) * 1e3
    result["osprey_drifted"] = sum(w["drift"] for w in osprey)
    result["max_abs_p_vs_scipy"] = worst
    if alibi_runs:
        result["alibi_version"] = alibi["version"]
        result["alibi_window_ms"] = statistics.median(alibi_runs) * 1e3
        result["alibi_drifted"] = sum(w["drift"] for w in alibi["windows"])
        result["same_decisions"] = sum(a["drift"] == o["drift"]
                                       for a, o in zip(alibi["windows"], osprey))
        result["speedup_vs_alibi"] = result["alibi_window_ms"] / result["osprey_window_ms"]
    return result


def iris_reference(path):
    import numpy as np
    from sklearn.datasets import load_iris

    np.save(path, load_iris().data.astype(np.float64))


def throughput_bench():
    """Both servers run at once (pinned to the server CPU; the idle one costs
    nothing) and wrk alternates between them, off then on, BENCH_RUNS times:
    a neighbour's load on this machine falls on both alike."""
    common.ensure_model()
    want = common.expected_predictions()
    ref = OUT / "iris.npy"
    iris_reference(ref)
    servers, scenarios = {}, {}
    try:
        for mode in ("off", "on"):
            port = common.free_port()
            cmd = [str(common.CFG.osprey_bin), "serve", "--model-dir", str(common.MODEL_DIR),
                   "--model-name", common.MODEL_NAME, "--http-port", str(port),
                   "--http-threads", "1", "--no-grpc"]
            if mode == "on":
                cmd += ["--drift-reference", str(ref), "--drift-window", "500",
                        "--outlier-header"]
            servers[mode] = common.ServerProcess(f"drift-{mode}", cmd, "/v2/health/ready", port)
            common.RUNNING.append(servers[mode])
            servers[mode].start()
            scenarios[mode] = common.Scenario(
                f"drift-{mode}-v2-json", f"Osprey detection {mode}", "drift", "v2-json",
                f"/v2/models/{common.MODEL_NAME}/infer", common.v2_json_body(),
                check=lambda a: common.check_v2_json(a, want))
            common.verify(scenarios[mode], port)
            if common.CFG.warmup_seconds > 0:
                common.run_wrk(scenarios[mode], port, common.CFG.warmup_seconds, "warmup")
        if "x-osprey-outlier-score" not in scenarios["on"].answer.headers:
            raise common.BenchError("detection on: no x-osprey-outlier-score on the answer")
        for i in range(1, RUNS + 1):
            for mode in ("off", "on"):
                r = common.run_wrk(scenarios[mode], servers[mode].port, common.CFG.seconds,
                                   f"run{i}")
                scenarios[mode].runs.append(r)
                common.log(f"detection {mode}: run {i}/{RUNS}: {r['rps']:.0f} req/s, "
                           f"p99 {r['p99_ms']:.3f} ms")
        # What the detector kept up with: rows seen, tested, dropped.
        state = json.loads(common.http_call(servers["on"].port, "GET",
                                            f"/v2/models/{common.MODEL_NAME}/drift").body)
    finally:
        for server in servers.values():
            common.forget(server)
            server.stop()
    out = {mode: {"rps": s.median("rps"), "p99_ms": s.median("p99_ms"), "runs": s.runs}
           for mode, s in scenarios.items()}
    out["detector"] = {k: state[k] for k in ("rows_seen", "rows_dropped", "windows_tested",
                                             "window")}
    return out


def main() -> int:
    status = 0
    data_out = {}
    lines = ["## Drift detection", ""]
    if not BENCH_BIN.exists():
        common.log(f"drift: {BENCH_BIN} not built")
        return 1
    try:
        w = window_bench()
        data_out["windows"] = w
        lines += [
            f"Per-window test: reference {REF_ROWS} x {FEATURES}, {WINDOWS} windows of {WINDOW} "
            f"rows, one thread (median of {RUNS} runs)",
            "",
            "| engine | ms per window | windows drifted | vs Osprey |",
            "|---|---|---|---|",
            f"| Osprey detector (KS exact, Bonferroni) | {w['osprey_window_ms']:.2f} | "
            f"{w['osprey_drifted']}/{WINDOWS} | 1.00x |",
        ]
        if "alibi_window_ms" in w:
            lines.append(f"| alibi-detect {w['alibi_version']} KSDrift (KS asymp) | "
                         f"{w['alibi_window_ms']:.2f} | {w['alibi_drifted']}/{WINDOWS} | "
                         f"{w['speedup_vs_alibi']:.2f}x slower |")
            lines += ["", f"Same decisions as alibi-detect: {w['same_decisions']}/{WINDOWS} "
                      "windows"]
        else:
            lines += ["", "alibi-detect: not available"]
        lines.append(f"Osprey's p-values vs scipy.stats.ks_2samp: max abs difference "
                     f"{w['max_abs_p_vs_scipy']:.2e}")
    except (common.BenchError, subprocess.CalledProcessError, OSError) as e:
        common.log(f"drift: window bench failed: {e}")
        status = 1
    try:
        t = throughput_bench()
        data_out["throughput"] = t
        ratio = t["on"]["rps"] / t["off"]["rps"]
        data_out["throughput_ratio"] = ratio
        lines += [
            "",
            "Saturation, osprey serve --http-threads 1, V2 JSON iris (median of runs)",
            "",
            "| detection | req/s | p99 ms |",
            "|---|---|---|",
            f"| off | {t['off']['rps']:.0f} | {t['off']['p99_ms']:.3f} |",
            f"| on (drift window 500, outlier header) | {t['on']['rps']:.0f} | "
            f"{t['on']['p99_ms']:.3f} |",
            "",
            f"on/off: {ratio:.3f} (goal >= {GOAL_THROUGHPUT}: "
            f"{'PASS' if ratio >= GOAL_THROUGHPUT else 'FAIL'})",
            "",
            f"The detector (on the server's one CPU): {t['detector']['rows_seen']} rows "
            f"seen, {t['detector']['rows_dropped']} dropped "
            f"({100.0 * t['detector']['rows_dropped'] / max(1, t['detector']['rows_seen']):.1f}%), "
            f"{t['detector']['windows_tested']} windows of {t['detector']['window']} tested",
        ]
    except (common.BenchError, OSError) as e:
        common.log(f"drift: throughput bench failed: {e}")
        status = 1
    text = "\n".join(lines) + "\n"
    print(text)
    common.OUT_DIR.mkdir(parents=True, exist_ok=True)
    (common.OUT_DIR / "drift_results.md").write_text(text)
    (common.OUT_DIR / "drift_results.json").write_text(json.dumps(data_out, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
