"""scikit-learn: Osprey's Python runtime against KServe's sklearnserver, same
run, same model: an iris SVC (model.joblib), the two-row V2 JSON request of
KServe's e2e test, 32 connections, every server pinned to the server CPU (its
worker processes too), wrk on the client CPU, BENCH_RUNS runs each, medians.

Scenarios: Osprey (2 workers, adaptive batching: the default), Osprey with
batches of one (--max-batch-size 1: the gain from batching), KServe.
Goal (issue: Python runtime): Osprey >= 5x KServe's requests/s, lower p99.
Output: build/bench/sklearn_results.{md,json}.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402

OUT = common.OUT_DIR
HERE = Path(__file__).resolve().parent
ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64",
                               "data": [v for r in ROWS for v in r]}]}).encode()


def check(answer):
    got = json.loads(answer.body)["outputs"][0]["data"]
    if got != [1, 1]:
        raise common.BenchError(f"wrong answer {got}")


def main() -> int:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.svm import SVC

    model_dir = OUT / "sklearn" / "iris"
    model_dir.mkdir(parents=True, exist_ok=True)
    X, y = load_iris(return_X_y=True)
    joblib.dump(SVC(gamma="scale").fit(X, y), model_dir / "model.joblib")
    scenarios = {}
    for key, label, extra in (("osprey", "Osprey (2 workers, adaptive batching)", []),
                              ("osprey-nobatch", "Osprey (2 workers, batches of one)",
                               ["--max-batch-size", "1"])):
        port = common.free_port()
        server = common.ServerProcess(
            f"osprey-{key}", [str(common.CFG.osprey_bin), "serve", "--model-dir", str(model_dir),
                              "--model-name", "iris", "--http-port", str(port), "--no-grpc",
                              "--http-threads", "1", *extra], "/v2/health/ready", port)
        s = common.Scenario(key=f"sklearn-{key}", label=label, group="osprey", protocol="v2-json",
                            path="/v2/models/iris/infer", body=BODY, check=check)
        common.run_group(server, [s])
        scenarios[key] = s
    port = common.free_port()
    cmd = [common.CFG.python, str(HERE / "kserve_sklearn_server.py"), "--model_dir", str(model_dir),
           "--model_name", "iris", "--http_port", str(port), "--workers", "1",
           "--enable_grpc", "false", "--quiet"]
    kserve = common.ServerProcess("kserve-sklearn", cmd, "/v2/health/ready", port,
                                  env=dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1"),
                                  ready_paths=["/v2/models/iris/ready"])
    s = common.Scenario(key="sklearn-kserve", label="KServe sklearnserver-style", group="kserve",
                        protocol="v2-json", path="/v2/models/iris/infer", body=BODY, check=check)
    common.run_group(kserve, [s])
    scenarios["kserve"] = s
    if common.any_failed(list(scenarios.values()), "sklearn"):
        return 1
    rps = {k: s.median("rps") for k, s in scenarios.items()}
    p99 = {k: s.median("p99_ms") for k, s in scenarios.items()}
    ratio = rps["osprey"] / rps["kserve"]
    common.publish("sklearn", common.scenario_rows(list(scenarios.values())) + [""] + common.goal_rows([
        ("Osprey vs KServe", ">= 5x req/s", f"{ratio:.1f}x", ratio >= 5),
        ("Osprey p99 vs KServe", "lower", f"{p99['osprey']:.3f} vs {p99['kserve']:.3f} ms",
         p99["osprey"] < p99["kserve"]),
        ("gain from adaptive batching", "reported",
         f"{rps['osprey'] / rps['osprey-nobatch']:.2f}x req/s", None)]),
        {k: s.runs for k, s in scenarios.items()} | {"ratio": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
