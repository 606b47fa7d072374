"""The local platform's own times, median of BENCH_RUNS:

- apply -> Ready: `osprey apply -f ... --wait` wall time (the CLI process
  included), for a native XGBoost iris model and a Python-hosted sklearn one;
- up -> serving: from starting `osprey up --apply examples/xgboost-iris.yaml`
  to the first 200 from the gateway;
- the reference, same run: a bare `osprey serve` of the same model from process
  start to its readiness answering 200 (the floor a replica costs). The ratio
  apply->Ready / bare serve shows what the control plane adds.

Goals (issue: local control plane): xgboost apply->Ready < 1 s, sklearn < 3 s,
up -> serving the example < 2 s.
Output: build/bench/platform_results.{md,json}.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402

ROOT = common.ROOT
OUT = common.OUT_DIR
EXAMPLES = ROOT / "examples"
BODY = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}


def osprey(*args, env=None, **kw):
    return subprocess.run([str(common.CFG.osprey_bin), *args], env=env, check=True,
                          capture_output=True, text=True, **kw)


def wait_for(fn, deadline_s, what):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if fn():
                return time.monotonic()
        except requests.ConnectionError:
            pass
        time.sleep(0.002)
    raise common.BenchError(f"timed out waiting for {what}")


def env_for(home):
    env = dict(os.environ)
    env["OSPREY_HOME"] = str(home)
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"
    return env


def start_up(home, gateway_port, *extra):
    api_port = common.free_port()
    proc = subprocess.Popen(
        [str(common.CFG.osprey_bin), "up", "--data-dir", str(home), "--http-port",
         str(gateway_port), "--api-port", str(api_port), "--grpc-port", "0", "--address", "127.0.0.1", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_for(home), cwd=ROOT)
    return proc


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def manifest(name, fmt, uri):
    return (f"apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
            f"metadata:\n  name: {name}\nspec:\n  predictor:\n    model:\n"
            f"      modelFormat:\n        name: {fmt}\n      storageUri: {uri}\n")


def apply_to_ready(home, runs):
    """Median seconds of `osprey apply --wait` per format, on one platform."""
    port = common.free_port()
    proc = start_up(home, port)
    env = env_for(home)
    try:
        wait_for(lambda: (home / "endpoint").exists(), 20, "osprey up")
        out = {}
        for fmt, uri in (("xgboost", ROOT / "build/examples/xgboost-iris"),
                         ("sklearn", ROOT / "build/examples/sklearn-iris")):
            times = []
            for i in range(runs):
                text = manifest(f"{fmt}-bench-{i}", fmt, uri)
                t0 = time.monotonic()
                subprocess.run([str(common.CFG.osprey_bin), "apply", "-f", "-", "--wait"],
                               input=text, env=env, check=True, capture_output=True, text=True)
                times.append(time.monotonic() - t0)
                r = requests.post(f"http://127.0.0.1:{port}/v1/models/{fmt}-bench-{i}:predict",
                                  json=BODY, timeout=10)
                if r.status_code != 200:
                    raise common.BenchError(f"{fmt} answered {r.status_code}: {r.text}")
                osprey("delete", "isvc", f"{fmt}-bench-{i}", env=env)
            out[fmt] = statistics.median(times)
        return out
    finally:
        stop(proc)


def up_to_serving(runs):
    times = []
    for _ in range(runs):
        home = Path(tempfile.mkdtemp(prefix="osprey-bench-up-"))
        port = common.free_port()
        t0 = time.monotonic()
        proc = start_up(home, port, "--apply", str(EXAMPLES / "xgboost-iris.yaml"))
        try:
            t1 = wait_for(lambda: requests.post(
                f"http://127.0.0.1:{port}/v1/models/xgboost-iris:predict", json=BODY,
                timeout=5).status_code == 200, 30, "the example to be served")
            times.append(t1 - t0)
        finally:
            stop(proc)
            shutil.rmtree(home, ignore_errors=True)
    return statistics.median(times)


def bare_serve(runs):
    times = []
    for _ in range(runs):
        port = common.free_port()
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [str(common.CFG.osprey_bin), "serve", "--model-dir",
             str(ROOT / "build/examples/xgboost-iris"), "--model-name", "iris", "--http-port",
             str(port), "--no-grpc"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            t1 = wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/v2/models/iris/ready",
                                               timeout=5).status_code == 200, 30, "osprey serve")
            times.append(t1 - t0)
        finally:
            stop(proc)
    return statistics.median(times)


def main() -> int:
    subprocess.run([common.CFG.python, str(EXAMPLES / "train_example.py"),
                    str(ROOT / "build/examples")], check=True)
    runs = common.CFG.runs
    home = Path(tempfile.mkdtemp(prefix="osprey-bench-platform-"))
    try:
        ready = apply_to_ready(home, runs)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    up = up_to_serving(runs)
    serve = bare_serve(runs)
    goals = [
        ("apply -> Ready, xgboost (native)", "< 1 s", f"{ready['xgboost']:.3f} s",
         ready["xgboost"] < 1.0),
        ("apply -> Ready, sklearn (Python runtime)", "< 3 s", f"{ready['sklearn']:.3f} s",
         ready["sklearn"] < 3.0),
        ("osprey up -> serving the example", "< 2 s", f"{up:.3f} s", up < 2.0),
        ("reference: bare osprey serve start -> ready (xgboost)", "", f"{serve:.3f} s", None),
        ("control plane overhead, xgboost apply->Ready / bare serve", "",
         f"{common.fmt_ratio(common.ratio(ready['xgboost'], serve))}x", None),
    ]
    lines = [f"Local platform, median of {runs} runs (CLI process included in apply)", ""]
    lines += common.goal_rows(goals)
    common.publish("platform", lines, {"apply_ready_s": ready, "up_serving_s": up,
                                       "bare_serve_s": serve})
    return 0 if all(g[3] is not False for g in goals) or not common.CFG.enforce_goals else 1


if __name__ == "__main__":
    sys.exit(main())
