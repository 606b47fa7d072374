"""PMML: Osprey's native evaluator against a KServe-style PMML server (kserve
ModelServer + a JVM PMML evaluator, as KServe's pmmlserver), same run.

Model: bench/models/iris_tree.pmml, the decision tree of KServe's pmmlserver
example (answers {"Species", "Probability_*", "Node_Id"}). Request: one V1
instance, [[5.1, 3.5, 1.4, 0.2]]. Both servers pinned to the server CPU, wrk on
the client CPU, 32 connections, BENCH_RUNS runs each, medians.

Goal (issue: native backends): Osprey >= 20x the reference's requests/s.
Output: build/bench/pmml_results.{md,json}.
"""

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402

OUT = common.OUT_DIR
HERE = Path(__file__).resolve().parent
BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode()
WANT = {"Species": "setosa", "Probability_setosa": 1.0, "Probability_versicolor": 0.0,
        "Probability_virginica": 0.0, "Node_Id": "2"}


def check(answer):
    # PMML4S leaves the target out of a record when the model has outputs;
    # every value that is there must be right.
    got = json.loads(answer.body)["predictions"][0]
    if not set(got) >= set(WANT) - {"Species"} or any(WANT[k] != v for k, v in got.items()):
        raise common.BenchError(f"wrong answer {got}")


def main() -> int:
    if shutil.which("java") is None:
        print("pmml bench: no java for the JVM reference", file=sys.stderr)
        return 2
    model_dir = OUT / "pmml" / "iris"
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "models" / "iris_tree.pmml", model_dir / "model.pmml")
    results = {}
    port = common.free_port()
    osprey = common.ServerProcess(
        "osprey-pmml", [str(common.CFG.osprey_bin), "serve", "--model-dir", str(model_dir),
                        "--model-name", "iris", "--http-port", str(port), "--no-grpc",
                        "--http-threads", "1"], "/v2/health/ready", port)
    scenario = common.Scenario(key="pmml-osprey", label="Osprey (native PMML)", group="osprey",
                               protocol="v1", path="/v1/models/iris:predict", body=BODY,
                               check=check)
    common.run_group(osprey, [scenario])
    results["osprey"] = scenario
    port = common.free_port()
    cmd = [common.CFG.python, str(HERE / "kserve_pmml_server.py"), "--model_dir", str(model_dir),
           "--model_name", "iris", "--http_port", str(port), "--workers", "1",
           "--enable_grpc", "false", "--quiet"]
    reference = common.ServerProcess("kserve-pmml", cmd, "/v2/health/ready", port,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                     ready_paths=["/v2/models/iris/ready"])
    scenario = common.Scenario(key="pmml-kserve", label="KServe-style + PMML4S (JVM)",
                               group="kserve", protocol="v1", path="/v1/models/iris:predict",
                               body=BODY, check=check)
    common.run_group(reference, [scenario])
    results["reference"] = scenario
    if common.any_failed(list(results.values()), "pmml"):
        return 1
    ratio = results["osprey"].median("rps") / results["reference"].median("rps")
    common.publish("pmml", common.scenario_rows(list(results.values())) + [""] + common.goal_rows([
        ("Osprey vs JVM PMML server", ">= 20x req/s", f"{ratio:.1f}x", ratio >= 20)]),
        {k: s.runs for k, s in results.items()} | {"ratio": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
