"""InferenceGraph: Osprey's graph (run inside the gateway) against the client
making the calls itself, and against KServe's own router (cmd/router, built
by bench/setup_kserve_router.sh), same run, same replicas:

- overhead: a Sequence of two native models (two xgboost iris
  InferenceServices, one replica each) through the graph, against the client
  making the two calls itself through the gateway (the path a graph's steps
  take) and straight to the two replicas; open loop at BENCH_GRAPH_RATE
  operations/s (bench/graph_client.cc: latency from the scheduled send time),
  median and p99, medians of BENCH_RUNS runs; the added median per step is
  (graph p50 - two calls' p50) / 2;
- the anchor: KServe's router started with the same graph JSON (--graph-json,
  serviceUrls resolved as KServe's controller resolves them) with its steps
  pointed straight at the same replicas' ports (the router pays no gateway
  hop), against Osprey's graph; closed loop with BENCH_CONNECTIONS
  connections: throughput at saturation and p99, medians of BENCH_RUNS runs.

The platform, its replicas and the router run pinned to the server CPU, the
client to the client CPU. KServe's router listens on port 8080 only: the
bench runs in a network namespace of its own (unshare -n) where it can, else
needs 8080 free. Goals (issue 16): under 0.05 ms added median per step;
Osprey's graph >= 3x the router's throughput at saturation with a lower p99.
Output: build/bench/graph_results.{md,json}.
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
RATE = common.env_int("BENCH_GRAPH_RATE", 1000)
ROUTER_PORT = 8080  # KServe's constants.RouterPort
CLIENT_SRC = Path(__file__).resolve().parent / "graph_client.cc"


def client_binary():
    """bench/graph_client.cc, compiled once into build/bench."""
    out = OUT / "osprey_graph_client"
    if not out.exists() or out.stat().st_mtime < CLIENT_SRC.stat().st_mtime:
        subprocess.run(["c++", "-O2", "-std=c++17", "-pthread", "-o", str(out), str(CLIENT_SRC)],
                       check=True)
    return out


def manifest(name):
    return (f"apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
            f"metadata:\n  name: {name}\nspec:\n  predictor:\n    minReplicas: 1\n"
            f"    maxReplicas: 1\n    model:\n      modelFormat:\n        name: xgboost\n"
            f"      storageUri: {ROOT / 'build/examples/xgboost-iris'}\n")


GRAPH = """apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: seq
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
      - serviceName: iris-a
        name: a
      - serviceName: iris-b
        name: b
"""


class Up:
    def __init__(self, home):
        self.home = home
        self.port = common.free_port()
        self.env = dict(os.environ, OSPREY_HOME=str(home),
                        PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
        self.proc = subprocess.Popen(
            common.pinned(common.CFG.server_cpu, [
                str(common.CFG.osprey_bin), "up", "--data-dir", str(home), "--http-port",
                str(self.port), "--api-port", str(common.free_port()), "--grpc-port", "0",
                "--address", "127.0.0.1"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env, cwd=ROOT)
        deadline = time.monotonic() + 20
        while not (home / "endpoint").exists():
            if time.monotonic() > deadline:
                raise common.BenchError("osprey up did not start")
            time.sleep(0.01)

    def cli(self, *args, input=None):
        return subprocess.run([str(common.CFG.osprey_bin), *args], env=self.env, input=input,
                              check=True, capture_output=True, text=True).stdout

    def get(self, kind, name):
        return json.loads(self.cli("get", kind, name, "-o", "json"))

    def replica_port(self, isvc):
        items = json.loads(self.cli("get", "revisions", "-o", "json"))["items"]
        rev = next(r for r in items
                   if r["metadata"]["labels"]["serving.kserve.io/inferenceservice"] == isvc)
        return rev["status"]["replicaStatuses"][0]["port"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def load(client, rate, connections, steps, seconds=None):
    """One run of the graph client over `steps` ((port, host, path) each, sent
    one after another per operation); its JSON summary (fails on any error)."""
    body = OUT / "graph.body"
    body.write_text(json.dumps(BODY))
    args = [str(client), str(body), str(rate), str(seconds or common.CFG.seconds),
            str(connections)]
    for port, host, path in steps:
        args += [str(port), host, path]
    out = subprocess.run(common.pinned(common.CFG.client_cpu, args), capture_output=True,
                         text=True, check=True).stdout
    r = json.loads(out)
    if r["errors"]:
        raise common.BenchError(f"{r['errors']} errors: {steps}")
    return r


def medians(client, rate, connections, steps):
    if common.CFG.warmup_seconds > 0:
        load(client, rate, connections, steps, common.CFG.warmup_seconds)
    runs = [load(client, rate, connections, steps) for _ in range(common.CFG.runs)]
    m = {k: statistics.median(r[k] for r in runs) for k in ("ops_per_s", "p50_ms", "p99_ms")}
    m["runs"] = runs
    return m


def check(port, host, path, what):
    r = requests.post(f"http://127.0.0.1:{port}{path}", json=BODY, headers={"Host": host},
                      timeout=30)
    if r.status_code != 200 or r.json().get("predictions") != [1.0, 1.0]:
        raise common.BenchError(f"{what}: HTTP {r.status_code} {r.text[:200]}")


def start_router(graph_json):
    router = subprocess.run(["bash", str(ROOT / "bench/setup_kserve_router.sh")],
                            capture_output=True, text=True)
    if router.returncode != 0:
        raise common.BenchError(f"KServe's router did not build:\n{router.stderr[-2000:]}")
    log = open(common.LOG_DIR / "kserve-router.log", "w")
    proc = subprocess.Popen(common.pinned(common.CFG.server_cpu, [
        router.stdout.strip().splitlines()[-1], "--graph-json", graph_json]),
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{ROUTER_PORT}/readyz", timeout=1).ok:
                return proc
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise common.BenchError("KServe's router did not start (is port 8080 free?)")
        time.sleep(0.05)


def main() -> int:
    if os.environ.get("OSPREY_BENCH_NETNS") is None and shutil.which("unshare"):
        # A network namespace of our own: the router's fixed port 8080 is free there.
        inner = subprocess.run(
            ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
             sys.executable, *sys.argv], env=dict(os.environ, OSPREY_BENCH_NETNS="1"))
        if inner.returncode != 126:  # 126: unshare refused (no privilege): run here
            return inner.returncode
    common.LOG_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run([common.CFG.python, str(EXAMPLES / "train_example.py"),
                    str(ROOT / "build/examples")], check=True)
    client = client_binary()
    home = Path(tempfile.mkdtemp(prefix="osprey-bench-graph-"))
    up = Up(home)
    router = None
    try:
        up.cli("apply", "-f", "-", "--wait", input=manifest("iris-a") + "---\n" +
               manifest("iris-b"))
        up.cli("apply", "-f", "-", input=GRAPH)
        deadline = time.monotonic() + 30
        while up.get("ig", "seq").get("status", {}).get("url") is None:
            if time.monotonic() > deadline:
                raise common.BenchError("the graph did not become Ready")
            time.sleep(0.05)
        graph_host = "seq-default.example.com"
        a_host, b_host = "iris-a-default.example.com", "iris-b-default.example.com"
        a_path, b_path = "/v1/models/iris-a:predict", "/v1/models/iris-b:predict"
        port_a, port_b = up.replica_port("iris-a"), up.replica_port("iris-b")
        check(up.port, graph_host, "/", "Osprey's graph")

        # (a) overhead at a fixed rate.
        graph_rate = medians(client, RATE, 4, [(up.port, graph_host, "/")])
        calls_gateway = medians(client, RATE, 4,
                                [(up.port, a_host, a_path), (up.port, b_host, b_path)])
        calls_replicas = medians(client, RATE, 4,
                                 [(port_a, "127.0.0.1", a_path), (port_b, "127.0.0.1", b_path)])

        # (b) saturation: Osprey's graph vs KServe's router on the same replicas.
        spec = ({"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"name": "a", "serviceUrl": f"http://127.0.0.1:{port_a}{a_path}"},
            {"name": "b", "serviceUrl": f"http://127.0.0.1:{port_b}{b_path}"}]}}})
        router = start_router(json.dumps(spec))
        check(ROUTER_PORT, "router", "/", "KServe's router")
        conns = common.CFG.connections
        osprey_sat = medians(client, 0, conns, [(up.port, graph_host, "/")])
        router_sat = medians(client, 0, conns, [(ROUTER_PORT, "router", "/")])
    finally:
        if router is not None:
            router.terminate()
            try:
                router.wait(timeout=10)
            except subprocess.TimeoutExpired:
                router.kill()
        up.stop()
        shutil.rmtree(home, ignore_errors=True)

    added_step = (graph_rate["p50_ms"] - calls_gateway["p50_ms"]) / 2
    throughput = common.ratio(osprey_sat["ops_per_s"], router_sat["ops_per_s"])
    goals = [
        (f"added median per step, graph vs the client's two calls ({RATE}/s)", "< 0.05 ms",
         f"{added_step:.3f} ms", added_step < 0.05),
        ("Osprey graph / KServe router, throughput at saturation", ">= 3x",
         f"{common.fmt_ratio(throughput)}x", throughput is not None and throughput >= 3),
        ("p99 at saturation, Osprey graph vs KServe router", "lower",
         f"{osprey_sat['p99_ms']:.3f} vs {router_sat['p99_ms']:.3f} ms",
         osprey_sat["p99_ms"] < router_sat["p99_ms"]),
    ]
    lines = [f"InferenceGraph: a Sequence of two xgboost iris models; medians of "
             f"{common.CFG.runs} x {common.CFG.seconds} s", "",
             f"| Open loop, {RATE} operations/s, 4 connections | p50 ms | p99 ms |",
             "|---|---:|---:|",
             f"| Osprey graph (one request) | {graph_rate['p50_ms']:.3f} | "
             f"{graph_rate['p99_ms']:.3f} |",
             f"| the client's two calls through the gateway | {calls_gateway['p50_ms']:.3f} | "
             f"{calls_gateway['p99_ms']:.3f} |",
             f"| the client's two calls straight to the replicas | "
             f"{calls_replicas['p50_ms']:.3f} | {calls_replicas['p99_ms']:.3f} |", "",
             f"| Closed loop, {conns} connections | graphs/s | p50 ms | p99 ms |",
             "|---|---:|---:|---:|",
             f"| Osprey graph (in the gateway) | {osprey_sat['ops_per_s']:.0f} | "
             f"{osprey_sat['p50_ms']:.3f} | {osprey_sat['p99_ms']:.3f} |",
             f"| KServe router (steps straight to the replicas) | {router_sat['ops_per_s']:.0f} | "
             f"{router_sat['p50_ms']:.3f} | {router_sat['p99_ms']:.3f} |", ""]
    lines += common.goal_rows(goals)
    common.publish("graph", lines, {
        "rate": RATE, "graph_fixed_rate": graph_rate, "two_calls_fixed_rate": calls_gateway,
        "replicas_fixed_rate": calls_replicas, "osprey_saturation": osprey_sat,
        "router_saturation": router_sat, "added_ms_per_step": added_step,
        "throughput_ratio": throughput})
    return 0 if all(g[3] for g in goals) or not common.CFG.enforce_goals else 1


if __name__ == "__main__":
    sys.exit(main())
