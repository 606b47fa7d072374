"""The gateway of `osprey up` against calling the replica directly, same run,
same replica (the xgboost iris example, one replica):

- saturation: wrk (closed loop, BENCH_CONNECTIONS connections) through the
  gateway vs straight to the replica's port; the platform (gateway and
  replica) pinned to the server CPU, wrk to the client CPU; medians of
  BENCH_RUNS runs of BENCH_SECONDS;
- added latency at a fixed moderate rate: bench/rate_client.cc (open loop,
  constant rate, latency from the scheduled send time) at BENCH_GATEWAY_RATE
  requests/s, gateway p50 minus direct p50;
- CPU per request: at BENCH_GATEWAY_CPU_RATE requests/s (a rate both paths
  sustain), the user and system CPU time of the gateway process, of the
  replica behind it, and of the same replica called directly, per request
  (/proc/PID/stat): where the gateway's cost goes;
- cold start: a revision at zero (minReplicas 0, short windows), the time of
  the first request through the gateway, for a native (xgboost) and a
  Python-hosted (sklearn) model, median of BENCH_RUNS.

Goals (issue: gateway, rollout, autoscaling): >= 0.5x the direct requests/s
(stretch 0.6x); < 0.1 ms added median latency; cold start < 0.5 s native,
< 2 s Python. Output: build/bench/gateway_results.{md,json}.
"""

import json
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
RATE = common.env_int("BENCH_GATEWAY_RATE", 2000)
# A rate both paths sustain, for CPU time per request.
CPU_RATE = common.env_int("BENCH_GATEWAY_CPU_RATE", 30000)
RATE_CLIENT = Path(os.environ.get(
    "OSPREY_RATE_CLIENT", str(common.CFG.osprey_bin.parent.parent.parent / "bench" /
                              "osprey_rate_client")))


def manifest(name, fmt, uri, extra=""):
    return (f"apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
            f"metadata:\n  name: {name}\nspec:\n  predictor:{extra}\n    model:\n"
            f"      modelFormat:\n        name: {fmt}\n      storageUri: {uri}\n")


class Up:
    def __init__(self, home):
        self.home = home
        self.port = common.free_port()
        self.env = dict(os.environ, OSPREY_HOME=str(home),
                        PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
        self.proc = subprocess.Popen(
            common.pinned(common.CFG.server_cpu, [
                str(common.CFG.osprey_bin), "up", "--data-dir", str(home), "--http-port",
                str(self.port), "--api-port", str(common.free_port()), "--grpc-port", "0", "--address", "127.0.0.1",
                "--autoscale-tick-ms", "200", "--stable-window-s", "2",
                "--scale-to-zero-grace-s", "1"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env, cwd=ROOT)
        deadline = time.monotonic() + 20
        while not (home / "endpoint").exists():
            if time.monotonic() > deadline:
                raise common.BenchError("osprey up did not start")
            time.sleep(0.01)

    def cli(self, *args, input=None):
        return subprocess.run([str(common.CFG.osprey_bin), *args], env=self.env, input=input,
                              check=True, capture_output=True, text=True).stdout

    def revisions(self, isvc):
        items = json.loads(self.cli("get", "revisions", "-o", "json"))["items"]
        return [r for r in items
                if r["metadata"]["labels"]["serving.kserve.io/inferenceservice"] == isvc]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def rate_run(port, path, host, rate, connections):
    """One open-loop run of the rate client; its JSON summary."""
    body = OUT / "gateway-rate.body"
    body.write_text(json.dumps(BODY))
    out = subprocess.run(common.pinned(common.CFG.client_cpu, [
        str(RATE_CLIENT), str(port), path, str(body), host, str(rate),
        str(common.CFG.seconds), str(connections)]), capture_output=True, text=True,
        check=True).stdout
    r = json.loads(out)
    if r["errors"]:
        raise common.BenchError(f"{r['errors']} errors at a fixed rate")
    return r


def rate_latency(port, path, host):
    results = [rate_run(port, path, host, RATE, 4) for _ in range(common.CFG.runs)]
    return {k: statistics.median(r[k] for r in results) for k in ("p50_ms", "p90_ms", "p99_ms")}


def cpu_seconds(pid):
    """User and system CPU seconds a process has used (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick  # utime, stime


def cpu_per_request(port, path, pids, rate):
    """CPU microseconds (user, system) each pid spends per request at a fixed
    rate both paths sustain; median of the runs."""
    runs = []
    for _ in range(common.CFG.runs):
        before = [cpu_seconds(p) for p in pids]
        sent = rate_run(port, path, "127.0.0.1", rate, 32)["sent"]
        after = [cpu_seconds(p) for p in pids]
        runs.append([((a[0] - b[0]) * 1e6 / sent, (a[1] - b[1]) * 1e6 / sent)
                     for a, b in zip(after, before)])
    return [(statistics.median(r[i][0] for r in runs), statistics.median(r[i][1] for r in runs))
            for i in range(len(pids))]


def cold_start(up, name, fmt, uri):
    up.cli("apply", "-f", "-", "--wait", input=manifest(name, fmt, uri, "\n    minReplicas: 0"))
    times = []
    for _ in range(common.CFG.runs):
        deadline = time.monotonic() + 60
        while sum(r["status"]["replicas"] for r in up.revisions(name)) != 0:
            if time.monotonic() > deadline:
                raise common.BenchError(f"{name} did not scale to zero")
            time.sleep(0.05)
        t0 = time.monotonic()
        r = requests.post(f"http://127.0.0.1:{up.port}/v1/models/{name}:predict", json=BODY,
                          timeout=30)
        times.append(time.monotonic() - t0)
        if r.status_code != 200:
            raise common.BenchError(f"cold {name}: HTTP {r.status_code} {r.text}")
    return statistics.median(times)


def main() -> int:
    subprocess.run([common.CFG.python, str(EXAMPLES / "train_example.py"),
                    str(ROOT / "build/examples")], check=True)
    if not RATE_CLIENT.exists():
        print(f"gateway bench: {RATE_CLIENT} missing (built with the release preset)",
              file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="osprey-bench-gateway-"))
    up = Up(home)
    try:
        up.cli("apply", "-f", "-", "--wait", input=manifest(
            "bench-iris", "xgboost", ROOT / "build/examples/xgboost-iris",
            "\n    minReplicas: 1\n    maxReplicas: 1"))
        replica = up.revisions("bench-iris")[0]["status"]["replicaStatuses"][0]["port"]
        want = [1.0, 1.0]
        path = "/v1/models/bench-iris:predict"
        direct = common.Scenario(key="gateway-direct", label="straight to the replica",
                                 group="osprey", protocol="v1", path=path,
                                 body=json.dumps(BODY).encode(),
                                 check=lambda a: common.check_v1(a, want))
        through = common.Scenario(key="gateway-through", label="through the gateway",
                                  group="osprey", protocol="v1", path=path,
                                  body=json.dumps(BODY).encode(),
                                  check=lambda a: common.check_v1(a, want))
        common.measure(direct, replica)
        common.measure(through, up.port)
        if common.any_failed([direct, through], "gateway"):
            return 1
        lat_direct = rate_latency(replica, path, "127.0.0.1")
        lat_gateway = rate_latency(up.port, path, "127.0.0.1")
        # Where the CPU goes, at a rate both paths sustain (a platform process
        # is the control plane and the gateway; its control-plane share at
        # rest is small against the requests).
        replica_pid = up.revisions("bench-iris")[0]["status"]["replicaStatuses"][0]["pid"]
        cost_rate = CPU_RATE
        [(gw_user, gw_sys), (behind_user, behind_sys)] = cpu_per_request(
            up.port, path, [up.proc.pid, replica_pid], cost_rate)
        [(direct_user, direct_sys)] = cpu_per_request(replica, path, [replica_pid], cost_rate)
        cold_xgb = cold_start(up, "cold-xgb", "xgboost", ROOT / "build/examples/xgboost-iris")
        cold_skl = cold_start(up, "cold-skl", "sklearn", ROOT / "build/examples/sklearn-iris")
    finally:
        up.stop()
        shutil.rmtree(home, ignore_errors=True)

    ratio = common.ratio(through.median("rps"), direct.median("rps"))
    added = lat_gateway["p50_ms"] - lat_direct["p50_ms"]
    goals = [
        ("gateway / direct requests/s at saturation", ">= 0.5x (stretch 0.6x)",
         f"{common.fmt_ratio(ratio)}x", ratio is not None and ratio >= 0.5),
        (f"added median latency at {RATE} req/s (open loop)", "< 0.1 ms", f"{added:.3f} ms",
         added < 0.1),
        ("cold start from zero, xgboost (native)", "< 0.5 s", f"{cold_xgb:.3f} s", cold_xgb < 0.5),
        ("cold start from zero, sklearn (Python)", "< 2 s", f"{cold_skl:.3f} s", cold_skl < 2.0),
    ]
    lines = [f"Gateway, median of {common.CFG.runs} x {common.CFG.seconds} s "
             f"(wrk {common.CFG.connections} connections)", ""]
    lines += common.scenario_rows([direct, through])
    lines += ["", "| Fixed rate | p50 ms | p90 ms | p99 ms |", "|---|---:|---:|---:|",
              f"| direct, {RATE} req/s | {lat_direct['p50_ms']:.3f} | {lat_direct['p90_ms']:.3f} | "
              f"{lat_direct['p99_ms']:.3f} |",
              f"| gateway, {RATE} req/s | {lat_gateway['p50_ms']:.3f} | "
              f"{lat_gateway['p90_ms']:.3f} | {lat_gateway['p99_ms']:.3f} |", ""]
    lines += [f"| CPU per request at {cost_rate} req/s (us) | user | system |",
              "|---|---:|---:|",
              f"| gateway (the osprey up process) | {gw_user:.2f} | {gw_sys:.2f} |",
              f"| replica behind the gateway | {behind_user:.2f} | {behind_sys:.2f} |",
              f"| replica called directly | {direct_user:.2f} | {direct_sys:.2f} |", ""]
    lines += common.goal_rows(goals)
    common.publish("gateway", lines, {
        "direct": direct.runs, "gateway": through.runs, "rate_direct": lat_direct,
        "rate_gateway": lat_gateway, "cold_xgboost_s": cold_xgb, "cold_sklearn_s": cold_skl,
        "cpu_us_per_request": {"rate": cost_rate, "gateway": [gw_user, gw_sys],
                               "replica_behind_gateway": [behind_user, behind_sys],
                               "replica_direct": [direct_user, direct_sys]}})
    return 0 if all(g[3] for g in goals) or not common.CFG.enforce_goals else 1


if __name__ == "__main__":
    sys.exit(main())
